"""Does the phase score `C_c` see success–failure divergence, or only sampling noise? (spec §3)

Rolls out `--batches` rollout batches of the preset with one policy (by default the preset's
shared SFT start, behaviour-cloned first if no run made it yet) and, per batch, compares each
phase's `C_c` with its outcome-shuffle null: the same chunks scored again with outcomes permuted
among the trajectories of each group (`pcm_engine.pcm.shuffled_outcome_scores`). A phase
whose score sits near its null is ranked by how few chunks it has, not by how differently
successes and failures act in it; PCM's keep weights then follow noise. `--score debiased`
scores with the noise-corrected signed `D²` instead (`pcm.score`, spec §3), whose null is 0
on average; both use the action dims of `pcm.score_dims`.

    python bench/score_null.py [--config tabletop_pcm] [--policy DIR] [--batches 4] [--shuffles 100]
                               [--score paper|debiased] [--set KEY=VALUE ...]

Prints a table (means over batches); the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

from pcm_engine.config import RunConfig, parse_set_arguments, resolve_preset
from pcm_engine.metrics import NullSink
from pcm_engine.sft import resolve_start
from pcm_engine.trainer import Trainer

SFT_CACHE = Path("runs/sft-starts")  # where `pcm train` keeps shared SFT starts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="tabletop_pcm", help="YAML file or preset name")
    parser.add_argument("--policy", help="policy folder (default: the preset's SFT start)")
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--shuffles", type=int, default=100)
    parser.add_argument(
        "--score",
        choices=["paper", "debiased"],
        help="phase score estimator (default: the config's pcm.score)",
    )
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()

    overrides = parse_set_arguments(args.overrides)
    if args.policy:
        overrides["policy.pretrained"] = str(Path(args.policy).resolve())
    if args.score:
        overrides["pcm.score"] = args.score
    config = RunConfig.load(resolve_preset(args.config), overrides)
    config = resolve_start(
        config,
        SFT_CACHE,
        on_start=lambda d: print(f"behaviour cloning the SFT start -> {d}", file=sys.stderr),
    )
    rng = np.random.default_rng(config.train.seed)
    per_phase: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    lengths: dict[str, list[int]] = {"success": [], "failure": []}  # chunks per trajectory
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(config, run_dir, NullSink(), resume=False)
        for index in range(args.batches):
            batch = trainer.rollout(probe=index)  # a fresh batch each time (seeding.py)
            labels = trainer.label(batch)
            phases = [label for traj in labels for label in traj]
            chunk_success = batch.success[batch.traj]
            nulls = trainer.shuffled_scores(
                batch, phases, args.shuffles, rng, estimator=config.pcm.score, dims=trainer.score_dims
            )
            for r in nulls:
                stats = per_phase[r.phase]
                stats["score"].append(r.score)
                stats["null"].append(r.null_mean)
                stats["p"].append(r.p_value)
                stats["chunks"].append(phases.count(r.phase))
                in_phase = np.asarray(phases) == r.phase
                stats["chunks_success"].append(int((in_phase & chunk_success).sum()))
                stats["chunks_failure"].append(int((in_phase & ~chunk_success).sum()))
            per_traj = np.bincount(batch.traj, minlength=batch.num_trajectories)
            lengths["success"].extend(per_traj[batch.success].tolist())
            lengths["failure"].extend(per_traj[~batch.success].tolist())
            print(
                f"batch {index + 1}/{args.batches}: rollout success {batch.success.mean():.2f}",
                file=sys.stderr,
            )

    paper = config.pcm.score == "paper"  # D² is signed with a null near 0: no ratio
    name = "C_c" if paper else "D2"
    print(
        f"{'phase':14s} {'chunks/batch':>12s} {'succ':>5s} {'fail':>5s} {name:>6s} "
        f"{'null ' + name:>9s} {name + '/null':>8s} {'p (mean)':>9s}"
    )
    summary = {}
    for phase, stats in sorted(per_phase.items()):
        score, null = float(np.mean(stats["score"])), float(np.mean(stats["null"]))
        summary[phase] = {
            "chunks_per_batch": float(np.mean(stats["chunks"])),
            "chunks_per_batch_success": float(np.mean(stats["chunks_success"])),
            "chunks_per_batch_failure": float(np.mean(stats["chunks_failure"])),
            "score": round(score, 4),
            "null": round(null, 4),
            "ratio": round(score / null, 3) if paper and null > 0 else None,
            "p_value": round(float(np.mean(stats["p"])), 3),
        }
        s = summary[phase]
        ratio = f"{s['ratio']:.2f}" if s["ratio"] is not None else "-"
        chunks, p_value = s["chunks_per_batch"], s["p_value"]
        wins, losses = s["chunks_per_batch_success"], s["chunks_per_batch_failure"]
        print(
            f"{phase:14s} {chunks:12.0f} {wins:5.0f} {losses:5.0f} {score:6.2f} {null:9.2f} "
            f"{ratio:>8s} {p_value:9.3f}"
        )
    print(
        json.dumps(
            {
                "policy": config.policy.pretrained,
                "batches": args.batches,
                "score": config.pcm.score,
                "score_dims": config.pcm.score_dims,
                "phases": summary,
                "chunks_per_trajectory": {
                    outcome: round(float(np.mean(n)), 2) if n else None for outcome, n in lengths.items()
                },
                "trajectories": {outcome: len(n) for outcome, n in lengths.items()},
            }
        )
    )


if __name__ == "__main__":
    main()

"""Where a training step's time goes, with and without overlapped rollouts (issue #18, part 5).

Trains GRPO (`pcm.selector: full`) and PCM (the config's selector and budget) from one start for
`--steps` steps each, once with `train.overlap_rollouts: false` and once with `true`: four runs
that differ only in those two knobs, the same seed (so the same task schedule), one after the
other in a rotating order for `--rounds` rounds, so machine noise hits all four alike. Eval and
checkpoints are off (a run stops one step short of `train.steps`, so the final eval never comes);
each run's first step is not counted (start-up, and an overlapped run has nothing rolled out
ahead yet).

For each run it reports the mean step time and its split (the rollout the step waited for,
select, update, other), the rollout time hidden behind the previous update and its fraction
(`time/rollout_hidden_s`, `time/rollout_overlap`), and the step speed-up of overlap over the
same method without it.

    python bench/step_split.py [--config tabletop_pcm] [--steps 12] [--rounds 2]
        [--threads 0] [--start POLICY_DIR] [--out bench/out/step_split] [--set KEY=VALUE ...]

`--start` names a policy folder to start from (e.g. an SFT start that `pcm sft` or
bench/reproduce.py built); without it the config's own start is resolved (`policy.init: sft`
behaviour-clones once, cached under OUT/sft). `--threads` pins torch's intra-op threads
(0 = torch's default: every core). The last line printed is one JSON object with every run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from update_cost import load_reading

from pcm_engine import metrics as M
from pcm_engine.config import RunConfig, parse_set_arguments, resolve_preset
from pcm_engine.metrics import NullSink
from pcm_engine.sft import resolve_start
from pcm_engine.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
SPLIT = (M.TIME_ROLLOUT, M.TIME_SELECT, M.TIME_UPDATE, M.TIME_OTHER)
REPORTED = (M.TIME_STEP, *SPLIT, M.TIME_ROLLOUT_HIDDEN, M.TIME_ROLLOUT_OVERLAP, M.PCM_KEPT_FRACTION)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="tabletop_pcm", help="preset or YAML (PCM's selector and budget)")
    parser.add_argument("--steps", type=int, default=12, help="steps per run (the first is not counted)")
    parser.add_argument("--rounds", type=int, default=2, help="times each of the four runs is repeated")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = default)")
    parser.add_argument("--start", help="policy folder to start from (default: the config's start)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "out" / "step_split"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    if args.steps < 2:
        parser.error("--steps must be at least 2 (the first step is not counted)")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def run_configs(args: argparse.Namespace) -> dict[str, RunConfig]:
    """The four runs: {GRPO, PCM} x {sequential, overlapped}, otherwise the same config."""
    overrides = parse_set_arguments(args.overrides)
    # one step more than is run: no run reaches its last step, whose eval would land in its time
    overrides.update({"eval.every": 0, "train.checkpoint_every": 0, "train.steps": args.steps + 1})
    overrides["train.torch_threads"] = args.threads
    base = RunConfig.load(resolve_preset(args.config), overrides)
    if args.start:
        base = RunConfig.from_dict(base.to_dict(), {"policy.pretrained": str(Path(args.start).resolve())})
    else:
        base = resolve_start(base, Path(args.out) / "sft")
    pcm = f"{base.pcm.selector} B={base.pcm.budget}"
    configs = {}
    for method, selector in (("GRPO", "full"), (pcm, base.pcm.selector)):
        for overlap in (False, True):
            name = f"{method}, {'overlapped' if overlap else 'sequential'}"
            changes = {"pcm.selector": selector, "train.overlap_rollouts": overlap}
            configs[name] = RunConfig.from_dict(base.to_dict(), changes)
    return configs


def time_run(config: RunConfig) -> list[dict[str, float]]:
    """Every counted step's metrics of one run (all but the first)."""
    with tempfile.TemporaryDirectory(prefix="step-split-") as run_dir:
        trainer = Trainer(config, run_dir, NullSink(), resume=False)
        try:
            return [trainer.step() for _ in range(config.train.steps - 1)][1:]
        finally:
            trainer.close()


def summarise(steps: list[dict[str, float]]) -> dict[str, float]:
    return {name: statistics.fmean(step.get(name, 0.0) for step in steps) for name in REPORTED}


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    configs = run_configs(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    names = list(configs)
    load_before = load_reading(threads, after=False)
    started = time.perf_counter()
    steps: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for round_index in range(args.rounds):
        order = names[round_index % len(names) :] + names[: round_index % len(names)]
        for name in order:
            print(f"round {round_index + 1}/{args.rounds}: {name} ...", file=sys.stderr, flush=True)
            steps[name] += time_run(configs[name])
    load_after = load_reading(threads, after=True)
    runs = {name: summarise(steps[name]) for name in names}
    for name, row in runs.items():
        sequential = runs[name.replace("overlapped", "sequential")]
        row["step_speedup_vs_sequential"] = sequential[M.TIME_STEP] / row[M.TIME_STEP]
    print_table(runs, counted=len(next(iter(steps.values()))))
    summary = {
        "runs": runs,
        "steps": args.steps,
        "rounds": args.rounds,
        "threads": threads,
        "seconds": time.perf_counter() - started,
        "load_average": {"before": load_before, "after": load_after},
    }
    print(json.dumps(summary))
    return summary


def print_table(runs: dict[str, dict[str, float]], counted: int) -> None:
    print(f"mean over {counted} counted steps per run (seconds)")
    print("| run | step | rollout waited | select | update | other | rollout hidden | overlap | speed-up |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, row in runs.items():
        cells = [f"{row[k]:.2f}" for k in (M.TIME_STEP, *SPLIT, M.TIME_ROLLOUT_HIDDEN)]
        overlap = f"{row[M.TIME_ROLLOUT_OVERLAP]:.0%}"
        print(f"| {name} | {' | '.join(cells)} | {overlap} | {row['step_speedup_vs_sequential']:.2f}× |")


if __name__ == "__main__":
    main()

"""One run over 1, 2, ... ranks: step time, its rollout/update split, and peak memory per rank,
DDP against FSDP2 (issue #17).

Trains the same config — same seed, so the same groups and the same draws (pcm_engine.distributed)
— once per world size and strategy, each through `pcm train` (ranks started by
torch.distributed.run), one run after the other. Eval is off; a run's first step (start-up) and
last step (its checkpoint and the final eval) are not counted. The intra-op threads are split
evenly between the ranks (`--threads` in all, default every core), so on a CPU machine every
world size uses the same cores; on a GPU machine each rank has its own GPU.

For each run it reports the mean step time and its split (rollout, select, update, other — with
several ranks the slowest rank's, and how much faster the fastest was), the speed-up over one
process, and the peak memory of the largest rank (GPU memory on CUDA, resident memory on the CPU).

    python bench/scaling.py [--config tabletop_pcm] [--steps 6] [--worlds 1,2]
        [--strategies ddp,fsdp] [--threads 0] [--start POLICY_DIR] [--out bench/out/scaling]
        [--set KEY=VALUE ...]

`--start` names a policy folder to start from; without it the config's own start is resolved once
(`policy.init: sft` behaviour-clones, cached under OUT/sft). The last line printed is one JSON
object with every run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from pcm_engine import metrics as M
from pcm_engine.config import RunConfig, parse_set_arguments, resolve_preset
from pcm_engine.sft import resolve_start

ROOT = Path(__file__).resolve().parents[1]
SPLIT = (M.TIME_ROLLOUT, M.TIME_SELECT, M.TIME_UPDATE, M.TIME_OTHER)
REPORTED = (M.TIME_STEP, *SPLIT, M.TIME_ROLLOUT_SPREAD, M.TIME_UPDATE_SPREAD, M.MEM_PEAK_GPU, M.MEM_PEAK_RSS)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="tabletop_pcm", help="preset or YAML")
    parser.add_argument("--steps", type=int, default=6, help="steps per run (first and last not counted)")
    parser.add_argument("--worlds", default="1,2", help="world sizes, comma-separated")
    parser.add_argument("--strategies", default="ddp,fsdp", help="for world sizes above 1")
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads in all (0 = every core)")
    parser.add_argument("--start", help="policy folder to start from (default: the config's start)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "out" / "scaling"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    if args.steps < 3:
        parser.error("--steps must be at least 3 (the first and last steps are not counted)")
    args.worlds = [int(w) for w in args.worlds.split(",")]
    args.strategies = args.strategies.split(",")
    return args


def run_configs(args: argparse.Namespace) -> dict[str, RunConfig]:
    """One config per (world size, strategy), otherwise identical."""
    overrides = parse_set_arguments(args.overrides)
    overrides.update({"eval.every": 0, "train.checkpoint_every": 0, "train.steps": args.steps})
    base = RunConfig.load(resolve_preset(args.config), overrides)
    if args.start:
        base = RunConfig.from_dict(base.to_dict(), {"policy.pretrained": str(Path(args.start).resolve())})
    else:
        base = resolve_start(base, Path(args.out) / "sft")
    threads = args.threads or os.cpu_count() or 1
    configs = {}
    for world in args.worlds:
        for strategy in args.strategies if world > 1 else ["ddp"]:
            name = "1 process" if world == 1 else f"{world} ranks, {strategy}"
            changes = {
                "dist.world_size": world,
                "dist.strategy": strategy,
                "train.torch_threads": max(1, threads // world),
                "name": f"scaling-w{world}-{strategy}",
            }
            configs[name] = RunConfig.from_dict(base.to_dict(), changes)
    return configs


def time_run(config: RunConfig, out: Path) -> list[dict]:
    """Train `config` with `pcm train` in a fresh folder; its counted steps' metric rows."""
    run_dir = out / "runs" / config.name
    config_file = out / f"{config.name}.yaml"
    config.save(config_file)
    command = [sys.executable, "-m", "pcm_engine.cli", "train", "--config", str(config_file)]
    subprocess.run([*command, "--run-dir", str(run_dir), "--fresh"], check=True, stdout=subprocess.DEVNULL)
    return M.read_metrics(run_dir)[1:-1]


def summarise(rows: list[dict]) -> dict[str, float]:
    return {name: statistics.fmean(row.get(name, 0.0) for row in rows) for name in REPORTED}


def machine() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    return f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()})"


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    configs = run_configs(args)
    started = time.perf_counter()
    runs = {}
    for name, config in configs.items():
        print(f"{name} ...", file=sys.stderr, flush=True)
        runs[name] = summarise(time_run(config, out))
    one = runs.get("1 process")
    for row in runs.values():
        row["speedup_vs_1"] = one[M.TIME_STEP] / row[M.TIME_STEP] if one else float("nan")
    print_table(runs, counted=args.steps - 2)
    summary = {
        "runs": runs,
        "steps": args.steps,
        "machine": machine(),
        "seconds": time.perf_counter() - started,
    }
    print(json.dumps(summary))
    return summary


def print_table(runs: dict[str, dict[str, float]], counted: int) -> None:
    memory = M.MEM_PEAK_GPU if any(row[M.MEM_PEAK_GPU] for row in runs.values()) else M.MEM_PEAK_RSS
    print(f"mean over {counted} counted steps per run (seconds; spread = slowest - fastest rank)")
    print(f"| run | step | rollout (spread) | select | update (spread) | other | speed-up | peak {memory} |")
    print("|---|---|---|---|---|---|---|---|")
    for name, row in runs.items():
        rollout = f"{row[M.TIME_ROLLOUT]:.2f} ({row[M.TIME_ROLLOUT_SPREAD]:.2f})"
        update = f"{row[M.TIME_UPDATE]:.2f} ({row[M.TIME_UPDATE_SPREAD]:.2f})"
        cells = [f"{row[M.TIME_STEP]:.2f}", rollout, f"{row[M.TIME_SELECT]:.2f}", update]
        cells += [f"{row[M.TIME_OTHER]:.2f}", f"{row['speedup_vs_1']:.2f}×", f"{row[memory] / 2**20:.0f} MiB"]
        print(f"| {name} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()

"""Actor-update cost of full GRPO vs PCM on one frozen rollout batch (spec §5, issues: engine, #18).

Collects one rollout batch of 64-chunk trajectories (the paper's N = 64: 256 steps, L = 4) with a
fresh tiny policy, marks half of every group successful so every group is mixed (cost does not
depend on outcomes), then times `Trainer.update` for `full` and for `pcm` keeping 12.5%, 18.75%
and 25% of every trajectory's chunks (B = N/8, 3N/16, N/4: 8, 12, 16), in both pass modes of
`grpo.micro_batch_chunks`:

- `auto` (the default): chunks packed into as few passes as fit GRPO's largest pass on this
  batch, so PCM makes about f as many passes as GRPO, none saving more activation;
- `memory`: one trajectory a pass (`micro_batch_trajectories` 1, as in the paper), so PCM's
  passes shrink with f, and with them its activation memory.

(`--mode N` times passes of up to N chunks instead; `--mode` overrides a `--set` of the field.)

Rounds: each round times every (mode, method) once, the order rotated from round to round so
machine noise hits all alike; round 0 warms up and is not counted. A method's speed-up in a
round is full's time over its own in that round and mode; the estimate is the geometric mean
over rounds, with a 95% t-interval on the log ratios. Rounds go on until every interval lies
within ±5% of its estimate (--tolerance), after at least --min-rounds, or until --max-seconds.

Threads: torch's intra-op threads are pinned (--threads, default 1: the steadiest timings on a
shared machine, and a pass's time closest to linear in its chunks). The load average is read
before and after; when other work kept more than half the cores busy (before: the 1-minute
load; after: it less this bench's own threads) a warning says the machine was not idle, and
the timings are then not measurements. Activation bytes do not depend on load.

    python bench/update_cost.py [--mode both|auto|memory|N] [--threads 1] [--min-rounds 5]
        [--max-seconds 900] [--tolerance 0.05] [--trajectories 16] [--set KEY=VALUE ...]

`--set` changes any config field, e.g. a bigger policy on a GPU:
`--set train.device=cuda --set policy.hidden_size=1024 --set policy.dtype=bfloat16`. On CUDA
the table adds each method's peak GPU memory during its update (allocator peak, weights,
optimizer state and the frozen batch included).

Prints a table per mode, their targets, then one JSON line with every row, and last one JSON
line for the ≈19% row of the first mode run (auto unless --mode memory) with its `speedup_ci`,
`mode` and `load_average`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import statistics
import tempfile
import time

import numpy as np
import torch

from pcm_engine.config import RunConfig, parse_set_arguments
from pcm_engine.metrics import NullSink
from pcm_engine.trainer import Trainer

FRACTIONS = (1 / 8, 3 / 16, 1 / 4)  # of a trajectory's N chunks: B = 8, 12, 16 at N = 64
TARGET = 1  # the ≈19% row, whose JSON line comes last
MODES = ("auto", "memory")
MODE_NOTES = {"auto": "passes packed up to GRPO's largest pass", "memory": "one trajectory a pass"}

# two-sided 95% quantiles of Student's t, df = 1..30
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
        2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
        2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)  # fmt: skip


def t975(df: int) -> float:
    """The 97.5% quantile of Student's t with `df` degrees of freedom (a table to 30, then the
    Cornish-Fisher expansion, within 1e-4 there)."""
    if df < 1:
        return math.inf
    if df <= len(T975):
        return T975[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def ratio_interval(ratios: list[float]) -> tuple[float, float, float]:
    """(geometric mean, low, high) of paired ratios: a 95% t-interval on their logs."""
    logs = np.log(np.asarray(ratios, dtype=np.float64))
    mean = float(logs.mean())
    if len(logs) < 2:
        return math.exp(mean), 0.0, math.inf
    half = t975(len(logs) - 1) * float(logs.std(ddof=1)) / math.sqrt(len(logs))
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half)


def within(estimate: float, low: float, high: float, tolerance: float) -> bool:
    return low >= estimate * (1 - tolerance) and high <= estimate * (1 + tolerance)


def load_reading(threads: int, *, after: bool) -> dict:
    """The load average now and whether others' work stays within half the cores (after the
    run, this bench's own `threads` busy threads are taken out of the 1-minute figure)."""
    cores = os.cpu_count() or 1
    load = os.getloadavg()
    others = max(0.0, load[0] - threads) if after else load[0]
    return {"load": [round(x, 2) for x in load], "others": round(others, 2), "idle": others <= 0.5 * cores}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--mode",
        default="both",
        help="grpo.micro_batch_chunks to time: both (auto and memory), auto, memory or a chunk count N",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (pinned)")
    parser.add_argument("--min-rounds", type=int, default=5, help="counted rounds at least")
    parser.add_argument("--repeats", type=int, dest="min_rounds", help="old name of --min-rounds")
    parser.add_argument("--max-rounds", type=int, default=1000)
    parser.add_argument("--max-seconds", type=float, default=900.0, help="stop after this, converged or not")
    parser.add_argument("--tolerance", type=float, default=0.05, help="half-width of every interval")
    parser.add_argument("--trajectories", type=int, default=16, help="multiple of 8")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    if args.min_rounds < 2:
        parser.error("--min-rounds must be at least 2 (an interval needs two rounds)")
    if args.mode.isdigit() and int(args.mode) > 0:
        args.modes = (int(args.mode),)
    elif args.mode in ("both", *MODES):
        args.modes = MODES if args.mode == "both" else (args.mode,)
    else:
        parser.error(f"--mode: both, auto, memory or a chunk count, not {args.mode!r}")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # only possible before any inter-op work; harmless if too late
        pass
    modes = args.modes
    overrides = parse_set_arguments(args.overrides)
    config = RunConfig.from_dict(
        {},
        {
            "env.max_steps": 256,
            "grpo.chunk_len": 4,
            "grpo.group_size": 8,
            "grpo.groups_per_step": args.trajectories // 8,
            "grpo.micro_batch_trajectories": 1,
            "grpo.temperature": 1.0,
            "pcm.selector": "full",
            "eval.every": 0,
            "train.torch_threads": args.threads,
            **overrides,
        },
    )
    pass_memory_mb = config.grpo.pass_memory_mb
    load_before = load_reading(args.threads, after=False)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(config, run_dir, NullSink(), resume=False)
        cuda = trainer.device.type == "cuda"
        params = sum(p.numel() for p in trainer.policy.parameters())
        where = torch.cuda.get_device_name(trainer.device) if cuda else "cpu"
        print(
            f"policy: {params / 1e6:.1f} M parameters, {config.policy.dtype}, on {where}, "
            f"{torch.get_num_threads()} thread(s)"
        )
        batch = trainer.rollout()
        batch.success[:] = np.arange(batch.num_trajectories) % 2 == 0  # every group mixed
        n_chunks = int(round(batch.num_chunks / batch.num_trajectories))
        print(f"frozen batch: {batch.num_trajectories} trajectories x {n_chunks} chunks")
        budgets = [max(1, round(f * n_chunks)) for f in FRACTIONS]
        if len(set(budgets)) < len(budgets):
            raise SystemExit(f"trajectories of {n_chunks} chunks are too short for three budgets")

        selections = {}
        for selector, budget in [("full", None)] + [("pcm", b) for b in budgets]:
            trainer.config.pcm.selector = selector
            trainer.config.pcm.budget = budget or 1
            selections["full" if budget is None else f"pcm B={budget}"] = trainer.select(batch)
        methods = list(selections)
        tasks = list(itertools.product(modes, methods))

        def set_mode(mode: str | int) -> None:
            trainer.config.grpo.pass_memory_mb = None  # a budget for auto only
            trainer.config.grpo.micro_batch_chunks = mode
            if mode == "auto":
                trainer.config.grpo.pass_memory_mb = pass_memory_mb

        times = {task: [] for task in tasks}
        stats, peak_gpu = {}, {}
        intervals: dict[tuple[str, str], tuple[float, float, float]] = {}
        started, rounds, converged = time.perf_counter(), 0, False
        for round_index in range(args.max_rounds + 1):  # round 0 warms up and is not counted
            shift = round_index % len(tasks)
            for mode, method in tasks[shift:] + tasks[:shift]:
                set_mode(mode)
                if cuda:
                    torch.cuda.synchronize(trainer.device)
                    torch.cuda.reset_peak_memory_stats(trainer.device)
                t0 = time.perf_counter()
                out = trainer.update(selections[method])
                if cuda:
                    torch.cuda.synchronize(trainer.device)
                    peak_gpu[mode, method] = torch.cuda.max_memory_allocated(trainer.device)
                elapsed = time.perf_counter() - t0
                if round_index:
                    times[mode, method].append(elapsed)
                stats[mode, method] = out
            rounds = round_index
            if rounds < 2:
                continue
            for mode, method in tasks:
                ratios = [f / t for f, t in zip(times[mode, "full"], times[mode, method], strict=True)]
                intervals[mode, method] = ratio_interval(ratios)
            converged = all(within(*intervals[mode, m], args.tolerance) for mode, m in tasks if m != "full")
            spent = time.perf_counter() - started
            if rounds >= args.min_rounds and (converged or spent >= args.max_seconds):
                break
    load_after = load_reading(args.threads, after=True)
    load_average = {
        "before": load_before["load"],
        "after": load_after["load"],
        "cores": os.cpu_count(),
        "threads": args.threads,
        "idle": load_before["idle"] and load_after["idle"],
    }

    spent = time.perf_counter() - started
    state = "converged" if converged else f"NOT converged (stopped after {spent:.0f} s)"
    print(f"\n{rounds} rounds, every interval within ±{args.tolerance:.0%}: {state}")
    if not load_average["idle"]:
        print(
            f"WARNING: the machine was not idle (load {load_before['load'][0]:.2f} before, "
            f"{load_after['load'][0]:.2f} after, {os.cpu_count()} cores, {args.threads} thread(s) "
            "here): the timings are not measurements; the activation columns still are."
        )
    gpu = bool(peak_gpu)
    rows: dict[str | int, dict[str, dict]] = {}
    for mode in modes:
        full_a = stats[mode, "full"]["mem/activation_bytes"]
        print(f"\nmode {mode}: {MODE_NOTES.get(mode, f'passes of up to {mode} chunks, packed')}")
        gpu_head = f"{'peak GPU MB':>13}{'peak ratio':>12}" if gpu else ""
        print(
            f"{'method':<12}{'kept':>7}{'passes':>8}{'update s':>10}{'speed-up':>10}{'95% interval':>16}"
            f"{'act. MB':>10}{'act. ratio':>12}{gpu_head}"
        )
        rows[mode] = {}
        for method in methods:
            selection = selections[method]
            estimate, low, high = intervals[mode, method]
            r = {
                "kept_fraction": round(len(selection.kept_rows) / len(selection.available_rows), 4),
                "update_s": round(statistics.median(times[mode, method]), 4),
                "update_speedup": round(estimate, 3),
                "speedup_ci": [round(low, 3), round(high, 3)],
                "activation_ratio": round(stats[mode, method]["mem/activation_bytes"] / full_a, 4),
                "passes": int(stats[mode, method]["train/passes"]),
            }
            gpu_cols = ""
            if gpu:
                r["peak_gpu_ratio"] = round(peak_gpu[mode, method] / peak_gpu[mode, "full"], 4)
                gpu_cols = f"{peak_gpu[mode, method] / 2**20:>13.0f}{r['peak_gpu_ratio']:>12.3f}"
            rows[mode][method] = r
            ci = f"[{low:.2f}, {high:.2f}]"
            print(
                f"{method:<12}{r['kept_fraction']:>7.3f}{r['passes']:>8}{r['update_s']:>10.3f}"
                f"{estimate:>10.2f}{ci:>16}{stats[mode, method]['mem/activation_bytes'] / 2**20:>10.1f}"
                f"{r['activation_ratio']:>12.3f}{gpu_cols}"
            )
        for method in methods[1:]:
            r = rows[mode][method]
            f = r["kept_fraction"]
            if mode == "auto":
                speed = r["update_speedup"] >= 0.95 / f
                memory = r["activation_ratio"] <= 1
                print(
                    f"  {method}: speed-up >= 0.95 / kept = {0.95 / f:.2f}: {'met' if speed else 'missed'}; "
                    f"activation <= GRPO's: {'met' if memory else 'missed'}"
                )
            elif mode == "memory":
                print(
                    f"  {method}: activation ratio <= 1.1 x kept = {1.1 * f:.3f}: "
                    f"{'met' if r['activation_ratio'] <= 1.1 * f else 'missed'}"
                )
    full_times = ", ".join(f"{m} {statistics.median(times[m, 'full']):.3f} s" for m in modes)
    print(f"full GRPO update: {full_times}")
    summary = {
        "rounds": rounds,
        "converged": converged,
        "threads": args.threads,
        "load_average": load_average,
        "modes": rows,
    }
    print(json.dumps(summary))
    mode, method = modes[0], methods[1 + TARGET]
    last = {
        "method": method,
        **{k: v for k, v in rows[mode][method].items() if k not in ("speedup_ci", "passes")},
        "full_update_s": round(statistics.median(times[mode, "full"]), 4),
        "speedup_ci": rows[mode][method]["speedup_ci"],
        "mode": mode,
        "load_average": load_average,
    }
    print(json.dumps(last))
    return summary


if __name__ == "__main__":
    main()

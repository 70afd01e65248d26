"""LIBERO env throughput: env steps/s with 1 and 2 simulator processes, with and without rendering
(one agentview image per chunk of 8 steps, as in training), driven by random actions through
`step_chunk` (the rollout path). Needs the `libero` extra (docs/libero.md).

Each configuration runs `--episodes` episodes of one task side by side for `--steps` steps; steps/s
counts every episode's steps over the stepping time only. Start-up (process spawn, LIBERO import,
simulator build) and reset are reported apart, as is the memory of the simulator processes.

Run: `python bench/libero_throughput.py [--suite libero_spatial --episodes 4 --steps 64]`.
Prints a table, then one JSON object as its last line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runnable without installing

import numpy as np  # noqa: E402

from pcm_engine.config import LiberoConfig  # noqa: E402

WORKERS = (1, 2)
CHUNK = 8


def _children_rss_mb(env) -> float:
    """Resident memory of the simulator processes (Linux /proc), in MB."""
    total = 0
    for proc in getattr(env._workers, "procs", []):
        status = Path(f"/proc/{proc.pid}/status").read_text()
        total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))
    return total / 1024


def measure(suite: str, task: int, workers: int, render: bool, episodes: int, steps: int) -> dict:
    from pcm_engine.envs.libero import LiberoEnv

    config = LiberoConfig(
        suite=suite, tasks=[task], max_steps=steps, num_workers=workers, image_size=128, render=render
    )
    rng = np.random.default_rng(0)
    with LiberoEnv(config) as env:
        start = time.perf_counter()
        env.reset([0] * episodes, list(range(episodes)), "train")
        startup_s = time.perf_counter() - start
        start = time.perf_counter()
        env.reset([0] * episodes, list(range(episodes, 2 * episodes)), "train")  # simulators built
        reset_s = time.perf_counter() - start
        taken, stepping = 0, 0.0
        while not env.done.all():
            actions = rng.uniform(-1, 1, (episodes, CHUNK, 7)).astype(np.float32)
            start = time.perf_counter()
            taken += int(env.step_chunk(actions).steps.sum())
            stepping += time.perf_counter() - start
        rss_mb = _children_rss_mb(env)
    return {
        "steps_per_s": taken / stepping,
        "startup_s": startup_s,
        "reset_s": reset_s,
        "rss_mb": rss_mb,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", default="libero_spatial")
    parser.add_argument("--task", type=int, default=0)
    parser.add_argument("--episodes", type=int, default=4, help="episodes side by side")
    parser.add_argument("--steps", type=int, default=64, help="steps per episode")
    args = parser.parse_args()

    results: dict[str, float] = {}
    print(
        f"LIBERO {args.suite} task {args.task}: {args.episodes} episodes x {args.steps} steps, chunk {CHUNK}"
    )
    header = ("workers", 8), ("render", 8), ("steps/s", 10), ("s/step", 9), ("start-up s", 12)
    print("".join(f"{name:>{width}}" for name, width in header) + f"{'reset s':>9}{'RSS MB':>9}")
    for workers in WORKERS:
        for render in (False, True):
            r = measure(args.suite, args.task, workers, render, args.episodes, args.steps)
            key = f"w{workers}_{'render' if render else 'norender'}"
            results[f"{key}_steps_per_s"] = round(r["steps_per_s"], 2)
            results[f"{key}_startup_s"] = round(r["startup_s"], 2)
            results[f"{key}_reset_s"] = round(r["reset_s"], 3)
            results[f"{key}_rss_mb"] = round(r["rss_mb"])
            print(
                f"{workers:>8}{'yes' if render else 'no':>8}{r['steps_per_s']:>10.1f}"
                f"{1 / r['steps_per_s']:>9.4f}{r['startup_s']:>12.1f}{r['reset_s']:>9.3f}{r['rss_mb']:>9.0f}"
            )
    print(json.dumps(results))


if __name__ == "__main__":
    main()

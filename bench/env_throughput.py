"""Tabletop env throughput on one CPU thread: env steps/s for batch sizes 1, 16 and 64, with and
without rendering an observation at every chunk boundary (chunk 8), driven by random actions
(through `step_chunk`, the rollout path) or by the scripted expert (per-step `act` + `step`).

Run: `python bench/env_throughput.py`. Prints a table, then one JSON object as its last line.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy is imported
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runnable without installing

import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from pcm_engine.config import TabletopConfig  # noqa: E402
from pcm_engine.envs.expert import ScriptedExpert  # noqa: E402
from pcm_engine.envs.tabletop import TabletopEnv  # noqa: E402

BATCHES = (1, 16, 64)
CHUNK = 8
SECONDS = 1.0  # measuring time per configuration


def measure(env: TabletopEnv, batch: int, driver: str, render: bool) -> float:
    """Env steps per second (steps actually executed, summed over the batch)."""
    rng = np.random.default_rng(0)
    expert = ScriptedExpert()
    steps, episode, elapsed = 0, 0, 0.0
    while elapsed < SECONDS:
        tasks = (np.arange(batch) + episode) % env.num_tasks
        env.reset(tasks, (np.arange(batch) + episode) % env.num_init_states("train"), "train")
        episode += 1
        start = time.perf_counter()
        while not env.done.all():
            if driver == "random" and render:
                steps += int(env.step_chunk(rng.uniform(-1, 1, (batch, CHUNK, 7))).steps.sum())
                continue
            if render:
                env.observe()
            for _ in range(CHUNK):
                active = int((~env.done).sum())
                action = expert.act(env) if driver == "expert" else rng.uniform(-1, 1, (batch, 7))
                env.step(action)
                steps += active
        elapsed += time.perf_counter() - start
    return steps / elapsed


def render_ms(env: TabletopEnv, batch: int, repeats: int = 50) -> float:
    env.reset(np.arange(batch) % env.num_tasks, np.arange(batch) % 50, "train")
    start = time.perf_counter()
    for _ in range(repeats):
        env.observe()
    return (time.perf_counter() - start) / repeats * 1e3


def main() -> None:
    env = TabletopEnv(TabletopConfig())
    results: dict[str, float] = {}
    print(f"tabletop env, image {env.image_size}px, chunk {CHUNK}, one thread; env steps/s")
    print(f"{'batch':>6}{'driver':>8}{'no render':>12}{'render':>12}{'render ms':>11}")
    for batch in BATCHES:
        ms = render_ms(env, batch)
        results[f"render_ms_b{batch}"] = round(ms, 3)
        for driver in ("random", "expert"):
            row = []
            for render in (False, True):
                rate = measure(env, batch, driver, render)
                results[f"{driver}_{'render' if render else 'norender'}_b{batch}"] = round(rate, 1)
                row.append(rate)
            print(f"{batch:>6}{driver:>8}{row[0]:>12.0f}{row[1]:>12.0f}{ms:>11.2f}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()

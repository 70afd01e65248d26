"""Actor-update cost of full GRPO vs PCM on one frozen rollout batch (spec §5, issue: engine).

Collects one rollout batch of 64-chunk trajectories (the paper's N = 64: 256 steps, L = 4) with a
fresh tiny policy, marks half of every group successful so every group is mixed (cost does not
depend on outcomes), then times `Trainer.update` for `full` and for `pcm` at B = 8, 12, 16
(12.5%, 18.75%, 25% of chunks), interleaving the methods over repeats so machine noise hits all
alike. Micro-batches are one trajectory, as in the paper, so activation memory shows PCM's
shrinking of each trajectory.

    python bench/update_cost.py [--repeats 3] [--trajectories 16] [--set KEY=VALUE ...]

`--set` changes any config field, e.g. a bigger policy on a GPU:
`--set train.device=cuda --set policy.hidden_size=1024 --set policy.dtype=bfloat16`. On CUDA
the table adds each method's peak GPU memory during its update (allocator peak, weights,
optimizer state and the frozen batch included).

Prints a table; the last line is one JSON object for the ≈19% row.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import numpy as np
import torch

from pcm_engine.config import RunConfig, parse_set_arguments
from pcm_engine.metrics import NullSink
from pcm_engine.trainer import Trainer

BUDGETS = (8, 12, 16)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--trajectories", type=int, default=16, help="multiple of 8")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()

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
            **parse_set_arguments(args.overrides),
        },
    )
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(config, run_dir, NullSink(), resume=False)
        cuda = trainer.device.type == "cuda"
        params = sum(p.numel() for p in trainer.policy.parameters())
        where = torch.cuda.get_device_name(trainer.device) if cuda else "cpu"
        print(f"policy: {params / 1e6:.1f} M parameters, {config.policy.dtype}, on {where}")
        batch = trainer.rollout()
        batch.success[:] = np.arange(batch.num_trajectories) % 2 == 0  # every group mixed
        n_chunks = batch.num_chunks / batch.num_trajectories
        print(f"frozen batch: {batch.num_trajectories} trajectories x {n_chunks:.0f} chunks")

        methods = [("full", None)] + [("pcm", b) for b in BUDGETS]
        times: dict[str, list[float]] = {}
        activation: dict[str, float] = {}
        peak_gpu: dict[str, float] = {}
        kept_fraction: dict[str, float] = {}
        for repeat in range(args.repeats + 1):  # repeat 0 warms up and is not counted
            for selector, budget in methods:
                name = selector if budget is None else f"pcm B={budget}"
                trainer.config.pcm.selector = selector
                trainer.config.pcm.budget = budget or 1
                selection = trainer.select(batch)
                if cuda:
                    torch.cuda.synchronize(trainer.device)
                    torch.cuda.reset_peak_memory_stats(trainer.device)
                t0 = time.perf_counter()
                stats = trainer.update(selection)
                if cuda:
                    torch.cuda.synchronize(trainer.device)
                    peak_gpu[name] = torch.cuda.max_memory_allocated(trainer.device)
                elapsed = time.perf_counter() - t0
                if repeat:
                    times.setdefault(name, []).append(elapsed)
                activation[name] = stats["mem/activation_bytes"]
                kept_fraction[name] = len(selection.kept_rows) / len(selection.available_rows)

    full_t = statistics.median(times["full"])
    full_a = activation["full"]
    gpu_head = f"{'peak GPU MB':>13}{'peak ratio':>12}" if peak_gpu else ""
    head = f"{'method':<12}{'kept':>8}{'update s':>11}{'speed-up':>10}{'act. MB':>10}{'act. ratio':>12}"
    print(f"\n{head}{gpu_head}")
    rows = {}
    for name in times:
        t = statistics.median(times[name])
        rows[name] = {
            "kept_fraction": round(kept_fraction[name], 4),
            "update_s": round(t, 4),
            "update_speedup": round(full_t / t, 3),
            "activation_ratio": round(activation[name] / full_a, 4),
        }
        r = rows[name]
        gpu_cols = ""
        if peak_gpu:
            r["peak_gpu_ratio"] = round(peak_gpu[name] / peak_gpu["full"], 4)
            gpu_cols = f"{peak_gpu[name] / 2**20:>13.0f}{r['peak_gpu_ratio']:>12.3f}"
        print(
            f"{name:<12}{r['kept_fraction']:>8.3f}{t:>11.3f}{r['update_speedup']:>10.2f}"
            f"{activation[name] / 2**20:>10.1f}{r['activation_ratio']:>12.3f}{gpu_cols}"
        )
    target = rows["pcm B=12"]
    print(
        f"targets for the ~19% row: speed-up >= {0.9 / target['kept_fraction']:.2f} "
        f"(0.9 / kept), activation ratio <= {1.1 * target['kept_fraction']:.3f} (1.1 x kept)"
    )
    print(json.dumps({"method": "pcm B=12", **target, "full_update_s": round(full_t, 4)}))


if __name__ == "__main__":
    main()

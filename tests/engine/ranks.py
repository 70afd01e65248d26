"""Real multi-process runs for the distributed tests: `spawn_ranks` starts W processes that join
one gloo process group and each train their rank of a tiny run (the way `torch.distributed.run`
starts them, minus the agent), optionally with every group's outcomes forced mixed so that
every step updates."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from pcm_engine.distributed import DistContext, leave_process_group
from pcm_engine.launch import free_port
from pcm_engine.metrics import JsonlSink, NullSink


def _rank(rank: int, world: int, port: int, overrides: dict, run_dir: str, out: str, mixed: bool) -> None:
    from pcm_engine.trainer import Trainer
    from tests.engine.conftest import force_mixed_outcomes, tiny_config

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        config = tiny_config(**{**overrides, "dist.world_size": world})
        sink = JsonlSink(run_dir) if rank == 0 else NullSink()  # rank 0 reports, as in a real run
        trainer = Trainer(config, run_dir, sink, dist=DistContext(rank, world, rank))
        if mixed:  # a rank's trajectories start at an even global index: local parity is global
            force_mixed_outcomes(trainer)
        trainer.train()
        state = {
            "keep": dict(trainer.keep.p),
            "params": {k: v.detach().cpu().clone() for k, v in trainer.policy.named_parameters()}
            if not trainer.sharded
            else None,
        }
        Path(out, f"rank{rank}.pkl").write_bytes(pickle.dumps(state))
        leave_process_group(finished=True)
    finally:
        leave_process_group()


def spawn_ranks(world: int, overrides: dict, run_dir: Path, out: Path, *, mixed: bool = True) -> list[dict]:
    """Train `tiny_config(**overrides)` as `world` ranks in `run_dir` (rank 0's metrics in its
    metrics.jsonl); returns each rank's final keep weights and (unsharded strategies) parameters."""
    out.mkdir(parents=True, exist_ok=True)
    mp.spawn(
        _rank, args=(world, free_port(), overrides, str(run_dir), str(out), mixed), nprocs=world, join=True
    )
    return [pickle.loads(Path(out, f"rank{r}.pkl").read_bytes()) for r in range(world)]

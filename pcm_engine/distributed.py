"""One run over several processes (`dist.world_size` ranks): torch.distributed inside a run.

How a step splits (docs/architecture.md, "Distributed runs"):

- **Rollout** — rank r rolls out its share of the step's GRPO groups (`DistContext.groups`),
  whole groups, so advantages stay local. The task/init schedule is drawn for every group and
  each rank takes its slice; action sampling is keyed by the *global* trajectory index
  (`pcm_engine.seeding.trajectory_stream`), so the ranks together draw what one process would.
- **Selection** — the ranks exchange everything of their rollouts but the images
  (`gather_rollouts`: actions, tokens, outcomes ... — kilobytes), and every rank runs the same
  scoring, keep-weight update and chunk selection on the whole step's batch, from the same
  streams: phase scores, keep weights and kept chunks equal the single-process ones exactly, for
  every `pcm.score` estimator and selector, and are identical on every rank.
- **Update** — the mini-batches are the single-process ones; each rank forwards and
  back-propagates only its own trajectories' kept chunks, with the loss divided by the *global*
  normaliser, and the gradients are summed over ranks (`sum_gradients`) before clipping and the
  optimizer step: W ranks make the update one process would make on the same batch.
- **Reporting** — rank 0 evaluates and writes metrics, chunk records and checkpoints; timings
  report the slowest rank and the spread (`slowest_and_spread`).

`pcm_engine` stays free of any launcher: a rank learns its place from the variables
`torch.distributed.run` sets (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist

from pcm_engine.rollout import ChunkBatch

RANK_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class DistContext:
    """This process's place in its run: rank `rank` of `world_size` (one process: 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that evaluates, reports and writes checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def groups(self, groups_per_step: int) -> range:
        """The step's GRPO groups this rank rolls out: a contiguous equal share, in rank order
        (the config requires `groups_per_step` to be a multiple of the world size)."""
        share = groups_per_step // self.world_size
        return range(self.rank * share, (self.rank + 1) * share)

    def all_gather(self, value: object) -> list[object]:
        """`value` of every rank, in rank order (pickled; for small objects)."""
        if not self.distributed:
            return [value]
        out: list[object] = [None] * self.world_size
        dist.all_gather_object(out, value)
        return out

    def broadcast_flag(self, flag: bool) -> bool:
        """Rank 0's `flag` on every rank (a stop request only rank 0 hears of)."""
        if not self.distributed:
            return flag
        box = [bool(flag)]
        dist.broadcast_object_list(box, src=0)
        return bool(box[0])

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def backend_for(choice: str, device: torch.device) -> str:
    """`dist.backend`: `auto` is nccl on CUDA, gloo on the CPU."""
    if choice != "auto":
        return choice
    return "nccl" if device.type == "cuda" else "gloo"


def rank_device(choice: str, context: DistContext) -> torch.device:
    """The device of this rank for `train.device` (`auto`/`cpu`/`cuda`): with CUDA, the GPU of
    its local rank (torch.distributed.run gives the ranks of one node local ranks 0..n-1)."""
    from pcm_engine.device import pick_device

    device = pick_device(choice)
    if device.type == "cuda":
        if context.local_rank >= torch.cuda.device_count():
            raise RuntimeError(
                f"local rank {context.local_rank} has no GPU: this node has "
                f"{torch.cuda.device_count()} (start at most that many ranks per node)"
            )
        device = torch.device("cuda", context.local_rank)
        torch.cuda.set_device(device)
    return device


def launched_context() -> DistContext | None:
    """The rank this process is, when torch.distributed.run started it (None otherwise)."""
    if not all(name in os.environ for name in RANK_VARIABLES):
        return None
    return DistContext(
        rank=int(os.environ["RANK"]),
        world_size=int(os.environ["WORLD_SIZE"]),
        local_rank=int(os.environ["LOCAL_RANK"]),
    )


def join_process_group(context: DistContext, backend: str, device: torch.device, timeout_s: float) -> None:
    """Join the run's process group (the rendezvous torch.distributed.run set up). A rank that
    waits `timeout_s` on a collective — a peer died — fails instead of hanging."""
    if dist.is_initialized():
        return
    dist.init_process_group(
        backend=backend_for(backend, device),
        rank=context.rank,
        world_size=context.world_size,
        timeout=timedelta(seconds=timeout_s),
        device_id=device if device.type == "cuda" else None,
    )


def leave_process_group(*, finished: bool = False) -> None:
    """Leave the run's process group. `finished` (every rank got through training): wait for the
    others first — a rank that tore its group down while a peer still had work in flight (FSDP's
    last collectives) could abort that peer at exit. After a failure nobody waits: the peers
    are stuck elsewhere, and torch.distributed.run ends them."""
    if not dist.is_initialized():
        return
    try:
        if finished:
            dist.barrier()
    finally:
        dist.destroy_process_group()


# --- the step's exchanges --------------------------------------------------------------------

_IMAGE_FREE = ("proprio", "tokens", "old_log_probs", "actions", "chunk_index")
_PER_TRAJECTORY = ("success", "group", "task", "init_state", "episode_steps")


def gather_rollouts(context: DistContext, local: ChunkBatch) -> tuple[ChunkBatch, np.ndarray]:
    """The whole step's rollout batch on every rank, and which of its trajectories are this
    rank's own: exactly the batch one process would have rolled out (ranks hold consecutive
    groups, rows are trajectory-major). Images are not exchanged: the rows of other ranks' chunks
    have zero images (pages never written, so they take no memory), and nothing reads them —
    a rank only forwards its own chunks."""
    if not context.distributed:
        return local, np.ones(local.num_trajectories, dtype=bool)
    payload = {k: getattr(local, k) for k in (*_IMAGE_FREE, *_PER_TRAJECTORY)}
    payload["traj"] = local.traj
    payload["instructions"] = local.instructions
    parts = context.all_gather(payload)
    offsets = np.cumsum([0] + [len(p["success"]) for p in parts])
    rows = np.cumsum([0] + [len(p["traj"]) for p in parts])
    images = np.zeros((int(rows[-1]), *local.images.shape[1:]), dtype=local.images.dtype)
    images[rows[context.rank] : rows[context.rank + 1]] = local.images
    merged = replace(
        local,
        images=images,
        traj=np.concatenate([p["traj"] + offsets[i] for i, p in enumerate(parts)]),
        instructions=[s for p in parts for s in p["instructions"]],
        **{k: np.concatenate([p[k] for p in parts]) for k in (*_IMAGE_FREE, *_PER_TRAJECTORY)},
    )
    own = np.zeros(int(offsets[-1]), dtype=bool)
    own[offsets[context.rank] : offsets[context.rank + 1]] = True
    return merged, own


def sum_gradients(context: DistContext, parameters: list[torch.nn.Parameter]) -> None:
    """Sum the gradients of `parameters` over the ranks (one flat all-reduce; a rank that made no
    pass in this mini-batch contributes zeros). Each rank's loss is its share of the global loss
    sum over the global normaliser, so the sum is the single-process gradient."""
    if not context.distributed:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    start = 0
    for p in parameters:
        piece = flat[start : start + p.numel()].view_as(p)
        start += p.numel()
        if p.grad is None:
            p.grad = piece.clone()
        else:
            p.grad.copy_(piece)


def slowest_and_spread(context: DistContext, seconds: dict[str, float]) -> dict[str, tuple[float, float]]:
    """For each timing, (the slowest rank's seconds, slowest minus fastest) over the ranks."""
    every = context.all_gather(seconds)
    return {
        k: (max(s[k] for s in every), max(s[k] for s in every) - min(s[k] for s in every)) for k in seconds
    }

"""Rollouts that overlap the update (`train.overlap_rollouts`).

While step t updates the policy, a background thread rolls out step t+1 with a *behaviour
policy*: a copy of the weights taken just before step t's update. The batch it records carries
that copy's log-probs, so step t+1's clipped ratio π_θ / π_behaviour is the ordinary PPO
importance ratio of a batch one update old (a policy lag of 1), and nothing else changes: the
task schedule and the sampling come from step t+1's own streams (`pcm_engine.seeding`), so with
the weights held still the batch is exactly the one the sequential loop would draw.

Only the trainable weights are copied at each step; frozen ones (a LoRA base, a frozen vision
tower) are shared with the policy, so the copy costs one set of trainable weights. On CUDA the
rollout runs on a stream of its own, so its inference kernels interleave with the update's.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from pcm_engine.policies import VLAPolicy
from pcm_engine.rollout import ChunkBatch


@dataclass(frozen=True)
class Prefetched:
    """A background rollout's batch, how long it ran, and how long the training thread was
    blocked waiting for it (the part of it the update did not hide)."""

    batch: ChunkBatch
    seconds: float
    waited: float

    @property
    def hidden(self) -> float:
        """Seconds of the rollout that ran while the training thread did other work."""
        return max(0.0, self.seconds - self.waited)


class RolloutPrefetcher:
    """Runs one step's rollout at a time in a background thread on a behaviour copy of `policy`.

    `start(step, rollout)` snapshots the policy's current weights and calls `rollout(behaviour)`
    in the thread; `take(step)` waits for that step's batch. The caller must not touch the env
    while a rollout is in flight (`wait()` first, e.g. before evaluating)."""

    def __init__(self, policy: VLAPolicy):
        frozen = {id(p): p for p in policy.parameters() if not p.requires_grad}
        self.behaviour = copy.deepcopy(policy, memo=frozen)  # frozen weights shared, not copied
        self.behaviour.requires_grad_(False)
        self._copied = [
            (b, p)
            for b, p in zip(self.behaviour.parameters(), policy.parameters(), strict=True)
            if p.requires_grad
        ] + list(zip(self.behaviour.buffers(), policy.buffers(), strict=True))
        device = next(policy.parameters()).device
        self._stream = torch.cuda.Stream(device) if device.type == "cuda" else None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pcm-rollout")
        self._pending: tuple[int, Future[tuple[ChunkBatch, float]]] | None = None
        self._waited = 0.0  # seconds the training thread has blocked on the rollout in flight

    @torch.no_grad()
    def _snapshot(self) -> None:
        for behaviour, live in self._copied:
            behaviour.copy_(live)
        if self._stream is not None:  # the rollout stream reads the copy only once it is made
            self._stream.wait_stream(torch.cuda.current_stream(self._stream.device))

    def start(self, step: int, rollout: Callable[[VLAPolicy], ChunkBatch]) -> None:
        """Roll out `step` in the background with the weights as they are now."""
        self.wait()
        self._snapshot()
        self._waited = 0.0
        self._pending = (step, self._pool.submit(self._timed, rollout))

    def _timed(self, rollout: Callable[[VLAPolicy], ChunkBatch]) -> tuple[ChunkBatch, float]:
        started = time.perf_counter()
        with torch.cuda.stream(self._stream) if self._stream is not None else nullcontext():
            batch = rollout(self.behaviour)
        return batch, time.perf_counter() - started

    def take(self, step: int) -> Prefetched | None:
        """`step`'s batch (waiting for it), or None when no rollout of that step is in flight
        (the first step, or after a resume); a rollout of another step is dropped."""
        if self._pending is None:
            return None
        pending_step, future = self._pending
        self.wait()
        self._pending = None
        batch, seconds = future.result()  # re-raises the rollout's error in the training thread
        return Prefetched(batch, seconds, self._waited) if pending_step == step else None

    def wait(self) -> None:
        """Block until the rollout in flight (if any) is done; its batch stays to be taken."""
        if self._pending is not None:
            t0 = time.perf_counter()
            self._pending[1].exception()
            self._waited += time.perf_counter() - t0

    def close(self) -> None:
        """Drop what is in flight (after it finishes) and stop the thread."""
        self.wait()
        self._pending = None
        self._pool.shutdown(wait=True)

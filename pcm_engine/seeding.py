"""Paired random streams (spec §6): one independent stream per purpose, derived from the seed
and the step number.

Two runs with one seed must roll out the same tasks and init states at every step whatever their
selector. With a single generator that is impossible: PCM's chunk draws consume random numbers that
GRPO never draws, so from the first step on the two runs would read different task schedules. Each
purpose therefore draws from its own stream, made afresh for every step from
`(seed, purpose, step)`: what one purpose consumes never moves another, and a resumed run needs no
generator state to continue exactly.
"""

from __future__ import annotations

import numpy as np
import torch

STREAMS: dict[str, int] = {
    "schedule": 1,  # which task and init state each group of a step starts from
    "rollout": 2,  # the policy's action sampling during rollouts
    "selection": 3,  # which chunks the selector keeps
    "order": 4,  # the order of trajectories across mini-batches
    "score_null": 5,  # outcome shuffles of the reported phase-score null (reporting only)
}


def step_stream(seed: int, purpose: str, step: int, *extra: int) -> np.random.Generator:
    """The numpy generator of `purpose` at training step `step` (1-based: the step being made).
    `extra` numbers give further independent streams of the same step (analysis probes that draw
    several batches without training)."""
    if purpose not in STREAMS:
        raise ValueError(f"unknown random stream '{purpose}' (known: {sorted(STREAMS)})")
    return np.random.default_rng(np.random.SeedSequence([seed, STREAMS[purpose], step, *extra]))


def trajectory_streams(
    seed: int, purpose: str, step: int, trajectories: np.ndarray, *extra: int
) -> list[np.random.Generator]:
    """One generator of `purpose` at step `step` per trajectory, keyed by its *global* index in
    the step (`trajectories`): a trajectory draws the same numbers whichever process rolls it out
    and whichever others share its batch (pcm_engine.distributed)."""
    if purpose not in STREAMS:
        raise ValueError(f"unknown random stream '{purpose}' (known: {sorted(STREAMS)})")
    entropy = [seed, STREAMS[purpose], step, *extra]
    return [np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(int(t),))) for t in trajectories]


def step_torch_generator(
    seed: int, purpose: str, step: int, device: torch.device | str, *extra: int
) -> torch.Generator:
    """A torch generator on `device` seeded from the same `(seed, purpose, step)` derivation."""
    state = step_stream(seed, purpose, step, *extra).integers(0, 2**63 - 1)
    return torch.Generator(device=device).manual_seed(int(state))

"""The VecEnv protocol: what the rollout loop needs from any suite (tabletop, LIBERO, ...).

Environments advance one *action chunk* at a time: a chunk policy decides `L` actions from one
observation, so observations are only rendered at chunk boundaries (spec §1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

Split = Literal["train", "eval"]


@dataclass
class Observation:
    """A batch of observations, one row per environment."""

    images: np.ndarray  # [B, H, W, 3] uint8 RGB
    proprio: np.ndarray  # [B, P] float32 (robot state only, never object poses)
    instructions: list[str]  # B natural-language task instructions


@dataclass
class ChunkStep:
    """What `VecEnv.step_chunk` returns."""

    obs: Observation  # observation after the chunk (rows of finished envs are stale)
    success: np.ndarray  # [B] bool, sticky: True once the task was achieved
    done: np.ndarray  # [B] bool: success or time limit reached
    steps: np.ndarray  # [B] int: env steps executed in this chunk (0 for envs already done)


class VecEnv(Protocol):
    action_dim: int  # 7: [dx, dy, dz, droll, dpitch, dyaw, gripper], gripper > 0 = close
    score_dims: tuple[int, ...]  # action dims the env acts on: what phase scores compare (§3)
    proprio_dim: int
    image_size: int
    max_steps: int

    @property
    def num_tasks(self) -> int: ...

    def instruction(self, task: int) -> str: ...

    def num_init_states(self, split: Split) -> int: ...

    def reset(self, tasks: Sequence[int], init_states: Sequence[int], split: Split) -> Observation:
        """Start len(tasks) episodes; env i runs task tasks[i] from init state init_states[i]."""
        ...

    def step_chunk(self, actions: np.ndarray) -> ChunkStep:
        """Execute `actions` [B, L, D] (continuous, in [-1, 1]); stop an env early when it succeeds
        or hits max_steps. Envs already done ignore their rows."""
        ...

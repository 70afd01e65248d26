"""A scripted, closed-loop pick-and-place expert for the tabletop suite, and demo collection.

The expert reads the env's privileged state every step (block and target positions, the held
block) and acts in phases: move above the task's block at a safe height, descend, close and hold
still for a few steps, lift, move above the target location, descend below the release height,
open. Each phase is chosen from the current state, so a failed grasp or a missed placement is
simply retried. Knobs make demos imperfect: Gaussian noise on the xyz action, per-episode
horizontal offsets of where it aims at the grasp and at the release, and an uneven squeeze (a closed
gripper command below 1, which slips a held block under the env's `grip_force`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pcm_engine.envs.base import Split
from pcm_engine.envs.tabletop import TabletopEnv

SAFE_Z = 0.2  # height of approach and transport
GRASP_Z = 0.02  # height it closes at (or half the env's grasp_height, if lower)
SETTLE_STEPS = 2  # steps held closed and still after the grasp, before lifting
XY_EPS = 0.02  # horizontal error below which it descends (doubled once low: hysteresis)
Z_EPS = 0.01
MIN_SQUEEZE = 0.05  # the weakest closed command an uneven squeeze gives (0 would mean "open")


class ScriptedExpert:
    """`act(env)` -> [B, 7] actions for the env's current batch (see the module docstring)."""

    def __init__(
        self,
        noise: float = 0.0,
        grasp_offset: float = 0.0,
        place_offset: float = 0.0,
        grip_noise: float = 0.0,
        seed: int = 0,
    ):
        if min(noise, grasp_offset, place_offset, grip_noise) < 0:
            raise ValueError("noise, grasp_offset, place_offset and grip_noise must be >= 0")
        self.noise = noise
        self.grip_noise = grip_noise
        self.grasp_offset = grasp_offset
        self.place_offset = place_offset
        self._rng = np.random.default_rng(seed)
        self._grasp_aim = np.zeros((0, 2))
        self._place_aim = np.zeros((0, 2))
        self._settle = np.zeros(0, dtype=np.int64)

    def act(self, env: TabletopEnv) -> np.ndarray:
        b = env.num_envs
        if len(self._settle) != b:
            self._grasp_aim = np.zeros((b, 2))
            self._place_aim = np.zeros((b, 2))
            self._settle = np.zeros(b, dtype=np.int64)
        fresh = env.elapsed == 0  # a new episode: draw its offsets
        n = int(fresh.sum())
        if n:
            self._grasp_aim[fresh] = self._rng.normal(0.0, self.grasp_offset, (n, 2))
            self._place_aim[fresh] = self._rng.normal(0.0, self.place_offset, (n, 2))
            self._settle[fresh] = 0

        cfg = env.config
        rows = np.arange(b)
        pos = np.asarray(env.gripper_pos)
        xy, z = pos[:, :2], pos[:, 2]
        target = env.target_block
        holding = env.held_block == target
        self._settle = np.where(holding, self._settle + 1, 0)
        low = z < SAFE_Z - Z_EPS

        # Not holding: approach the block, descend, close (reopen first after closing on nothing).
        grasp_z = min(GRASP_Z, 0.5 * cfg.grasp_height)
        aim = env.block_pos[rows, target] + self._grasp_aim
        over = np.linalg.norm(aim - xy, axis=1) < np.where(low, 2 * XY_EPS, XY_EPS)
        goal_xy = aim
        goal_z = np.where(over, grasp_z, SAFE_Z)
        close = over & (z < grasp_z + Z_EPS) & ~env.gripper_closed
        # ... but idle above a toppled block: the episode cannot succeed any more.
        lost = env.block_toppled[rows, target]
        goal_z = np.where(lost, SAFE_Z, goal_z)
        close &= ~lost

        # Holding: settle, lift, carry over the target location, descend, open.
        place_z = 0.5 * cfg.release_height
        aim = env.target_pos + self._place_aim
        over = np.linalg.norm(aim - xy, axis=1) < np.where(low, 2 * XY_EPS, XY_EPS)
        settling = self._settle <= SETTLE_STEPS
        lifting = ~over & low
        carry_xy = np.where((settling | lifting)[:, None], xy, aim)
        carry_z = np.where(settling, z, np.where(over, place_z, SAFE_Z))
        keep_closed = ~(over & ~settling & (z < place_z + Z_EPS))

        goal_xy = np.where(holding[:, None], carry_xy, goal_xy)
        goal_z = np.where(holding, carry_z, goal_z)
        command = np.where(holding, keep_closed, close)

        actions = np.zeros((b, 7))
        delta = np.concatenate([goal_xy - xy, (goal_z - z)[:, None]], axis=1)
        actions[:, :3] = np.clip(delta / cfg.move_scale, -1.0, 1.0)
        if self.noise > 0:
            actions[:, :3] = np.clip(actions[:, :3] + self._rng.normal(0.0, self.noise, (b, 3)), -1, 1)
        squeeze = 1.0
        if self.grip_noise > 0:
            squeeze = np.clip(1.0 - self.grip_noise * np.abs(self._rng.normal(0.0, 1.0, b)), MIN_SQUEEZE, 1.0)
        actions[:, 6] = np.where(command, squeeze, -1.0)
        return actions


@dataclass
class DemoSet:
    """Expert demos cut at chunk boundaries: row m is one observation and the next chunk."""

    images: np.ndarray  # [M, H, W, 3] uint8
    proprio: np.ndarray  # [M, 4] float32
    instructions: list[str]  # M strings
    actions: np.ndarray  # [M, chunk_len, 7] float32
    episode: np.ndarray  # [M] int: index into episode_success
    episode_success: np.ndarray  # [E] bool, one per (task, init state) pair, failed ones included

    def __len__(self) -> int:
        return len(self.episode)


def collect_demos(
    env: TabletopEnv,
    tasks: Sequence[int],
    init_states: Sequence[int],
    chunk_len: int,
    expert: ScriptedExpert,
    split: Split = "train",
    only_successful: bool = False,
) -> DemoSet:
    """Run one batched expert episode per pair (tasks[e], init_states[e]), as `env.reset` pairs
    them, and record every chunk boundary. The expert acts per step inside a chunk; an episode
    that ends mid-chunk pads the chunk by repeating its last action. `only_successful` drops the
    chunks of failed episodes (`episode_success` still lists every episode)."""
    if chunk_len < 1:
        raise ValueError(f"chunk_len must be >= 1, got {chunk_len}")
    obs = env.reset(tasks, init_states, split)
    b = env.num_envs
    images, proprio, instructions, actions, episode = [], [], [], [], []
    while not env.done.all():
        live = ~env.done
        chunk = np.zeros((b, chunk_len, 7), dtype=np.float32)
        for t in range(chunk_len):
            running = ~env.done
            chunk[:, t] = np.where(running[:, None], expert.act(env), chunk[:, max(t - 1, 0)])
            env.step(chunk[:, t])
        idx = np.flatnonzero(live)
        images.append(obs.images[idx])
        proprio.append(obs.proprio[idx])
        instructions.extend(obs.instructions[i] for i in idx)
        actions.append(chunk[idx])
        episode.append(idx)
        obs = env.observe()
    episode_success = env.success.copy()
    demos = DemoSet(
        np.concatenate(images),
        np.concatenate(proprio),
        instructions,
        np.concatenate(actions),
        np.concatenate(episode),
        episode_success,
    )
    if only_successful:
        keep = episode_success[demos.episode]
        demos = DemoSet(
            demos.images[keep],
            demos.proprio[keep],
            [s for s, k in zip(demos.instructions, keep, strict=True) if k],
            demos.actions[keep],
            demos.episode[keep],
            episode_success,
        )
    return demos

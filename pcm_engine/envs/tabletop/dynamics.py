"""The tabletop world's state and how one step changes it: `WorldState` holds a batch of episodes'
gripper, blocks, plates and task targets, and `advance` moves the gripper, grasps and releases
blocks (with the grip-force slip), and marks success.

Action per step, 7-D in [-1, 1]: `[dx, dy, dz, droll, dpitch, dyaw, gripper]`. The position moves
by `clip(a[:3], -1, 1) * move_scale` and is clipped to the workspace; the rotation dims are
accepted and ignored (a point gripper has no orientation); `gripper > 0` commands "closed".

- Grasp: on the step the command goes open -> closed, the gripper grasps the nearest upright block
  if it is lower than `grasp_height` and within `grasp_tolerance` horizontally; the fingers centre
  the block under the gripper. Otherwise it closes on nothing and must reopen to retry.
- Release: when the command goes closed -> open, the held block drops at the gripper's xy. Above
  `release_height` it topples (lies on its side: it can never count as placed, nor be grasped).
- Grip force (`grip_force`, 0 = off): the command's magnitude is the squeeze. A held block slips
  out on any step whose command is closed but below `grip_force`, and drops like a release (the
  fingers stay shut on nothing, so a re-grasp needs them opened first).
- Success (sticky): the task's block rests upright within `place_tolerance` (horizontally) of the
  task's target location (a plate, or another upright resting block for "stack" tasks).

So approach and transport are easy (no obstacles, any path works; under a grip force, any path with
a firm squeeze) while success hinges on precise alignment before the grasp, holding on to the
block, and a precise, low release.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pcm_engine.config import TabletopConfig
from pcm_engine.envs.tabletop.tasks import MAX_BLOCKS, Scene

RELEASE_OPENING = 0.5  # a held block drops once the fingers are this far open


@dataclass
class WorldState:
    """The state of B episodes, one row each; `advance` updates it in place."""

    grip: np.ndarray  # [B, 3] gripper x, y, z
    open_steps: np.ndarray  # [B] the fingers' travel left to closed, in steps
    closed: np.ndarray  # [B] fingers fully closed
    held: np.ndarray  # [B] index of the held block, -1 = none
    block_xy: np.ndarray  # [B, MAX_BLOCKS, 2] (a held block follows the gripper)
    block_colour: np.ndarray  # [B, MAX_BLOCKS] index into BLOCK_NAMES, -1 = absent
    block_present: np.ndarray  # [B, MAX_BLOCKS]
    toppled: np.ndarray  # [B, MAX_BLOCKS]
    rest_order: np.ndarray  # [B, MAX_BLOCKS] step of each block's last release: later draws on top
    plate_xy: np.ndarray  # [B, MAX_PLATES, 2]
    plate_colour: np.ndarray  # [B, MAX_PLATES] index into PLATE_NAMES, -1 = absent
    target_block: np.ndarray  # [B] the block the task moves
    dest_is_block: np.ndarray  # [B] stacking tasks: the destination is another block
    dest_index: np.ndarray  # [B] a block index if dest_is_block else a plate index
    success: np.ndarray  # [B] sticky
    done: np.ndarray  # [B] success or time limit reached
    elapsed: np.ndarray  # [B] env steps executed in the episode
    rows: np.ndarray  # [B] arange, for per-row fancy indexing

    @classmethod
    def from_scenes(cls, scenes: Sequence[Scene], gripper_steps: int) -> WorldState:
        """Episodes starting from `scenes`, fingers open."""
        b = len(scenes)
        block_colour = np.stack([s.block_colour for s in scenes])
        return cls(
            grip=np.stack([s.gripper for s in scenes]),
            open_steps=np.full(b, gripper_steps),
            closed=np.zeros(b, dtype=bool),
            held=np.full(b, -1),
            block_xy=np.stack([s.block_xy for s in scenes]),
            block_colour=block_colour,
            block_present=block_colour >= 0,
            toppled=np.zeros((b, MAX_BLOCKS), dtype=bool),
            rest_order=np.zeros((b, MAX_BLOCKS), dtype=np.int64),
            plate_xy=np.stack([s.plate_xy for s in scenes]),
            plate_colour=np.stack([s.plate_colour for s in scenes]),
            target_block=np.array([s.target_block for s in scenes]),
            dest_is_block=np.array([s.dest_is_block for s in scenes]),
            dest_index=np.array([s.dest_index for s in scenes]),
            success=np.zeros(b, dtype=bool),
            done=np.zeros(b, dtype=bool),
            elapsed=np.zeros(b, dtype=np.int64),
            rows=np.arange(b),
        )

    def dest_xy(self) -> np.ndarray:
        """[B, 2] where the task's block must go now: the target plate's centre or the base block's."""
        block_dest = self.block_xy[self.rows, self.dest_index]
        plate_dest = self.plate_xy[self.rows, np.where(self.dest_is_block, 0, self.dest_index)]
        return np.where(self.dest_is_block[:, None], block_dest, plate_dest)

    def advance(self, actions: np.ndarray, active: np.ndarray, config: TabletopConfig) -> None:
        """One env step of `actions` [B, 7] for the `active` rows (see the module docstring)."""
        move = np.clip(actions[:, :3], -1.0, 1.0) * config.move_scale
        grip = np.where(active[:, None], self.grip + move, self.grip)
        np.clip(grip[:, :2], -1.0, 1.0, out=grip[:, :2])
        np.clip(grip[:, 2], 0.0, 1.0, out=grip[:, 2])
        self.grip = grip
        rows = self.rows
        holding = self.held >= 0
        held = np.maximum(self.held, 0)
        if holding.any():  # the held block follows the gripper
            self.block_xy[rows[holding], held[holding]] = grip[holding, :2]

        # The fingers move 1/gripper_steps of their travel per step towards the command, so a
        # one-step flicker of the gripper command neither grasps nor drops anything.
        command = actions[:, 6] > 0
        target = np.where(command, 0, config.gripper_steps)
        new_open_steps = np.where(
            active, self.open_steps + np.sign(target - self.open_steps), self.open_steps
        )
        just_closed = (self.open_steps > 0) & (new_open_steps == 0)
        release = holding & (new_open_steps >= RELEASE_OPENING * config.gripper_steps)
        release |= holding & active & command & (actions[:, 6] < config.grip_force)  # a slip
        self.open_steps = new_open_steps

        if release.any():
            r, k = rows[release], held[release]
            self.toppled[r, k] = grip[release, 2] > config.release_height
            self.rest_order[r, k] = self.elapsed[release] + 1
            self.held[release] = -1

        if just_closed.any():
            dist = np.linalg.norm(self.block_xy - grip[:, None, :2], axis=2)
            dist = np.where(self.block_present & ~self.toppled, dist, np.inf)
            nearest = dist.argmin(axis=1)
            grasp = (
                just_closed
                & (self.held < 0)
                & (grip[:, 2] < config.grasp_height)
                & (dist[rows, nearest] < config.grasp_tolerance)
            )
            self.held = np.where(grasp, nearest, self.held)
            self.block_xy[rows[grasp], nearest[grasp]] = grip[grasp, :2]

        self.closed = self.open_steps == 0
        self.elapsed += active
        self.success |= active & self._placed(config.place_tolerance)
        self.done = self.success | (self.elapsed >= config.max_steps)

    def _placed(self, place_tolerance: float) -> np.ndarray:
        rows, tb, db = self.rows, self.target_block, self.dest_index
        resting = (self.held != tb) & ~self.toppled[rows, tb]
        dest_ok = ~self.dest_is_block | ((self.held != db) & ~self.toppled[rows, db])
        close = np.linalg.norm(self.block_xy[rows, tb] - self.dest_xy(), axis=1) < place_tolerance
        return resting & dest_ok & close

"""`TabletopEnv`, the tabletop suite behind the VecEnv protocol: it checks arguments, builds a
`WorldState` from the task's seeded scenes on reset, advances it one step or one action chunk at a
time with the dynamics, renders observations with the `Rasteriser`, and exposes the privileged,
read-only state the scripted expert and the tests read.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pcm_engine.config import TabletopConfig
from pcm_engine.envs.base import ChunkStep, Observation, Split
from pcm_engine.envs.tabletop.dynamics import WorldState
from pcm_engine.envs.tabletop.rendering import Rasteriser
from pcm_engine.envs.tabletop.tasks import SPLIT_CODES, TASKS, make_scene

ACTION_DIM = 7
PROPRIO_DIM = 4  # gripper x, y, z, opening (1 = open, 0 = closed)


def _readonly(a: np.ndarray) -> np.ndarray:
    view = a.view()
    view.flags.writeable = False
    return view


class TabletopEnv:
    """A batch of tabletop episodes behind the VecEnv protocol (see `pcm_engine.envs.tabletop`)."""

    action_dim = ACTION_DIM
    score_dims = (0, 1, 2, 6)  # dx, dy, dz, gripper: the rotation dims are ignored (dynamics)
    proprio_dim = PROPRIO_DIM

    def __init__(self, config: TabletopConfig | None = None):
        self.config = config or TabletopConfig()
        self.image_size = self.config.image_size
        self.max_steps = self.config.max_steps
        ids = list(range(len(TASKS))) if self.config.tasks is None else list(self.config.tasks)
        bad = [t for t in ids if not 0 <= t < len(TASKS)]
        if bad or not ids or len(set(ids)) != len(ids):
            raise ValueError(
                f"tasks: expected distinct suite task ids in [0, {len(TASKS)}), got {self.config.tasks}"
            )
        self.suite_tasks = ids
        self._rasteriser = Rasteriser(self.image_size)
        self._world: WorldState | None = None  # set by reset()

    # --- VecEnv --------------------------------------------------------------------------------

    @property
    def num_tasks(self) -> int:
        return len(self.suite_tasks)

    def instruction(self, task: int) -> str:
        self._check_tasks([task])
        return TASKS[self.suite_tasks[task]].instruction

    def num_init_states(self, split: Split) -> int:
        self._check_split(split)
        return self.config.train_init_states if split == "train" else self.config.eval_init_states

    def reset(self, tasks: Sequence[int], init_states: Sequence[int], split: Split) -> Observation:
        self._check_split(split)
        tasks = [int(t) for t in tasks]
        init_states = [int(i) for i in init_states]
        if len(tasks) != len(init_states) or not tasks:
            raise ValueError(
                f"tasks and init_states must be non-empty and of equal length, "
                f"got {len(tasks)} and {len(init_states)}"
            )
        self._check_tasks(tasks)
        limit = self.num_init_states(split)
        bad = [i for i in init_states if not 0 <= i < limit]
        if bad:
            raise ValueError(f"init_states: {split} indices must be in [0, {limit}), got {bad[:5]}")
        scenes = [
            make_scene(self.suite_tasks[t], split, i, self.config.layout_jitter)
            for t, i in zip(tasks, init_states, strict=True)
        ]
        self._tasks = np.array(tasks)
        self._instructions = [TASKS[self.suite_tasks[t]].instruction for t in tasks]
        self._world = WorldState.from_scenes(scenes, self.config.gripper_steps)
        return self.observe()

    def step_chunk(self, actions: np.ndarray) -> ChunkStep:
        world = self._started_world()
        actions = np.asarray(actions, dtype=np.float64)
        if actions.ndim != 3 or actions.shape[0] != self.num_envs or actions.shape[2] != ACTION_DIM:
            raise ValueError(
                f"actions: expected shape [{self.num_envs}, L, {ACTION_DIM}], got {list(actions.shape)}"
            )
        steps = np.zeros(self.num_envs, dtype=np.int64)
        for t in range(actions.shape[1]):
            active = ~world.done
            if not active.any():
                break
            world.advance(actions[:, t], active, self.config)
            steps += active
        return ChunkStep(self.observe(), world.success.copy(), world.done.copy(), steps)

    # --- extra public API ----------------------------------------------------------------------

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One env step of `actions` [B, 7] without rendering; returns (success[B], done[B])."""
        world = self._started_world()
        actions = np.asarray(actions, dtype=np.float64)
        if actions.shape != (self.num_envs, ACTION_DIM):
            raise ValueError(
                f"actions: expected shape [{self.num_envs}, {ACTION_DIM}], got {list(actions.shape)}"
            )
        active = ~world.done
        if active.any():
            world.advance(actions, active, self.config)
        return world.success.copy(), world.done.copy()

    def observe(self) -> Observation:
        """Render the current state (rows of finished envs show their final state)."""
        world = self._started_world()
        proprio = np.empty((self.num_envs, PROPRIO_DIM), dtype=np.float32)
        proprio[:, :3] = world.grip
        proprio[:, 3] = world.open_steps / self.config.gripper_steps  # 1 = open, 0 = closed
        return Observation(self._rasteriser.render(world), proprio, list(self._instructions))

    # --- privileged, read-only state (for the scripted expert and tests) ------------------------

    @property
    def num_envs(self) -> int:
        return 0 if self._world is None else len(self._world.rows)

    @property
    def tasks(self) -> np.ndarray:
        """[B] env task ids (0..num_tasks-1)."""
        return _readonly(self._tasks)

    @property
    def gripper_pos(self) -> np.ndarray:
        """[B, 3] gripper x, y, z."""
        return _readonly(self._world.grip)

    @property
    def gripper_closed(self) -> np.ndarray:
        return _readonly(self._world.closed)

    @property
    def held_block(self) -> np.ndarray:
        """[B] index of the held block, -1 = none."""
        return _readonly(self._world.held)

    @property
    def block_pos(self) -> np.ndarray:
        """[B, MAX_BLOCKS, 2] block centres (a held block follows the gripper)."""
        return _readonly(self._world.block_xy)

    @property
    def block_present(self) -> np.ndarray:
        """[B, MAX_BLOCKS] whether the slot holds a block in this scene."""
        return _readonly(self._world.block_present)

    @property
    def block_colour(self) -> np.ndarray:
        """[B, MAX_BLOCKS] colour of each block as an index into BLOCK_NAMES (-1 = absent)."""
        return _readonly(self._world.block_colour)

    @property
    def block_toppled(self) -> np.ndarray:
        return _readonly(self._world.toppled)

    @property
    def plate_pos(self) -> np.ndarray:
        """[B, MAX_PLATES, 2] plate centres (absent slots: see plate_present)."""
        return _readonly(self._world.plate_xy)

    @property
    def plate_present(self) -> np.ndarray:
        return _readonly(self._world.plate_colour >= 0)

    @property
    def target_block(self) -> np.ndarray:
        """[B] index of the block the task moves."""
        return _readonly(self._world.target_block)

    @property
    def target_pos(self) -> np.ndarray:
        """[B, 2] where the block must go now: the target plate's centre or the base block's."""
        return self._world.dest_xy()

    @property
    def target_is_block(self) -> np.ndarray:
        """[B] True for stacking tasks (the target location is another block)."""
        return _readonly(self._world.dest_is_block)

    @property
    def success(self) -> np.ndarray:
        return _readonly(self._world.success)

    @property
    def done(self) -> np.ndarray:
        return _readonly(self._world.done)

    @property
    def elapsed(self) -> np.ndarray:
        """[B] env steps executed in the current episode."""
        return _readonly(self._world.elapsed)

    # --- argument checks -----------------------------------------------------------------------

    def _check_split(self, split: str) -> None:
        if split not in SPLIT_CODES:
            raise ValueError(f"split: expected 'train' or 'eval', got {split!r}")

    def _check_tasks(self, tasks: Sequence[int]) -> None:
        bad = [t for t in tasks if not 0 <= t < self.num_tasks]
        if bad:
            raise ValueError(f"tasks: task ids must be in [0, {self.num_tasks}), got {bad[:5]}")

    def _started_world(self) -> WorldState:
        if self._world is None:
            raise RuntimeError("call reset() before stepping or observing")
        return self._world

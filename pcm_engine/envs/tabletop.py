"""The built-in "tabletop" suite: a vectorised numpy point-gripper pick-and-place world.

World (top-down): the table spans x, y in [-1, 1] (x to the right, y away from the robot, which
sits at the front edge y = -1); z in [0, 1] is height above the table. The gripper is a point with
an open/closed state. Each scene holds up to 4 blocks (squares) and up to 2 plates (discs).

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

Tasks: `TASKS` lists the whole suite (object-, goal- and spatial-style, like LIBERO's suites).
`config.tasks` restricts it; the env's task ids 0..num_tasks-1 then index that restricted list
(task id i is suite task `config.tasks[i]`). Scenes are seeded by the *suite* task id, split and
index, so a scene never changes with the restriction. Spatial references ("leftmost", "by the white
plate") are resolved from the initial state, which is sampled so the referent is unambiguous.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from pcm_engine.config import TabletopConfig
from pcm_engine.envs.base import ChunkStep, Observation, Split

ACTION_DIM = 7
PROPRIO_DIM = 4  # gripper x, y, z, opening (1 = open, 0 = closed)
MAX_BLOCKS = 4
MAX_PLATES = 2

BLOCK_HALF = 0.06  # half side of a block (a square seen from above)
PLATE_RADIUS = 0.15
SPAWN_LIMIT = 0.75  # objects spawn in [-SPAWN_LIMIT, SPAWN_LIMIT]^2
GRIPPER_START_Z = 0.3
RELEASE_OPENING = 0.5  # a held block drops once the fingers are this far open
GRIPPER_START_JITTER = 0.15  # the gripper starts at a seeded xy in [-J, J]^2
MIN_BLOCK_BLOCK = 0.3  # minimum centre distances between spawned objects
MIN_BLOCK_PLATE = 0.35
MIN_PLATE_PLATE = 0.45
SPATIAL_MARGIN = 0.15  # a spatial referent beats the runner-up by at least this much
SUITE_SEED = 20240611
_SPLIT_CODE = {"train": 0, "eval": 1}

BLOCK_COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 175, 60),
    "blue": (40, 90, 225),
    "yellow": (235, 200, 30),
}
PLATE_COLOURS: dict[str, tuple[int, int, int]] = {
    "white": (245, 245, 245),
    "black": (25, 25, 25),
}
TABLE_RGB = (176, 144, 104)
SHADOW_RGB = (112, 90, 64)
GRIPPER_RGB = (230, 0, 230)
BLOCK_NAMES = list(BLOCK_COLOURS)
PLATE_NAMES = list(PLATE_COLOURS)
# Palette rows: blocks, then the same blocks toppled (darker), then plates.
_PALETTE = np.array(
    [BLOCK_COLOURS[n] for n in BLOCK_NAMES]
    + [tuple(c // 2 for c in BLOCK_COLOURS[n]) for n in BLOCK_NAMES]
    + [PLATE_COLOURS[n] for n in PLATE_NAMES],
    dtype=np.uint8,
)
_TOPPLED_ROW = len(BLOCK_NAMES)
_PLATE_ROW = 2 * len(BLOCK_NAMES)


@dataclass(frozen=True)
class TaskSpec:
    """One task. `block` picks the block to move: "colour:<name>" or a spatial rule (leftmost,
    rightmost, middle, front, back, near:<plate>). `target` is "plate:<name>", or a block rule of
    the same form as `block` (a stacking task: the target location is that block)."""

    instruction: str
    blocks: tuple[str, ...]
    plates: tuple[str, ...]
    block: str
    target: str


_OBJECT_SCENE = (("red", "green", "blue", "yellow"), ("white",))
_GOAL_SCENE = (("red", "green", "blue"), ("white", "black"))
_SPATIAL_SCENE = (("yellow", "green", "blue"), ("white", "black"))

TASKS: tuple[TaskSpec, ...] = (
    # object-style: same structure, different target objects
    TaskSpec("put the red block on the white plate", *_OBJECT_SCENE, "colour:red", "plate:white"),
    TaskSpec("put the green block on the white plate", *_OBJECT_SCENE, "colour:green", "plate:white"),
    TaskSpec("put the blue block on the white plate", *_OBJECT_SCENE, "colour:blue", "plate:white"),
    TaskSpec("put the yellow block on the white plate", *_OBJECT_SCENE, "colour:yellow", "plate:white"),
    # goal-style: one scene, different goals
    TaskSpec("put the red block on the black plate", *_GOAL_SCENE, "colour:red", "plate:black"),
    TaskSpec("put the green block on the black plate", *_GOAL_SCENE, "colour:green", "plate:black"),
    TaskSpec("stack the green block on the blue block", *_GOAL_SCENE, "colour:green", "colour:blue"),
    TaskSpec("stack the red block on the green block", *_GOAL_SCENE, "colour:red", "colour:green"),
    TaskSpec("stack the blue block on the red block", *_GOAL_SCENE, "colour:blue", "colour:red"),
    # spatial-style: the referent is resolved from the initial state
    TaskSpec("put the leftmost block on the black plate", *_SPATIAL_SCENE, "leftmost", "plate:black"),
    TaskSpec("put the rightmost block on the white plate", *_SPATIAL_SCENE, "rightmost", "plate:white"),
    TaskSpec("put the back block on the black plate", *_SPATIAL_SCENE, "back", "plate:black"),
    TaskSpec("put the front block on the white plate", *_SPATIAL_SCENE, "front", "plate:white"),
    TaskSpec("put the middle block on the black plate", *_SPATIAL_SCENE, "middle", "plate:black"),
    TaskSpec(
        "put the block by the white plate on the black plate",
        *_SPATIAL_SCENE,
        "near:white",
        "plate:black",
    ),
    TaskSpec(
        "stack the leftmost block on the rightmost block",
        *_SPATIAL_SCENE,
        "leftmost",
        "rightmost",
    ),
)


@dataclass(frozen=True)
class Scene:
    """One initial state, padded to MAX_BLOCKS / MAX_PLATES (colour -1 = absent)."""

    block_xy: np.ndarray  # [MAX_BLOCKS, 2]
    block_colour: np.ndarray  # [MAX_BLOCKS] index into BLOCK_NAMES, -1 = absent
    plate_xy: np.ndarray  # [MAX_PLATES, 2]
    plate_colour: np.ndarray  # [MAX_PLATES] index into PLATE_NAMES, -1 = absent
    gripper: np.ndarray  # [3] start position
    target_block: int
    dest_is_block: bool
    dest_index: int  # a block index if dest_is_block else a plate index


def _spatial_pick(
    rule: str, xy: np.ndarray, plates: dict[str, np.ndarray], margin: float = SPATIAL_MARGIN
) -> int | None:
    """Index of the block a spatial rule refers to, or None when the choice is ambiguous."""
    if rule.startswith("near:"):
        keys = np.linalg.norm(xy - plates[rule[5:]], axis=1)
    elif rule in ("leftmost", "middle"):
        keys = xy[:, 0]
    elif rule == "rightmost":
        keys = -xy[:, 0]
    elif rule == "front":
        keys = xy[:, 1]
    elif rule == "back":
        keys = -xy[:, 1]
    else:
        raise ValueError(f"unknown block rule '{rule}'")
    order = np.argsort(keys)
    gaps = np.diff(keys[order])
    if rule == "middle":
        return int(order[1]) if len(order) == 3 and gaps.min() >= margin else None
    return int(order[0]) if gaps[0] >= margin else None


def _pick_block(
    rule: str,
    names: tuple[str, ...],
    xy: np.ndarray,
    plates: dict[str, np.ndarray],
    margin: float = SPATIAL_MARGIN,
) -> int | None:
    if rule.startswith("colour:"):
        return names.index(rule[7:])
    return _spatial_pick(rule, xy, plates, margin)


def _sample_away(rng: np.random.Generator, avoid: list[tuple[list[np.ndarray], float]]) -> np.ndarray | None:
    """A uniform spawn point at least `dist` from every point of each (points, dist), or None."""
    for _ in range(200):
        p = rng.uniform(-SPAWN_LIMIT, SPAWN_LIMIT, 2)
        if all(np.hypot(*(p - q)) >= dist for points, dist in avoid for q in points):
            return p
    return None


def _resolve(
    spec: TaskSpec, xy: np.ndarray, plates: list[np.ndarray], margin: float = SPATIAL_MARGIN
) -> tuple[int, bool, int] | None:
    """(target block, destination is a block, destination index) of a layout, or None when a
    spatial referent is ambiguous or the task would stack a block on itself."""
    named_plates = dict(zip(spec.plates, plates, strict=True))
    target = _pick_block(spec.block, spec.blocks, xy, named_plates, margin)
    dest_is_block = not spec.target.startswith("plate:")
    if dest_is_block:
        dest = _pick_block(spec.target, spec.blocks, xy, named_plates, margin)
    else:
        dest = spec.plates.index(spec.target[6:])
    if target is None or dest is None or (dest_is_block and dest == target):
        return None
    return target, dest_is_block, dest


def _spread_ok(blocks: np.ndarray, plates: np.ndarray, scale: float) -> bool:
    """Minimum centre distances (scaled) between blocks, blocks and plates, and plates."""

    def far(a: np.ndarray, b: np.ndarray, dist: float, same: bool) -> bool:
        d = np.linalg.norm(a[:, None] - b[None], axis=-1)
        if same:
            d = d + np.eye(len(a)) * 10
        return bool((d >= dist * scale).all())

    return (
        far(blocks, blocks, MIN_BLOCK_BLOCK, True)
        and far(blocks, plates, MIN_BLOCK_PLATE, False)
        and far(plates, plates, MIN_PLATE_PLATE, True)
    )


def _free_layout(spec: TaskSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, tuple]:
    """Objects anywhere on the table (rejection sampling until separations and referents hold)."""
    while True:
        plates: list[np.ndarray] = []
        blocks: list[np.ndarray] = []
        for _ in spec.plates:
            if (p := _sample_away(rng, [(plates, MIN_PLATE_PLATE)])) is not None:
                plates.append(p)
        for _ in spec.blocks:
            avoid = [(blocks, MIN_BLOCK_BLOCK), (plates, MIN_BLOCK_PLATE)]
            if (p := _sample_away(rng, avoid)) is not None:
                blocks.append(p)
        if len(plates) < len(spec.plates) or len(blocks) < len(spec.blocks):
            continue
        xy = np.stack(blocks)
        resolved = _resolve(spec, xy, plates)
        if resolved is not None:
            return xy, np.stack(plates), resolved


@lru_cache(maxsize=4096)
def task_layout(suite_task: int) -> tuple[np.ndarray, np.ndarray]:
    """The fixed nominal layout (block xy, plate xy) of a task; init states jitter around it."""
    spec = TASKS[suite_task]
    rng = np.random.default_rng([SUITE_SEED, suite_task, 99])
    while True:
        blocks, plates, _ = _free_layout(spec, rng)
        # the referents must survive any jitter: demand a wider margin on the nominal layout
        if _resolve(spec, blocks, list(plates), margin=2 * SPATIAL_MARGIN) is not None:
            return blocks, plates


@lru_cache(maxsize=65536)
def make_scene(suite_task: int, split: str, index: int, jitter: float | None = None) -> Scene:
    """The deterministic initial state of (suite task id, split, index); each split has its own
    seeds, so train and eval scenes are disjoint.

    `jitter` None: objects anywhere on the table. A number: LIBERO-style, every object is offset
    from the task's fixed layout (`task_layout`) by up to `jitter` along x and y.
    """
    spec = TASKS[suite_task]
    rng = np.random.default_rng([SUITE_SEED, suite_task, _SPLIT_CODE[split], index])
    if jitter is None:
        xy, plate_xy_, resolved = _free_layout(spec, rng)
    else:
        nominal_blocks, nominal_plates = task_layout(suite_task)
        while True:
            xy = nominal_blocks + rng.uniform(-jitter, jitter, nominal_blocks.shape)
            plate_xy_ = nominal_plates + rng.uniform(-jitter, jitter, nominal_plates.shape)
            xy, plate_xy_ = np.clip(xy, -0.9, 0.9), np.clip(plate_xy_, -0.9, 0.9)
            resolved = _resolve(spec, xy, list(plate_xy_))
            if resolved is not None and _spread_ok(xy, plate_xy_, 0.6):
                break
    target, dest_is_block, dest = resolved
    n_blocks, n_plates = len(xy), len(plate_xy_)
    block_xy = np.zeros((MAX_BLOCKS, 2))
    block_xy[:n_blocks] = xy
    plate_xy = np.zeros((MAX_PLATES, 2))
    plate_xy[:n_plates] = plate_xy_
    block_colour = np.full(MAX_BLOCKS, -1)
    block_colour[:n_blocks] = [BLOCK_NAMES.index(n) for n in spec.blocks]
    plate_colour = np.full(MAX_PLATES, -1)
    plate_colour[:n_plates] = [PLATE_NAMES.index(n) for n in spec.plates]
    start = rng.uniform(-GRIPPER_START_JITTER, GRIPPER_START_JITTER, 2)
    gripper = np.array([start[0], start[1], GRIPPER_START_Z])
    return Scene(block_xy, block_colour, plate_xy, plate_colour, gripper, target, dest_is_block, dest)


def _readonly(a: np.ndarray) -> np.ndarray:
    view = a.view()
    view.flags.writeable = False
    return view


class TabletopEnv:
    """A batch of tabletop episodes behind the VecEnv protocol (see the module docstring)."""

    action_dim = ACTION_DIM
    score_dims = (0, 1, 2, 6)  # dx, dy, dz, gripper: the rotation dims are ignored (`_advance`)
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
        # Pixel-centre coordinates of the top-down render: column -> x, row -> y (row 0 at y = +1).
        n = self.image_size
        centres = (-1.0 + (np.arange(n) + 0.5) * (2.0 / n)).astype(np.float32)
        self._grid_x = centres
        self._grid_y = centres[::-1].copy()
        self._pixel = 2.0 / n
        self._batch = 0

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
        b = len(scenes)
        self._batch = b
        self._tasks = np.array(tasks)
        self._instructions = [TASKS[self.suite_tasks[t]].instruction for t in tasks]
        self._grip = np.stack([s.gripper for s in scenes])
        self._closed = np.zeros(b, dtype=bool)
        self._open_steps = np.full(b, self.config.gripper_steps)  # fingers' travel left to closed
        self._held = np.full(b, -1)
        self._block_xy = np.stack([s.block_xy for s in scenes])
        self._block_colour = np.stack([s.block_colour for s in scenes])
        self._block_present = self._block_colour >= 0
        self._toppled = np.zeros((b, MAX_BLOCKS), dtype=bool)
        self._rest_order = np.zeros((b, MAX_BLOCKS), dtype=np.int64)  # later releases draw on top
        self._plate_xy = np.stack([s.plate_xy for s in scenes])
        self._plate_colour = np.stack([s.plate_colour for s in scenes])
        self._target_block = np.array([s.target_block for s in scenes])
        self._dest_is_block = np.array([s.dest_is_block for s in scenes])
        self._dest_index = np.array([s.dest_index for s in scenes])
        self._success = np.zeros(b, dtype=bool)
        self._done = np.zeros(b, dtype=bool)
        self._elapsed = np.zeros(b, dtype=np.int64)
        self._rows = np.arange(b)
        return self.observe()

    def step_chunk(self, actions: np.ndarray) -> ChunkStep:
        self._check_started()
        actions = np.asarray(actions, dtype=np.float64)
        if actions.ndim != 3 or actions.shape[0] != self._batch or actions.shape[2] != ACTION_DIM:
            raise ValueError(
                f"actions: expected shape [{self._batch}, L, {ACTION_DIM}], got {list(actions.shape)}"
            )
        steps = np.zeros(self._batch, dtype=np.int64)
        for t in range(actions.shape[1]):
            active = ~self._done
            if not active.any():
                break
            self._advance(actions[:, t], active)
            steps += active
        return ChunkStep(self.observe(), self._success.copy(), self._done.copy(), steps)

    # --- extra public API ----------------------------------------------------------------------

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One env step of `actions` [B, 7] without rendering; returns (success[B], done[B])."""
        self._check_started()
        actions = np.asarray(actions, dtype=np.float64)
        if actions.shape != (self._batch, ACTION_DIM):
            raise ValueError(
                f"actions: expected shape [{self._batch}, {ACTION_DIM}], got {list(actions.shape)}"
            )
        active = ~self._done
        if active.any():
            self._advance(actions, active)
        return self._success.copy(), self._done.copy()

    def observe(self) -> Observation:
        """Render the current state (rows of finished envs show their final state)."""
        self._check_started()
        proprio = np.empty((self._batch, PROPRIO_DIM), dtype=np.float32)
        proprio[:, :3] = self._grip
        proprio[:, 3] = self._open_steps / self.config.gripper_steps  # 1 = open, 0 = closed
        return Observation(self._render(), proprio, list(self._instructions))

    # --- privileged, read-only state (for the scripted expert and tests) ------------------------

    @property
    def num_envs(self) -> int:
        return self._batch

    @property
    def tasks(self) -> np.ndarray:
        """[B] env task ids (0..num_tasks-1)."""
        return _readonly(self._tasks)

    @property
    def gripper_pos(self) -> np.ndarray:
        """[B, 3] gripper x, y, z."""
        return _readonly(self._grip)

    @property
    def gripper_closed(self) -> np.ndarray:
        return _readonly(self._closed)

    @property
    def held_block(self) -> np.ndarray:
        """[B] index of the held block, -1 = none."""
        return _readonly(self._held)

    @property
    def block_pos(self) -> np.ndarray:
        """[B, MAX_BLOCKS, 2] block centres (a held block follows the gripper)."""
        return _readonly(self._block_xy)

    @property
    def block_present(self) -> np.ndarray:
        """[B, MAX_BLOCKS] whether the slot holds a block in this scene."""
        return _readonly(self._block_present)

    @property
    def block_colour(self) -> np.ndarray:
        """[B, MAX_BLOCKS] colour of each block as an index into BLOCK_NAMES (-1 = absent)."""
        return _readonly(self._block_colour)

    @property
    def block_toppled(self) -> np.ndarray:
        return _readonly(self._toppled)

    @property
    def plate_pos(self) -> np.ndarray:
        """[B, MAX_PLATES, 2] plate centres (absent slots: see plate_present)."""
        return _readonly(self._plate_xy)

    @property
    def plate_present(self) -> np.ndarray:
        return _readonly(self._plate_colour >= 0)

    @property
    def target_block(self) -> np.ndarray:
        """[B] index of the block the task moves."""
        return _readonly(self._target_block)

    @property
    def target_pos(self) -> np.ndarray:
        """[B, 2] where the block must go now: the target plate's centre or the base block's."""
        return self._dest_xy()

    @property
    def target_is_block(self) -> np.ndarray:
        """[B] True for stacking tasks (the target location is another block)."""
        return _readonly(self._dest_is_block)

    @property
    def success(self) -> np.ndarray:
        return _readonly(self._success)

    @property
    def done(self) -> np.ndarray:
        return _readonly(self._done)

    @property
    def elapsed(self) -> np.ndarray:
        """[B] env steps executed in the current episode."""
        return _readonly(self._elapsed)

    # --- dynamics ------------------------------------------------------------------------------

    def _dest_xy(self) -> np.ndarray:
        block_dest = self._block_xy[self._rows, self._dest_index]
        plate_dest = self._plate_xy[self._rows, np.where(self._dest_is_block, 0, self._dest_index)]
        return np.where(self._dest_is_block[:, None], block_dest, plate_dest)

    def _advance(self, actions: np.ndarray, active: np.ndarray) -> None:
        cfg = self.config
        move = np.clip(actions[:, :3], -1.0, 1.0) * cfg.move_scale
        grip = np.where(active[:, None], self._grip + move, self._grip)
        np.clip(grip[:, :2], -1.0, 1.0, out=grip[:, :2])
        np.clip(grip[:, 2], 0.0, 1.0, out=grip[:, 2])
        self._grip = grip
        rows = self._rows
        holding = self._held >= 0
        held = np.maximum(self._held, 0)
        if holding.any():  # the held block follows the gripper
            self._block_xy[rows[holding], held[holding]] = grip[holding, :2]

        # The fingers move 1/gripper_steps of their travel per step towards the command, so a
        # one-step flicker of the gripper command neither grasps nor drops anything.
        command = actions[:, 6] > 0
        target = np.where(command, 0, cfg.gripper_steps)
        new_open_steps = np.where(
            active, self._open_steps + np.sign(target - self._open_steps), self._open_steps
        )
        just_closed = (self._open_steps > 0) & (new_open_steps == 0)
        release = holding & (new_open_steps >= RELEASE_OPENING * cfg.gripper_steps)
        release |= holding & active & command & (actions[:, 6] < cfg.grip_force)  # a slip
        self._open_steps = new_open_steps

        if release.any():
            r, k = rows[release], held[release]
            self._toppled[r, k] = grip[release, 2] > cfg.release_height
            self._rest_order[r, k] = self._elapsed[release] + 1
            self._held[release] = -1

        if just_closed.any():
            dist = np.linalg.norm(self._block_xy - grip[:, None, :2], axis=2)
            dist = np.where(self._block_present & ~self._toppled, dist, np.inf)
            nearest = dist.argmin(axis=1)
            grasp = (
                just_closed
                & (self._held < 0)
                & (grip[:, 2] < cfg.grasp_height)
                & (dist[rows, nearest] < cfg.grasp_tolerance)
            )
            self._held = np.where(grasp, nearest, self._held)
            self._block_xy[rows[grasp], nearest[grasp]] = grip[grasp, :2]

        self._closed = self._open_steps == 0
        self._elapsed += active
        self._success |= active & self._placed()
        self._done = self._success | (self._elapsed >= self.max_steps)

    def _placed(self) -> np.ndarray:
        rows, tb, db = self._rows, self._target_block, self._dest_index
        resting = (self._held != tb) & ~self._toppled[rows, tb]
        dest_ok = ~self._dest_is_block | ((self._held != db) & ~self._toppled[rows, db])
        close = (
            np.linalg.norm(self._block_xy[rows, tb] - self._dest_xy(), axis=1) < self.config.place_tolerance
        )
        return resting & dest_ok & close

    # --- rendering -----------------------------------------------------------------------------

    def _boxes(self, cx: np.ndarray, cy: np.ndarray, hx: np.ndarray, hy: np.ndarray) -> np.ndarray:
        """Masks [..., H, W] of axis-aligned boxes from [...] centres and half sizes (a negative
        half size draws nothing)."""
        mx = np.abs(self._grid_x - cx[..., None].astype(np.float32)) < hx[..., None]
        my = np.abs(self._grid_y - cy[..., None].astype(np.float32)) < hy[..., None]
        return my[..., :, None] & mx[..., None, :]

    def _discs(
        self, cx: np.ndarray, cy: np.ndarray, outer: np.ndarray, inner: np.ndarray | None = None
    ) -> np.ndarray:
        """Masks [..., H, W] of discs of radius `outer` (rings when `inner` is given) from [...]
        arrays. Built from per-row half widths, so no [..., H, W] float temporary is needed."""
        adx = np.abs(self._grid_x - cx[..., None].astype(np.float32))[..., None, :]
        dy2 = (self._grid_y - cy[..., None].astype(np.float32)) ** 2

        def half_width(radius: np.ndarray) -> np.ndarray:
            r2 = (radius.astype(np.float32) ** 2)[..., None]
            return np.where(dy2 < r2, np.sqrt(np.maximum(r2 - dy2, 0)), -1)[..., :, None]

        mask = adx < half_width(outer)
        if inner is not None:
            mask &= adx >= half_width(inner)
        return mask

    def _render(self) -> np.ndarray:
        """Top-down orthographic render into a map of layer ids, then a colour lookup.

        Layers, bottom to top: table, plates, resting blocks (in release order), the held
        block's shadow, the held block (enlarged with height), the gripper (a ring when open, a
        cross when closed; both grow with height). Layer ids increase bottom to top, so painting
        a layer is a max with `id * mask`. Everything is float32 / uint8 to keep memory traffic low.
        """
        b, rows = self._batch, self._rows
        plate_id = 1
        block_id = plate_id + MAX_PLATES
        shadow_id = block_id + MAX_BLOCKS
        held_id, gripper_id = shadow_id + 1, shadow_id + 2
        n_layers = gripper_id + 1
        palette = np.empty((b, n_layers, 3), dtype=np.uint8)
        palette[:, 0] = TABLE_RGB

        radius = np.where(self._plate_colour >= 0, PLATE_RADIUS, 0.0)
        disc = self._discs(self._plate_xy[..., 0], self._plate_xy[..., 1], radius)
        ids = np.arange(plate_id, block_id, dtype=np.uint8)[:, None, None]
        labels = (disc * ids).max(axis=1)
        palette[:, plate_id:block_id] = _PALETTE[_PLATE_ROW + np.maximum(self._plate_colour, 0)]

        # resting blocks, later releases on top; toppled ones lie flat (wide, low, darker)
        order = np.argsort(self._rest_order, axis=1, kind="stable")
        xy = np.take_along_axis(self._block_xy, order[..., None], axis=1)
        colour = np.take_along_axis(self._block_colour, order, axis=1)
        toppled = np.take_along_axis(self._toppled, order, axis=1)
        visible = (colour >= 0) & (order != self._held[:, None])
        hx = np.where(visible, np.where(toppled, 1.5 * BLOCK_HALF, BLOCK_HALF), -1.0)
        hy = np.where(toppled, 0.6 * BLOCK_HALF, BLOCK_HALF)
        box = self._boxes(xy[..., 0], xy[..., 1], hx.astype(np.float32), hy.astype(np.float32))
        ids = np.arange(block_id, shadow_id, dtype=np.uint8)[:, None, None]
        np.maximum(labels, (box * ids).max(axis=1), out=labels)
        palette[:, block_id:shadow_id] = _PALETTE[np.maximum(colour, 0) + toppled * _TOPPLED_ROW]

        # held block: a shadow offset with height, and the block drawn larger the higher it is
        gx, gy, gz = self._grip.astype(np.float32).T
        holding = self._held >= 0
        half = np.where(holding, np.float32(BLOCK_HALF), np.float32(-1))
        shadow = self._boxes(gx + 0.4 * gz, gy - 0.4 * gz, half, half)
        np.maximum(labels, shadow * np.uint8(shadow_id), out=labels)
        grown = np.where(holding, BLOCK_HALF * (1.0 + 1.5 * gz), np.float32(-1))
        np.maximum(labels, self._boxes(gx, gy, grown, grown) * np.uint8(held_id), out=labels)
        palette[:, shadow_id] = SHADOW_RGB
        held_colour = self._block_colour[rows, np.maximum(self._held, 0)]
        palette[:, held_id] = _PALETTE[np.maximum(held_colour, 0)]

        # gripper; half line width 0.6 px keeps lines at least one pixel wide at any resolution
        width = np.float32(0.6 * self._pixel)
        radius = 0.06 + 0.12 * gz
        ring = self._discs(gx, gy, radius, radius - 2 * width)
        arm = np.full(b, width)
        cross = self._boxes(gx, gy, radius, arm) | self._boxes(gx, gy, arm, radius)
        gripper = np.where(self._closed[:, None, None], cross, ring)
        np.maximum(labels, gripper * np.uint8(gripper_id), out=labels)
        palette[:, gripper_id] = GRIPPER_RGB

        # Look up whole 3-byte colours at once (a "V3" view): much faster than fancy indexing.
        flat = labels + (rows * n_layers).astype(np.int32)[:, None, None]
        rgb = np.take(palette.view("V3").reshape(-1), flat)
        return rgb.view(np.uint8).reshape(*labels.shape, 3)

    # --- argument checks -----------------------------------------------------------------------

    def _check_split(self, split: str) -> None:
        if split not in _SPLIT_CODE:
            raise ValueError(f"split: expected 'train' or 'eval', got {split!r}")

    def _check_tasks(self, tasks: Sequence[int]) -> None:
        bad = [t for t in tasks if not 0 <= t < self.num_tasks]
        if bad:
            raise ValueError(f"tasks: task ids must be in [0, {self.num_tasks}), got {bad[:5]}")

    def _check_started(self) -> None:
        if not self._batch:
            raise RuntimeError("call reset() before stepping or observing")

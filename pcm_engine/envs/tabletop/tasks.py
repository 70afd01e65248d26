"""The tabletop suite's tasks and the seeded initial scenes they start from: the objects (block and
plate colours), `TASKS` (each a `TaskSpec`), and `make_scene`, which samples one task's initial
state (object layout, the task's block and destination, the gripper's start) for a split and index.

`TASKS` lists the whole suite (object-, goal- and spatial-style, like LIBERO's suites).
`config.tasks` restricts it; the env's task ids 0..num_tasks-1 then index that restricted list
(task id i is suite task `config.tasks[i]`). Scenes are seeded by the *suite* task id, split and
index, so a scene never changes with the restriction. Spatial references ("leftmost", "by the white
plate") are resolved from the initial state, which is sampled so the referent is unambiguous.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

MAX_BLOCKS = 4
MAX_PLATES = 2

SPAWN_LIMIT = 0.75  # objects spawn in [-SPAWN_LIMIT, SPAWN_LIMIT]^2
GRIPPER_START_Z = 0.3
GRIPPER_START_JITTER = 0.15  # the gripper starts at a seeded xy in [-J, J]^2
MIN_BLOCK_BLOCK = 0.3  # minimum centre distances between spawned objects
MIN_BLOCK_PLATE = 0.35
MIN_PLATE_PLATE = 0.45
SPATIAL_MARGIN = 0.15  # a spatial referent beats the runner-up by at least this much
SUITE_SEED = 20240611
SPLIT_CODES = {"train": 0, "eval": 1}  # part of each scene's seed: train and eval scenes differ

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
BLOCK_NAMES = list(BLOCK_COLOURS)
PLATE_NAMES = list(PLATE_COLOURS)


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
    rng = np.random.default_rng([SUITE_SEED, suite_task, SPLIT_CODES[split], index])
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

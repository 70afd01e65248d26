"""Gripper-rule phase labels (spec §2).

Each chunk of a trajectory gets one of five phases from the fraction `g` of its steps whose
gripper command is "close". Labels use only commanded actions, never the success flag, so
successful and failed rollouts share one partition — which is what makes their actions comparable
phase by phase (§3).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PHASES: tuple[str, ...] = ("active_grip", "pre_grasp", "release_ramp", "approach", "tail")
PHASE_INDEX: dict[str, int] = {name: i for i, name in enumerate(PHASES)}


def gripper_close_fraction(actions: np.ndarray, chunk_len: int, gripper_dim: int = -1) -> np.ndarray:
    """Per chunk, the fraction of its steps whose gripper command is "close" (> 0).

    `actions` is `[T, D]`, one trajectory in order; the last chunk may be shorter than
    `chunk_len` and its fraction is over the steps it has.
    """
    actions = np.asarray(actions)
    if actions.ndim != 2:
        raise ValueError(f"actions must be [T, D], got shape {actions.shape}")
    if chunk_len < 1:
        raise ValueError(f"chunk_len must be >= 1, got {chunk_len}")
    closed = (actions[:, gripper_dim] > 0).astype(np.float64)
    starts = np.arange(0, len(closed), chunk_len)
    if len(starts) == 0:
        return np.zeros(0)
    sums = np.add.reduceat(closed, starts)
    lengths = np.minimum(chunk_len, len(closed) - starts)
    return sums / lengths


def grasp_intervals(g: Sequence[float], sustained: float = 0.75) -> list[tuple[int, int]]:
    """Maximal runs of consecutive chunks with `g >= sustained`, as half-open [start, end)."""
    intervals, start = [], None
    for k, value in enumerate(g):
        if value >= sustained and start is None:
            start = k
        elif value < sustained and start is not None:
            intervals.append((start, k))
            start = None
    if start is not None:
        intervals.append((start, len(g)))
    return intervals


def label_phases(
    g: Sequence[float],
    *,
    sustained: float = 0.75,
    active: float = 0.5,
    pre_low: float = 0.1,
    window: int = 3,
    release_low: float = 0.0,
    no_grasp: str = "approach",
) -> list[str]:
    """Phase name of every chunk of one trajectory, first rule that applies wins (§2):

    1. `active_grip`  — `g >= active` (in every trajectory, with a grasp interval or not);
    2. `pre_grasp`    — one of the `window` chunks right before a grasp interval, `pre_low <= g < active`;
    3. `release_ramp` — one of the `window` chunks right after a grasp interval, `release_low <= g < active`;
    4. `approach`     — any other chunk before the start of some later grasp interval;
    5. `tail`         — everything else (after the final release).

    `pre_low` is pre_grasp's lower g bound (0 widens pre_grasp to every chunk of its window).
    `release_low` is an opt-in lower bound of release_ramp; the paper's rule has none (0).
    In a trajectory with no grasp interval, the chunks that are not `active_grip` are labelled
    `no_grasp` ("approach" by default: it never got past approaching).
    """
    if no_grasp not in PHASES:
        raise ValueError(f"no_grasp must be one of {PHASES}, got '{no_grasp}'")
    g = [float(v) for v in g]
    intervals = grasp_intervals(g, sustained)
    if not intervals:
        return ["active_grip" if value >= active else no_grasp for value in g]

    before = set()  # chunks within `window` before some grasp interval
    after = set()  # chunks within `window` after some grasp interval
    for start, end in intervals:
        before.update(range(max(0, start - window), start))
        after.update(range(end, min(len(g), end + window)))
    last_start = intervals[-1][0]

    labels = []
    for k, value in enumerate(g):
        if value >= active:
            labels.append("active_grip")
        elif k in before and value >= pre_low:
            labels.append("pre_grasp")
        elif k in after and value >= release_low:
            labels.append("release_ramp")
        elif k < last_start:
            labels.append("approach")
        else:
            labels.append("tail")
    return labels


def phase_ids(labels: Sequence[str]) -> np.ndarray:
    """Phase names -> int indices into PHASES."""
    return np.array([PHASE_INDEX[name] for name in labels], dtype=np.int64)

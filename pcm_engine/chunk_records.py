"""Which trajectories of a step the "which chunks got gradients" heat map records.

Whole groups, so that the dashboard can tell why a chunk was dropped (a group whose rollouts all
succeeded or all failed has no advantage and dynamic sampling drops it; in a group that took part,
a dropped chunk was not selected). Groups that took part in the update come first, mixed ones
first of all; and while the recorded trajectories show only one outcome, groups that add the other
one come before the rest, so a step that has both successes and failures shows both."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def recorded_trajectories(
    success: Sequence[bool], group: Sequence[int], took_part: Sequence[bool], at_least: int
) -> list[int]:
    """Indices of the trajectories to record, ascending: whole groups, until at least `at_least`
    trajectories are chosen and they show every outcome the step has (`at_least` 0: none)."""
    success = np.asarray(success, dtype=bool)
    group = np.asarray(group)
    took_part = np.asarray(took_part, dtype=bool)
    if at_least <= 0 or not len(success):
        return []
    _, first = np.unique(group, return_index=True)
    groups = [group[i] for i in sorted(first)]  # in the batch's order
    members = {g: np.flatnonzero(group == g) for g in groups}
    outcomes = {g: set(success[members[g]].tolist()) for g in groups}

    def rank(g) -> int:
        """0: took part, both outcomes; 1: took part; 2: dropped before the update."""
        if took_part[members[g]].any():
            return 0 if len(outcomes[g]) == 2 else 1
        return 2

    step_outcomes = set(success.tolist())
    chosen: list[int] = []
    shown: set[bool] = set()
    remaining = list(groups)
    while remaining and (len(chosen) < at_least or shown != step_outcomes):
        best = min(remaining, key=lambda g: (not (outcomes[g] - shown), rank(g), groups.index(g)))
        if len(chosen) >= at_least and not (outcomes[best] - shown):
            break  # enough trajectories, and no group left adds an outcome
        remaining.remove(best)
        chosen.extend(members[best].tolist())
        shown |= outcomes[best]
    return sorted(chosen)

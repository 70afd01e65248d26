"""How an update's chunks are split into forward/backward passes (`grpo.micro_batch_chunks`):
the shape of a pass (what its saved activations grow with), the passes GRPO's `memory` mode
makes, and packing rows into as few passes as a per-pass cap allows (`auto`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PassShape:
    """What the activations a pass saves grow with: its chunks, its instruction width (tokens of
    its longest instruction, every row padded to it) and whether any row is padded."""

    chunks: int
    width: int
    padded: bool


def shape_of(widths: np.ndarray) -> PassShape:
    """The shape of a pass whose rows have instruction widths `widths`."""
    return PassShape(len(widths), int(widths.max()), bool(widths.min() != widths.max()))


def memory_mode_shapes(
    minis: list[np.ndarray], chunks: np.ndarray, widths: np.ndarray, per_pass: int
) -> list[PassShape]:
    """The passes `micro_batch_chunks: memory` makes of mini-batches `minis` (trajectory ids in
    update order) when trajectory t has `chunks[t]` chunks of instruction width `widths[t]`:
    `per_pass` trajectories at a time."""
    shapes = []
    for mini in minis:
        for i in range(0, len(mini), per_pass):
            group = mini[i : i + per_pass]
            shape = shape_of(widths[group])
            shapes.append(PassShape(int(chunks[group].sum()), shape.width, shape.padded))
    return shapes


PassCap = Callable[[int, bool], int]
"""(instruction width, padded) -> the most chunks one pass of that width may hold."""


def cap_within(shapes: list[PassShape]) -> PassCap:
    """Passes that save no more than the largest of `shapes` of at least their width: as many
    chunks, and padding only if that one pads too. (A pass's saved bytes grow with each of
    chunks, width and padding, so such a pass saves no more than that one.)"""
    cache: dict[tuple[int, bool], int] = {}

    def cap(width: int, padded: bool) -> int:
        if (width, padded) not in cache:
            fitting = (s.chunks for s in shapes if s.width >= width and (s.padded or not padded))
            cache[width, padded] = max(fitting, default=0)
        return cache[width, padded]

    return cap


def pack_rows(rows: np.ndarray, widths: np.ndarray, cap: PassCap) -> list[np.ndarray]:
    """Chunk rows `rows` (instruction widths `widths`) in as few passes as `cap` allows, each
    one's rows ascending. Rows go longest instruction first; a pass fills up to `cap(width,
    False)` with rows of its width and then, while `cap(width, True)` allows, pads shorter ones.
    If splitting the same rows evenly into that many passes also fits, the passes are even
    (the same count, a lower peak)."""
    if len(rows) == 0:
        return []
    order = np.lexsort((rows, -widths))
    rows, widths = rows[order], widths[order]
    starts = np.flatnonzero(np.r_[True, widths[1:] != widths[:-1]])
    ends = np.r_[starts[1:], len(rows)]
    bounds, filled, width = [], 0, 0
    for start, end in zip(starts, ends, strict=True):
        position, left = int(start), int(end - start)
        while left:
            if filled == 0:
                width = int(widths[position])
                take = min(left, max(1, cap(width, False)))
            else:  # joining a pass of longer instructions pads this group's rows
                room = cap(width, True) - filled
                if room <= 0:
                    bounds.append(position)
                    filled = 0
                    continue
                take = min(left, room)
            filled, position, left = filled + take, position + take, left - take
            if left:
                bounds.append(position)
                filled = 0
    greedy = np.split(np.arange(len(rows)), bounds)
    even = np.array_split(np.arange(len(rows)), len(greedy))

    def fits(part: np.ndarray) -> bool:
        shape = shape_of(widths[part])
        return shape.chunks <= cap(shape.width, shape.padded)

    fits_evenly = all(fits(part) for part in even)
    return [np.sort(rows[part]) for part in (even if fits_evenly else greedy)]

"""The tabletop suite's rasteriser: `Rasteriser` draws a `WorldState` as top-down RGB images (table,
plates, blocks, the held block and its shadow, the gripper), numpy-only and vectorised over the
batch; the colours and drawn sizes of the objects live here too.
"""

from __future__ import annotations

import numpy as np

from pcm_engine.envs.tabletop.dynamics import WorldState
from pcm_engine.envs.tabletop.tasks import (
    BLOCK_COLOURS,
    BLOCK_NAMES,
    MAX_BLOCKS,
    MAX_PLATES,
    PLATE_COLOURS,
    PLATE_NAMES,
)

BLOCK_HALF = 0.06  # half side of a block (a square seen from above)
PLATE_RADIUS = 0.15
TABLE_RGB = (176, 144, 104)
SHADOW_RGB = (112, 90, 64)
GRIPPER_RGB = (230, 0, 230)
# Palette rows: blocks, then the same blocks toppled (darker), then plates.
_PALETTE = np.array(
    [BLOCK_COLOURS[n] for n in BLOCK_NAMES]
    + [tuple(c // 2 for c in BLOCK_COLOURS[n]) for n in BLOCK_NAMES]
    + [PLATE_COLOURS[n] for n in PLATE_NAMES],
    dtype=np.uint8,
)
_TOPPLED_ROW = len(BLOCK_NAMES)
_PLATE_ROW = 2 * len(BLOCK_NAMES)


class Rasteriser:
    """Renders `image_size` x `image_size` views of the table (x, y in [-1, 1]) from above."""

    def __init__(self, image_size: int):
        # Pixel-centre coordinates: column -> x, row -> y (row 0 at y = +1).
        n = image_size
        centres = (-1.0 + (np.arange(n) + 0.5) * (2.0 / n)).astype(np.float32)
        self._grid_x = centres
        self._grid_y = centres[::-1].copy()
        self._pixel = 2.0 / n

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

    def render(self, world: WorldState) -> np.ndarray:
        """Top-down orthographic render into a map of layer ids, then a colour lookup.

        Layers, bottom to top: table, plates, resting blocks (in release order), the held
        block's shadow, the held block (enlarged with height), the gripper (a ring when open, a
        cross when closed; both grow with height). Layer ids increase bottom to top, so painting
        a layer is a max with `id * mask`. Everything is float32 / uint8 to keep memory traffic low.
        """
        b, rows = len(world.rows), world.rows
        plate_id = 1
        block_id = plate_id + MAX_PLATES
        shadow_id = block_id + MAX_BLOCKS
        held_id, gripper_id = shadow_id + 1, shadow_id + 2
        n_layers = gripper_id + 1
        palette = np.empty((b, n_layers, 3), dtype=np.uint8)
        palette[:, 0] = TABLE_RGB

        radius = np.where(world.plate_colour >= 0, PLATE_RADIUS, 0.0)
        disc = self._discs(world.plate_xy[..., 0], world.plate_xy[..., 1], radius)
        ids = np.arange(plate_id, block_id, dtype=np.uint8)[:, None, None]
        labels = (disc * ids).max(axis=1)
        palette[:, plate_id:block_id] = _PALETTE[_PLATE_ROW + np.maximum(world.plate_colour, 0)]

        # resting blocks, later releases on top; toppled ones lie flat (wide, low, darker)
        order = np.argsort(world.rest_order, axis=1, kind="stable")
        xy = np.take_along_axis(world.block_xy, order[..., None], axis=1)
        colour = np.take_along_axis(world.block_colour, order, axis=1)
        toppled = np.take_along_axis(world.toppled, order, axis=1)
        visible = (colour >= 0) & (order != world.held[:, None])
        hx = np.where(visible, np.where(toppled, 1.5 * BLOCK_HALF, BLOCK_HALF), -1.0)
        hy = np.where(toppled, 0.6 * BLOCK_HALF, BLOCK_HALF)
        box = self._boxes(xy[..., 0], xy[..., 1], hx.astype(np.float32), hy.astype(np.float32))
        ids = np.arange(block_id, shadow_id, dtype=np.uint8)[:, None, None]
        np.maximum(labels, (box * ids).max(axis=1), out=labels)
        palette[:, block_id:shadow_id] = _PALETTE[np.maximum(colour, 0) + toppled * _TOPPLED_ROW]

        # held block: a shadow offset with height, and the block drawn larger the higher it is
        gx, gy, gz = world.grip.astype(np.float32).T
        holding = world.held >= 0
        half = np.where(holding, np.float32(BLOCK_HALF), np.float32(-1))
        shadow = self._boxes(gx + 0.4 * gz, gy - 0.4 * gz, half, half)
        np.maximum(labels, shadow * np.uint8(shadow_id), out=labels)
        grown = np.where(holding, BLOCK_HALF * (1.0 + 1.5 * gz), np.float32(-1))
        np.maximum(labels, self._boxes(gx, gy, grown, grown) * np.uint8(held_id), out=labels)
        palette[:, shadow_id] = SHADOW_RGB
        held_colour = world.block_colour[rows, np.maximum(world.held, 0)]
        palette[:, held_id] = _PALETTE[np.maximum(held_colour, 0)]

        # gripper; half line width 0.6 px keeps lines at least one pixel wide at any resolution
        width = np.float32(0.6 * self._pixel)
        radius = 0.06 + 0.12 * gz
        ring = self._discs(gx, gy, radius, radius - 2 * width)
        arm = np.full(b, width)
        cross = self._boxes(gx, gy, radius, arm) | self._boxes(gx, gy, arm, radius)
        gripper = np.where(world.closed[:, None, None], cross, ring)
        np.maximum(labels, gripper * np.uint8(gripper_id), out=labels)
        palette[:, gripper_id] = GRIPPER_RGB

        # Look up whole 3-byte colours at once (a "V3" view): much faster than fancy indexing.
        flat = labels + (rows * n_layers).astype(np.int32)[:, None, None]
        rgb = np.take(palette.view("V3").reshape(-1), flat)
        return rgb.view(np.uint8).reshape(*labels.shape, 3)

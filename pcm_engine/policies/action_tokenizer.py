"""Uniform binning of continuous actions into discrete tokens (spec §1).

`bins` equal-width bins cover `[low, high]`; a value is mapped to the bin that contains it (values
outside the range are clipped first, `high` itself falls into the last bin) and a token decodes to
its bin centre, so the round-trip error of an in-range value is at most half a bin width.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

Array = TypeVar("Array", np.ndarray, torch.Tensor)


class ActionTokenizer:
    """Maps continuous actions to bin ids in `[0, bins)` and back; numpy arrays and torch tensors."""

    def __init__(self, bins: int = 256, low: float = -1.0, high: float = 1.0):
        if bins < 2:
            raise ValueError(f"bins must be >= 2, got {bins}")
        if not high > low:
            raise ValueError(f"high ({high}) must be greater than low ({low})")
        self.bins = bins
        self.low = float(low)
        self.high = float(high)
        self.bin_width = (self.high - self.low) / bins

    def encode(self, actions: Array) -> Array:
        """Continuous actions (any shape) -> int64 bin ids of the same shape and array type."""
        if isinstance(actions, torch.Tensor):
            scaled = (actions.double().clamp(self.low, self.high) - self.low) / self.bin_width
            return scaled.floor().long().clamp_(0, self.bins - 1)
        scaled = (np.clip(np.asarray(actions, np.float64), self.low, self.high) - self.low) / self.bin_width
        return np.clip(np.floor(scaled).astype(np.int64), 0, self.bins - 1)

    def decode(self, tokens: Array) -> Array:
        """Bin ids (any shape) -> float32 bin centres of the same shape and array type."""
        if isinstance(tokens, torch.Tensor):
            if tokens.dtype.is_floating_point or tokens.min() < 0 or tokens.max() >= self.bins:
                raise ValueError(f"tokens must be integer bin ids in [0, {self.bins})")
            return (self.low + (tokens.double() + 0.5) * self.bin_width).float()
        tokens = np.asarray(tokens)
        if not np.issubdtype(tokens.dtype, np.integer) or tokens.min() < 0 or tokens.max() >= self.bins:
            raise ValueError(f"tokens must be integer bin ids in [0, {self.bins})")
        return (self.low + (tokens.astype(np.float64) + 0.5) * self.bin_width).astype(np.float32)

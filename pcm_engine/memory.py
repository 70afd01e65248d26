"""Memory meters: the process's peak resident memory, and the activation bytes autograd saves
during a forward (`mem/activation_bytes`)."""

from __future__ import annotations

import resource

import torch


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


class SavedTensorMeter:
    """Bytes of tensors autograd saves for backward during a forward, each storage counted once.

    Parameters are excluded: they are the same for every selector and are not activations.
    """

    def __init__(self, exclude: set[int]):
        self.exclude = exclude
        self.storages: dict[int, int] = {}

    def _pack(self, tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in self.exclude:
            self.storages[ptr] = storage.nbytes()
        return tensor

    def hooks(self):
        return torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)

    @property
    def bytes(self) -> int:
        return sum(self.storages.values())

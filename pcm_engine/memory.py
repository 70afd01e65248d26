"""Memory meters: the process's peak resident memory, and the activation bytes autograd saves
during a forward (`mem/activation_bytes`)."""

from __future__ import annotations

import resource

import torch


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def storage_key(tensor: torch.Tensor) -> int:
    """The identity of `tensor`'s storage, shared by its views. Not its data pointer: FSDP frees
    a gathered weight's memory after a block's forward and allocates it again for the next, so a
    pointer can name a weight in one pass and an activation in another; the storage stays one
    object throughout."""
    return tensor.untyped_storage()._cdata


class SavedTensorMeter:
    """Bytes of tensors autograd saves for backward during a forward, each storage counted once.

    The weights are excluded (`exclude`: their `storage_key`s, which may grow during the forward,
    as FSDP gathers each block's whole weights): they are the same for every selector and are not
    activations.
    """

    def __init__(self, exclude: set[int]):
        self.exclude = exclude
        self.storages: dict[int, int] = {}

    def _pack(self, tensor: torch.Tensor) -> torch.Tensor:
        key = storage_key(tensor)
        if key not in self.exclude:
            self.storages[key] = tensor.untyped_storage().nbytes()
        return tensor

    def hooks(self):
        return torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)

    @property
    def bytes(self) -> int:
        return sum(self.storages.values())

"""`dist.strategy: fsdp` — FSDP2 (`torch.distributed.fsdp.fully_shard`) per transformer block.

Parameters, gradients and optimizer state are sharded over the ranks between uses. Two parts of
a step are rank-local and uneven — each rank rolls out its own episodes (which end at different
chunks) and forwards its own kept chunks (different counts) — while every FSDP forward and
backward is a collective that all ranks must make together:

- rollouts, evaluation and the final export run inside `gathered_weights`: every block is
  gathered once (all ranks, same order) and stays whole until the context ends, so a rank's
  forwards need no peer;
- the update pads every mini-batch to the same number of passes on every rank (`pad_passes`: the
  extra passes carry zero loss weight), and only the last pass reduce-scatters the gradients.

Checkpoints are written and read by all ranks together with `torch.distributed.checkpoint`
(`save_sharded`, `load_sharded`).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

SHARDED_BLOCKS = ("DecoderLayer", "EncoderLayer")  # transformers' block class names end so
FORWARD_METHODS = ("sample", "log_probs_and_entropy")  # the policy's entries besides forward
SHARDED_DIR = "sharded"  # a checkpoint's torch.distributed.checkpoint folder


def shard_policy(policy: torch.nn.Module, weight_keys: set[int] | None = None) -> int:
    """`fully_shard` every transformer block of `policy` (vision encoder and language model),
    then the rest as the root; returns how many blocks. FSDP averages the gradients over the
    ranks; the trainer scales each rank's loss by the world size to sum them.

    `weight_keys` (the activation meter's exclusions) receives the `storage_key` of every whole
    weight FSDP gathers for a forward, as each module gathers them, so the meter leaves them out
    as it leaves out an unsharded policy's weights. FSDP keeps one storage per gathered weight
    across passes, so the set stops growing after the first forward."""
    from torch.distributed.fsdp import fully_shard, register_fsdp_forward_method

    blocks = [m for m in policy.modules() if type(m).__name__.endswith(SHARDED_BLOCKS)]
    for block in blocks:
        fully_shard(block)
    fully_shard(policy)
    if weight_keys is not None:
        for module in [*blocks, policy]:  # runs after FSDP's own pre-forward, which gathers
            module.register_forward_pre_hook(lambda module, _args: _note_whole_weights(module, weight_keys))
        for name in FORWARD_METHODS:  # FSDP gathers the root's weights, then calls the method
            setattr(policy, name, _noting(getattr(policy, name), policy, weight_keys))
    for name in FORWARD_METHODS:
        register_fsdp_forward_method(policy, name)
    # log_probs_and_entropy returns views (a gather's squeeze); nothing modifies them in place,
    # which is the case the warning is about
    warnings.filterwarnings("ignore", message=r"FSDP2-wrapped module .* returned a view tensor")
    return len(blocks)


def _note_whole_weights(module: torch.nn.Module, keys: set[int]) -> None:
    from torch.distributed.tensor import DTensor

    from pcm_engine.memory import storage_key

    keys.update(storage_key(p) for p in module.parameters() if not isinstance(p, DTensor))


def _noting(method, module: torch.nn.Module, keys: set[int]):
    def noted(*args, **kwargs):
        _note_whole_weights(module, keys)
        return method(*args, **kwargs)

    return noted


def fsdp_modules(policy: torch.nn.Module) -> list[torch.nn.Module]:
    from torch.distributed.fsdp import FSDPModule

    return [m for m in policy.modules() if isinstance(m, FSDPModule)]


@contextmanager
def gathered_weights(policy: torch.nn.Module, sharded: bool) -> Iterator[None]:
    """Within it, `policy` holds whole weights on every rank and its forwards are rank-local
    (no collective): for uneven work such as rollouts. Every rank must enter it together. A
    no-op for an unsharded policy."""
    if not sharded:
        yield
        return
    modules = fsdp_modules(policy)
    for module in modules:
        module.unshard()
        module.set_reshard_after_forward(False, recurse=False)
    try:
        yield
    finally:
        for module in modules:
            module.reshard()
            module.set_reshard_after_forward(True, recurse=False)


def pad_passes(passes: list, counts: list[int], filler: object) -> list:
    """`passes` followed by `filler` passes up to the most any rank makes (`counts`, every
    rank's number of passes in this mini-batch)."""
    return list(passes) + [filler] * (max(counts) - len(passes))


def set_gradient_sync(policy: torch.nn.Module, sync: bool) -> None:
    """Whether the coming backward reduce-scatters the accumulated gradients (the last pass of a
    mini-batch) or only accumulates them locally."""
    policy.set_requires_gradient_sync(sync)


def full_value(tensor: torch.Tensor) -> torch.Tensor:
    """A DTensor's whole value (e.g. the gradient norm of a sharded policy); a tensor as is."""
    return tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor


def local_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """This rank's shard of a DTensor parameter; a tensor as is."""
    return tensor.to_local() if hasattr(tensor, "to_local") else tensor


def save_sharded(folder: Path, policy: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Every rank writes its shards of the weights and optimizer state to `folder/sharded`
    (all ranks together)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    weights, optim = get_state_dict(policy, optimizer)
    dcp.save({"policy": weights, "optimizer": optim}, checkpoint_id=str(folder / SHARDED_DIR))


def load_sharded(folder: Path, policy: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Read `save_sharded`'s folder back into this rank's shards (all ranks together)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    weights, optim = get_state_dict(policy, optimizer)
    state = {"policy": weights, "optimizer": optim}
    dcp.load(state, checkpoint_id=str(folder / SHARDED_DIR))
    set_state_dict(policy, optimizer, model_state_dict=state["policy"], optim_state_dict=state["optimizer"])

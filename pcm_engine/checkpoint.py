"""Checkpoints for exact resume: policy weights, optimizer, PCM keep state, every RNG, step, and
the RunConfig beside them (architecture: "Run lifecycle").

A checkpoint is written to a temporary folder and renamed into place, so a crash mid-write never
leaves a half checkpoint that resume would pick up.
"""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from pcm_engine.config import RunConfig

CHECKPOINT_DIR = "checkpoints"
PREFIX = "step_"


@dataclass
class Checkpoint:
    path: Path
    step: int


def list_checkpoints(run_dir: str | Path) -> list[Checkpoint]:
    root = Path(run_dir) / CHECKPOINT_DIR
    found = []
    for path in root.glob(f"{PREFIX}*"):
        if path.is_dir() and (path / "state.pt").exists() and path.name[len(PREFIX) :].isdigit():
            found.append(Checkpoint(path, int(path.name[len(PREFIX) :])))
    return sorted(found, key=lambda c: c.step)


def latest_checkpoint(run_dir: str | Path) -> Checkpoint | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def rng_state() -> dict[str, Any]:
    """The process-wide generators (python, numpy, torch). The trainer's own draws come from
    per-step streams (`pcm_engine.seeding`) that need no saved state."""
    state = {
        "python": random.getstate(),
        "numpy_global": np.random.get_state(),
        "torch_cpu": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["torch_cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy_global"])
    torch.set_rng_state(state["torch_cpu"])
    if "torch_cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["torch_cuda"])


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    """Where step `step`'s checkpoint lives once written."""
    return Path(run_dir) / CHECKPOINT_DIR / f"{PREFIX}{step:06d}"


def pending_path(run_dir: str | Path, step: int) -> Path:
    """The temporary folder step `step`'s checkpoint is written to before it is renamed."""
    return Path(run_dir) / CHECKPOINT_DIR / f".tmp_{PREFIX}{step:06d}"


def start_checkpoint(run_dir: str | Path, step: int) -> Path:
    """An empty `pending_path` (what a crash mid-write left there is dropped)."""
    tmp = pending_path(run_dir, step)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    return tmp


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    *,
    config: RunConfig,
    policy: torch.nn.Module | None,
    optimizer: torch.optim.Optimizer | None,
    trainer_state: dict[str, Any],
    keep_last: int,
) -> Path:
    """Write `checkpoints/step_NNNNNN/` atomically and prune all but the newest `keep_last`.
    `policy` and `optimizer` None: their shards are in `pending_path` already (FSDP's ranks
    wrote them there together, `pcm_engine.sharding.save_sharded`)."""
    final = checkpoint_path(run_dir, step)
    if policy is None:
        tmp = pending_path(run_dir, step)
    else:
        tmp = start_checkpoint(run_dir, step)
        weights = {k: v.detach().contiguous().cpu() for k, v in policy.state_dict().items()}
        save_file(weights, tmp / "policy.safetensors")
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save({"step": step, **trainer_state}, tmp / "state.pt")
    config.save(tmp / "config.yaml")
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in list_checkpoints(run_dir)[:-keep_last]:
        shutil.rmtree(old.path, ignore_errors=True)
    return final


def load_checkpoint(
    checkpoint: Checkpoint, *, policy: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> dict[str, Any]:
    """Load weights and optimizer in place; returns the trainer state (step, keep weights, RNGs).
    A sharded checkpoint (FSDP) is read by every rank of the run together."""
    from pcm_engine.sharding import SHARDED_DIR, load_sharded

    if (checkpoint.path / SHARDED_DIR).is_dir():
        load_sharded(checkpoint.path, policy, optimizer)
    else:
        device = next(policy.parameters()).device
        policy.load_state_dict(load_file(checkpoint.path / "policy.safetensors", device=str(device)))
        optimizer.load_state_dict(torch.load(checkpoint.path / "optimizer.pt", map_location=device))
    return torch.load(checkpoint.path / "state.pt", weights_only=False)

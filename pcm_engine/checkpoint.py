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


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    *,
    config: RunConfig,
    policy: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    trainer_state: dict[str, Any],
    keep_last: int,
) -> Path:
    """Write `checkpoints/step_NNNNNN/` atomically and prune all but the newest `keep_last`."""
    root = Path(run_dir) / CHECKPOINT_DIR
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{PREFIX}{step:06d}"
    tmp = root / f".tmp_{PREFIX}{step:06d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
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
    """Load weights and optimizer in place; returns the trainer state (step, keep weights, RNGs)."""
    device = next(policy.parameters()).device
    policy.load_state_dict(load_file(checkpoint.path / "policy.safetensors", device=str(device)))
    optimizer.load_state_dict(torch.load(checkpoint.path / "optimizer.pt", map_location=device))
    return torch.load(checkpoint.path / "state.pt", weights_only=False)

"""What a run ran on, stored in `runs.environment` so a result can be traced to code and host."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("torch", "transformers", "peft", "numpy", "pcm-lab")
SOURCE_ROOT = Path(__file__).resolve().parent.parent


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def git_state(root: Path = SOURCE_ROOT) -> dict[str, Any] | None:
    """SHA, dirty flag and a short diff stat of the source checkout; None outside a git checkout."""
    if not (root / ".git").exists():
        return None
    sha = _git(root, "rev-parse", "HEAD")
    if sha is None:
        return None
    status = _git(root, "status", "--porcelain", "--untracked-files=no") or ""
    return {
        "sha": sha,
        "dirty": bool(status),
        "diff_stat": (_git(root, "diff", "--shortstat", "HEAD") or "")[:500],
    }


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def device_description(device: str = "auto") -> str:
    """The device a run with `train.device = device` trains on, e.g. 'cuda:0 (NVIDIA H100)'.

    Imports torch, so call it only in the process that trains (never in a parent that forks)."""
    import torch

    if device != "cpu" and torch.cuda.is_available():
        return f"cuda:0 ({torch.cuda.get_device_name(0)})"
    return "cpu"


SLOTS_VARIABLE = "PCM_WORKER_GPUS"
"""Set by `pcm worker --gpus N`: the rank slots this worker offers (see `rank_slots`)."""


def visible_cuda_devices() -> int:
    """CUDA devices torch sees in this process (0 on a CPU-only machine). Imports torch."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def rank_slots() -> int:
    """How many ranks of a distributed run this worker can start: `pcm worker --gpus N`, else
    the visible CUDA devices, else 1 (a CPU-only machine runs one-process runs)."""
    configured = os.environ.get(SLOTS_VARIABLE)
    if configured:
        return int(configured)
    return visible_cuda_devices() or 1


def worker_devices(slots: int) -> str:
    """The `workers.devices` of a worker with `slots` rank slots: 'cpu', 'cpu x2', or its GPUs
    ('cuda:0 (NVIDIA H100), cuda:1 (NVIDIA H100)'). Imports torch."""
    import torch

    if not torch.cuda.is_available():
        return "cpu" if slots == 1 else f"cpu x{slots}"
    count = min(slots, torch.cuda.device_count())
    return ", ".join(f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(count))


def capture_environment(device: str = "auto") -> dict[str, Any]:
    return {
        "git": git_state(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
        "hostname": socket.gethostname(),
        "device": device_description(device),
    }

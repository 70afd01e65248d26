"""The torch device a run trains on (`train.device`)."""

from __future__ import annotations

import torch


def pick_device(choice: str) -> torch.device:
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is 'cuda' but torch sees no CUDA device on this machine")
    return torch.device(choice)

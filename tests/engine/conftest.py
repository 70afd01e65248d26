"""Shared fixtures: a tiny run config that trains in a second on one CPU thread."""

import numpy as np
import pytest
import torch

from pcm_engine.config import RunConfig
from tests.tiny import TINY

torch.set_num_threads(1)


def tiny_config(**overrides) -> RunConfig:
    merged = dict(TINY)
    merged.update({k.replace("__", "."): v for k, v in overrides.items()})
    return RunConfig.from_dict({}, merged)


@pytest.fixture
def tiny():
    return tiny_config


def force_mixed_outcomes(trainer) -> None:
    """Make every group mixed (half its rollouts 'succeed'), so updates have non-zero advantages
    however the untrained policy does. Wraps the real rollout; everything else stays real."""
    real_rollout = trainer.rollout

    def rollout(**kwargs):
        batch = real_rollout(**kwargs)
        batch.success[:] = np.arange(batch.num_trajectories) % 2 == 0
        return batch

    trainer.rollout = rollout


@pytest.fixture
def mixed():
    return force_mixed_outcomes

"""Shared fixtures: a tiny run config that trains in a second on one CPU thread."""

import numpy as np
import pytest
import torch

from pcm_engine.config import RunConfig

torch.set_num_threads(1)

TINY = {
    "env.max_steps": 32,
    "env.image_size": 32,
    "env.tasks": [0, 1],
    "env.train_init_states": 4,
    "env.eval_init_states": 2,
    "policy.hidden_size": 32,
    "policy.num_layers": 1,
    "policy.num_heads": 2,
    "policy.vision_hidden_size": 32,
    "policy.vision_layers": 1,
    "policy.vision_heads": 2,
    "policy.patch_size": 16,
    "grpo.chunk_len": 4,
    "grpo.group_size": 2,
    "grpo.groups_per_step": 2,
    "grpo.temperature": 1.0,
    "grpo.lr": 1e-3,
    "grpo.micro_batch_trajectories": 1,
    "sft.demos_per_task": 2,
    "sft.epochs": 2,
    "sft.batch_size": 16,
    "eval.every": 0,
    "eval.episodes_per_task": 2,
    "train.steps": 2,
    "train.checkpoint_every": 1,
}


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

    def rollout():
        batch = real_rollout()
        batch.success[:] = np.arange(batch.num_trajectories) % 2 == 0
        return batch

    trainer.rollout = rollout


@pytest.fixture
def mixed():
    return force_mixed_outcomes

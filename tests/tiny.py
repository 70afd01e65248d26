"""The tiny run config shared by the engine and service tests: trains in about a second per step
on one CPU thread. Plain data, so importing it never loads torch."""

from __future__ import annotations

from typing import Any

TINY: dict[str, Any] = {
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
    "policy.init": "random",  # the presets behaviour-clone first; tests that want it say so
    "grpo.chunk_len": 4,
    "grpo.group_size": 2,
    "grpo.groups_per_step": 2,
    "grpo.temperature": 1.0,
    "grpo.lr": 1e-3,
    "grpo.micro_batch_trajectories": 1,
    "sft.demos_per_task": 2,
    "sft.epochs": 2,
    "sft.pretrain_demos_per_task": 1,  # where a start is two-stage (the presets), a tiny first stage
    "sft.pretrain_epochs": 1,
    "sft.batch_size": 16,
    "eval.every": 0,
    "eval.episodes_per_task": 2,
    "train.steps": 2,
    "train.checkpoint_every": 1,
}
"""Dotted overrides (as for `pcm train --set`) on top of the default RunConfig."""


class RecordingSink:
    """A MetricSink that keeps the chunk records and media items the trainer reports, per step."""

    def __init__(self):
        self.chunks, self.media = {}, {}

    def log_metrics(self, step, metrics):
        pass

    def log_chunks(self, step, records):
        self.chunks[step] = list(records)

    def log_media(self, step, items):
        self.media[step] = list(items)

    def close(self):
        pass

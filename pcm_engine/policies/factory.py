"""The policy a run starts from: a fresh one built from `config.policy`, or a saved one loaded
from `policy.pretrained` with the run's runtime settings applied."""

from __future__ import annotations

from pathlib import Path

import torch

from pcm_engine.config import RunConfig
from pcm_engine.envs import VecEnv
from pcm_engine.policies.vla import VLAPolicy

RUNTIME_POLICY_FIELDS = ("lora", "dtype", "gradient_checkpointing", "max_instruction_bytes")
"""Policy settings a run may change on a loaded checkpoint (architecture fields come from it)."""


def build_policy(config: RunConfig, env: VecEnv, device: torch.device) -> VLAPolicy:
    """A fresh policy from `config.policy`, or the one saved at `config.policy.pretrained`."""
    if config.policy.pretrained:
        directory = Path(config.policy.pretrained)
        if not directory.is_dir():
            raise FileNotFoundError(f"policy.pretrained: no directory at '{directory}'")
        runtime = config.policy.model_dump(mode="json")
        overrides = {k: runtime[k] for k in RUNTIME_POLICY_FIELDS}
        policy = VLAPolicy.from_pretrained(directory, config_overrides=overrides)
        if policy.chunk_len != config.grpo.chunk_len:
            raise ValueError(
                f"grpo.chunk_len is {config.grpo.chunk_len} but the policy at '{directory}' "
                f"decodes chunks of {policy.chunk_len}"
            )
    else:
        policy = VLAPolicy(
            config.policy,
            chunk_len=config.grpo.chunk_len,
            action_dim=env.action_dim,
            proprio_dim=env.proprio_dim,
            image_size=env.image_size,
        )
    return policy.to(device)

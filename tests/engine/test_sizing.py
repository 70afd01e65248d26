"""The parameter count the server's resource guard reads off a config equals the built model's."""

from __future__ import annotations

import pytest

from pcm_engine.config import RunConfig
from pcm_engine.policies.text_tokenizer import VOCAB_SIZE
from pcm_engine.policies.vla import VLAPolicy
from pcm_engine.sizing import TEXT_VOCAB_SIZE, policy_parameters

SMALL = {"policy.hidden_size": 32, "policy.num_heads": 2, "policy.vision_hidden_size": 32}


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {**SMALL, "policy.language_model": "qwen2", "policy.patch_merge": 1, "env.image_size": 32},
        {**SMALL, "policy.mlp_ratio": 3, "policy.num_layers": 3, "grpo.chunk_len": 4},
    ],
)
def test_the_estimate_is_the_built_policys_parameter_count(overrides: dict) -> None:
    config = RunConfig.from_dict({}, overrides)
    policy = VLAPolicy(
        config.policy,
        chunk_len=config.grpo.chunk_len,
        action_dim=7,
        proprio_dim=4,
        image_size=config.env.image_size,
    )
    built = sum(p.numel() for p in policy.parameters())
    assert policy_parameters(config, action_dim=7, proprio_dim=4) == built


def test_the_vocabulary_size_agrees_with_the_tokenizer() -> None:
    assert TEXT_VOCAB_SIZE == VOCAB_SIZE


def test_a_huge_policy_is_counted_without_building_it() -> None:
    config = RunConfig.from_dict(
        {},
        {
            "policy.hidden_size": 8192,
            "policy.num_layers": 128,
            "policy.num_heads": 128,
            "policy.mlp_ratio": 8,
        },
    )
    assert policy_parameters(config) > 200e9

"""What a config costs, computed from the config alone (no torch, no model built), so a server can
refuse a run that no worker could hold before it is queued."""

from __future__ import annotations

from pcm_engine.config import RunConfig

TEXT_VOCAB_SIZE = 258
"""pcm_engine.policies.text_tokenizer.VOCAB_SIZE (256 bytes, PAD, EOS); repeated here so sizing
never imports torch. tests/engine/test_sizing.py checks that the two agree."""
MAX_ACTION_DIM = 7  # LIBERO's and the tabletop's action vectors (pcm_engine/envs/base.py)
MAX_PROPRIO_DIM = 8  # LIBERO's eef_pose_gripper, the largest proprio vector


def _linear(inputs: int, outputs: int) -> int:
    return inputs * outputs + outputs


def vision_parameters(config: RunConfig) -> int:
    """The SigLIP vision tower: patch embedding, position embeddings, encoder layers, final norm."""
    policy, width = config.policy, config.policy.vision_hidden_size
    inner = policy.mlp_ratio * width
    patches = (config.env.image_size // policy.patch_size) ** 2
    embeddings = 3 * policy.patch_size**2 * width + width + patches * width
    layer = 4 * _linear(width, width) + 2 * 2 * width + _linear(width, inner) + _linear(inner, width)
    return embeddings + policy.vision_layers * layer + 2 * width


def language_model_parameters(config: RunConfig) -> int:
    """The Llama / Qwen2 decoder (no LM head: actions are read by the policy's own head)."""
    policy, width = config.policy, config.policy.hidden_size
    inner = policy.mlp_ratio * width
    qkv_bias = 3 * width if policy.language_model == "qwen2" else 0
    layer = 4 * width * width + qkv_bias + 3 * width * inner + 2 * width
    return TEXT_VOCAB_SIZE * width + policy.num_layers * layer + width


def policy_parameters(
    config: RunConfig, *, action_dim: int = MAX_ACTION_DIM, proprio_dim: int = MAX_PROPRIO_DIM
) -> int:
    """The parameter count of the policy `config` builds (LoRA adapters not counted: they add
    r x (in + out) per adapted projection, a few percent at most). Exact for the given action and
    proprio sizes; the defaults are the largest of the built-in environments."""
    policy, width = config.policy, config.policy.hidden_size
    own = (
        _linear(policy.patch_merge**2 * policy.vision_hidden_size, width)  # projector
        + _linear(proprio_dim, width)
        + config.grpo.chunk_len * action_dim * width  # action queries
        + 2 * width  # head norm
        + _linear(width, policy.action_bins)
    )
    return vision_parameters(config) + language_model_parameters(config) + own

"""Local checkpoints by path (`policy.pretrained`): both decoder families (Llama, Qwen2) with a
SigLIP tower, with and without LoRA, reloaded in bfloat16 with gradient checkpointing on the CPU."""

import numpy as np
import pytest
import torch
from peft import PeftModel

from pcm_engine.config import PolicyConfig, RunConfig
from pcm_engine.policies import VLAPolicy
from pcm_engine.policies.factory import build_policy

TINY_POLICY = {
    "hidden_size": 32,
    "num_layers": 1,
    "num_heads": 2,
    "vision_hidden_size": 32,
    "vision_layers": 1,
    "vision_heads": 2,
    "patch_size": 16,
}
DECODERS = {"llama": "LlamaModel", "qwen2": "Qwen2Model"}
DIMS = {"chunk_len": 4, "action_dim": 7, "proprio_dim": 5, "image_size": 64}  # LIBERO's dims


def _inputs(policy: VLAPolicy):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    proprio = rng.normal(size=(2, 5)).astype(np.float32)
    return policy.prepare(images, proprio, ["put the bowl on the plate", "open the drawer"])


def _saved_policy(tmp_path, language_model: str, lora: bool) -> VLAPolicy:
    lora_cfg = {"enabled": lora, "r": 4}
    policy = VLAPolicy(PolicyConfig(language_model=language_model, lora=lora_cfg, **TINY_POLICY), **DIMS)
    with torch.no_grad():
        for name, param in policy.named_parameters():
            if "lora_B" in name:  # LoRA B starts at zero: make the adapters matter
                param.normal_(0, 0.5)
    policy.save_pretrained(tmp_path)
    return policy


def _run_config(directory, lora: bool, **policy) -> RunConfig:
    overrides = {"env.name": "libero", "grpo.chunk_len": 4, "policy.pretrained": str(directory)}
    overrides["policy.lora"] = {"enabled": lora, "r": 4}
    overrides.update({f"policy.{k}": v for k, v in policy.items()})
    return RunConfig.from_dict({}, overrides)


@pytest.mark.parametrize("lora", [False, True])
@pytest.mark.parametrize("language_model", ["llama", "qwen2"])
def test_a_checkpoint_loads_back_by_path_with_the_same_logits(tmp_path, language_model, lora):
    saved = _saved_policy(tmp_path, language_model, lora)
    loaded = build_policy(_run_config(tmp_path, lora), None, torch.device("cpu"))
    assert isinstance(loaded.language_model, PeftModel) == lora
    base = loaded.language_model.get_base_model() if lora else loaded.language_model
    assert type(base).__name__ == DECODERS[language_model]
    assert type(loaded.vision.get_base_model() if lora else loaded.vision).__name__ == "SiglipVisionModel"
    saved.eval(), loaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(_inputs(loaded)), saved(_inputs(saved)))
    if lora:  # the adapters themselves came back trainable, the base weights frozen
        trainable = [n for n, p in loaded.named_parameters() if p.requires_grad]
        assert any("lora_B" in n for n in trainable)
        assert not any("language_model" in n and "lora_" not in n for n in trainable)


@pytest.mark.parametrize("language_model", ["llama", "qwen2"])
def test_bfloat16_and_gradient_checkpointing_train_on_the_cpu(tmp_path, language_model):
    _saved_policy(tmp_path, language_model, lora=True)
    config = _run_config(tmp_path, True, dtype="bfloat16", gradient_checkpointing=True)
    policy = build_policy(config, None, torch.device("cpu")).train()
    assert policy.language_model.get_base_model().dtype == torch.bfloat16
    assert policy.vision.get_base_model().dtype == torch.bfloat16
    assert any(getattr(m, "gradient_checkpointing", False) for m in policy.modules())
    inputs = _inputs(policy)
    tokens, _ = policy.sample(inputs, 1.0, generator=torch.Generator().manual_seed(0))
    log_probs, entropy = policy.log_probs_and_entropy(inputs, tokens, 1.0)
    assert log_probs.dtype == torch.float32 and torch.isfinite(log_probs).all()
    (-(log_probs.mean()) - 1e-3 * entropy.mean()).backward()
    grads = [p.grad for n, p in policy.named_parameters() if "lora_B" in n]
    assert grads and all(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)

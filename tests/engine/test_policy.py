import json

import numpy as np
import pytest
import torch

from pcm_engine.config import PolicyConfig
from pcm_engine.policies import ByteTokenizer, PolicyInputs, VLAPolicy

torch.set_num_threads(1)

DIMS = {"chunk_len": 2, "action_dim": 3, "proprio_dim": 4, "image_size": 32}
TOKENS = DIMS["chunk_len"] * DIMS["action_dim"]
BINS = 32


def tiny_config(**overrides) -> PolicyConfig:
    fields = {
        "hidden_size": 32,
        "num_layers": 2,
        "num_heads": 2,
        "vision_hidden_size": 32,
        "vision_layers": 1,
        "vision_heads": 2,
        "patch_size": 8,
        "action_bins": BINS,
        "max_instruction_bytes": 24,
    }
    return PolicyConfig(**{**fields, **overrides})


def tiny_policy(**overrides) -> VLAPolicy:
    return VLAPolicy(tiny_config(**overrides), **DIMS)


def observation(instructions: list[str], seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    size = DIMS["image_size"]
    images = rng.integers(0, 256, (len(instructions), size, size, 3), dtype=np.uint8)
    proprio = rng.normal(size=(len(instructions), DIMS["proprio_dim"])).astype(np.float32)
    return images, proprio, instructions


INSTRUCTIONS = ["pick up the red cube", "stack", "put the green block on the plate"]


@pytest.fixture(scope="module")
def policy() -> VLAPolicy:
    return tiny_policy()


@pytest.fixture(scope="module")
def inputs(policy: VLAPolicy) -> PolicyInputs:
    return policy.prepare(*observation(INSTRUCTIONS))


# --- tokenizer and inputs ---------------------------------------------------------------------


def test_byte_tokenizer_pads_truncates_and_round_trips():
    tok = ByteTokenizer()
    ids, mask = tok.encode(["ab", "", "héllo wörld"], max_len=8)
    assert ids.dtype == mask.dtype == torch.int64
    assert ids.shape == mask.shape == (3, 8)  # the longest row is truncated to max_len
    assert ids[0, :3].tolist() == [97, 98, ByteTokenizer.eos_id]
    assert mask.sum(1).tolist() == [3, 1, 8]
    assert (ids[mask == 0] == ByteTokenizer.pad_id).all()
    assert ids[2, 7] == ByteTokenizer.eos_id  # EOS survives truncation
    assert tok.decode(ids[0]) == "ab" and tok.decode(ids[1]) == ""
    assert tok.decode(ids[2]) == "héllo "  # 7 bytes kept; ö is cut mid-character
    ids, mask = tok.encode(["ab", "c"], max_len=8)
    assert ids.shape == (2, 3)  # T = the longest row, not max_len


def test_prepare_and_forward_shapes(policy: VLAPolicy, inputs: PolicyInputs):
    assert len(inputs) == 3
    assert inputs.pixel_values.shape == (3, 3, 32, 32) and inputs.pixel_values.dtype == torch.float32
    assert inputs.proprio.shape == (3, 4)
    # the longest instruction (32 bytes + EOS) is truncated to max_instruction_bytes = 24
    assert inputs.input_ids.shape == inputs.attention_mask.shape == (3, 24)
    images = np.zeros((1, 32, 32, 3), np.uint8)
    images[0, 0, 0] = 255
    pixels = policy.prepare(images, np.zeros((1, 4), np.float32), ["x"]).pixel_values
    assert pixels.min() == -1.0 and pixels.max() == 1.0 and pixels[0, :, 0, 0].tolist() == [1.0] * 3
    logits = policy(inputs)
    assert logits.shape == (3, TOKENS, BINS) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all()
    with pytest.raises(ValueError):
        policy.prepare(np.zeros((1, 16, 16, 3), np.uint8), np.zeros((1, 4), np.float32), ["x"])
    with pytest.raises(ValueError):
        policy.prepare(np.zeros((1, 32, 32, 3), np.uint8), np.zeros((1, 3), np.float32), ["x"])


@pytest.mark.parametrize("language_model", ["llama", "qwen2"])
def test_logits_do_not_depend_on_the_rest_of_the_batch(language_model: str):
    policy = tiny_policy(language_model=language_model)
    images, proprio, texts = observation(INSTRUCTIONS)
    with torch.no_grad():
        together = policy(policy.prepare(images, proprio, texts))
        for i in range(len(texts)):
            alone = policy(policy.prepare(images[i : i + 1], proprio[i : i + 1], texts[i : i + 1]))
            torch.testing.assert_close(together[i : i + 1], alone, atol=1e-5, rtol=0)
        order = [2, 0, 1]
        shuffled = policy(policy.prepare(images[order], proprio[order], [texts[i] for i in order]))
        torch.testing.assert_close(shuffled, together[order], atol=1e-5, rtol=0)


def test_inputs_concatenate_and_index(policy: VLAPolicy, inputs: PolicyInputs):
    images, proprio, texts = observation(INSTRUCTIONS)
    parts = [policy.prepare(images[i : i + 1], proprio[i : i + 1], texts[i : i + 1]) for i in range(3)]
    joined = PolicyInputs.cat(parts)
    assert joined.input_ids.shape == inputs.input_ids.shape
    with torch.no_grad():
        torch.testing.assert_close(policy(joined), policy(inputs), atol=1e-5, rtol=0)
        torch.testing.assert_close(policy(inputs[1]), policy(parts[1]), atol=1e-5, rtol=0)
        torch.testing.assert_close(
            policy(inputs[torch.tensor([2, 0])]), policy(inputs)[[2, 0]], atol=1e-5, rtol=0
        )


def test_the_host_side_padding_flag_matches_the_mask_and_changes_no_logit(policy: VLAPolicy):
    """`prepare` reads the padding on the host (so `forward` never waits to read the mask back
    from a device); indexing and concatenation keep the flag only where it stays true."""
    images, proprio, texts = observation(["stack", "stack", "pick up the red cube"])
    same = policy.prepare(images[:2], proprio[:2], texts[:2])
    mixed = policy.prepare(images, proprio, texts)
    assert same.unpadded is True and mixed.unpadded is False
    assert same[0].unpadded is True and mixed[0].unpadded is None  # row 0 of a padded batch: unknown
    assert PolicyInputs.cat([same, same]).unpadded is True
    assert PolicyInputs.cat([same, mixed[2]]).unpadded is None
    with torch.no_grad():
        for batch in (same, mixed):
            unknown = PolicyInputs(**{**batch.__dict__, "unpadded": None})
            torch.testing.assert_close(policy(batch), policy(unknown), atol=0, rtol=0)


# --- sampling and scoring ---------------------------------------------------------------------


def test_sample_log_probs_match_teacher_forcing(policy: VLAPolicy, inputs: PolicyInputs):
    generator = torch.Generator().manual_seed(3)
    tokens, log_probs = policy.sample(inputs, temperature=1.3, generator=generator)
    assert tokens.shape == log_probs.shape == (3, TOKENS) and tokens.dtype == torch.int64
    assert not log_probs.requires_grad and (log_probs <= 0).all()
    scored, entropy = policy.log_probs_and_entropy(inputs, tokens, temperature=1.3)
    assert scored.requires_grad and entropy.shape == (3, TOKENS)
    torch.testing.assert_close(scored.detach(), log_probs, atol=1e-5, rtol=0)

    again, _ = policy.sample(inputs, temperature=1.3, generator=torch.Generator().manual_seed(3))
    assert torch.equal(again, tokens)  # reproducible from the generator state
    other, _ = policy.sample(inputs, temperature=1.3, generator=torch.Generator().manual_seed(4))
    assert not torch.equal(other, tokens)


def test_temperature_zero_is_greedy(policy: VLAPolicy, inputs: PolicyInputs):
    tokens, log_probs = policy.sample(inputs, temperature=0.0)
    with torch.no_grad():
        logits = policy(inputs)
    assert torch.equal(tokens, logits.argmax(-1))
    expected = torch.log_softmax(logits, -1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(log_probs, expected)
    scored, _ = policy.log_probs_and_entropy(inputs, tokens, temperature=0.0)
    torch.testing.assert_close(scored.detach(), log_probs)
    with pytest.raises(ValueError):
        policy.sample(inputs, temperature=-1.0)


def test_higher_temperature_gives_higher_entropy(policy: VLAPolicy, inputs: PolicyInputs):
    tokens, _ = policy.sample(inputs, temperature=1.0, generator=torch.Generator().manual_seed(0))
    entropies = [policy.log_probs_and_entropy(inputs, tokens, t)[1].mean().item() for t in (0.3, 1.0, 3.0)]
    assert entropies[0] < entropies[1] < entropies[2] <= np.log(BINS) + 1e-5
    # and the samples spread accordingly: more distinct tokens per position when hotter
    repeated = PolicyInputs.cat([inputs[0]] * 16)
    cold = policy.sample(repeated, 0.05, generator=torch.Generator().manual_seed(0))[0]
    hot = policy.sample(repeated, 5.0, generator=torch.Generator().manual_seed(0))[0]

    def distinct(tokens: torch.Tensor) -> int:
        return sum(len(set(column.tolist())) for column in tokens.T)

    assert distinct(cold) < distinct(hot)


def test_actions_and_tokens_convert_both_ways(policy: VLAPolicy):
    tokens = torch.randint(0, BINS, (5, TOKENS))
    actions = policy.actions_from_tokens(tokens)
    assert actions.shape == (5, 2, 3) and actions.dtype == np.float32
    assert np.abs(actions).max() < 1
    # row-major order: token l*D + d is step l, dimension d
    assert actions[1, 1, 2] == policy.action_tokenizer.decode(tokens[1, 5:6].numpy())[0]
    assert torch.equal(policy.tokens_from_actions(actions), tokens)
    assert torch.equal(policy.tokens_from_actions(torch.from_numpy(actions)), tokens)
    with pytest.raises(ValueError):
        policy.tokens_from_actions(np.zeros((5, 3, 2)))


# --- construction -----------------------------------------------------------------------------


def test_initial_weights_depend_only_on_the_config_seed():
    torch.manual_seed(123)
    first = tiny_policy(seed=7).state_dict()
    global_draw = torch.rand(3)
    torch.manual_seed(999)
    second = tiny_policy(seed=7).state_dict()
    other = tiny_policy(seed=8).state_dict()
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)
    torch.manual_seed(123)
    assert torch.equal(torch.rand(3), global_draw)  # building a policy left the global RNG alone


def test_config_rejects_indivisible_heads_and_image_sizes():
    with pytest.raises(ValueError):
        tiny_config(hidden_size=30, num_heads=4)
    with pytest.raises(ValueError):
        VLAPolicy(tiny_config(patch_merge=3), **DIMS)  # 4x4 patch grid


@pytest.mark.parametrize("language_model", ["llama", "qwen2"])
def test_save_and_load_give_identical_logits(tmp_path, language_model: str):
    policy = tiny_policy(language_model=language_model, seed=5)
    inputs = policy.prepare(*observation(INSTRUCTIONS))
    with torch.no_grad():
        expected = policy(inputs)
    policy.save_pretrained(tmp_path)
    for sub in ("vision", "language_model"):
        assert {"config.json", "model.safetensors"} <= {p.name for p in (tmp_path / sub).iterdir()}
    meta = json.loads((tmp_path / "policy.json").read_text())
    assert meta["config"]["language_model"] == language_model and meta["chunk_len"] == 2

    loaded = VLAPolicy.from_pretrained(tmp_path)
    assert type(loaded.language_model) is type(policy.language_model)
    with torch.no_grad():
        torch.testing.assert_close(loaded(inputs), expected, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="architecture"):
        VLAPolicy.from_pretrained(tmp_path, {"hidden_size": 64})


# --- LoRA, dtype, checkpointing ---------------------------------------------------------------


def trainable(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def test_lora_trains_far_fewer_parameters_and_gradients_reach_them(inputs: PolicyInputs):
    full = tiny_policy(hidden_size=64, vision_hidden_size=64)
    lora = tiny_policy(hidden_size=64, vision_hidden_size=64, lora={"enabled": True, "r": 2})
    backbones = ("vision", "language_model")
    full_backbone = sum(trainable(getattr(full, m)) for m in backbones)
    lora_backbone = sum(trainable(getattr(lora, m)) for m in backbones)
    assert lora_backbone < full_backbone / 10
    assert trainable(lora) < trainable(full) / 2
    for name in ("projector", "proprio_proj", "head_norm", "head"):
        assert trainable(getattr(lora, name)) == trainable(getattr(full, name)) > 0
    assert lora.action_queries.requires_grad

    tokens, _ = lora.sample(inputs, 1.0, generator=torch.Generator().manual_seed(0))
    log_probs, _ = lora.log_probs_and_entropy(inputs, tokens, 1.0)
    (-log_probs.mean()).backward()
    named = dict(lora.named_parameters())
    lora_b = [n for n in named if "lora_B" in n]
    assert any(n.startswith("vision.") for n in lora_b) and any(
        n.startswith("language_model.") for n in lora_b
    )
    # lora_B starts at 0, so the first gradient lands on B (A's gradient is B^T * ...= 0).
    assert all(named[n].grad is not None and named[n].grad.abs().sum() > 0 for n in lora_b)
    assert named["head.weight"].grad.abs().sum() > 0
    assert named["action_queries"].grad.abs().sum() > 0
    frozen = [p for n, p in named.items() if "base_layer" in n or "embed_tokens" in n]
    assert frozen and all(not p.requires_grad and p.grad is None for p in frozen)


def test_lora_vision_tower_can_be_frozen():
    policy = tiny_policy(lora={"enabled": True, "vision_target_modules": []})
    assert trainable(policy.vision) == 0 and trainable(policy.language_model) > 0


def test_lora_policy_reloads_to_the_same_logits(tmp_path, inputs: PolicyInputs):
    policy = tiny_policy(lora={"enabled": True})
    with torch.no_grad():
        for name, param in policy.named_parameters():
            if "lora_B" in name:  # make the adapter change the outputs
                param.normal_(0, 0.2)
        expected = policy(inputs)
    policy.save_pretrained(tmp_path)
    assert (tmp_path / "language_model_lora" / "adapter_model.safetensors").is_file()

    resumed = VLAPolicy.from_pretrained(tmp_path)  # same LoRA settings: the adapter itself
    assert trainable(resumed) == trainable(policy)
    merged = VLAPolicy.from_pretrained(tmp_path, {"lora": {"enabled": False}})
    assert trainable(merged.language_model) == sum(p.numel() for p in merged.language_model.parameters())
    fresh = VLAPolicy.from_pretrained(tmp_path, {"lora": {"enabled": True, "r": 4}})
    with torch.no_grad():
        torch.testing.assert_close(resumed(inputs), expected, atol=1e-6, rtol=0)
        torch.testing.assert_close(merged(inputs), expected, atol=1e-4, rtol=0)
        torch.testing.assert_close(fresh(inputs), expected, atol=1e-4, rtol=0)


def test_bfloat16_weights_and_float32_logits(inputs: PolicyInputs):
    reference = tiny_policy()
    policy = tiny_policy(dtype="bfloat16")
    assert all(p.dtype == torch.bfloat16 for p in policy.language_model.parameters())
    assert all(p.dtype == torch.bfloat16 for p in policy.vision.parameters())
    with torch.no_grad():
        logits = policy(inputs)
        expected = reference(inputs)
    assert logits.dtype == torch.float32
    assert (logits - expected).abs().max() < 0.1 * expected.std()
    tokens, log_probs = policy.sample(inputs, 1.0, generator=torch.Generator().manual_seed(0))
    scored, _ = policy.log_probs_and_entropy(inputs, tokens, 1.0)
    torch.testing.assert_close(scored.detach(), log_probs, atol=1e-5, rtol=0)


def test_gradient_checkpointing_gives_the_same_loss(inputs: PolicyInputs):
    tokens = torch.randint(0, BINS, (len(inputs), TOKENS), generator=torch.Generator().manual_seed(0))
    losses, grads = [], []
    for checkpointing in (False, True):
        policy = tiny_policy(gradient_checkpointing=checkpointing).train()
        flags = [getattr(m, "gradient_checkpointing", False) for m in policy.modules()]
        assert any(flags) == checkpointing
        loss = -policy.log_probs_and_entropy(inputs, tokens, 1.0)[0].mean()
        loss.backward()
        losses.append(loss.item())
        grads.append(policy.projector.weight.grad.clone())
    assert losses[0] == pytest.approx(losses[1], abs=1e-6)
    torch.testing.assert_close(grads[0], grads[1], atol=1e-6, rtol=1e-5)


def test_a_few_sft_steps_reduce_the_loss():
    policy = tiny_policy(seed=1)
    images, proprio, texts = observation(INSTRUCTIONS * 2, seed=1)
    inputs = policy.prepare(images, proprio, texts)
    targets = np.random.default_rng(2).uniform(-1, 1, size=(6, 2, 3))
    tokens = policy.tokens_from_actions(targets)
    optimizer = torch.optim.Adam(policy.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        loss = -policy.log_probs_and_entropy(inputs, tokens, 1.0)[0].mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(np.log(BINS), abs=0.5)
    assert losses[-1] < 0.5 * losses[0]

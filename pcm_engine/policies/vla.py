"""The VLA policy: SigLIP vision tower -> projector -> Llama/Qwen2 decoder -> parallel action head.

Input sequence of one sample (spec §1, OpenVLA-OFT-style parallel decoding):

    [image patch tokens][proprio token][instruction tokens + EOS][L*D learned action queries]

One forward pass of the decoder gives a hidden state at every action-query position; a LayerNorm +
linear head turns each into `action_bins` logits. The `L*D` tokens of a chunk (token `l*D + d` is
step `l`, action dimension `d`) are conditionally independent given the observation, so
`log pi(chunk | obs)` is the sum of the token log-probs.

Instructions of a batch are right-padded in the middle of the sequence; pad positions are masked
out as attention keys and the RoPE position ids skip them, so a row's logits do not depend on the
other rows of its batch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from peft import LoraConfig as PeftLoraConfig
from peft import PeftModel, get_peft_model
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import (
    LlamaConfig,
    LlamaModel,
    PreTrainedModel,
    Qwen2Config,
    Qwen2Model,
    SiglipVisionConfig,
    SiglipVisionModel,
)
from transformers.utils import logging as hf_logging

from pcm_engine.config import LoraConfig, PolicyConfig
from pcm_engine.policies.action_tokenizer import ActionTokenizer
from pcm_engine.policies.text_tokenizer import ByteTokenizer

# Loading and saving our own small checkpoints needs no per-shard progress bars.
hf_logging.disable_progress_bar()

# CPU and CUDA both run the fused SDPA kernels; it matches "eager" to float precision and is faster.
ATTN_IMPLEMENTATION = "sdpa"

_LANGUAGE_MODELS: dict[str, tuple[type, type[PreTrainedModel]]] = {
    "llama": (LlamaConfig, LlamaModel),
    "qwen2": (Qwen2Config, Qwen2Model),
}
# PolicyConfig fields that shape the weights; from_pretrained refuses overrides of these.
ARCHITECTURE_FIELDS = (
    "language_model",
    "hidden_size",
    "num_layers",
    "num_heads",
    "vision_hidden_size",
    "vision_layers",
    "vision_heads",
    "patch_size",
    "patch_merge",
    "mlp_ratio",
    "action_bins",
)

POLICY_JSON = "policy.json"
HEADS_FILE = "policy_heads.safetensors"
VISION_DIR = "vision"
LM_DIR = "language_model"
ADAPTER_SUFFIX = "_lora"  # vision_lora/, language_model_lora/: peft adapter directories


TENSOR_FIELDS = ("pixel_values", "proprio", "input_ids", "attention_mask")


@dataclass
class PolicyInputs:
    """A batch of model-ready observations (all tensors share the batch dimension)."""

    pixel_values: torch.Tensor  # [B, 3, H, W] float32 in [-1, 1]
    proprio: torch.Tensor  # [B, P] float32
    input_ids: torch.Tensor  # [B, T] int64 instruction bytes + EOS, right-padded
    attention_mask: torch.Tensor  # [B, T] int64, 0 at padding
    # True when no row is padded (every attention_mask entry is 1), known on the host so that
    # `forward` need not read the mask back from the device; None = not known, look
    unpadded: bool | None = None

    def _tensors(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name) for name in TENSOR_FIELDS}

    def to(self, device: torch.device | str) -> PolicyInputs:
        return PolicyInputs(**{k: t.to(device) for k, t in self._tensors().items()}, unpadded=self.unpadded)

    def __len__(self) -> int:
        return self.pixel_values.shape[0]

    def __getitem__(self, index: int | slice | torch.Tensor | np.ndarray) -> PolicyInputs:
        """Rows `index` (an int keeps the batch dimension). Padding columns are kept; harmless."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        if isinstance(index, np.ndarray):
            index = torch.from_numpy(index)
        # rows of an unpadded batch are unpadded; rows of a padded one may not be
        unpadded = True if self.unpadded else None
        return PolicyInputs(**{k: t[index] for k, t in self._tensors().items()}, unpadded=unpadded)

    @staticmethod
    def cat(batches: list[PolicyInputs]) -> PolicyInputs:
        """Concatenate along the batch, re-padding instructions to the longest one."""
        width = max(b.input_ids.shape[1] for b in batches)

        def pad(t: torch.Tensor, value: int) -> torch.Tensor:
            return F.pad(t, (0, width - t.shape[1]), value=value)

        same_width = all(b.input_ids.shape[1] == width for b in batches)
        return PolicyInputs(
            pixel_values=torch.cat([b.pixel_values for b in batches]),
            proprio=torch.cat([b.proprio for b in batches]),
            input_ids=torch.cat([pad(b.input_ids, ByteTokenizer.pad_id) for b in batches]),
            attention_mask=torch.cat([pad(b.attention_mask, 0) for b in batches]),
            unpadded=True if same_width and all(b.unpadded for b in batches) else None,
        )


def _torch_dtype(name: str) -> torch.dtype:
    return {"float32": torch.float32, "bfloat16": torch.bfloat16}[name]


def _vision_config(config: PolicyConfig, image_size: int) -> SiglipVisionConfig:
    return SiglipVisionConfig(
        hidden_size=config.vision_hidden_size,
        intermediate_size=config.mlp_ratio * config.vision_hidden_size,
        num_hidden_layers=config.vision_layers,
        num_attention_heads=config.vision_heads,
        image_size=image_size,
        patch_size=config.patch_size,
        attention_dropout=0.0,
        vision_use_head=False,  # we use the patch tokens, not the pooled embedding
        attn_implementation=ATTN_IMPLEMENTATION,
    )


def _lm_config(config: PolicyConfig, max_positions: int) -> LlamaConfig | Qwen2Config:
    config_cls, _ = _LANGUAGE_MODELS[config.language_model]
    return config_cls(
        vocab_size=ByteTokenizer.vocab_size,
        hidden_size=config.hidden_size,
        intermediate_size=config.mlp_ratio * config.hidden_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_heads,
        max_position_embeddings=max_positions,
        attention_dropout=0.0,
        use_cache=False,
        pad_token_id=ByteTokenizer.pad_id,
        bos_token_id=None,
        eos_token_id=ByteTokenizer.eos_id,
        tie_word_embeddings=False,
        attn_implementation=ATTN_IMPLEMENTATION,
    )


def _peft_config(lora: LoraConfig, target_modules: list[str]) -> PeftLoraConfig:
    return PeftLoraConfig(
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=target_modules
    )


def _hf_model(module: nn.Module) -> PreTrainedModel:
    """The transformers model inside a (possibly peft-wrapped) submodule."""
    return module.get_base_model() if isinstance(module, PeftModel) else module


class VLAPolicy(nn.Module):
    """Chunk policy pi(a_{t:t+L} | o_t): one forward pass gives the logits of all L*D tokens.

    `vision` / `language_model` are for `from_pretrained`, which passes loaded (possibly already
    LoRA-wrapped) submodules. All fresh weights (and fresh LoRA adapters) are drawn under a fork
    of torch's CPU RNG seeded with `config.seed`: the same config gives the same weights whatever
    the global seed, and building a policy leaves the global RNG untouched.
    """

    def __init__(
        self,
        config: PolicyConfig,
        *,
        chunk_len: int,
        action_dim: int,
        proprio_dim: int,
        image_size: int,
        vision: nn.Module | None = None,
        language_model: nn.Module | None = None,
    ):
        super().__init__()
        grid = image_size // config.patch_size
        if image_size % config.patch_size or grid % config.patch_merge:
            raise ValueError(
                f"image_size {image_size} must be a multiple of patch_size {config.patch_size} "
                f"times patch_merge {config.patch_merge}"
            )
        self.config = config
        self.chunk_len = chunk_len
        self.action_dim = action_dim
        self.proprio_dim = proprio_dim
        self.image_size = image_size
        self.num_action_tokens = chunk_len * action_dim
        self.num_image_tokens = (grid // config.patch_merge) ** 2
        self.action_tokenizer = ActionTokenizer(config.action_bins)
        self.text_tokenizer = ByteTokenizer()
        dtype = _torch_dtype(config.dtype)
        max_positions = self.num_image_tokens + 1 + config.max_instruction_bytes + self.num_action_tokens

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            if vision is None:
                vision = SiglipVisionModel(_vision_config(config, image_size)).to(dtype)
            if language_model is None:
                _, lm_cls = _LANGUAGE_MODELS[config.language_model]
                language_model = lm_cls(_lm_config(config, max_positions)).to(dtype)
            # Our own modules stay float32 (they are small and always trained); activations are
            # cast to the transformers models' dtype, and the logits are float32.
            hidden = config.hidden_size
            self.projector = nn.Linear(config.patch_merge**2 * config.vision_hidden_size, hidden)
            self.proprio_proj = nn.Linear(proprio_dim, hidden)
            self.action_queries = nn.Parameter(torch.randn(self.num_action_tokens, hidden) * 0.02)
            self.head_norm = nn.LayerNorm(hidden)
            self.head = nn.Linear(hidden, config.action_bins)
            if config.lora.enabled:
                vision, language_model = self._with_lora(vision, language_model)
        self.vision = vision
        self.language_model = language_model

        if config.gradient_checkpointing:
            for module in (self.vision, self.language_model):
                model = _hf_model(module)
                # transformers 5.x renamed gradient_checkpointing_enable (deprecated alias kept).
                enable = getattr(model, "activation_checkpointing_enable", None)
                (enable or model.gradient_checkpointing_enable)({"use_reentrant": False})

    def _with_lora(self, vision: nn.Module, language_model: nn.Module) -> tuple[nn.Module, nn.Module]:
        """Wrap the submodules that are not LoRA-wrapped yet; a tower without targets is frozen."""
        lora = self.config.lora
        if not isinstance(language_model, PeftModel):
            language_model = get_peft_model(language_model, _peft_config(lora, lora.target_modules))
        if not isinstance(vision, PeftModel):
            if lora.vision_target_modules:
                vision = get_peft_model(vision, _peft_config(lora, lora.vision_target_modules))
            else:
                vision.requires_grad_(False)
        return vision, language_model

    # --- inputs and outputs --------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def prepare(self, images: np.ndarray, proprio: np.ndarray, instructions: list[str]) -> PolicyInputs:
        """Env observations (uint8 images [B, H, W, 3], proprio [B, P]) -> inputs on our device."""
        expected = (self.image_size, self.image_size, 3)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != expected:
            raise ValueError(
                f"images must be uint8 [B, {self.image_size}, {self.image_size}, 3], "
                f"got {images.dtype} {images.shape}"
            )
        if proprio.shape != (len(images), self.proprio_dim) or len(instructions) != len(images):
            raise ValueError(
                f"expected proprio [{len(images)}, {self.proprio_dim}] and {len(images)} "
                f"instructions, got {proprio.shape} and {len(instructions)}"
            )
        device = self.device
        pixels = torch.from_numpy(np.ascontiguousarray(images)).to(device)
        pixel_values = pixels.permute(0, 3, 1, 2).float() / 127.5 - 1.0
        input_ids, attention_mask = self.text_tokenizer.encode(
            instructions, self.config.max_instruction_bytes
        )
        return PolicyInputs(
            pixel_values=pixel_values,
            proprio=torch.as_tensor(proprio, dtype=torch.float32).to(device),
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            unpadded=bool(attention_mask.all()),  # read on the host, before the copy
        )

    def actions_from_tokens(self, tokens: torch.Tensor) -> np.ndarray:
        """[B, L*D] bin ids -> continuous actions [B, L, D] (bin centres, float32)."""
        actions = self.action_tokenizer.decode(tokens.detach().cpu().numpy())
        return actions.reshape(len(tokens), self.chunk_len, self.action_dim)

    def tokens_from_actions(self, actions: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Continuous actions [B, L, D] -> [B, L*D] bin ids on our device (row-major order)."""
        if tuple(actions.shape[1:]) != (self.chunk_len, self.action_dim):
            raise ValueError(
                f"actions must be [B, {self.chunk_len}, {self.action_dim}], got {tuple(actions.shape)}"
            )
        tokens = self.action_tokenizer.encode(torch.as_tensor(actions))
        return tokens.reshape(len(tokens), -1).to(self.device)

    # --- model ---------------------------------------------------------------------------------

    def forward(self, inputs: PolicyInputs) -> torch.Tensor:
        """-> float32 logits [B, L*D, action_bins]."""
        batch = len(inputs)
        lm = self.language_model
        dtype = lm.get_input_embeddings().weight.dtype
        patches = self.vision(pixel_values=inputs.pixel_values.to(dtype)).last_hidden_state
        embeds = torch.cat(
            [
                self.projector(self._merge_patches(patches.float())).to(dtype),
                self.proprio_proj(inputs.proprio.float()).unsqueeze(1).to(dtype),
                lm.get_input_embeddings()(inputs.input_ids),
                self.action_queries.to(dtype).expand(batch, -1, -1),
            ],
            dim=1,
        )
        mask = inputs.attention_mask
        unpadded = inputs.unpadded if inputs.unpadded is not None else bool(mask.all())
        if unpadded:
            # No padding: plain causal attention (lets SDPA use its is_causal fast path).
            hidden = lm(inputs_embeds=embeds, use_cache=False).last_hidden_state
        else:
            prefix = mask.new_ones(batch, self.num_image_tokens + 1)
            suffix = mask.new_ones(batch, self.num_action_tokens)
            full_mask = torch.cat([prefix, mask, suffix], dim=1)
            position_ids = (full_mask.cumsum(dim=1) - 1).clamp(min=0)
            hidden = lm(
                inputs_embeds=embeds,
                attention_mask=full_mask,
                position_ids=position_ids,
                use_cache=False,
            ).last_hidden_state
        queries = hidden[:, -self.num_action_tokens :].float()
        return self.head(self.head_norm(queries))

    def _merge_patches(self, patches: torch.Tensor) -> torch.Tensor:
        """[B, g*g, C] row-major patch grid -> [B, (g/k)^2, k*k*C]: each k x k block concatenated."""
        k = self.config.patch_merge
        if k == 1:
            return patches
        batch, count, channels = patches.shape
        grid = int(round(count**0.5))
        blocks = patches.reshape(batch, grid // k, k, grid // k, k, channels).permute(0, 1, 3, 2, 4, 5)
        return blocks.reshape(batch, (grid // k) ** 2, k * k * channels)

    @staticmethod
    def _log_softmax(logits: torch.Tensor, temperature: float) -> torch.Tensor:
        """The tempered distribution shared by `sample` and `log_probs_and_entropy` (0 -> 1)."""
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        return F.log_softmax(logits / temperature if temperature > 0 else logits, dim=-1)

    @torch.no_grad()
    def sample(
        self,
        inputs: PolicyInputs,
        temperature: float,
        generator: torch.Generator | None = None,
        uniforms: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (tokens [B, L*D] int64, log_probs [B, L*D] float32) of one chunk per row.

        Tokens are drawn from softmax(logits / temperature) and scored under that distribution;
        temperature 0 takes the argmax and scores it at temperature 1. The generator (on our
        device) makes draws reproducible; `uniforms` [B, L*D] in [0, 1) instead draws each token
        by inverting its distribution's CDF at that number, so a row's tokens depend on its own
        numbers only, not on the rows beside it (training rollouts, `pcm_engine.seeding`).
        """
        log_probs = self._log_softmax(self.forward(inputs), temperature)
        if temperature == 0:
            tokens = log_probs.argmax(dim=-1)
        elif uniforms is not None:
            cdf = log_probs.exp().cumsum(dim=-1)
            target = (uniforms.to(cdf) * cdf[..., -1]).unsqueeze(-1)
            tokens = torch.searchsorted(cdf, target, right=True).squeeze(-1).clamp_max(cdf.shape[-1] - 1)
        else:
            flat = log_probs.exp().reshape(-1, log_probs.shape[-1])
            tokens = torch.multinomial(flat, 1, generator=generator).reshape(log_probs.shape[:-1])
        return tokens, log_probs.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)

    def log_probs_and_entropy(
        self, inputs: PolicyInputs, tokens: torch.Tensor, temperature: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced (log_probs [B, L*D], entropy [B, L*D]) of `tokens`, with gradients,
        under the same tempered distribution as `sample`."""
        log_probs = self._log_softmax(self.forward(inputs), temperature)
        entropy = -(log_probs.exp() * log_probs).sum(dim=-1)
        return log_probs.gather(-1, tokens.unsqueeze(-1)).squeeze(-1), entropy

    # --- persistence ---------------------------------------------------------------------------

    def _own_state_dict(self) -> dict[str, torch.Tensor]:
        owned = ("projector", "proprio_proj", "action_queries", "head_norm", "head")
        return {k: v.detach().contiguous() for k, v in self.state_dict().items() if k.split(".")[0] in owned}

    def save_pretrained(self, directory: str | Path) -> None:
        """Write a self-contained local directory that `from_pretrained` reads back.

        vision/, language_model/   standard transformers directories (base weights, safetensors)
        vision_lora/, language_model_lora/   with LoRA: the peft adapters, kept separate (not
            merged) so that a resumed run continues training the very same adapter parameters
        policy_heads.safetensors   projector, proprio, action queries and action head
        policy.json                the PolicyConfig and the env dims
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for name, module in ((VISION_DIR, self.vision), (LM_DIR, self.language_model)):
            base = _hf_model(module)
            if isinstance(module, PeftModel):
                module.save_pretrained(str(directory / f"{name}{ADAPTER_SUFFIX}"))
                # peft replaced the targets by LoRA layers: save their base weights under the
                # original names so that the base directory is a plain transformers checkpoint.
                state = {
                    k.replace(".base_layer.", "."): v
                    for k, v in base.state_dict().items()
                    if "lora_" not in k
                }
                base.save_pretrained(str(directory / name), state_dict=state)
            else:
                base.save_pretrained(str(directory / name))
        save_file(self._own_state_dict(), str(directory / HEADS_FILE))
        meta = {
            "config": self.config.model_dump(mode="json"),
            "chunk_len": self.chunk_len,
            "action_dim": self.action_dim,
            "proprio_dim": self.proprio_dim,
            "image_size": self.image_size,
        }
        (directory / POLICY_JSON).write_text(json.dumps(meta, indent=2))

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, config_overrides: dict[str, Any] | None = None
    ) -> VLAPolicy:
        """Load a directory written by `save_pretrained` (local files only).

        `config_overrides` (PolicyConfig fields, e.g. {"lora": {...}, "dtype": "bfloat16"}) may
        change everything but the architecture. A saved LoRA adapter is loaded as-is (trainable)
        when the requested LoRA settings equal the saved ones; otherwise it is merged into the
        base weights, and a fresh adapter is added if LoRA is requested.
        """
        directory = Path(directory)
        meta = json.loads((directory / POLICY_JSON).read_text())
        saved = PolicyConfig.model_validate(meta["config"])
        config = PolicyConfig.model_validate({**meta["config"], **(config_overrides or {})})
        changed = [f for f in ARCHITECTURE_FIELDS if getattr(config, f) != getattr(saved, f)]
        if changed:
            raise ValueError(f"cannot override architecture fields of a pretrained policy: {changed}")
        dtype = _torch_dtype(config.dtype)
        keep_adapters = saved.lora.enabled and config.lora == saved.lora

        def load(name: str, model_cls: type[PreTrainedModel]) -> nn.Module:
            model = model_cls.from_pretrained(
                str(directory / name),
                local_files_only=True,
                dtype=dtype,
                attn_implementation=ATTN_IMPLEMENTATION,
            )
            adapter = directory / f"{name}{ADAPTER_SUFFIX}"
            if not adapter.is_dir():
                return model
            wrapped = PeftModel.from_pretrained(model, str(adapter), is_trainable=keep_adapters)
            if keep_adapters:
                return wrapped
            # peft froze the base weights; merged, they are ordinary trainable weights again.
            return wrapped.merge_and_unload().requires_grad_(True)

        policy = cls(
            config,
            chunk_len=meta["chunk_len"],
            action_dim=meta["action_dim"],
            proprio_dim=meta["proprio_dim"],
            image_size=meta["image_size"],
            vision=load(VISION_DIR, SiglipVisionModel),
            language_model=load(LM_DIR, _LANGUAGE_MODELS[config.language_model][1]),
        )
        own = load_file(str(directory / HEADS_FILE), device=str(policy.device))
        policy.load_state_dict(own, strict=False)  # the rest was loaded by transformers/peft
        return policy

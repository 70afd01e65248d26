"""RunConfig: the one validated schema of a run (architecture: "One config schema").

The same object is read by the CLI (`--config FILE --set key=value`), written beside every
checkpoint, and (later) taken by the API. Unknown fields are errors, every number has bounds, and
every choice the spec leaves open is a field here. Section numbers (§) refer to docs/pcm-spec.md.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)


def _presets_dir() -> Path:
    """The presets folder: package data of `pcm_engine.presets` (the repo's configs/ folder, mapped
    by pyproject.toml's package-dir), found the same way in an editable and a plain install."""
    try:
        return Path(str(resources.files("pcm_engine.presets")))
    except ModuleNotFoundError:  # a source tree run without being pip-installed
        return Path(__file__).resolve().parent.parent / "configs"


PRESETS_DIR = _presets_dir()
SEED_MAX = 2**63 - 1
"""The largest seed: torch seeds are 64-bit (`torch.manual_seed` overflows at 2**64), and the
evaluation generator is seeded with `train.seed + EVAL_SEED_OFFSET`, so a signed 64-bit bound
leaves that sum room."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TabletopConfig(_Section):
    """The built-in numpy pick-and-place suite (pcm_engine/envs/tabletop/)."""

    name: Literal["tabletop"] = "tabletop"
    image_size: int = Field(64, ge=16, le=256, description="Square RGB observation size in pixels.")
    max_steps: int = Field(96, ge=8, le=2000, description="Episode length limit in env steps.")
    tasks: list[int] | None = Field(
        None, description="Task ids to train and evaluate on; None = every task of the suite."
    )
    train_init_states: int = Field(50, ge=1, le=10000, description="Seeded initial states per task.")
    eval_init_states: int = Field(50, ge=1, le=10000, description="Held-out initial states per task.")
    layout_jitter: float | None = Field(
        0.1,
        ge=0,
        le=1,
        description="LIBERO-style init states: every object within this x/y offset of its task's "
        "fixed layout; null = objects anywhere on the table.",
    )
    gripper_steps: int = Field(
        3,
        ge=1,
        le=50,
        description="Steps the fingers take to close or open fully (1 = instant); a grasp is "
        "checked when they finish closing, a held block drops once they are half open.",
    )
    grasp_tolerance: float = Field(
        0.06, gt=0, le=1, description="Max horizontal gripper-object offset for a grasp to hold."
    )
    place_tolerance: float = Field(
        0.08, gt=0, le=1, description="Max horizontal object-target offset for success."
    )
    release_height: float = Field(
        0.12,
        gt=0,
        le=1,
        description="Highest release above the table that keeps the object upright.",
    )
    grasp_height: float = Field(
        0.06, gt=0, le=1, description="The gripper must be below this height for a grasp to hold."
    )
    move_scale: float = Field(
        0.04, gt=0, le=1, description="Gripper displacement per step for a full-scale action."
    )
    grip_force: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Gripper command a held object needs: while held, a step whose command is "
        "closed (> 0) but below this lets it slip out and drop (toppling above release_height); "
        "0 = any closed command holds.",
    )


class LiberoConfig(_Section):
    """The LIBERO benchmark in MuJoCo (pcm_engine/envs/libero.py; needs the `libero` extra and the
    asset step of docs/libero.md). Defaults follow OpenVLA's LIBERO evaluation."""

    name: Literal["libero"] = "libero"
    suite: Literal["libero_spatial", "libero_object", "libero_goal", "libero_10"] = "libero_spatial"
    tasks: list[int] | None = Field(
        None, description="Task ids of the suite (0-9) to train and evaluate on; None = all ten."
    )
    train_init_states: int = Field(
        50, ge=1, le=50, description="Rollouts start from the first N of each task's 50 init states."
    )
    eval_init_states: int = Field(
        50,
        ge=1,
        le=50,
        description="Evaluation uses the last N of the 50 init states (50 + 50: both use all of "
        "them, the OpenVLA protocol; e.g. 40 + 10 holds ten out).",
    )
    max_steps: int | None = Field(
        None,
        ge=1,
        le=2000,
        description="Policy steps per episode; None = the suite's OpenVLA limit (spatial 220, "
        "object 280, goal 300, libero_10 520).",
    )
    settle_steps: int = Field(
        10, ge=0, le=200, description="No-op steps after reset while objects settle (not counted)."
    )
    image_size: int = Field(128, ge=16, le=512, description="Square camera image size in pixels.")
    camera: Literal["agentview", "robot0_eye_in_hand"] = Field(
        "agentview", description="The camera the policy sees (rotated 180 degrees, as in OpenVLA)."
    )
    proprio: Literal["eef_pos_gripper", "eef_pose_gripper"] = Field(
        "eef_pos_gripper",
        description="eef_pos_gripper: eef xyz + 2 finger positions (5-D); eef_pose_gripper adds "
        "the eef axis-angle (8-D, the OpenVLA-OFT state).",
    )
    num_workers: int = Field(
        1,
        ge=0,
        le=256,
        description="Simulator processes stepping episodes in parallel; 0 = in this process.",
    )
    cached_sims: int = Field(
        4,
        ge=0,
        le=64,
        description="Idle simulators (one per task, ~1 GB each) a worker keeps built for reuse.",
    )
    render: bool = Field(True, description="False: black images, physics only (for benchmarks).")
    mujoco_gl: Literal["egl", "osmesa"] = Field(
        "egl", description="Offscreen OpenGL backend (both run on the CPU through Mesa)."
    )
    assets_dir: str | None = Field(
        None,
        description="LIBERO's asset folder; None = the installed asset packages or ~/.cache/libero/assets.",
    )

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, tasks: list[int] | None) -> list[int] | None:
        if tasks is not None:
            if not tasks or any(not 0 <= t < 10 for t in tasks):
                raise ValueError("LIBERO suites have tasks 0..9")
            if len(set(tasks)) != len(tasks):
                raise ValueError("a task id is listed twice")
        return tasks


ENV_NAMES = ("tabletop", "libero")


def _env_name(section: Any) -> str:
    """The env variant of a section; `name` may be left out for the default (tabletop)."""
    if isinstance(section, dict):
        return section.get("name", "tabletop")
    return getattr(section, "name", "tabletop")


EnvConfig = Annotated[
    Annotated[TabletopConfig, Tag("tabletop")] | Annotated[LiberoConfig, Tag("libero")],
    Discriminator(_env_name),
]


def _env_json_schema(schema: dict[str, Any]) -> None:
    """JSON Schema: `anyOf` the variants, tabletop first. (pydantic writes `oneOf`, but an env
    section without `name` matches both variants' schemas, while validation reads it as tabletop.)"""
    if "oneOf" in schema:
        schema["anyOf"] = schema.pop("oneOf")


class LoraConfig(_Section):
    """peft LoRA on the attention projections; the policy's own small modules stay fully trained."""

    enabled: bool = False
    r: int = Field(8, ge=1, le=512)
    alpha: int = Field(16, ge=1, le=4096)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
        min_length=1,
        description="Module names adapted in the language model (Llama/Qwen2 naming).",
    )
    vision_target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "out_proj"],
        description="Module names adapted in the SigLIP vision tower; [] = the tower is frozen.",
    )


class PolicyConfig(_Section):
    """A transformers VLM (SigLIP vision tower + Llama/Qwen2 decoder) with parallel action decoding."""

    pretrained: str | None = Field(
        None,
        description="Local directory written by VLAPolicy.save_pretrained; None = build fresh.",
    )
    init: Literal["random", "sft"] = Field(
        "random",
        description="Start of RL when `pretrained` is unset: random weights, or a policy "
        "behaviour-cloned from scripted demos first (per the `sft` section; trained once and "
        "shared by every run with the same env, policy and sft settings).",
    )
    language_model: Literal["llama", "qwen2"] = "llama"
    hidden_size: int = Field(128, ge=16, le=8192)
    num_layers: int = Field(2, ge=1, le=128)
    num_heads: int = Field(4, ge=1, le=128)
    vision_hidden_size: int = Field(96, ge=16, le=4096)
    vision_layers: int = Field(2, ge=1, le=64)
    vision_heads: int = Field(4, ge=1, le=64)
    patch_size: int = Field(8, ge=2, le=64)
    patch_merge: int = Field(
        2,
        ge=1,
        le=8,
        description="k: each k x k block of vision patch tokens is concatenated and projected to "
        "one LM token (pixel-unshuffle), so the LM sees (image_size / patch_size / k)^2 image "
        "tokens; 1 = one LM token per patch.",
    )
    mlp_ratio: int = Field(
        2, ge=1, le=8, description="MLP width / hidden size, in the LM and in the vision tower."
    )
    action_bins: int = Field(256, ge=2, le=4096, description="Uniform bins per action dimension (§1).")
    max_instruction_bytes: int = Field(96, ge=8, le=1024)
    dtype: Literal["float32", "bfloat16"] = "float32"
    gradient_checkpointing: bool = False
    lora: LoraConfig = Field(default_factory=LoraConfig)
    seed: int = Field(0, ge=0, le=SEED_MAX, description="Seed of the random initial weights.")

    @model_validator(mode="after")
    def _heads_divide(self) -> PolicyConfig:
        if self.hidden_size % self.num_heads:
            raise ValueError("policy.hidden_size must be a multiple of policy.num_heads")
        if self.vision_hidden_size % self.vision_heads:
            raise ValueError("policy.vision_hidden_size must be a multiple of policy.vision_heads")
        return self


class GRPOConfig(_Section):
    """Chunk-level GRPO (§1)."""

    chunk_len: int = Field(8, ge=1, le=64, description="L: env steps per action chunk.")
    group_size: int = Field(8, ge=2, le=256, description="G: rollouts per task instance.")
    groups_per_step: int = Field(4, ge=1, le=1024, description="Task instances per training step.")
    temperature: float = Field(1.6, gt=0, le=10, description="Rollout sampling temperature.")
    dynamic_sampling: bool = Field(True, description="Drop groups whose success rate is 0 or 1.")
    clip_low: float = Field(0.2, ge=0, le=1)
    clip_high: float = Field(0.4, ge=0, le=10)
    entropy_coef: float = Field(1e-3, ge=0, le=1)
    kl_coef: float = Field(0.0, ge=0, le=10, description="KL to the initial policy; 0 = off.")
    adv_eps: float = Field(1e-6, gt=0, le=1)
    lr: float = Field(1e-5, gt=0, le=1)
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = Field(0.0, ge=0, le=1)
    max_grad_norm: float = Field(2.0, gt=0, le=1e6)
    mini_batches: int = Field(1, ge=1, le=1024, description="Optimizer steps per training step.")
    loss_agg: Literal["token_mean", "trajectory_mean"] = Field(
        "token_mean",
        description="token_mean: every token that takes part weighs the same (spec §1); "
        "trajectory_mean: every trajectory weighs the same, whatever its length.",
    )
    micro_batch_trajectories: int = Field(
        1,
        ge=1,
        le=1024,
        description="Trajectories per forward/backward in `memory` mode (the paper: 1); in `auto` "
        "mode, GRPO's passes of this many trajectories set the per-pass budget.",
    )
    micro_batch_chunks: Literal["auto", "memory"] | int = Field(
        "auto",
        description="How the chunks that take part are split into forward/backward passes (the "
        "gradient is the same whatever the split). auto: as few passes as fit a per-pass "
        "activation budget, packed across trajectories: by default the largest pass GRPO's "
        "`memory` mode makes on this very batch (its micro_batch_trajectories whole "
        "trajectories, every chunk kept), so a pass never holds more chunks, a longer "
        "instruction, or (unless GRPO's do) padding for instructions of different lengths, and "
        "PCM makes about kept-fraction as many passes as GRPO; or grpo.pass_memory_mb. "
        "memory: passes of micro_batch_trajectories whole trajectories, so PCM's passes shrink "
        "with what it keeps (the lowest peak memory; the paper's setting, right for a "
        "compute-bound policy). N > 0: passes of up to N chunks, packed across trajectories, "
        "whatever the selector. (0, in configs saved before `auto`, reads as memory.)",
    )
    pass_memory_mb: float | None = Field(
        None,
        gt=0,
        le=1e7,
        description="auto only: the per-pass activation budget in MiB, in the units of "
        "mem/activation_bytes (tensors autograd saves for backward), instead of GRPO's largest "
        "pass. A pass holds up to budget / c chunks, c measured once per run and instruction "
        "width by a two-chunk forward at the batch's longest instruction, padded (an upper "
        "bound per chunk); null = GRPO's largest pass.",
    )

    @field_validator("micro_batch_chunks", mode="before")
    @classmethod
    def _micro_batch_mode(cls, value: Any) -> Any:
        """'auto', 'memory' or a chunk count 1..65536 (a numeric string too, as a form sends it);
        the 0 of configs saved before `auto` meant `memory`."""
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, int) and not isinstance(value, bool) and value == 0:
            return "memory"
        if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65536:
            return value
        if value in ("auto", "memory"):
            return value
        raise ValueError(f"must be 'auto', 'memory' or a chunk count 1..65536, got {value!r}")

    @field_validator("pass_memory_mb")
    @classmethod
    def _memory_budget_is_for_auto(cls, value: float | None, info: ValidationInfo) -> float | None:
        mode = info.data.get("micro_batch_chunks", "auto")
        if value is not None and mode != "auto":
            raise ValueError(f"a budget for micro_batch_chunks 'auto', but micro_batch_chunks is {mode!r}")
        return value

    @model_validator(mode="after")
    def _memory_budget_only_for_auto(self) -> GRPOConfig:
        """The same rule when a field is assigned later (validate_assignment)."""
        if self.pass_memory_mb is not None and self.micro_batch_chunks != "auto":
            raise ValueError("grpo.pass_memory_mb is set, but grpo.micro_batch_chunks is not 'auto'")
        return self


class PhaseConfig(_Section):
    """Gripper-rule phase labels (§2)."""

    sustained: float = Field(0.75, ge=0, le=1, description="g threshold of a grasp interval.")
    active: float = Field(0.5, ge=0, le=1, description="g threshold of active_grip.")
    pre_low: float = Field(0.1, ge=0, le=1, description="Lower g bound of pre_grasp.")
    release_low: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Optional lower g bound of release_ramp; 0 = the paper's rule.",
    )
    window: int = Field(3, ge=0, le=64, description="Chunks before/after a grasp interval.")
    no_grasp: Literal["approach", "tail"] = Field(
        "approach",
        description="Label of the chunks of a trajectory that never grasps (its active_grip "
        "chunks, g >= active, stay active_grip).",
    )

    @model_validator(mode="before")
    @classmethod
    def _legacy_tail(cls, data: Any) -> Any:
        """Configs saved before the rename call release_low `tail`; they load unchanged."""
        if isinstance(data, dict) and "tail" in data and "release_low" not in data:
            data = {("release_low" if key == "tail" else key): value for key, value in data.items()}
        return data


class PCMConfig(_Section):
    """Phase scores, keep weights and chunk selection (§3–§5)."""

    selector: Literal["full", "pcm", "uniform", "top_phase"] = "pcm"
    budget: int = Field(12, ge=1, le=4096, description="B: chunks kept per trajectory.")
    refresh_every: int = Field(5, ge=1, le=10000, description="T_rc: steps between keep refreshes.")
    p_min: float = Field(0.1, ge=0, le=1, description="Floor of every keep weight.")
    reweight: Literal["none", "unbiased"] = "none"
    phases: PhaseConfig = Field(default_factory=PhaseConfig)
    mask_records_trajectories: int = Field(
        8,
        ge=0,
        le=4096,
        description="Trajectories per step whose chunk masks are recorded (the heat map): at least "
        "this many, in whole groups, groups that took part in the update first, and more groups "
        "when needed so that a step with both successes and failures shows both.",
    )
    score: Literal["paper", "debiased"] = Field(
        "paper",
        description="Phase score (§3), reported per step as pcm/score/<phase>. paper: C_c = "
        "||mu+ - mu-|| over chunks, which rises on noise alone as a phase's chunk count falls. "
        "debiased: signed D^2 = ||mean m+ - mean m-||^2 - tr(S)(1/k+ + 1/k-) over per-trajectory "
        "mean actions m_i (0 on average without signal); keep weights use "
        "s_c = sqrt(max(0, block mean of D^2)).",
    )
    score_dims: Literal["env", "all"] = Field(
        "env",
        description="Action dimensions the phase score compares: env = those the environment "
        "acts on (tabletop: x, y, z, gripper; LIBERO: all 7); all = every dimension.",
    )
    score_null_shuffles: int = Field(
        0,
        ge=0,
        le=1000,
        description="Per step, also report each phase's score (pcm.score) with outcomes shuffled "
        "within groups, averaged over this many shuffles (pcm/score_null/<phase>): a score near "
        "it is chunk-count noise, not divergence. Reporting only; 0 = off.",
    )


class SFTConfig(_Section):
    """Behaviour cloning from scripted demos: the starting policy."""

    demos_per_task: int = Field(10, ge=1, le=100000)
    expert_noise: float = Field(0.0, ge=0, le=1, description="Std of noise on expert actions.")
    expert_grip_noise: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Demonstrators squeeze unevenly: each closed gripper command is "
        "1 - this * |N(0, 1)| (kept above 0), so with env.grip_force some demo grasps slip.",
    )
    epochs: int = Field(30, ge=1, le=10000)
    batch_size: int = Field(64, ge=1, le=65536)
    lr: float = Field(1e-3, gt=0, le=1)
    weight_decay: float = Field(0.0, ge=0, le=1)
    pretrain_demos_per_task: int = Field(
        0,
        ge=0,
        le=100000,
        description="Two-stage start (tabletop): first behaviour-clone a fresh policy on this many "
        "demos of every suite task that is NOT in env.tasks, then fine-tune it on "
        "demos_per_task demos of the target tasks (epochs, lr). Like the paper's start: a "
        "pretrained policy fine-tuned on few demos. 0 = one stage, from random weights.",
    )
    pretrain_epochs: int = Field(6, ge=1, le=10000, description="Epochs of the pre-training stage.")
    pretrain_lr: float = Field(3e-4, gt=0, le=1, description="Learning rate of the pre-training stage.")
    seed: int = Field(
        0,
        ge=0,
        le=SEED_MAX,
        description="Seeds the start (demo expert noise, weights, shuffling, the start's eval) in "
        "place of train.seed, so runs that differ only in their RL seed share one start.",
    )


class EvalConfig(_Section):
    every: int = Field(10, ge=0, le=100000, description="Evaluate every N steps; 0 = only at the end.")
    episodes_per_task: int = Field(10, ge=1, le=10000)
    temperature: float = Field(1.0, ge=0, le=10, description="Sampling temperature; 0 = greedy.")
    record_episodes: int = Field(
        2,
        ge=0,
        le=64,
        description="At every eval, save this many of the step's training rollouts per task as "
        "animated GIFs with their chunks (phase, kept) and outcome, successes and failures when "
        "both exist (RUN/media/); 0 = off.",
    )


class TrainConfig(_Section):
    steps: int = Field(150, ge=0, le=10_000_000)
    seed: int = Field(0, ge=0, le=SEED_MAX)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    checkpoint_every: int = Field(25, ge=0, le=1_000_000, description="0 = only at the end.")
    keep_checkpoints: int = Field(2, ge=1, le=1000)
    torch_threads: int = Field(0, ge=0, le=1024, description="0 = torch's default.")
    overlap_rollouts: bool = Field(
        False,
        description="Roll out step t+1 in a background thread while step t updates, with the "
        "weights from before that update (a policy lag of 1, corrected by the clipped ratio on "
        "the recorded log-probs). Hides rollout time behind the update; costs one copy of the "
        "trainable weights.",
    )
    tensorboard: bool = Field(
        False,
        description="Mirror every metric to TensorBoard event files in <run dir>/tensorboard "
        "(needs the `tensorboard` package: pip install 'pcm-lab[tensorboard]').",
    )


class DistConfig(_Section):
    """One run over several processes (pcm_engine.distributed; docs/architecture.md,
    "Distributed runs")."""

    world_size: int = Field(
        1,
        ge=1,
        le=1024,
        description="Ranks (processes, one per GPU) that train this run together; each rolls out "
        "groups_per_step / world_size whole groups. 1 = one process.",
    )
    strategy: Literal["ddp", "fsdp"] = Field(
        "ddp",
        description="ddp: every rank holds the whole policy, gradients are summed over ranks. "
        "fsdp: FSDP2 fully_shard per decoder/encoder block, for policies that do not fit one device.",
    )
    backend: Literal["auto", "nccl", "gloo"] = Field(
        "auto", description="torch.distributed backend; auto = nccl on CUDA, gloo on the CPU."
    )
    nodes: int = Field(
        1,
        ge=1,
        le=128,
        description="Machines the ranks span (world_size / nodes ranks each), sharing the run "
        "folder: node 0 holds the rendezvous (for workers, the one that claims the run; for "
        "`pcm train`, --node-rank 0 with --rendezvous HOST:PORT on every node).",
    )
    timeout_s: float = Field(
        600.0,
        ge=10,
        le=86400,
        description="Seconds a rank waits on its peers before the run fails (a dead rank ends "
        "the run instead of hanging it).",
    )


class RunConfig(_Section):
    """Everything that defines a run. Saved beside every checkpoint; resume reads it back."""

    name: str = Field("run", min_length=1, max_length=200)
    env: EnvConfig = Field(default_factory=TabletopConfig, json_schema_extra=_env_json_schema)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    grpo: GRPOConfig = Field(default_factory=GRPOConfig)
    pcm: PCMConfig = Field(default_factory=PCMConfig)
    sft: SFTConfig = Field(default_factory=SFTConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    dist: DistConfig = Field(default_factory=DistConfig)

    @model_validator(mode="after")
    def _consistent(self) -> RunConfig:
        if self.grpo.clip_low >= 1:
            raise ValueError("grpo.clip_low must be < 1 (the ratio's lower clip is 1 - clip_low)")
        if self.pcm.phases.active > self.pcm.phases.sustained:
            raise ValueError("pcm.phases.active must be <= pcm.phases.sustained")
        if self.env.name == "libero" and self.policy.init == "sft" and not self.policy.pretrained:
            raise ValueError(
                "policy.init 'sft' needs the scripted tabletop expert; on LIBERO set "
                "policy.pretrained to a fine-tuned checkpoint (or policy.init: random)"
            )
        trajectories = self.grpo.group_size * self.grpo.groups_per_step
        if self.grpo.mini_batches > trajectories:
            raise ValueError(
                f"grpo.mini_batches ({self.grpo.mini_batches}) exceeds the trajectories per step "
                f"({trajectories} = group_size x groups_per_step)"
            )
        self._check_distributed()
        return self

    def _check_distributed(self) -> None:
        d = self.dist
        if d.nodes > d.world_size:
            raise ValueError(f"dist.nodes ({d.nodes}) exceeds dist.world_size ({d.world_size})")
        if d.world_size == 1:
            return
        if self.grpo.groups_per_step % d.world_size:
            raise ValueError(
                f"grpo.groups_per_step ({self.grpo.groups_per_step}) must be a multiple of "
                f"dist.world_size ({d.world_size}): every rank rolls out whole GRPO groups"
            )
        if d.world_size % d.nodes:
            raise ValueError(
                f"dist.world_size ({d.world_size}) must be a multiple of dist.nodes ({d.nodes}): "
                "every node runs the same number of ranks"
            )
        if self.train.overlap_rollouts:
            raise ValueError("train.overlap_rollouts runs in one process only (dist.world_size 1)")
        if d.backend == "nccl" and self.train.device == "cpu":
            raise ValueError("dist.backend 'nccl' needs train.device cuda (or auto on a GPU machine)")

    # --- I/O -----------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def config_hash(self) -> str:
        """A short stable hash of the whole config (used to tell identical runs apart)."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def load(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
        data = yaml.safe_load(Path(path).read_text()) or {}
        return cls.from_dict(data, overrides)

    @classmethod
    def from_dict(cls, data: dict[str, Any], overrides: dict[str, Any] | None = None) -> RunConfig:
        data = json.loads(json.dumps(data))  # deep copy, plain types only
        for dotted, value in (overrides or {}).items():
            apply_override(data, dotted, value)
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            raise ConfigError.from_validation(err) from None


WHOLE_CONFIG = "(config)"
"""ConfigError's field for a rule across fields (a model-level check); its message names them."""


class ConfigError(ValueError):
    """A config that cannot be used: `problems` pairs each offending field (a dotted path, or
    `WHOLE_CONFIG`) with its message, for callers that point at fields (the API's 422s);
    `str(err)` lists them one a line, for people (the CLI)."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = list(problems)
        lines = [f"{field}: {message}" for field, message in self.problems]
        super().__init__(lines[0] if len(lines) == 1 else "invalid run config:\n  " + "\n  ".join(lines))

    @property
    def fields(self) -> list[str]:
        return [field for field, _ in self.problems]

    @classmethod
    def from_validation(cls, err: ValidationError) -> ConfigError:
        problems = []
        for e in err.errors():
            loc = list(e["loc"])
            if len(loc) > 1 and loc[0] == "env" and loc[1] in ENV_NAMES:
                del loc[1]  # the env variant's tag: the field is env.<name>, whichever the variant
            problems.append((".".join(str(p) for p in loc) or WHOLE_CONFIG, e["msg"]))
        return cls(problems)


def apply_override(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set `a.b.c = value` inside nested dicts, creating sections as needed."""
    keys = dotted.split(".")
    node = data
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError([(dotted, f"'{key}' is not a section")])
        node = child
    node[keys[-1]] = value


def parse_set_arguments(pairs: list[str]) -> dict[str, Any]:
    """`["pcm.budget=12", "pcm.selector=full"]` -> {"pcm.budget": 12, "pcm.selector": "full"}.

    Values are parsed as YAML, so numbers, booleans, null and lists work as expected.
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError([("--set", f"expects key=value, got '{pair}'")])
        key, raw = pair.split("=", 1)
        out[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
    return out


def resolve_preset(name_or_path: str) -> Path:
    """A path to a YAML file, or the name of a preset in configs/ (with or without .yaml)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    candidate = PRESETS_DIR / (name_or_path if name_or_path.endswith(".yaml") else f"{name_or_path}.yaml")
    if candidate.is_file():
        return candidate
    known = ", ".join(sorted(p.stem for p in PRESETS_DIR.glob("*.yaml")))
    raise ConfigError([("config", f"no config file or preset named '{name_or_path}' (presets: {known})")])

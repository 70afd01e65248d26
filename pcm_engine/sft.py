"""Behaviour cloning from scripted demonstrations: the policy RL starts from.

The paper started RL from a large pretrained VLA fine-tuned on one demonstration per task, so its
start fails through systematic, state-dependent errors that a GRPO group can split on. Ours can
mirror that in two stages (`sft.pretrain_demos_per_task` > 0): behaviour-clone a fresh policy on
the suite's *other* tasks (the pre-training), then fine-tune it on a few demos of the target tasks
(`sft.demos_per_task`). Each stage is cached on its own, so starts that differ only in the
fine-tuning reuse one pre-trained policy.

Demos come from the first `demos_per_task` train init states of every task, so the RL init states
the demos did not cover remain new to the policy, and the eval states are never seen.

A start depends on exactly its env, policy architecture, SFT recipe (`sft.*`, seeded by `sft.seed`)
and chunk length (`sft_start_key`): runs that differ in their RL seed, eval settings or RL recipe
share one. Its making is reported through a `StartProgress` (the worker streams it to the run).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from pcm_engine import metrics as M
from pcm_engine.config import RunConfig
from pcm_engine.device import pick_device
from pcm_engine.envs import make_env
from pcm_engine.envs.expert import DemoSet, ScriptedExpert, collect_demos
from pcm_engine.evaluation import evaluate_policy
from pcm_engine.metrics import MetricSink
from pcm_engine.policies.factory import build_policy


def make_demos(config: RunConfig, env=None) -> DemoSet:
    env = env or make_env(config.env)
    per_task = min(config.sft.demos_per_task, env.num_init_states("train"))
    tasks = np.repeat(np.arange(env.num_tasks), per_task)
    inits = np.tile(np.arange(per_task), env.num_tasks)
    expert = ScriptedExpert(
        noise=config.sft.expert_noise, grip_noise=config.sft.expert_grip_noise, seed=config.sft.seed
    )
    return collect_demos(env, tasks, inits, config.grpo.chunk_len, expert, split="train")


START_INFO = "start.json"
"""Written beside a finished start: its key, when it was trained, how long it took, its metrics."""


@dataclass(frozen=True)
class Stage:
    """One stage of a start: `index` of `count` (1 of 2 = the pre-training), trained for
    `epochs` epochs on `demos` demo episodes."""

    index: int
    count: int
    epochs: int
    demos: int


class StartProgress:
    """What `resolve_start` reports while it finds or makes a start. Every method does nothing
    here: a subclass overrides what it shows (the worker writes them to the run)."""

    def reused(self, stage: Stage, key: str, info: dict) -> None:
        """A cached stage is used as it is; `info` is its `start_info`."""

    def waiting(self, stage: Stage, key: str) -> None:
        """Another process is making this stage right now; this one waits for it."""

    def training(self, stage: Stage, key: str) -> None:
        """A stage starts training (demo collection first)."""

    def demos_collected(self, stage: Stage, chunks: int) -> None:
        """The stage's demos are collected: `chunks` action chunks to fit."""

    def epoch(self, stage: Stage, epoch: int, loss: float, seconds: float) -> None:
        """One epoch done, its mean loss and how long it took."""

    def trained(self, stage: Stage, key: str, info: dict) -> None:
        """The stage is trained, evaluated and cached; `info` is its `start_info`."""


def stages(config: RunConfig) -> list[Stage]:
    """The stages of `config`'s start, in training order (the pre-training first, if any)."""
    s = config.sft
    first = pretrain_config(config)
    count = 2 if first is not None else 1
    own = Stage(count, count, s.epochs, s.demos_per_task * _task_count(config))
    if first is None:
        return [own]
    return [Stage(1, 2, s.pretrain_epochs, s.pretrain_demos_per_task * _task_count(first)), own]


def _task_count(config: RunConfig) -> int:
    if config.env.tasks is not None:
        return len(config.env.tasks)
    if config.env.name == "tabletop":
        from pcm_engine.envs.tabletop.tasks import TASKS

        return len(TASKS)
    return 1


def remaining_seconds(config: RunConfig, stage: Stage, epoch: int, seconds_per_epoch: float) -> float:
    """An estimate of the time left in making `config`'s start after `epoch` of `stage`: this
    stage's remaining epochs at its measured pace, later stages' epochs scaled by their demos."""
    left = (stage.epochs - epoch) * seconds_per_epoch
    per_demo_epoch = seconds_per_epoch / max(stage.demos, 1)
    for later in stages(config)[stage.index :]:
        left += later.epochs * later.demos * per_demo_epoch
    return left


def start_info(folder: str | Path) -> dict:
    """What a cached start's folder says of it: `key`, `trained_at` (ISO), `seconds`, `metrics`
    (the start's SFT loss and eval success, overall and per task). Folders made before
    `START_INFO` existed answer from their metrics.jsonl and the policy's file time."""
    folder = Path(folder)
    path = folder / START_INFO
    if path.exists():
        return json.loads(path.read_text())
    rows = M.read_metrics(folder)
    metrics = {k: v for k, v in (rows[-1] if rows else {}).items() if k != "step"}
    policy = folder / "policy" / "policy.json"
    when = datetime.fromtimestamp(policy.stat().st_mtime, UTC) if policy.exists() else None
    return {
        "key": folder.name,
        "trained_at": when.isoformat() if when else None,
        "seconds": None,
        "metrics": metrics,
    }


def pretrain_config(config: RunConfig) -> RunConfig | None:
    """The config of the pre-training stage of `config`'s start, or None for a one-stage start:
    the same env, policy and seed, on every suite task outside `env.tasks`, from random weights,
    with the `sft.pretrain_*` recipe."""
    s = config.sft
    if not s.pretrain_demos_per_task:
        return None
    if config.env.name != "tabletop":
        raise ValueError(
            "sft.pretrain_demos_per_task: the pre-training stage uses the tabletop suite's scripted "
            "expert; on LIBERO start from policy.pretrained"
        )
    from pcm_engine.envs.tabletop.tasks import TASKS

    targets = set(range(len(TASKS))) if config.env.tasks is None else set(config.env.tasks)
    others = [t for t in range(len(TASKS)) if t not in targets]
    if not others:
        raise ValueError(
            "sft.pretrain_demos_per_task: env.tasks lists the whole suite, so no task is left to pre-train on"
        )
    return RunConfig.from_dict(
        config.to_dict(),
        {
            "env.tasks": others,
            "sft.demos_per_task": s.pretrain_demos_per_task,
            "sft.epochs": s.pretrain_epochs,
            "sft.lr": s.pretrain_lr,
            "sft.pretrain_demos_per_task": 0,
            "policy.pretrained": None,
            "policy.init": "random",
        },
    )


def run_sft(
    config: RunConfig,
    out_dir: str | Path,
    sink: MetricSink,
    *,
    on_epoch: Callable[[int, float], None] | None = None,
    on_start: Callable[[Path], None] | None = None,
    stage_cache: str | Path | None = None,
    progress: StartProgress | None = None,
    stage: Stage | None = None,
) -> dict[str, float]:
    """Collect demos, fit the policy with token cross-entropy, save it to `out_dir/policy`,
    evaluate it, and return the final metrics (`sft/loss`, eval success).

    With a pre-training stage (`sft.pretrain_demos_per_task`), that stage's policy comes first
    from `stage_cache` (default `out_dir/pretrain`; trained there if missing, announced through
    `on_start`) and the demos of the target tasks fine-tune it. Everything it is seeded with is
    `sft.seed`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    progress = progress or StartProgress()
    plan = stages(config)
    if len(plan) == 2:
        pretrained = cached_sft(
            pretrain_config(config),
            stage_cache or out_dir / "pretrain",
            on_epoch=on_epoch,
            on_start=on_start,
            progress=progress,
            stage=plan[0],
        )
        config = RunConfig.from_dict(config.to_dict(), {"policy.pretrained": str(pretrained / "policy")})
    stage = stage or plan[-1]
    if config.train.torch_threads:
        torch.set_num_threads(config.train.torch_threads)
    torch.manual_seed(config.sft.seed)
    device = pick_device(config.train.device)
    env = make_env(config.env)
    demos = make_demos(config, env)
    progress.demos_collected(stage, len(demos.actions))
    policy = build_policy(config, env, device)
    clock = [time.perf_counter()]

    def epoch_done(epoch: int, loss: float) -> None:
        now = time.perf_counter()
        progress.epoch(stage, epoch, loss, now - clock[0])
        clock[0] = now
        if on_epoch:
            on_epoch(epoch, loss)

    losses = fit(policy, demos, config, on_epoch=epoch_done)
    for epoch, loss in enumerate(losses, start=1):
        sink.log_metrics(epoch, {M.SFT_LOSS: loss})
    policy.save_pretrained(out_dir / "policy")
    config.save(out_dir / "config.yaml")
    result = {M.SFT_LOSS: losses[-1], M.SFT_DEMO_CHUNKS: float(len(demos.actions))}
    result.update(evaluate_policy(env, policy, config, seed=config.sft.seed))
    sink.log_metrics(len(losses), result)
    return result


def fit(
    policy,
    demos: DemoSet,
    config: RunConfig,
    *,
    on_epoch: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Mini-batch cross-entropy on the expert's action tokens; returns the mean loss per epoch."""
    s = config.sft
    params = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay)
    targets = policy.tokens_from_actions(demos.actions)
    rng = np.random.default_rng(config.sft.seed)
    policy.train()
    losses = []
    for epoch in range(1, s.epochs + 1):
        order = rng.permutation(len(demos.actions))
        total, count = 0.0, 0
        for start in range(0, len(order), s.batch_size):
            rows = order[start : start + s.batch_size]
            inputs = policy.prepare(
                demos.images[rows], demos.proprio[rows], [demos.instructions[i] for i in rows]
            )
            logits = policy(inputs)
            target = targets[torch.as_tensor(rows)].to(logits.device)
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), target.flatten())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            total += loss.item() * len(rows)
            count += len(rows)
        losses.append(total / count)
        if on_epoch:
            on_epoch(epoch, losses[-1])
    return losses


def sft_start_key(config: RunConfig) -> str:
    """Exactly what an SFT start depends on: the env, the policy architecture (not where its
    weights come from), the SFT recipe with its seed `sft.seed`, and the chunk length. Runs that
    differ only in RL settings (selector, budget, lr, `train.seed`, eval) share one start; the
    start's own eval uses the eval settings of the run that trained it (`start_info`)."""
    data = config.to_dict()
    policy = {k: v for k, v in data["policy"].items() if k not in ("pretrained", "init")}
    relevant = {
        "env": data["env"],
        "policy": policy,
        "sft": data["sft"],
        "chunk_len": data["grpo"]["chunk_len"],
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def resolve_start(
    config: RunConfig,
    cache_root: str | Path,
    *,
    on_epoch: Callable[[int, float], None] | None = None,
    on_start: Callable[[Path], None] | None = None,
    progress: StartProgress | None = None,
) -> RunConfig:
    """The config a Trainer should run: unchanged unless `policy.init == "sft"` and no
    `policy.pretrained` is set; then `policy.pretrained` points at a cached SFT policy under
    `cache_root/<sft_start_key>/policy`, trained there first if no run made it yet
    (`cached_sft`)."""
    if config.policy.pretrained or config.policy.init != "sft":
        return config
    out = cached_sft(config, cache_root, on_epoch=on_epoch, on_start=on_start, progress=progress)
    return RunConfig.from_dict(config.to_dict(), {"policy.pretrained": str(out / "policy")})


def cached_sft(
    config: RunConfig,
    cache_root: str | Path,
    *,
    on_epoch: Callable[[int, float], None] | None = None,
    on_start: Callable[[Path], None] | None = None,
    progress: StartProgress | None = None,
    stage: Stage | None = None,
) -> Path:
    """The folder `cache_root/<sft_start_key>` holding the SFT policy of `config`, trained there
    first if no run made it yet (its pre-training stage, if any, cached beside it).

    A file lock makes concurrent runs (two workers launching a GRPO-vs-PCM pair) train it once:
    the second waits for the first and reuses its result. `on_start(dir)` is called only for a
    stage this call has to train; `progress` hears of every stage, reused or trained."""
    progress = progress or StartProgress()
    stage = stage or stages(config)[-1]
    root = Path(cache_root).resolve()
    key = sft_start_key(config)
    out = root / key
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress.waiting(stage, key)
            fcntl.flock(lock, fcntl.LOCK_EX)
        if (out / "policy" / "policy.json").exists():
            progress.reused(stage, key, start_info(out))
            return out
        if on_start is not None:
            on_start(out)
        progress.training(stage, key)
        began = time.perf_counter()
        sink = M.JsonlSink(out)
        try:
            metrics = run_sft(
                config,
                out,
                sink,
                on_epoch=on_epoch,
                on_start=on_start,
                stage_cache=root,
                progress=progress,
                stage=stage,
            )
        finally:
            sink.close()
        info = {
            "key": key,
            "trained_at": datetime.now(UTC).isoformat(),
            "seconds": round(time.perf_counter() - began, 3),
            "metrics": metrics,
        }
        (out / START_INFO).write_text(json.dumps(info, indent=1))
        progress.trained(stage, key, info)
    return out

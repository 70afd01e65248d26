"""Behaviour cloning from scripted demonstrations: the policy RL starts from.

The paper started RL from a large pretrained VLA fine-tuned on one demonstration per task, so its
start fails through systematic, state-dependent errors that a GRPO group can split on. Ours can
mirror that in two stages (`sft.pretrain_demos_per_task` > 0): behaviour-clone a fresh policy on
the suite's *other* tasks (the pre-training), then fine-tune it on a few demos of the target tasks
(`sft.demos_per_task`). Each stage is cached on its own, so starts that differ only in the
fine-tuning reuse one pre-trained policy.

Demos come from the first `demos_per_task` train init states of every task, so the RL init states
the demos did not cover remain new to the policy, and the eval states are never seen.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
from collections.abc import Callable
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
        noise=config.sft.expert_noise, grip_noise=config.sft.expert_grip_noise, seed=config.train.seed
    )
    return collect_demos(env, tasks, inits, config.grpo.chunk_len, expert, split="train")


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
) -> dict[str, float]:
    """Collect demos, fit the policy with token cross-entropy, save it to `out_dir/policy`,
    evaluate it, and return the final metrics (`sft/loss`, eval success).

    With a pre-training stage (`sft.pretrain_demos_per_task`), that stage's policy comes first
    from `stage_cache` (default `out_dir/pretrain`; trained there if missing, announced through
    `on_start`) and the demos of the target tasks fine-tune it."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stage_one = pretrain_config(config)
    if stage_one is not None:
        pretrained = cached_sft(
            stage_one, stage_cache or out_dir / "pretrain", on_epoch=on_epoch, on_start=on_start
        )
        config = RunConfig.from_dict(config.to_dict(), {"policy.pretrained": str(pretrained / "policy")})
    if config.train.torch_threads:
        torch.set_num_threads(config.train.torch_threads)
    torch.manual_seed(config.train.seed)
    device = pick_device(config.train.device)
    env = make_env(config.env)
    demos = make_demos(config, env)
    policy = build_policy(config, env, device)
    losses = fit(policy, demos, config, on_epoch=on_epoch)
    for epoch, loss in enumerate(losses, start=1):
        sink.log_metrics(epoch, {M.SFT_LOSS: loss})
    policy.save_pretrained(out_dir / "policy")
    config.save(out_dir / "config.yaml")
    result = {M.SFT_LOSS: losses[-1], M.SFT_DEMO_CHUNKS: float(len(demos.actions))}
    result.update(evaluate_policy(env, policy, config, seed=config.train.seed))
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
    rng = np.random.default_rng(config.train.seed)
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
    """What an SFT start depends on: the env, the policy architecture, the SFT recipe and the
    seeds. Runs that differ only in RL settings (selector, budget, lr, ...) share one start."""
    data = config.to_dict()
    policy = {k: v for k, v in data["policy"].items() if k not in ("pretrained", "init")}
    relevant = {
        "env": data["env"],
        "policy": policy,
        "sft": data["sft"],
        "chunk_len": data["grpo"]["chunk_len"],
        "eval": data["eval"],
        "seed": data["train"]["seed"],
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def resolve_start(
    config: RunConfig,
    cache_root: str | Path,
    *,
    on_epoch: Callable[[int, float], None] | None = None,
    on_start: Callable[[Path], None] | None = None,
) -> RunConfig:
    """The config a Trainer should run: unchanged unless `policy.init == "sft"` and no
    `policy.pretrained` is set; then `policy.pretrained` points at a cached SFT policy under
    `cache_root/<sft_start_key>/policy`, trained there first if no run made it yet
    (`cached_sft`)."""
    if config.policy.pretrained or config.policy.init != "sft":
        return config
    out = cached_sft(config, cache_root, on_epoch=on_epoch, on_start=on_start)
    return RunConfig.from_dict(config.to_dict(), {"policy.pretrained": str(out / "policy")})


def cached_sft(
    config: RunConfig,
    cache_root: str | Path,
    *,
    on_epoch: Callable[[int, float], None] | None = None,
    on_start: Callable[[Path], None] | None = None,
) -> Path:
    """The folder `cache_root/<sft_start_key>` holding the SFT policy of `config`, trained there
    first if no run made it yet (its pre-training stage, if any, cached beside it).

    A file lock makes concurrent runs (two workers launching a GRPO-vs-PCM pair) train it once:
    the second waits for the first and reuses its result. `on_start(dir)` is called only for a
    stage this call has to train."""
    root = Path(cache_root).resolve()
    out = root / sft_start_key(config)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "policy" / "policy.json").exists():
            if on_start is not None:
                on_start(out)
            sink = M.JsonlSink(out)
            try:
                run_sft(config, out, sink, on_epoch=on_epoch, on_start=on_start, stage_cache=root)
            finally:
                sink.close()
    return out

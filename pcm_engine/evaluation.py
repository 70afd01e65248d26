"""Evaluation: success on the held-out eval init states, a fixed protocol of its own."""

from __future__ import annotations

import numpy as np
import torch

from pcm_engine import metrics as M
from pcm_engine.config import RunConfig
from pcm_engine.envs import VecEnv
from pcm_engine.policies import VLAPolicy
from pcm_engine.rollout import collect_rollouts

EVAL_SEED_OFFSET = 10_007  # eval draws from its own generator, so evaluating never shifts training


def evaluate_policy(env: VecEnv, policy: VLAPolicy, config: RunConfig, *, seed: int) -> dict[str, float]:
    """Eval success rate overall and per task on the eval split (fixed init states and seed)."""
    e = config.eval
    episodes = min(e.episodes_per_task, env.num_init_states("eval"))
    tasks = np.repeat(np.arange(env.num_tasks), episodes)
    inits = np.tile(np.arange(episodes), env.num_tasks)
    generator = torch.Generator(device=policy.device).manual_seed(seed + EVAL_SEED_OFFSET)
    batch = collect_rollouts(
        env,
        policy,
        tasks,
        inits,
        np.arange(len(tasks)),
        chunk_len=config.grpo.chunk_len,
        temperature=e.temperature,
        generator=generator,
        split="eval",
    )
    out = {M.EVAL_SUCCESS: float(batch.success.mean()), M.EVAL_EPISODES: float(len(tasks))}
    for task in range(env.num_tasks):
        out[M.eval_task_metric(task)] = float(batch.success[tasks == task].mean())
    return out

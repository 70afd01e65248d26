"""Rollouts: run the policy in a VecEnv chunk by chunk and collect a ChunkBatch (spec §1).

A ChunkBatch holds one row per *chunk* (its observation, sampled action tokens, the log-probs
recorded at sampling time, the decoded actions) and one row per *trajectory* (success, group,
task). `ChunkBatch.subset` physically drops chunks: the actor update only ever sees what it keeps.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from pcm_engine.envs.base import Split, VecEnv


@dataclass
class ChunkBatch:
    # per chunk (M rows)
    images: np.ndarray  # [M, H, W, 3] uint8, the observation the chunk was chosen from
    proprio: np.ndarray  # [M, P] float32
    tokens: np.ndarray  # [M, L*D] int64 action tokens
    old_log_probs: np.ndarray  # [M, L*D] float32, recorded at sampling time
    actions: np.ndarray  # [M, L, D] float32 commanded (decoded) actions
    traj: np.ndarray  # [M] int64 trajectory index
    chunk_index: np.ndarray  # [M] int64 position of the chunk in its trajectory
    # per trajectory (T rows)
    instructions: list[str]
    success: np.ndarray  # [T] bool
    group: np.ndarray  # [T] int64 GRPO group
    task: np.ndarray  # [T] int64
    init_state: np.ndarray  # [T] int64
    episode_steps: np.ndarray  # [T] int64 env steps executed

    @property
    def num_chunks(self) -> int:
        return len(self.traj)

    @property
    def num_trajectories(self) -> int:
        return len(self.success)

    def chunk_instructions(self, rows: np.ndarray | None = None) -> list[str]:
        traj = self.traj if rows is None else self.traj[rows]
        return [self.instructions[t] for t in traj]

    def chunks_of(self, trajectory: int) -> np.ndarray:
        """Row indices of one trajectory's chunks, in order."""
        return np.flatnonzero(self.traj == trajectory)

    def subset(self, rows: np.ndarray) -> ChunkBatch:
        """Only the chunk rows `rows`; trajectory rows are kept as they are."""
        rows = np.asarray(rows, dtype=np.int64)
        return replace(
            self,
            images=self.images[rows],
            proprio=self.proprio[rows],
            tokens=self.tokens[rows],
            old_log_probs=self.old_log_probs[rows],
            actions=self.actions[rows],
            traj=self.traj[rows],
            chunk_index=self.chunk_index[rows],
        )

    def select_trajectories(self, keep: np.ndarray) -> ChunkBatch:
        """Only trajectories where `keep` is True (with their chunks), renumbered 0..T'-1."""
        keep = np.asarray(keep, dtype=bool)
        new_index = np.full(len(keep), -1, dtype=np.int64)
        new_index[keep] = np.arange(int(keep.sum()))
        batch = self.subset(np.flatnonzero(keep[self.traj]))
        return replace(
            batch,
            traj=new_index[batch.traj],
            instructions=[s for s, k in zip(self.instructions, keep, strict=True) if k],
            success=self.success[keep],
            group=self.group[keep],
            task=self.task[keep],
            init_state=self.init_state[keep],
            episode_steps=self.episode_steps[keep],
        )


@torch.no_grad()
def collect_rollouts(
    env: VecEnv,
    policy,
    tasks: np.ndarray,
    init_states: np.ndarray,
    groups: np.ndarray,
    *,
    chunk_len: int,
    temperature: float,
    generator: torch.Generator | None = None,
    streams: list[np.random.Generator] | None = None,
    split: Split = "train",
) -> ChunkBatch:
    """Run one episode per (task, init state) pair, all envs in one batch, and record every chunk.

    Only envs still running are fed to the policy; finished ones are skipped. Sampling draws from
    `generator`, or with `streams` (one generator per episode) from the episode's own stream, so
    that an episode's actions do not depend on which episodes share its batch.
    """
    tasks = np.asarray(tasks, dtype=np.int64)
    n = len(tasks)
    obs = env.reset(tasks.tolist(), np.asarray(init_states).tolist(), split)
    instructions = list(obs.instructions)
    running = np.ones(n, dtype=bool)
    success = np.zeros(n, dtype=bool)
    steps = np.zeros(n, dtype=np.int64)
    record: dict[str, list] = {k: [] for k in ("images", "proprio", "tokens", "logp", "actions", "traj", "k")}
    max_chunks = -(-env.max_steps // chunk_len)
    was_training = policy.training
    policy.eval()
    try:
        for k in range(max_chunks):
            live = np.flatnonzero(running)
            if len(live) == 0:
                break
            inputs = policy.prepare(obs.images[live], obs.proprio[live], [instructions[i] for i in live])
            uniforms = None
            if streams is not None:
                size = policy.num_action_tokens
                uniforms = torch.from_numpy(np.stack([streams[i].random(size) for i in live]))
            tokens, log_probs = policy.sample(inputs, temperature, generator, uniforms=uniforms)
            chunk_actions = policy.actions_from_tokens(tokens)
            record["images"].append(obs.images[live])
            record["proprio"].append(obs.proprio[live])
            record["tokens"].append(tokens.cpu().numpy())
            record["logp"].append(log_probs.float().cpu().numpy())
            record["actions"].append(chunk_actions)
            record["traj"].append(live)
            record["k"].append(np.full(len(live), k))

            all_actions = np.zeros((n, *chunk_actions.shape[1:]), dtype=np.float32)
            all_actions[live] = chunk_actions
            result = env.step_chunk(all_actions)
            steps += result.steps
            success |= result.success
            running &= ~result.done
            obs = result.obs
    finally:
        policy.train(was_training)

    order_key = np.concatenate(record["traj"]) * (max_chunks + 1) + np.concatenate(record["k"])
    order = np.argsort(order_key, kind="stable")  # trajectory-major, chunks in time order

    def stacked(key: str) -> np.ndarray:
        return np.concatenate(record[key])[order]

    return ChunkBatch(
        images=stacked("images"),
        proprio=stacked("proprio").astype(np.float32),
        tokens=stacked("tokens").astype(np.int64),
        old_log_probs=stacked("logp").astype(np.float32),
        actions=stacked("actions").astype(np.float32),
        traj=stacked("traj").astype(np.int64),
        chunk_index=stacked("k").astype(np.int64),
        instructions=instructions,
        success=success,
        group=np.asarray(groups, dtype=np.int64),
        task=tasks,
        init_state=np.asarray(init_states, dtype=np.int64),
        episode_steps=steps,
    )

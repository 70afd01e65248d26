"""The training loop: rollout -> phases -> scores -> select -> update -> eval -> checkpoint.

One `Trainer.step()` is one GRPO step (spec §1–§5). The trainer reports only through a
MetricSink; it knows nothing of where the numbers go.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from pcm_engine import metrics as M
from pcm_engine.checkpoint import (
    checkpoint_path,
    latest_checkpoint,
    load_checkpoint,
    pending_path,
    restore_rng_state,
    rng_state,
    save_checkpoint,
    start_checkpoint,
)
from pcm_engine.chunk_records import recorded_trajectories
from pcm_engine.config import RunConfig
from pcm_engine.distributed import (
    DistContext,
    gather_rollouts,
    rank_device,
    slowest_and_spread,
    sum_gradients,
)
from pcm_engine.envs import make_env
from pcm_engine.evaluation import evaluate_policy
from pcm_engine.grpo import LOSS_STATS, group_advantages, mixed_group_mask, surrogate_sums
from pcm_engine.media import episodes_per_task, record_episodes
from pcm_engine.memory import SavedTensorMeter, peak_rss_bytes, storage_key
from pcm_engine.metrics import ChunkRecord, MetricSink, report_media
from pcm_engine.overlap import RolloutPrefetcher
from pcm_engine.passes import PassCap, cap_within, memory_mode_shapes, pack_rows
from pcm_engine.pcm import (
    KeepWeights,
    NullScore,
    TrajectoryChunks,
    phase_scores,
    score_features,
    select_chunks,
    shuffled_outcome_scores,
    unbiased_weights,
)
from pcm_engine.phases import PHASES, gripper_close_fraction, label_phases
from pcm_engine.policies import PolicyInputs, VLAPolicy
from pcm_engine.policies.factory import build_policy
from pcm_engine.rollout import ChunkBatch, collect_rollouts
from pcm_engine.seeding import step_stream, trajectory_streams
from pcm_engine.sharding import (
    full_value,
    gathered_weights,
    local_tensor,
    pad_passes,
    save_sharded,
    set_gradient_sync,
    shard_policy,
)


def rows_by_trajectory(traj: np.ndarray, num_trajectories: int) -> list[np.ndarray]:
    """`[rows of trajectory 0, rows of trajectory 1, ...]`, each ascending, from one sort."""
    order = np.argsort(traj, kind="stable")
    bounds = np.cumsum(np.bincount(traj, minlength=num_trajectories))[:-1]
    return np.split(order, bounds)


def _rows_of_observations(batch: ChunkBatch, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The images, proprio and instructions of chunk rows `rows` (`VLAPolicy.prepare`'s
    arguments); a run of consecutive rows is sliced, not copied."""
    if len(rows) and rows[-1] - rows[0] == len(rows) - 1 and np.all(np.diff(rows) == 1):
        take = slice(int(rows[0]), int(rows[-1]) + 1)
        return batch.images[take], batch.proprio[take], batch.chunk_instructions(rows)
    return batch.images[rows], batch.proprio[rows], batch.chunk_instructions(rows)


@dataclass
class Selection:
    """The result of scoring and selection for one step."""

    update_batch: ChunkBatch  # only kept chunks of trajectories in mixed groups
    chunk_weights: np.ndarray  # [kept chunks] loss weight of each kept chunk
    advantages: np.ndarray  # [trajectories of update_batch]
    labels: list[list[str]]  # phase labels per trajectory of the rollout batch
    kept_rows: np.ndarray  # rows of the rollout batch that were kept
    available_rows: np.ndarray  # rows of the rollout batch eligible for the update
    scores: dict[str, float]
    p: dict[str, float]
    refreshed: bool
    score_nulls: dict[str, float] = field(default_factory=dict)  # when pcm.score_null_shuffles
    # reweight unbiased: [trajectories of update_batch] each one's total chunk weight had every
    # chunk been kept; a mini-batch's loss is normalised by their sum, which no draw changes
    full_weights: np.ndarray | None = None
    # [trajectories of update_batch] chunks of each before selection (what GRPO would update);
    # None = take the kept ones
    full_chunks: np.ndarray | None = None
    # [trajectories of update_batch] True where this rank rolled it out (and so forwards it);
    # None = every one (one process)
    own: np.ndarray | None = None


class Trainer:
    """One rank's trainer: with `dist` (rank r of W, started by `torch.distributed.run` and in
    its process group), it trains its share of a `dist.world_size` run (pcm_engine.distributed);
    only rank 0 reports to its sink and writes checkpoints."""

    def __init__(
        self,
        config: RunConfig,
        run_dir: str | Path,
        sink: MetricSink,
        *,
        resume: bool = True,
        dist: DistContext | None = None,
    ):
        self.config = config
        self.dist = dist or DistContext()
        if self.dist.world_size != config.dist.world_size:
            raise ValueError(
                f"dist.world_size is {config.dist.world_size} but this process is one of "
                f"{self.dist.world_size}: start the ranks with `pcm train` (it launches them)"
            )
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.sink = sink
        if config.train.torch_threads:
            torch.set_num_threads(config.train.torch_threads)
        self.device = rank_device(config.train.device, self.dist)
        torch.manual_seed(config.train.seed)
        self.env = make_env(config.env)
        self.policy = build_policy(config, self.env, self.device)
        self.policy.train()
        g = config.grpo
        self.reference = None
        if g.kl_coef > 0:
            self.reference = copy.deepcopy(self.policy).eval().requires_grad_(False)
        self.sharded = self.dist.distributed and config.dist.strategy == "fsdp"
        # the weights' storages, which the activation meter leaves out (under FSDP the local
        # shards, and the whole weights each module gathers for a forward, as it gathers them)
        self._weight_storages: set[int] = set()
        if self.sharded:
            shard_policy(self.policy, self._weight_storages)
            if self.reference is not None:  # sharded too: its forwards are the update's passes
                shard_policy(self.reference)
        trainable = [p for p in self.policy.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            trainable, lr=g.lr, betas=tuple(g.betas), weight_decay=g.weight_decay
        )
        self.keep = KeepWeights(
            PHASES, config.pcm.refresh_every, config.pcm.p_min, estimator=config.pcm.score
        )
        self.step_count = 0
        self.stopped_early = False
        self._last_log = time.perf_counter()
        self._weight_storages.update(storage_key(local_tensor(p)) for p in self.policy.parameters())
        self._trainable = trainable
        self._chunk_bytes: dict[tuple[int, bool], float] = {}  # grpo.pass_memory_mb's probes
        if self.dist.is_main:
            config.save(self.run_dir / "config.yaml")
        self.resumed_checkpoint: Path | None = None
        self._prefetcher: RolloutPrefetcher | None = None  # train.overlap_rollouts, made on first use
        self.resume_from = self._try_resume() if resume else None

    # --- resume ----------------------------------------------------------------------------------

    def _try_resume(self) -> int | None:
        checkpoint = latest_checkpoint(self.run_dir)
        if checkpoint is None:
            return None
        state = load_checkpoint(checkpoint, policy=self.policy, optimizer=self.optimizer)
        self.step_count = int(state["step"])
        self.keep.load_state_dict(state["keep_weights"])
        restore_rng_state(state["rng"])
        self.resumed_checkpoint = checkpoint.path
        return self.step_count

    def save(self) -> Path:
        """Write this step's checkpoint (every rank calls it; rank 0 writes, and under FSDP every
        rank writes its shards first); returns where it lives."""
        step = self.step_count
        if self.sharded:
            if self.dist.is_main:
                start_checkpoint(self.run_dir, step)
            self.dist.barrier()
            save_sharded(pending_path(self.run_dir, step), self.policy, self.optimizer)
            self.dist.barrier()
        if self.dist.is_main:
            save_checkpoint(
                self.run_dir,
                step,
                config=self.config,
                policy=None if self.sharded else self.policy,
                optimizer=None if self.sharded else self.optimizer,
                trainer_state={
                    "keep_weights": self.keep.state_dict(),
                    "rng": rng_state(),
                },
                keep_last=self.config.train.keep_checkpoints,
            )
        self.dist.barrier()  # no rank goes on (or resumes) before the checkpoint is in place
        return checkpoint_path(self.run_dir, step)

    # --- the loop --------------------------------------------------------------------------------

    def train(
        self,
        *,
        should_stop: Callable[[], bool] | None = None,
        should_record_media: Callable[[], bool] | None = None,
        on_checkpoint: Callable[[Path, int], None] | None = None,
    ) -> dict[str, float]:
        """Run until `train.steps`, then export the policy to `run_dir/policy` (loadable with
        `VLAPolicy.from_pretrained`); returns the last step's metrics.

        `should_stop` is asked after every step; when it answers True the trainer writes a
        checkpoint and returns early (the orchestrator's cancel and SIGTERM path), so a later
        run of the same folder resumes exactly there. `should_record_media` is asked once per
        step, after its update: True records that step's episodes even when it is no eval step
        (someone asked for them). `on_checkpoint(path, step)` hears about every checkpoint
        written."""
        cfg = self.config
        last: dict[str, float] = {}
        if self.step_count == 0 and cfg.eval.every > 0:
            initial = self.evaluate()
            if self.dist.is_main:
                self.sink.log_metrics(0, initial)
        self._last_log = time.perf_counter()  # start-up and the step-0 eval are no step's time
        try:
            while self.step_count < cfg.train.steps:
                last = self.step(should_record_media=should_record_media)
                every = cfg.train.checkpoint_every
                stopping = self.dist.broadcast_flag(should_stop is not None and should_stop())
                due = (every and self.step_count % every == 0) or self.step_count == cfg.train.steps
                if due or stopping:
                    path = self.save()
                    if on_checkpoint is not None and self.dist.is_main:
                        on_checkpoint(path, self.step_count)
                if stopping and self.step_count < cfg.train.steps:
                    self.stopped_early = True
                    return last
        finally:
            self.close()
        self.export(self.run_dir / "policy")
        return last

    def export(self, directory: Path) -> None:
        """Write the policy loadable with `VLAPolicy.from_pretrained` (rank 0; under FSDP the
        ranks first gather the whole weights into a rank-local copy)."""
        if not self.sharded:
            if self.dist.is_main:
                self.policy.save_pretrained(directory)
            return
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        weights = get_model_state_dict(self.policy, options=options)
        if self.dist.is_main:
            whole = build_policy(self.config, self.env, torch.device("cpu"))
            whole.load_state_dict(weights)
            whole.save_pretrained(directory)
        self.dist.barrier()

    def close(self) -> None:
        """Stop the overlapped rollout thread, dropping a rollout in flight (a resumed run rolls
        that step out again, sequentially)."""
        if self._prefetcher is not None:
            self._prefetcher.close()
            self._prefetcher = None

    def step(self, *, should_record_media: Callable[[], bool] | None = None) -> dict[str, float]:
        """One GRPO/PCM step; logs its metrics (and, when due, eval) before returning them.
        Its episodes are recorded at eval steps and, asked once after the update, whenever
        `should_record_media()` answers True (`pcm_engine.media.episodes_per_task`).

        With `train.overlap_rollouts` the next step's rollout runs in the background during
        this step's update (`pcm_engine.overlap`); this step's own batch was rolled out during
        the previous update, unless it is the first since the start or a resume."""
        cfg = self.config
        number = self.step_count + 1
        t0 = time.perf_counter()
        prefetched = self._prefetcher.take(number) if self._prefetcher is not None else None
        if prefetched is None:
            with gathered_weights(self.policy, self.sharded):
                batch = self.rollout()
        else:
            batch = prefetched.batch
        t1 = time.perf_counter()
        if cfg.train.overlap_rollouts and number < cfg.train.steps:
            self._prefetch(number + 1)
        batch, own = gather_rollouts(self.dist, batch)
        selection = self.select(batch, own=own)
        t2 = time.perf_counter()
        update_stats = self.update(selection)
        t3 = time.perf_counter()
        self.step_count += 1

        out = self._step_metrics(batch, selection, update_stats)
        out.update(self._timings({M.TIME_ROLLOUT: t1 - t0, M.TIME_SELECT: t2 - t1, M.TIME_UPDATE: t3 - t2}))
        hidden = 0.0 if prefetched is None else prefetched.hidden
        out[M.TIME_ROLLOUT_HIDDEN] = hidden
        out[M.TIME_ROLLOUT_OVERLAP] = 0.0 if prefetched is None else hidden / max(prefetched.seconds, 1e-9)
        out[M.TRAIN_POLICY_LAG] = 0.0 if prefetched is None else 1.0
        every = cfg.eval.every
        eval_step = bool(every and self.step_count % every == 0) or self.step_count == cfg.train.steps
        requested = should_record_media is not None and should_record_media()
        if eval_step:
            if self._prefetcher is not None:
                self._prefetcher.wait()  # the env belongs to the rollout in flight until it ends
            out.update(self.evaluate())
        per_task = episodes_per_task(cfg.eval.record_episodes, eval_step=eval_step, requested=requested)
        if per_task and self.dist.is_main:
            out[M.TIME_EVAL] = out.get(M.TIME_EVAL, 0.0) + self._record_media(batch, selection, per_task)
        if torch.cuda.is_available() and self.device.type == "cuda":
            out[M.MEM_PEAK_GPU] = float(torch.cuda.max_memory_allocated(self.device))
        out[M.MEM_PEAK_RSS] = float(peak_rss_bytes())
        out.update(self._largest_rank({k: out[k] for k in (M.MEM_PEAK_GPU, M.MEM_PEAK_RSS) if k in out}))
        now = time.perf_counter()
        step_s = now - self._last_log  # includes the previous step's checkpoint
        out[M.TIME_STEP] = step_s
        out[M.TIME_OTHER] = max(0.0, step_s - (t3 - t0))
        self._last_log = now
        if self.dist.is_main:
            self.sink.log_metrics(self.step_count, out)
            self.sink.log_chunks(self.step_count, self._chunk_records(batch, selection))
        return out

    def _largest_rank(self, peaks: dict[str, float]) -> dict[str, float]:
        """Peak memory readings of the rank that used the most (each rank reads its own)."""
        if not self.dist.distributed:
            return peaks
        every = self.dist.all_gather(peaks)
        return {name: max(rank[name] for rank in every) for name in peaks}

    def _timings(self, seconds: dict[str, float]) -> dict[str, float]:
        """The step's phase timings: with several ranks, the slowest rank's (the step waits for
        it) and the spread between slowest and fastest (`M.SPREADS`)."""
        if not self.dist.distributed:
            return seconds
        out: dict[str, float] = {}
        for name, (slowest, spread) in slowest_and_spread(self.dist, seconds).items():
            out[name] = slowest
            out[M.SPREADS[name]] = spread
        return out

    # --- the pieces ------------------------------------------------------------------------------

    def _prefetch(self, step: int) -> None:
        """Start `step`'s rollout in the background with the weights as they are now."""
        if self._prefetcher is None:
            self._prefetcher = RolloutPrefetcher(self.policy)
        self._prefetcher.start(step, lambda behaviour: self.rollout(step=step, policy=behaviour))

    def rollout(
        self, *, probe: int | None = None, step: int | None = None, policy: VLAPolicy | None = None
    ) -> ChunkBatch:
        """Rollouts of the coming step (or of `step`, by `policy` — the overlapped loop's
        behaviour copy): its task/init-state schedule and the policy's sampling each come from
        their own stream, so runs with one seed see the same groups whatever their selector
        (spec §6). `probe` = k draws the k-th extra batch of this step instead (analysis that
        samples several batches without training)."""
        g = self.config.grpo
        step = self.step_count + 1 if step is None else step
        extra = () if probe is None else (probe + 1,)
        seed = self.config.train.seed
        schedule = step_stream(seed, "schedule", step, *extra)
        tasks = schedule.integers(0, self.env.num_tasks, size=g.groups_per_step)
        inits = schedule.integers(0, self.env.num_init_states("train"), size=g.groups_per_step)
        groups = np.arange(g.groups_per_step)[self._own_groups()]  # this rank's share
        trajectories = np.arange(groups[0] * g.group_size, (groups[-1] + 1) * g.group_size)
        return collect_rollouts(
            self.env,
            self.policy if policy is None else policy,
            np.repeat(tasks[groups], g.group_size),
            np.repeat(inits[groups], g.group_size),
            np.repeat(groups, g.group_size),
            chunk_len=g.chunk_len,
            temperature=g.temperature,
            streams=trajectory_streams(seed, "rollout", step, trajectories, *extra),
        )

    def _own_groups(self) -> slice:
        share = self.dist.groups(self.config.grpo.groups_per_step)
        return slice(share.start, share.stop)

    def stream(self, purpose: str, *extra: int) -> np.random.Generator:
        """This step's random stream for `purpose` (`pcm_engine.seeding`)."""
        return step_stream(self.config.train.seed, purpose, self.step_count + 1, *extra)

    def label(self, batch: ChunkBatch) -> list[list[str]]:
        ph = self.config.pcm.phases
        labels = []
        for t in range(batch.num_trajectories):
            actions = batch.actions[batch.chunks_of(t)]  # [chunks, L, D], commanded
            g = gripper_close_fraction(actions.reshape(-1, actions.shape[-1]), actions.shape[1])
            labels.append(
                label_phases(
                    g,
                    sustained=ph.sustained,
                    active=ph.active,
                    pre_low=ph.pre_low,
                    window=ph.window,
                    release_low=ph.release_low,
                    no_grasp=ph.no_grasp,
                )
            )
        return labels

    def select(self, batch: ChunkBatch, *, own: np.ndarray | None = None) -> Selection:
        """Phases, scores (§3), keep weights (§4), dynamic sampling and chunk selection (§5), of
        the whole step's batch; `own` [trajectories] marks this rank's (None: all)."""
        cfg = self.config
        labels = self.label(batch)
        chunk_phases = [label for traj in labels for label in traj]  # rows are trajectory-major
        scores = phase_scores(
            score_features(batch.actions, self.score_dims),
            chunk_phases,
            batch.success[batch.traj],
            batch.group[batch.traj],
            traj=batch.traj,
            estimator=cfg.pcm.score,
        )
        refreshed = self.keep.update(scores)
        p = self.keep.p
        advantages = group_advantages(batch.success.astype(np.float64), batch.group, cfg.grpo.adv_eps)
        eligible = (
            mixed_group_mask(batch.success, batch.group)
            if cfg.grpo.dynamic_sampling
            else np.ones(batch.num_trajectories, dtype=bool)
        )
        trajectories = np.flatnonzero(eligible)
        chunks = [TrajectoryChunks(labels[t]) for t in trajectories]
        kept_per_traj = select_chunks(
            cfg.pcm.selector,
            chunks,
            p,
            cfg.pcm.budget,
            self.stream("selection"),
        )
        kept_rows = [batch.chunks_of(t)[kept] for t, kept in zip(trajectories, kept_per_traj, strict=True)]
        weights, full_weights = self._loss_weights(chunks, p, kept_per_traj)
        kept_rows_arr = np.concatenate(kept_rows) if kept_rows else np.zeros(0, dtype=np.int64)
        weights_arr = np.concatenate(weights) if weights else np.zeros(0)
        update_batch = batch.subset(kept_rows_arr).select_trajectories(eligible)
        available_rows = np.flatnonzero(eligible[batch.traj])
        return Selection(
            update_batch=update_batch,
            chunk_weights=weights_arr,
            advantages=advantages[eligible],
            labels=labels,
            kept_rows=kept_rows_arr,
            available_rows=available_rows,
            scores=scores,
            p=p,
            refreshed=refreshed,
            score_nulls=self._score_nulls(batch, chunk_phases),
            full_weights=full_weights,
            full_chunks=np.array([len(traj.phases) for traj in chunks], dtype=np.int64),
            own=None if own is None else own[eligible],
        )

    def _loss_weights(
        self, chunks: list[TrajectoryChunks], p: dict[str, float], kept_per_traj: list[np.ndarray]
    ) -> tuple[list[np.ndarray], np.ndarray | None]:
        """The loss weight of every kept chunk, per trajectory, and under `reweight: unbiased`
        each trajectory's full weight: its total had every chunk been kept (`Selection.full_weights`).

        `none` weighs a kept chunk 1 and, with `trajectory_mean`, divides by the kept weights' sum.
        `unbiased` weighs it `1 / π` (§5) and, with `trajectory_mean`, divides by the trajectory's
        chunk count N instead: a sum that depends on the draw would bias the estimate."""
        pcm, trajectory_mean = self.config.pcm, self.config.grpo.loss_agg == "trajectory_mean"
        if pcm.reweight == "none":
            weights = [np.ones(len(kept)) for kept in kept_per_traj]
            if trajectory_mean:
                # failed rollouts run longer than successful ones; without this, their extra chunks
                # outweigh the successes and the update mostly pushes probability away
                weights = [w / w.sum() if w.sum() > 0 else w for w in weights]
            return weights, None
        weights = unbiased_weights(pcm.selector, chunks, p, pcm.budget, kept_per_traj)
        counts = np.array([len(traj.phases) for traj in chunks], dtype=np.float64)
        if trajectory_mean:
            return [w / n for w, n in zip(weights, counts, strict=True)], np.ones(len(chunks))
        return weights, counts

    def _score_nulls(self, batch: ChunkBatch, chunk_phases: list[str]) -> dict[str, float]:
        """Mean phase score (the run's `pcm.score`, on `score_dims`) per phase with outcomes
        shuffled within groups (reporting only: its generator is derived from the seed and step,
        so it never moves training's RNGs)."""
        shuffles = self.config.pcm.score_null_shuffles
        if not shuffles:
            return {}
        rng = self.stream("score_null")
        results = self.shuffled_scores(
            batch, chunk_phases, shuffles, rng, estimator=self.config.pcm.score, dims=self.score_dims
        )
        return {r.phase: r.null_mean for r in results if np.isfinite(r.null_mean)}

    @property
    def score_dims(self) -> tuple[int, ...] | None:
        """Action dimensions the phase scores compare (`pcm.score_dims`); None = every one."""
        return tuple(self.env.score_dims) if self.config.pcm.score_dims == "env" else None

    @staticmethod
    def shuffled_scores(
        batch: ChunkBatch,
        chunk_phases: list[str],
        shuffles: int,
        rng: np.random.Generator,
        *,
        estimator: str = "paper",
        dims: tuple[int, ...] | None = None,
    ) -> list[NullScore]:
        """Phase scores (`estimator`, on action dims `dims`) of a rollout batch beside their
        outcome-shuffle null (`shuffled_outcome_scores`)."""
        return shuffled_outcome_scores(
            score_features(batch.actions, dims),
            chunk_phases,
            batch.traj,
            batch.success,
            batch.group,
            shuffles,
            rng,
            estimator=estimator,
        )

    def actor_forward(
        self,
        batch: ChunkBatch,
        rows: np.ndarray,
        *,
        inputs: PolicyInputs | None = None,
        tokens: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced log-probs and entropy of the chunk rows `rows` — the only place the
        actor runs with gradients and back-propagates (`grpo.pass_memory_mb`'s one-off probe,
        `_chunk_activation`, runs a two-chunk forward and drops it), and it only ever receives
        kept chunks. `inputs` and `tokens`, when the caller has them already, are those rows'
        policy inputs and action tokens."""
        if inputs is None:
            inputs = self.policy.prepare(*_rows_of_observations(batch, rows))
        if tokens is None:
            tokens = torch.as_tensor(batch.tokens[rows], device=self.device)
        return self.policy.log_probs_and_entropy(inputs, tokens, self.config.grpo.temperature)

    def update(self, selection: Selection) -> dict[str, float]:
        """One PPO epoch over the update batch in mini-batches of trajectories; each mini-batch
        is one optimizer step, accumulated over forward/backward passes (`_micro_batches`, per
        `grpo.micro_batch_chunks`; reported as `train/passes`).

        Work that does not grow with the chunks of a pass is done once: rows are grouped by
        trajectory once per update, the per-chunk tensors of the loss are copied to the device
        once per mini-batch (a pass takes a slice), the loss statistics and gradient norms stay
        on the device until the end (no wait for the device after every pass), and activation
        bytes are metered once per pass shape (chunks, instruction width, padding), which is
        all they depend on."""
        g = self.config.grpo
        batch = selection.update_batch
        if batch.num_chunks == 0:
            return {M.TRAIN_UPDATED: 0.0, M.TRAIN_UPDATE_TRAJECTORIES: 0.0, M.TRAIN_PASSES: 0.0}
        tokens_per_chunk = batch.tokens.shape[1]
        order = self.stream("order").permutation(batch.num_trajectories)
        minis = np.array_split(order, min(g.mini_batches, batch.num_trajectories))
        rows_of = rows_by_trajectory(batch.traj, batch.num_trajectories)
        widths = self.policy.text_tokenizer.lengths(
            batch.instructions, self.policy.config.max_instruction_bytes
        )
        cap = self._pass_cap(selection, minis, rows_of, widths)
        totals = torch.zeros(len(LOSS_STATS), dtype=torch.float64, device=self.device)
        total_weight, grad_norms, num_passes = 0.0, [], 0
        activation: dict[tuple, int] = {}  # pass shape -> saved bytes
        own = selection.own if selection.own is not None else np.ones(batch.num_trajectories, dtype=bool)
        for mini in minis:
            mini_rows = np.sort(np.concatenate([rows_of[t] for t in mini]))
            normaliser = self.normaliser(selection, mini, mini_rows) * tokens_per_chunk
            if normaliser <= 0 or len(mini_rows) == 0:
                continue
            self.optimizer.zero_grad(set_to_none=True)
            mine = mini[own[mini]]  # the mini-batch's trajectories this rank forwards
            mine_rows = np.sort(np.concatenate([rows_of[t] for t in mine])) if len(mine) else mini_rows[:0]
            passes = []
            if len(mine_rows):
                passes = self._micro_batches(
                    batch, mine, mine_rows, rows_of, widths[batch.traj[mine_rows]], cap
                )
            num_passes += len(passes)
            chunk = self._chunk_tensors(batch, selection, np.concatenate([mini_rows[:0], *passes]))
            if self.sharded:  # every rank makes as many passes; the extra ones weigh nothing
                counts = self.dist.all_gather(len(passes))
                passes = pad_passes(passes, counts, None)
            start = 0
            for i, rows in enumerate(passes):
                if rows is None:
                    rows = mini_rows[:1]
                    part = self._chunk_tensors(batch, selection, rows)
                    part["weights"] = torch.zeros_like(part["weights"])
                else:
                    # a pass's own copy of its slice (a device-side copy, no transfer): what autograd
                    # saves of it is then this pass's, as the activation meter counts storages
                    part = {k: t[start : start + len(rows)].clone() for k, t in chunk.items()}
                    start += len(rows)
                if self.sharded:
                    set_gradient_sync(self.policy, i == len(passes) - 1)
                inputs = self.policy.prepare(*_rows_of_observations(batch, rows))
                shape = (len(rows), inputs.input_ids.shape[1], inputs.unpadded)
                meter = SavedTensorMeter(self._weight_storages) if shape not in activation else None
                with meter.hooks() if meter is not None else contextlib.nullcontext():
                    log_probs, entropy = self.actor_forward(batch, rows, inputs=inputs, tokens=part["tokens"])
                    ref = None
                    if self.reference is not None:
                        ref = self._reference_log_probs(inputs, part["tokens"])
                    sums = surrogate_sums(
                        log_probs,
                        part["old_log_probs"],
                        entropy,
                        part["advantages"],
                        part["weights"],
                        clip_low=g.clip_low,
                        clip_high=g.clip_high,
                        entropy_coef=g.entropy_coef,
                        kl_coef=g.kl_coef,
                        ref_log_probs=ref,
                    )
                if meter is not None:
                    activation[shape] = meter.bytes
                loss = sums.loss / normaliser
                if self.sharded:  # FSDP averages gradients over ranks; the update wants their sum
                    loss = loss * self.dist.world_size
                loss.backward()
                totals += sums.stats.double()
            total_weight += normaliser
            if not self.sharded:
                sum_gradients(self.dist, self._trainable)
            grad_norms.append(full_value(torch.nn.utils.clip_grad_norm_(self._trainable, g.max_grad_norm)))
            self.optimizer.step()
        w = max(total_weight, 1e-12)
        if self.dist.distributed:  # every rank's share of the loss statistics
            totals = torch.stack([t.to(totals) for t in self.dist.all_gather(totals.cpu())]).sum(0)
            num_passes = sum(self.dist.all_gather(num_passes))
        stats = dict(zip(LOSS_STATS, totals.tolist(), strict=True))
        out = {
            M.TRAIN_UPDATED: 1.0,
            M.TRAIN_UPDATE_TRAJECTORIES: float(batch.num_trajectories),
            M.TRAIN_PASSES: float(num_passes),
            M.TRAIN_POLICY_LOSS: stats["policy_loss"] / w,
            M.TRAIN_ENTROPY: stats["entropy"] / w,
            M.TRAIN_CLIP_FRACTION: stats["clipped"] / w,
            M.TRAIN_APPROX_KL: stats["approx_kl"] / w,
            M.TRAIN_GRAD_NORM: float(np.mean(torch.stack(grad_norms).tolist())) if grad_norms else 0.0,
            M.MEM_ACTIVATION: float(max(activation.values(), default=0)),
        }
        if self.reference is not None:
            out[M.TRAIN_REF_KL] = stats["ref_kl"] / w
        return out

    def _chunk_tensors(
        self, batch: ChunkBatch, selection: Selection, rows: np.ndarray
    ) -> dict[str, torch.Tensor]:
        """The per-chunk tensors of the loss for `rows`, in that order, on the device: one copy
        per mini-batch, of which each pass takes its slice."""
        device = self.device
        return {
            "tokens": torch.as_tensor(batch.tokens[rows], device=device),
            "old_log_probs": torch.as_tensor(batch.old_log_probs[rows], device=device),
            "advantages": torch.as_tensor(selection.advantages[batch.traj[rows]], device=device).float(),
            "weights": torch.as_tensor(selection.chunk_weights[rows], device=device).float(),
        }

    @staticmethod
    def normaliser(selection: Selection, mini: np.ndarray, mini_rows: np.ndarray) -> float:
        """The chunk weight a mini-batch's loss sum is divided by (times tokens per chunk), for
        its trajectories `mini` and their kept rows `mini_rows`: the kept chunks' weights under
        `reweight: none`; under `unbiased`, what the full selector's would be (their chunk count,
        or with `trajectory_mean` their number), so that the loss estimates the full one."""
        if selection.full_weights is not None:
            return float(selection.full_weights[mini].sum())
        return float(selection.chunk_weights[mini_rows].sum())

    def _micro_batches(
        self,
        batch: ChunkBatch,
        mini: np.ndarray,
        mini_rows: np.ndarray,
        rows_of: list[np.ndarray],
        row_widths: np.ndarray,
        cap: PassCap | None,
    ) -> list[np.ndarray]:
        """Chunk rows of each forward/backward of one mini-batch (trajectories `mini`, rows
        `mini_rows` of instruction widths `row_widths`, `rows_of[t]` the rows of trajectory t),
        per `grpo.micro_batch_chunks`: `auto` packs them in as few passes as `cap` allows
        (`_pass_cap`, `pack_rows`); `memory` takes `micro_batch_trajectories` whole
        trajectories at a time; N takes up to N chunks at a time, packed across trajectories.
        The loss is a sum normalised per mini-batch, so the gradient is the same whichever."""
        g = self.config.grpo
        if g.micro_batch_chunks == "auto":
            return pack_rows(mini_rows, row_widths, cap)
        if g.micro_batch_chunks == "memory":
            step = g.micro_batch_trajectories
            groups = [mini[i : i + step] for i in range(0, len(mini), step)]
            passes = [np.sort(np.concatenate([rows_of[t] for t in group])) for group in groups]
            return [rows for rows in passes if len(rows)]  # top_phase: a trajectory may keep nothing
        n = g.micro_batch_chunks
        return [mini_rows[i : i + n] for i in range(0, len(mini_rows), n)]

    def _pass_cap(
        self, selection: Selection, minis: list[np.ndarray], rows_of: list[np.ndarray], widths: np.ndarray
    ) -> PassCap | None:
        """The per-pass budget of `micro_batch_chunks: auto` for this update (None otherwise):
        with `grpo.pass_memory_mb`, that many MiB at the measured bytes per chunk
        (`_chunk_activation`); else the passes GRPO's `memory` mode makes of these trajectories
        with every chunk kept, in this update's order (`cap_within`)."""
        g = self.config.grpo
        if g.micro_batch_chunks != "auto":
            return None
        if g.pass_memory_mb is not None:
            per_chunk = self._chunk_activation(selection.update_batch, rows_of, widths)
            most = max(1, int(g.pass_memory_mb * 2**20 // max(per_chunk, 1.0)))
            return lambda width, padded: most
        full = selection.full_chunks
        if full is None:
            full = np.array([len(rows) for rows in rows_of], dtype=np.int64)
        return cap_within(memory_mode_shapes(minis, full, widths, g.micro_batch_trajectories))

    def _chunk_activation(self, batch: ChunkBatch, rows_of: list[np.ndarray], widths: np.ndarray) -> float:
        """Bytes autograd saves per chunk at this batch's longest instruction, padded if the batch
        has a shorter one: half of what a two-chunk forward of a row of each saves (an upper
        bound per chunk: what a pass saves whatever its size is in it too). Measured once per
        run and (width, padded), without a backward and without moving any random stream."""
        present = [t for t, rows in enumerate(rows_of) if len(rows)]
        wide = max(present, key=lambda t: (widths[t], -t))
        narrow = min(present, key=lambda t: (widths[t], t))
        key = (int(widths[wide]), bool(widths[narrow] != widths[wide]))
        if key not in self._chunk_bytes:
            rows = np.array([rows_of[wide][0], rows_of[narrow][0]])
            inputs = self.policy.prepare(*_rows_of_observations(batch, rows))
            tokens = torch.as_tensor(batch.tokens[rows], device=self.device)
            meter = SavedTensorMeter(self._weight_storages)
            devices = [self.device] if self.device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices), meter.hooks():
                self.policy.log_probs_and_entropy(inputs, tokens, self.config.grpo.temperature)
            self._chunk_bytes[key] = meter.bytes / len(rows)
        return self._chunk_bytes[key]

    @torch.no_grad()
    def _reference_log_probs(self, inputs: PolicyInputs, tokens: torch.Tensor) -> torch.Tensor:
        """The frozen initial policy's log-probs of `tokens` (`grpo.kl_coef`), on the actor's
        inputs (both policies prepare observations alike)."""
        return self.reference.log_probs_and_entropy(inputs, tokens, self.config.grpo.temperature)[0]

    def evaluate(self) -> dict[str, float]:
        """Success on the held-out eval init states: the first `episodes_per_task` of every task,
        sampled at `eval.temperature` from a generator of its own (a fixed protocol)."""
        t0 = time.perf_counter()
        result: dict[str, float] = {}
        with gathered_weights(self.policy, self.sharded):
            if self.dist.is_main:  # the other ranks wait for it at their next exchange
                result = evaluate_policy(self.env, self.policy, self.config, seed=self.config.train.seed)
                result[M.TIME_EVAL] = time.perf_counter() - t0
        return result

    # --- reporting -------------------------------------------------------------------------------

    def _step_metrics(self, batch: ChunkBatch, sel: Selection, update_stats: dict) -> dict[str, float]:
        out: dict[str, float] = dict(update_stats)
        out[M.ROLLOUT_SUCCESS] = float(batch.success.mean())
        out[M.ROLLOUT_TRAJECTORIES] = float(batch.num_trajectories)
        out[M.ROLLOUT_CHUNKS] = float(batch.num_chunks)
        out[M.ROLLOUT_EPISODE_STEPS] = float(batch.episode_steps.mean())
        out[M.ROLLOUT_MIXED_GROUPS] = float(
            len(np.unique(batch.group[mixed_group_mask(batch.success, batch.group)]))
        )
        chunk_phases = np.array([label for traj in sel.labels for label in traj])
        for phase in PHASES:
            out[M.keep_metric(phase)] = sel.p[phase]
            out[M.available_metric(phase)] = float((chunk_phases[sel.available_rows] == phase).sum())
            out[M.kept_metric(phase)] = float((chunk_phases[sel.kept_rows] == phase).sum())
        for phase, score in sel.scores.items():
            out[M.score_metric(phase)] = score
        for phase, null in sel.score_nulls.items():
            out[M.score_null_metric(phase)] = null
        out[M.PCM_KEPT_CHUNKS] = float(len(sel.kept_rows))
        out[M.PCM_KEPT_FRACTION] = len(sel.kept_rows) / max(1, len(sel.available_rows))
        out[M.PCM_REFRESHED] = float(sel.refreshed)
        return out

    def _record_media(self, batch: ChunkBatch, sel: Selection, per_task: int) -> float:
        """`per_task` of this step's rollouts per task as GIFs (`pcm_engine.media`), reported to
        the sink; returns the seconds it took (counted as evaluation time, so that training
        wall-clock leaves it out like the eval itself)."""
        t0 = time.perf_counter()
        items = record_episodes(
            self.run_dir,
            self.step_count,
            batch,
            sel.labels,
            sel.kept_rows,
            per_task,
            among=self._rank_trajectories(batch),
        )
        report_media(self.sink, self.step_count, items)
        return time.perf_counter() - t0

    def _rank_trajectories(self, batch: ChunkBatch) -> np.ndarray:
        """[trajectories of the step's batch] True where this rank rolled it out (whose images it
        holds)."""
        own = np.zeros(batch.num_trajectories, dtype=bool)
        share = self.dist.groups(self.config.grpo.groups_per_step)
        own[share.start * self.config.grpo.group_size : share.stop * self.config.grpo.group_size] = True
        return own

    def _chunk_records(self, batch: ChunkBatch, sel: Selection) -> list[ChunkRecord]:
        kept = set(sel.kept_rows.tolist())
        took_part = np.zeros(batch.num_trajectories, dtype=bool)
        took_part[batch.traj[sel.available_rows]] = True
        chosen = recorded_trajectories(
            batch.success, batch.group, took_part, self.config.pcm.mask_records_trajectories
        )
        records = []
        for t in chosen:
            for row, phase in zip(batch.chunks_of(t), sel.labels[t], strict=True):
                records.append(
                    ChunkRecord(
                        trajectory=t,
                        chunk=int(batch.chunk_index[row]),
                        phase=phase,
                        kept=int(row) in kept,
                        success=bool(batch.success[t]),
                        group=int(batch.group[t]),
                    )
                )
        return records

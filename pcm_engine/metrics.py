"""Metric names (a contract: the worker, the API and the frontend read them from here) and the
MetricSink protocol through which the engine reports.

Names carry a prefix like CleanRL/RLinf: `rollout/`, `eval/`, `train/`, `pcm/`, `time/`, `mem/`.
Per-phase names are built by the functions below, never retyped.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from pcm_engine.phases import PHASES

if TYPE_CHECKING:
    from pcm_engine.media import MediaItem

# rollouts
ROLLOUT_SUCCESS = "rollout/success_rate"
ROLLOUT_TRAJECTORIES = "rollout/trajectories"
ROLLOUT_CHUNKS = "rollout/chunks"
ROLLOUT_MIXED_GROUPS = "rollout/mixed_groups"
ROLLOUT_EPISODE_STEPS = "rollout/episode_steps"
# behaviour cloning
SFT_LOSS = "sft/loss"
SFT_DEMO_CHUNKS = "sft/demo_chunks"
# evaluation
EVAL_SUCCESS = "eval/success_rate"
EVAL_EPISODES = "eval/episodes"
# the actor update
TRAIN_POLICY_LOSS = "train/policy_loss"
TRAIN_CLIP_FRACTION = "train/clip_fraction"
TRAIN_ENTROPY = "train/entropy"
TRAIN_APPROX_KL = "train/approx_kl"
TRAIN_REF_KL = "train/ref_kl"
TRAIN_GRAD_NORM = "train/grad_norm"
TRAIN_UPDATED = "train/updated"
TRAIN_UPDATE_TRAJECTORIES = "train/update_trajectories"
TRAIN_PASSES = "train/passes"  # forward/backward passes of the actor update (grpo.micro_batch_chunks)
TRAIN_POLICY_LAG = "train/policy_lag"  # updates between the rollout's policy and the updated one
# chunk masking
PCM_KEPT_FRACTION = "pcm/kept_fraction"
PCM_KEPT_CHUNKS = "pcm/kept_chunks"
PCM_REFRESHED = "pcm/refreshed"
# time split of a step (rollout + select + update + other = step)
TIME_ROLLOUT = "time/rollout_s"  # the step's wait for its rollout (all of it, unless overlapped)
TIME_ROLLOUT_HIDDEN = "time/rollout_hidden_s"  # rollout seconds that ran during the previous update
TIME_ROLLOUT_OVERLAP = "time/rollout_overlap"  # hidden / all seconds of the step's rollout, 0..1
TIME_SELECT = "time/select_s"
TIME_UPDATE = "time/update_s"
TIME_OTHER = "time/other_s"
TIME_EVAL = "time/eval_s"
TIME_STEP = "time/step_s"
# with several ranks (dist.world_size > 1) the timings above are the slowest rank's; these are
# how much faster the fastest rank was
TIME_ROLLOUT_SPREAD = "time/rollout_spread_s"
TIME_SELECT_SPREAD = "time/select_spread_s"
TIME_UPDATE_SPREAD = "time/update_spread_s"
SPREADS = {
    TIME_ROLLOUT: TIME_ROLLOUT_SPREAD,
    TIME_SELECT: TIME_SELECT_SPREAD,
    TIME_UPDATE: TIME_UPDATE_SPREAD,
}
# memory
MEM_ACTIVATION = "mem/activation_bytes"
MEM_PEAK_RSS = "mem/peak_rss_bytes"  # with several ranks: the largest rank's
MEM_PEAK_GPU = "mem/peak_gpu_bytes"  # with several ranks: the largest rank's


def score_metric(phase: str) -> str:
    """The success–failure divergence of a phase at this step: the step's value of the run's
    `pcm.score` estimator (`C_c^(t)` for `paper`, the signed `D²` for `debiased`)."""
    return f"pcm/score/{phase}"


def score_null_metric(phase: str) -> str:
    """`score_metric` (the run's `pcm.score`) with outcomes shuffled within groups (mean over
    `pcm.score_null_shuffles`): the level it reaches by chunk-count noise alone."""
    return f"pcm/score_null/{phase}"


def keep_metric(phase: str) -> str:
    """`p_c`, the keep weight of a phase used for this step's selection."""
    return f"pcm/keep/{phase}"


def kept_metric(phase: str) -> str:
    """Chunks of a phase back-propagated this step."""
    return f"pcm/kept/{phase}"


def available_metric(phase: str) -> str:
    """Chunks of a phase in this step's update batch before selection."""
    return f"pcm/available/{phase}"


def eval_task_metric(task: int) -> str:
    return f"eval/task_success/{task}"


PER_STEP_METRICS: tuple[str, ...] = (
    ROLLOUT_SUCCESS,
    ROLLOUT_TRAJECTORIES,
    ROLLOUT_CHUNKS,
    ROLLOUT_MIXED_GROUPS,
    ROLLOUT_EPISODE_STEPS,
    TRAIN_POLICY_LOSS,
    TRAIN_CLIP_FRACTION,
    TRAIN_ENTROPY,
    TRAIN_APPROX_KL,
    TRAIN_GRAD_NORM,
    TRAIN_UPDATED,
    TRAIN_UPDATE_TRAJECTORIES,
    TRAIN_PASSES,
    TRAIN_POLICY_LAG,
    PCM_KEPT_FRACTION,
    PCM_KEPT_CHUNKS,
    PCM_REFRESHED,
    TIME_ROLLOUT,
    TIME_ROLLOUT_HIDDEN,
    TIME_ROLLOUT_OVERLAP,
    TIME_SELECT,
    TIME_UPDATE,
    TIME_OTHER,
    TIME_STEP,
    MEM_ACTIVATION,
    MEM_PEAK_RSS,
    *(keep_metric(c) for c in PHASES),
    *(kept_metric(c) for c in PHASES),
    *(available_metric(c) for c in PHASES),
)
"""Emitted at every training step (scores only for phases defined that step; eval when run)."""


def all_metric_names() -> list[str]:
    """Every fixed metric name the engine can emit (per-task eval names excluded)."""
    names = (
        list(PER_STEP_METRICS) + [score_metric(c) for c in PHASES] + [score_null_metric(c) for c in PHASES]
    )
    names += [EVAL_SUCCESS, EVAL_EPISODES, TIME_EVAL, TRAIN_REF_KL, MEM_PEAK_GPU, *SPREADS.values()]
    names += [SFT_LOSS, SFT_DEMO_CHUNKS]
    return names


@dataclass(frozen=True)
class ChunkRecord:
    """One chunk of a recorded trajectory, for the "which chunks got gradients" heat map."""

    trajectory: int
    chunk: int
    phase: str
    kept: bool
    success: bool
    group: int


class MetricSink(Protocol):
    """Where a Trainer reports. The CLI writes JSONL; the orchestrator writes its database.

    A sink may also have `log_media(step, items: list[MediaItem])`, told about the episode media
    recorded at a step (`pcm_engine.media`; files already written in the run folder); a sink
    without it is simply not told (`report_media`)."""

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None: ...

    def log_chunks(self, step: int, records: list[ChunkRecord]) -> None: ...

    def close(self) -> None: ...


def report_media(sink: MetricSink, step: int, items: list[MediaItem]) -> None:
    """`sink.log_media(step, items)` if the sink has that optional method."""
    log_media = getattr(sink, "log_media", None)
    if log_media is not None and items:
        log_media(step, items)


class JsonlSink:
    """Appends `metrics.jsonl` ({"step", "name": value ...} per line), `chunks.jsonl` and the
    episode media index `media.jsonl` (one `MediaItem` per line)."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._metrics = open(self.run_dir / "metrics.jsonl", "a", buffering=1)
        self._chunks = open(self.run_dir / "chunks.jsonl", "a", buffering=1)

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        self._metrics.write(json.dumps({"step": step, **metrics}) + "\n")

    def log_chunks(self, step: int, records: list[ChunkRecord]) -> None:
        for record in records:
            self._chunks.write(json.dumps({"step": step, **asdict(record)}) + "\n")

    def log_media(self, step: int, items: list[MediaItem]) -> None:
        with open(self.run_dir / "media.jsonl", "a") as index:
            for item in items:
                index.write(json.dumps(item.to_json()) + "\n")

    def close(self) -> None:
        self._metrics.close()
        self._chunks.close()


class NullSink:
    """Drops everything: for tools that drive a Trainer only for its rollouts or updates."""

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        pass

    def log_chunks(self, step: int, records: list[ChunkRecord]) -> None:
        pass

    def close(self) -> None:
        pass


class FanOutSink:
    """Sends everything to several sinks (e.g. JSONL + a progress bar)."""

    def __init__(self, *sinks: MetricSink):
        self.sinks = sinks

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        for sink in self.sinks:
            sink.log_metrics(step, metrics)

    def log_chunks(self, step: int, records: list[ChunkRecord]) -> None:
        for sink in self.sinks:
            sink.log_chunks(step, records)

    def log_media(self, step: int, items: list[MediaItem]) -> None:
        for sink in self.sinks:
            report_media(sink, step, items)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


def read_metrics(run_dir: str | Path) -> list[dict]:
    """Rows of a run's metrics.jsonl; a resumed step's later row replaces the earlier one."""
    rows: dict[int, dict] = {}
    path = Path(run_dir) / "metrics.jsonl"
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                rows.setdefault(row["step"], {}).update(row)
    return [rows[s] for s in sorted(rows)]

"""Episode media: a few of a step's training rollouts per task as small animated GIFs, each with a
JSON sidecar of its chunks (phase, kept by the selector) and outcome, so a researcher can watch
*why* a grasp failed beside which chunks got gradients.

One frame per chunk, `FRAME_MS` long: the observation the policy chose that chunk from (what
`ChunkBatch.images` holds), so chunk k plays from k * frame_ms (the GIF writer merges identical
consecutive frames into one longer frame, which keeps that timing). Files land in
`RUN/media/step_NNNNNN/` and are reported to the sink as `MediaItem`s with paths relative to the
run folder (`MetricSink.log_media`). Eval steps record `eval.record_episodes` per task; any step
records episodes when the trainer's `should_record_media` hook asks for them (`episodes_per_task`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from pcm_engine.rollout import ChunkBatch

GIF_CONTENT_TYPE = "image/gif"
FRAME_MS = 250  # 4 frames (chunks) a second
MAX_SIDE = 128  # larger observations (LIBERO) are downscaled by an integer factor to fit
ON_DEMAND_PER_TASK = 2  # episodes per task of a step asked for while `eval.record_episodes` is 0


@dataclass(frozen=True)
class MediaChunk:
    """One chunk of a recorded episode: its frame in the GIF is the same index."""

    chunk: int
    phase: str
    kept: bool


@dataclass(frozen=True)
class MediaItem:
    """One recorded episode: the GIF and its sidecar, both relative to the run folder."""

    step: int
    task: int
    trajectory: int  # row of the step's rollout batch (as in chunks.jsonl)
    success: bool
    instruction: str
    path: str  # the GIF, e.g. "media/step_000010/task2_traj5.gif"
    sidecar: str  # the JSON beside it
    content_type: str
    frame_ms: int  # how long each chunk's frame shows
    chunks: list[MediaChunk]

    def to_json(self) -> dict:
        return asdict(self)


def pick_episodes(success: np.ndarray, task: np.ndarray, per_task: int) -> list[int]:
    """Up to `per_task` trajectories of each task, alternating success and failure while both are
    left (a success first), in trajectory order within each outcome; tasks in ascending order."""
    picked: list[int] = []
    for t in np.unique(task):
        rows = np.flatnonzero(task == t)
        queues = [list(rows[success[rows]]), list(rows[~success[rows]])]
        chosen: list[int] = []
        turn = 0
        while len(chosen) < per_task and (queues[0] or queues[1]):
            queue = queues[turn] if queues[turn] else queues[1 - turn]
            chosen.append(int(queue.pop(0)))
            turn = 1 - turn
        picked.extend(sorted(chosen))
    return picked


def episodes_per_task(record_episodes: int, *, eval_step: bool, requested: bool) -> int:
    """How many episodes per task a step records: `record_episodes` at an eval step; at a step
    someone asked for (on demand, any step) `record_episodes`, or `ON_DEMAND_PER_TASK` when that
    is 0; none otherwise."""
    if requested:
        return record_episodes or ON_DEMAND_PER_TASK
    return record_episodes if eval_step else 0


def downscale(frames: np.ndarray, max_side: int = MAX_SIDE) -> np.ndarray:
    """`frames` [N, H, W, 3] strided down by the smallest integer factor that fits `max_side`."""
    factor = -(-max(frames.shape[1], frames.shape[2]) // max_side)
    return frames[:, ::factor, ::factor] if factor > 1 else frames


def record_episodes(
    run_dir: str | Path,
    step: int,
    batch: ChunkBatch,
    labels: list[list[str]],
    kept_rows: np.ndarray,
    per_task: int,
    *,
    among: np.ndarray | None = None,
) -> list[MediaItem]:
    """Write the GIF and sidecar of `per_task` episodes per task of `batch` (the step's rollouts,
    `labels` their phases, `kept_rows` the chunk rows the selector kept), chosen among the
    trajectories `among` marks (None: all; a rank of a distributed run holds only its own
    images); returns what was written."""
    if per_task <= 0 or batch.num_trajectories == 0:
        return []
    run_dir = Path(run_dir)
    folder = run_dir / "media" / f"step_{step:06d}"
    folder.mkdir(parents=True, exist_ok=True)
    kept = set(np.asarray(kept_rows).tolist())
    items = []
    candidates = np.arange(batch.num_trajectories) if among is None else np.flatnonzero(among)
    for t in candidates[pick_episodes(batch.success[candidates], batch.task[candidates], per_task)]:
        t = int(t)
        rows = batch.chunks_of(t)
        chunks = [
            MediaChunk(chunk=int(batch.chunk_index[row]), phase=phase, kept=int(row) in kept)
            for row, phase in zip(rows, labels[t], strict=True)
        ]
        stem = f"task{int(batch.task[t])}_traj{t}"
        gif = folder / f"{stem}.gif"
        iio.imwrite(gif, downscale(batch.images[rows]), extension=".gif", duration=FRAME_MS, loop=0)
        item = MediaItem(
            step=step,
            task=int(batch.task[t]),
            trajectory=t,
            success=bool(batch.success[t]),
            instruction=batch.instructions[t],
            path=gif.relative_to(run_dir).as_posix(),
            sidecar=gif.with_suffix(".json").relative_to(run_dir).as_posix(),
            content_type=GIF_CONTENT_TYPE,
            frame_ms=FRAME_MS,
            chunks=chunks,
        )
        (folder / f"{stem}.json").write_text(json.dumps(item.to_json()))
        items.append(item)
    return items

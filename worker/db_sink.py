"""`DatabaseSink`: the engine's MetricSink for the orchestrator. Every call is one committed
transaction (metric or chunk rows, the run's progress, and a `run_events` row for the live
stream), followed by a wake-up, so there is nothing buffered to lose when a worker dies."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from backend.store import wakeup
from backend.store.db import session_scope
from backend.store.lifecycle import record_event
from backend.store.models import ChunkMask, Metric, Run, RunMedia
from backend.store.settings import Settings
from pcm_engine import metrics as M
from pcm_engine.media import MediaItem
from pcm_engine.metrics import ChunkRecord
from worker.upsert import upsert

log = logging.getLogger(__name__)

SUMMARY_METRICS = (M.ROLLOUT_SUCCESS, M.EVAL_SUCCESS, M.PCM_KEPT_FRACTION, M.TIME_UPDATE)
"""The headline numbers kept (latest value) in `runs.summary` for the runs table."""
MEAN_UPDATE_S = "mean_update_s"
"""`runs.summary` key: the mean of `time/update_s` over the run's steps (resumed steps counted once)."""


@dataclass
class IngestStats:
    """Write throughput of one sink (read by benchmarks)."""

    transactions: int = 0
    rows: int = 0
    seconds: float = 0.0

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


class DatabaseSink:
    """Writes a run's metrics and chunk masks to the run database (PostgreSQL or SQLite)."""

    def __init__(self, settings: Settings, run_id: int):
        self.settings = settings
        self.run_id = run_id
        self.url = settings.resolved_database_url
        self.stats = IngestStats()
        self.skipped_nonfinite = 0
        with session_scope(self.url) as session:
            self.summary: dict[str, Any] = dict(
                session.scalar(select(Run.summary).where(Run.id == run_id)) or {}
            )

    @contextmanager
    def _transaction(self, rows: int) -> Iterator[Session]:
        started = time.perf_counter()
        with session_scope(self.url) as session:
            yield session
        self.stats.seconds += time.perf_counter() - started
        self.stats.transactions += 1
        self.stats.rows += rows
        wakeup.publish(self.settings, self.run_id)

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        """Upsert one row per metric of `step` (step 0 is the eval before training), advance
        `steps_done`, refresh the summary and append a `metrics` event."""
        now = time.time()
        values = {name: float(value) for name, value in metrics.items()}
        # NaN/inf cannot be stored portably (SQLite turns NaN into NULL; JSON has neither)
        rows = [
            {"run_id": self.run_id, "name": name, "step": step, "value": value, "wall_time": now}
            for name, value in values.items()
            if math.isfinite(value)
        ]
        self.skipped_nonfinite += len(values) - len(rows)
        for name in SUMMARY_METRICS:
            if name in values and math.isfinite(values[name]):
                self.summary[name] = values[name]
        self.summary["step"] = max(step, int(self.summary.get("step", 0)))
        payload = {
            "step": step,
            "metrics": {name: (value if math.isfinite(value) else None) for name, value in values.items()},
        }
        with self._transaction(len(rows)) as session:
            upsert(session, Metric, rows, keys=("run_id", "name", "step"))
            if M.TIME_UPDATE in values:
                mean = session.scalar(
                    select(func.avg(Metric.value)).where(
                        Metric.run_id == self.run_id, Metric.name == M.TIME_UPDATE
                    )
                )
                if mean is not None:
                    self.summary[MEAN_UPDATE_S] = float(mean)
            session.execute(
                update(Run)
                .where(Run.id == self.run_id)
                .values(
                    steps_done=case((Run.steps_done < step, step), else_=Run.steps_done),
                    summary=dict(self.summary),
                )
                .execution_options(synchronize_session=False)
            )
            record_event(session, self.run_id, "metrics", payload, step=step)

    def log_chunks(self, step: int, records: list[ChunkRecord]) -> None:
        """Upsert the step's chunk masks (the heat map) and append a `chunks` event."""
        if not records:
            return
        rows = [{"run_id": self.run_id, "step": step, **asdict(record)} for record in records]
        with self._transaction(len(rows)) as session:
            upsert(session, ChunkMask, rows, keys=("run_id", "step", "trajectory", "chunk"))
            record_event(session, self.run_id, "chunks", {"step": step, "count": len(rows)}, step=step)

    def log_media(self, step: int, items: list[MediaItem]) -> None:
        """Upsert a `run_media` row per recorded episode (its file is in the run folder already)
        and append a `media` event."""
        rows = [
            {
                "run_id": self.run_id,
                "step": step,
                "task": item.task,
                "trajectory": item.trajectory,
                "success": item.success,
                "instruction": item.instruction[:1024],
                "path": item.path,
                "content_type": item.content_type,
                "frame_ms": item.frame_ms,
                "chunks": [asdict(chunk) for chunk in item.chunks],
            }
            for item in items
        ]
        with self._transaction(len(rows)) as session:
            upsert(session, RunMedia, rows, keys=("run_id", "path"))
            record_event(session, self.run_id, "media", {"step": step, "count": len(rows)}, step=step)

    def close(self) -> None:
        s = self.stats
        log.info(
            "run %s: %d rows in %d transactions, %.0f rows/s",
            self.run_id,
            s.rows,
            s.transactions,
            s.rows_per_s,
        )
        if self.skipped_nonfinite:
            log.warning("run %s: %d non-finite metric values not stored", self.run_id, self.skipped_nonfinite)

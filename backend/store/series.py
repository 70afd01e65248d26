"""Reading a run's metric series and chunk records (for the run and compare routes). The results
are plain dataclasses; the API serves them through its response schemas (backend/schemas.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.store.models import ChunkMask, Metric, RunEvent
from pcm_engine.metrics import ChunkRecord

T = TypeVar("T")
Points = list[tuple[int, float]]


@dataclass
class MetricSeries:
    """Per metric name, `[(step, value), ...]` and `[(step, seconds since the run's first logged
    metric), ...]`; the highest step among the selected names; and the event id after which the
    run's live stream continues these series."""

    series: dict[str, Points]
    wall_time: dict[str, Points]
    last_step: int | None
    last_event_id: int


@dataclass
class ChunkSteps:
    """The chunk records of one step, and every step that has any."""

    step: int | None
    steps: list[int]
    records: list[ChunkRecord]


def downsample(points: Sequence[T], max_points: int) -> list[T]:
    """At most `max_points` evenly spaced points, always keeping the first and the last."""
    n = len(points)
    if n <= max_points:
        return list(points)
    if max_points <= 1:
        return [points[-1]]
    stride = (n - 1) / (max_points - 1)
    indices = sorted({round(i * stride) for i in range(max_points)})
    return [points[i] for i in indices]


def split_names(names: str | None) -> list[str] | None:
    """`"a,b"` -> `["a", "b"]`; None or blank -> None (all names)."""
    if names is None:
        return None
    parsed = [name.strip() for name in names.split(",") if name.strip()]
    return parsed or None


def metric_names(session: Session, run_id: int) -> list[str]:
    return list(
        session.scalars(select(Metric.name).where(Metric.run_id == run_id).distinct().order_by(Metric.name))
    )


def stream_cursor(session: Session, run_id: int) -> int:
    """The event id after which a page that is about to read the run's series should open its live
    stream: the newest event, or the one before it when the newest is a progress note ("building
    the SFT start ..."), so that the note still arrives. Read before the series, so that no step
    falls between the two."""
    newest = session.execute(
        select(RunEvent.id, RunEvent.kind, RunEvent.payload)
        .where(RunEvent.run_id == run_id)
        .order_by(RunEvent.id.desc())
        .limit(1)
    ).first()
    if newest is None:
        return 0
    note = newest.kind == "status" and "message" in (newest.payload or {})
    return newest.id - 1 if note else newest.id


def read_metrics(
    session: Session,
    run_id: int,
    names: list[str] | None,
    since_step: int | None,
    max_points: int,
) -> MetricSeries:
    """Series of `names` (all of the run's when None), only steps > `since_step`, each
    downsampled to `max_points`. Wall times are seconds since the run's first logged metric."""
    cursor = stream_cursor(session, run_id)
    selected = Metric.run_id == run_id
    if names is not None:
        selected = selected & Metric.name.in_(names)
    last_step = session.scalar(select(func.max(Metric.step)).where(selected))
    start = session.scalar(select(func.min(Metric.wall_time)).where(Metric.run_id == run_id)) or 0.0
    query = select(Metric.name, Metric.step, Metric.value, Metric.wall_time).where(selected)
    if since_step is not None:
        query = query.where(Metric.step > since_step)
    rows: dict[str, list[tuple[int, float, float]]] = {name: [] for name in names or ()}
    for name, step, value, wall in session.execute(query.order_by(Metric.name, Metric.step)):
        rows.setdefault(name, []).append((step, value, wall))
    series: dict[str, Points] = {}
    wall_time: dict[str, Points] = {}
    for name, points in rows.items():
        kept = downsample(points, max_points)
        series[name] = [(step, value) for step, value, _ in kept]
        wall_time[name] = [(step, round(wall - start, 3)) for step, _, wall in kept]
    return MetricSeries(series=series, wall_time=wall_time, last_step=last_step, last_event_id=cursor)


def read_chunks(session: Session, run_id: int, step: int | None) -> ChunkSteps:
    """The chunk records of one step (default: the latest step that has any)."""
    steps = list(
        session.scalars(
            select(ChunkMask.step).where(ChunkMask.run_id == run_id).distinct().order_by(ChunkMask.step)
        )
    )
    if step is None:
        step = steps[-1] if steps else None
    records: list[ChunkRecord] = []
    if step is not None:
        rows = session.scalars(
            select(ChunkMask)
            .where(ChunkMask.run_id == run_id, ChunkMask.step == step)
            .order_by(ChunkMask.trajectory, ChunkMask.chunk)
        )
        names = [f.name for f in fields(ChunkRecord)]
        records = [ChunkRecord(**{name: getattr(row, name) for name in names}) for row in rows]
    return ChunkSteps(step=step, steps=steps, records=records)


def read_rows(session: Session, run_id: int, names: Sequence[str]) -> list[dict]:
    """The full series of `names` (never downsampled), one `{"step": s, name: value, ...}` per
    step in step order: the rows that `pcm_engine.analysis` reduces."""
    rows: dict[int, dict] = {}
    query = (
        select(Metric.step, Metric.name, Metric.value)
        .where(Metric.run_id == run_id, Metric.name.in_(names))
        .order_by(Metric.step)
    )
    for step, name, value in session.execute(query):
        rows.setdefault(step, {"step": step})[name] = value
    return list(rows.values())

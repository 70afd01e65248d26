"""A run's metric series and chunk records (the charts and the heat map), for its members and
for anyone with a share link to it (`ReadableRun`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from backend.deps import ReadableRun, SessionDep, SettingsDep
from backend.schemas import INT32_MAX, ChunksOut, MetricsOut
from backend.store import series
from backend.store.series import ChunkSteps, MetricSeries

router = APIRouter(prefix="/runs/{run_id}", tags=["metrics"])

NamesQuery = Annotated[
    str | None, Query(description="Metric names separated by commas; default: every name the run has.")
]
SinceQuery = Annotated[
    int | None,
    Query(ge=-1, le=INT32_MAX, description="Only points with step > since_step (for incremental polling)."),
]
MaxPointsQuery = Annotated[
    int | None,
    Query(ge=2, le=100_000, description="Downsample each series to this many points; default: the server's."),
]
StepQuery = Annotated[
    int | None, Query(ge=0, le=INT32_MAX, description="Default: the latest step with records.")
]


@router.get("/metrics", response_model=MetricsOut)
def run_metrics(
    run: ReadableRun,
    session: SessionDep,
    settings: SettingsDep,
    names: NamesQuery = None,
    since_step: SinceQuery = None,
    max_points: MaxPointsQuery = None,
) -> MetricSeries:
    return series.read_metrics(
        session, run.id, series.split_names(names), since_step, max_points or settings.max_series_points
    )


@router.get("/metric-names", response_model=list[str])
def run_metric_names(run: ReadableRun, session: SessionDep) -> list[str]:
    """The names this run has logged so far."""
    return series.metric_names(session, run.id)


@router.get("/chunks", response_model=ChunksOut)
def run_chunks(run: ReadableRun, session: SessionDep, step: StepQuery = None) -> ChunkSteps:
    return series.read_chunks(session, run.id, step)

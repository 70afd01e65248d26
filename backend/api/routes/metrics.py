"""A run's metric series and chunk records (the charts and the heat map)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from backend import series
from backend.access import get_visible_run
from backend.deps import CurrentUser, RunId, SessionDep, SettingsDep
from backend.schemas import INT32_MAX, ChunksOut, MetricsOut

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
    run_id: RunId,
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
    names: NamesQuery = None,
    since_step: SinceQuery = None,
    max_points: MaxPointsQuery = None,
) -> MetricsOut:
    run = get_visible_run(session, user, run_id)
    return series.read_metrics(
        session, run.id, series.split_names(names), since_step, max_points or settings.max_series_points
    )


@router.get("/metric-names", response_model=list[str])
def run_metric_names(run_id: RunId, session: SessionDep, user: CurrentUser) -> list[str]:
    """The names this run has logged so far."""
    return series.metric_names(session, get_visible_run(session, user, run_id).id)


@router.get("/chunks", response_model=ChunksOut)
def run_chunks(run_id: RunId, session: SessionDep, user: CurrentUser, step: StepQuery = None) -> ChunksOut:
    return series.read_chunks(session, get_visible_run(session, user, run_id).id, step)

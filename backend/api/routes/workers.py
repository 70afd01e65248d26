"""The workers table, with liveness from the heartbeat and the run each worker holds.

A worker's `run` (name, and for a distributed run the node and ranks it runs, from the run's
`placement`) is filled in only for a run the caller may see (backend.access.visible_runs): the
workers page never names or links a run its reader may not open.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.access import visible_runs
from backend.deps import CurrentUser, SessionDep, SettingsDep
from backend.schemas import WorkerOut, WorkerRun
from backend.store.models import Run, User, WorkerRecord, as_utc, utcnow

router = APIRouter(tags=["workers"])


@router.get("/workers", response_model=list[WorkerOut])
def list_workers(session: SessionDep, settings: SettingsDep, user: CurrentUser) -> list[WorkerOut]:
    """Every worker that has registered; `alive` = heartbeat within `stale_after_s`; `run` = the
    run it holds, if the caller may see it."""
    cutoff = utcnow() - timedelta(seconds=settings.stale_after_s)
    rows = list(session.scalars(select(WorkerRecord).order_by(WorkerRecord.name)))
    held = _visible_held_runs(session, user, rows)
    return [
        WorkerOut.model_validate(
            {
                **_columns(row),
                "busy": row.current_run_id is not None,
                "current_run_id": row.current_run_id if row.current_run_id in held else None,
                "alive": as_utc(row.heartbeat_at) > cutoff,
                "run": _held_run(held.get(row.current_run_id), row.name),
            }
        )
        for row in rows
    ]


def _columns(row: WorkerRecord) -> dict:
    return {column.key: getattr(row, column.key) for column in WorkerRecord.__table__.columns}


def _visible_held_runs(session: Session, user: User, rows: list[WorkerRecord]) -> dict[int, Any]:
    """(id, name, placement) of the runs these workers hold that `user` may see, by run id."""
    ids = {row.current_run_id for row in rows if row.current_run_id is not None}
    if not ids:
        return {}
    found = session.execute(
        select(Run.id, Run.name, Run.placement).where(Run.id.in_(ids), visible_runs(user))
    )
    return {run.id: run for run in found}


def worker_node(placement: dict[str, Any] | None, worker: str) -> dict[str, Any]:
    """The node of a run's `placement` that `worker` runs; {} for a run in one process (no
    placement) or one whose placement does not name this worker."""
    nodes = (placement or {}).get("nodes") or []
    return next((node for node in nodes if node.get("worker") == worker), {})


def _held_run(run: Any, worker: str) -> WorkerRun | None:
    if run is None:
        return None
    node = worker_node(run.placement, worker)
    return WorkerRun(id=run.id, name=run.name, node_rank=node.get("node_rank"), ranks=node.get("ranks", []))

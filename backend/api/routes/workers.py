"""The workers table, with liveness from the heartbeat."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter
from sqlalchemy import select

from backend.deps import CurrentUser, SessionDep, SettingsDep
from backend.schemas import WorkerOut
from backend.store.models import WorkerRecord, as_utc, utcnow

router = APIRouter(tags=["workers"])


@router.get("/workers", response_model=list[WorkerOut])
def list_workers(session: SessionDep, settings: SettingsDep, _user: CurrentUser) -> list[WorkerOut]:
    """Every worker that has registered; `alive` = heartbeat within `stale_after_s`."""
    cutoff = utcnow() - timedelta(seconds=settings.stale_after_s)
    rows = session.scalars(select(WorkerRecord).order_by(WorkerRecord.name))
    return [
        WorkerOut.model_validate({**_columns(row), "alive": as_utc(row.heartbeat_at) > cutoff})
        for row in rows
    ]


def _columns(row: WorkerRecord) -> dict:
    return {column.key: getattr(row, column.key) for column in WorkerRecord.__table__.columns}

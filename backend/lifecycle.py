"""The run lifecycle (docs/architecture.md): every status change goes through here, so each one
is a single conditional UPDATE and leaves a `status` event for the live stream.

    queued -> running -> succeeded | failed | cancelled
    running -> stale   (heartbeat older than `stale_after_s`)
    stale | failed | cancelled -> queued   (requeue: resume from the newest checkpoint)
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from backend.models import Run, RunEvent, utcnow

REQUEUEABLE = ("stale", "failed", "cancelled")


def record_event(
    session: Session, run_id: int, kind: str, payload: dict[str, Any], step: int | None = None
) -> None:
    session.add(RunEvent(run_id=run_id, kind=kind, step=step, payload=payload))


def _status_event(session: Session, run_id: int, status: str, **extra: Any) -> None:
    record_event(session, run_id, "status", {"status": status, **extra})


def _transition(session: Session, run_id: int, allowed_from: tuple[str, ...], status: str, **values) -> bool:
    """One conditional UPDATE; True if this call made the change (race-safe across processes)."""
    result = session.execute(
        update(Run)
        .where(Run.id == run_id, Run.status.in_(allowed_from))
        .values(status=status, **values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return False
    _status_event(session, run_id, status)
    return True


def claim_run(session: Session, run_id: int, worker: str) -> bool:
    """queued -> running for exactly one worker. A second delivery of the same task message (or
    a second worker) finds the run no longer queued and gets False: it must do nothing."""
    now = utcnow()
    return _transition(
        session,
        run_id,
        ("queued",),
        "running",
        worker=worker,
        started_at=now,
        heartbeat_at=now,
        attempt=Run.attempt + 1,
        error=None,
        traceback=None,
    )


def heartbeat(session: Session, run_id: int, worker: str) -> bool:
    """Refresh a running run's heartbeat; False when the run is no longer this worker's."""
    result = session.execute(
        update(Run)
        .where(Run.id == run_id, Run.worker == worker, Run.status == "running")
        .values(heartbeat_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def finish_run(session: Session, run_id: int, worker: str, status: str, **values: Any) -> bool:
    """running -> succeeded | failed | cancelled (or back to queued after a SIGTERM), only if
    this worker still owns the run (a run marked stale meanwhile is not overwritten)."""
    result = session.execute(
        update(Run)
        .where(Run.id == run_id, Run.worker == worker, Run.status == "running")
        .values(status=status, finished_at=utcnow() if status != "queued" else None, **values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return False
    _status_event(session, run_id, status, error=values.get("error"))
    return True


def mark_stale(session: Session, stale_after_s: float, now: datetime | None = None) -> list[int]:
    """running runs whose heartbeat is older than `stale_after_s` become `stale`."""
    cutoff = (now or utcnow()) - timedelta(seconds=stale_after_s)
    ids = session.scalars(select(Run.id).where(Run.status == "running", Run.heartbeat_at < cutoff)).all()
    return [
        run_id
        for run_id in ids
        if _transition(session, run_id, ("running",), "stale", error="worker heartbeat lost")
    ]


def request_cancel(session: Session, run_id: int) -> str | None:
    """A queued run is cancelled at once; a running one is flagged and its worker stops after
    the current step (writing a checkpoint). Returns the resulting status, None if final."""
    if _transition(session, run_id, ("queued", "stale"), "cancelled", finished_at=utcnow()):
        return "cancelled"
    result = session.execute(
        update(Run)
        .where(Run.id == run_id, Run.status == "running")
        .values(cancel_requested=True)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == 1:
        record_event(session, run_id, "status", {"status": "running", "cancel_requested": True})
        return "running"
    return None


def requeue(session: Session, run_id: int) -> bool:
    """stale | failed | cancelled -> queued; the caller then sends the task again."""
    return _transition(
        session,
        run_id,
        REQUEUEABLE,
        "queued",
        cancel_requested=False,
        worker=None,
        finished_at=None,
        error=None,
        traceback=None,
    )


def fail_queued(session: Session, run_id: int, error: str) -> bool:
    """queued -> failed when the run's task message could not be sent (broker unreachable), so
    the run does not wait forever for a message that never came; requeue sends it again."""
    return _transition(session, run_id, ("queued",), "failed", finished_at=utcnow(), error=error)


def cancel_requested(session: Session, run_id: int) -> bool:
    return bool(session.scalar(select(Run.cancel_requested).where(Run.id == run_id)))

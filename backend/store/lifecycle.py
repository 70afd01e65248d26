"""The run lifecycle (docs/architecture.md): every status change goes through here, so each one
is a single conditional UPDATE and leaves a `status` event for the live stream.

    queued -> running -> succeeded | failed | cancelled
    running -> stale   (heartbeat older than `stale_after_s`)
    stale | failed | cancelled -> queued   (requeue: resume from the newest checkpoint)
    queued -> queued   (requeue, once no worker has claimed it for `queue_wait_warning_s`)
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from backend.store.models import Run, RunEvent, as_utc, utcnow

REQUEUEABLE = ("stale", "failed", "cancelled")
CANCELLABLE = ("queued", "running", "stale")
"""`request_cancel` ends a queued or stale run at once and asks a running one to stop."""


def record_event(
    session: Session, run_id: int, kind: str, payload: dict[str, Any], step: int | None = None
) -> None:
    session.add(RunEvent(run_id=run_id, kind=kind, step=step, payload=payload))


def _status_event(session: Session, run_id: int, status: str, **extra: Any) -> None:
    record_event(session, run_id, "status", {"status": status, **extra})


def _transition(
    session: Session,
    run_id: int,
    allowed_from: tuple[str, ...],
    status: str,
    note: dict[str, Any] | None = None,
    **values,
) -> bool:
    """One conditional UPDATE; True if this call made the change (race-safe across processes).
    `note` goes into the status event (the run's history, backend/store/history.py)."""
    result = session.execute(
        update(Run)
        .where(Run.id == run_id, Run.status.in_(allowed_from))
        .values(status=status, **values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return False
    _status_event(session, run_id, status, **(note or {}))
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
        note={"worker": worker},
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


def requeue(session: Session, run_id: int, queue_wait_warning_s: float) -> bool:
    """stale | failed | cancelled -> queued, or a queued run no worker has claimed for
    `queue_wait_warning_s` (its message lost, or no worker reads its queue) queued anew; the
    caller then sends the task again. Should both messages arrive, `claim_run` lets one train."""
    if _transition(
        session,
        run_id,
        REQUEUEABLE,
        "queued",
        cancel_requested=False,
        worker=None,
        finished_at=None,
        error=None,
        traceback=None,
    ):
        return True
    since = queued_since(session, [run_id]).get(run_id)
    if since is None or utcnow() - since < timedelta(seconds=queue_wait_warning_s):
        return False
    return _transition(session, run_id, ("queued",), "queued")


def queued_since(session: Session, run_ids: list[int]) -> dict[int, datetime]:
    """When each queued run among `run_ids` entered the queue: the time of its newest status
    event (its launch or last requeue; nothing else writes one while a run is queued)."""
    rows = session.execute(
        select(RunEvent.run_id, func.max(RunEvent.created_at))
        .join(Run, Run.id == RunEvent.run_id)
        .where(RunEvent.run_id.in_(run_ids), RunEvent.kind == "status", Run.status == "queued")
        .group_by(RunEvent.run_id)
    )
    return {run_id: as_utc(moment) for run_id, moment in rows}


def note_waiting_for_worker(session: Session, runs: list[Run], queue_wait_warning_s: float) -> None:
    """Set `waiting_for_worker_since` on each of `runs` queued longer than `queue_wait_warning_s`
    with no worker claiming it (the dashboard says so, and it may be requeued)."""
    cutoff = utcnow() - timedelta(seconds=queue_wait_warning_s)
    by_id = {run.id: run for run in runs}
    for run_id, since in queued_since(session, list(by_id)).items():
        if since <= cutoff:
            by_id[run_id].waiting_for_worker_since = since


def fail_queued(session: Session, run_id: int, error: str) -> bool:
    """queued -> failed when the run's task message could not be sent (broker unreachable), so
    the run does not wait forever for a message that never came; requeue sends it again."""
    return _transition(session, run_id, ("queued",), "failed", finished_at=utcnow(), error=error)


def cancel_requested(session: Session, run_id: int) -> bool:
    return bool(session.scalar(select(Run.cancel_requested).where(Run.id == run_id)))

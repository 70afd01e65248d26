"""Episodes on demand: while a run is running, someone who may change it asks for the episodes of
the step its worker is training (POST /api/runs/{id}/media/requests); the worker asks once per
step, before that step's episodes would be written, and records them even when it is no eval step
(`should_record_media` of `pcm_engine.trainer.Trainer.train`).

A request is one column, `runs.media_requested_at`: `request` sets it, `take` clears it in the same
conditional UPDATE that tells the worker it was set, so requests made during one step are one
recording and none is served twice. A request still pending when the run stops waits for its
next attempt (a requeued run records the first step it trains).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from backend.store.models import Run, utcnow

RECORDABLE = ("running",)
"""The statuses in which a run's episodes can be asked for: a worker is training it."""


def request(session: Session, run_id: int) -> datetime | None:
    """Ask for the episodes of a running run's current step; returns when it was asked, or None
    if the run is not running."""
    now = utcnow()
    result = session.execute(
        update(Run)
        .where(Run.id == run_id, Run.status.in_(RECORDABLE))
        .values(media_requested_at=now)
        .execution_options(synchronize_session=False)
    )
    return now if result.rowcount == 1 else None


def take(session: Session, run_id: int, worker: str) -> bool:
    """The worker's side: True (and the request cleared) if one is pending for its run."""
    result = session.execute(
        update(Run)
        .where(Run.id == run_id, Run.worker == worker, Run.media_requested_at.is_not(None))
        .values(media_requested_at=None)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1

"""A run's history as GET /api/runs/{id} tells it: the event timeline, built from the run's
`status` events (lifecycle.py writes the transitions, the worker its notes), and, while the run is
queued, its place in the queue and the live workers that could take it.

Timeline entries are `{"at", "kind", "detail"}`, `kind` one of `TIMELINE_KINDS`. Metrics and
chunk events, and the worker's progress notes (SFT epochs), are not history and stay out.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.store.lifecycle import queued_since
from backend.store.models import Run, RunEvent, WorkerRecord, as_utc, utcnow

HISTORY_KEY = "history"
"""Payload key of a status event that is a history note of the worker's (its value is the
timeline kind, its `message` the detail): start_training, start_reused, start_trained,
checkpoint, resumed."""

TIMELINE_KINDS = (
    "queued",
    "claimed",
    "start_training",
    "start_reused",
    "start_trained",
    "resumed",
    "checkpoint",
    "cancel_requested",
    "stale",
    "requeued",
    "cancelled",
    "failed",
    "succeeded",
)
FINISHED = ("stale", "cancelled", "failed", "succeeded")


def timeline(events: Iterable[RunEvent], cloned_from_id: int | None = None) -> list[dict[str, Any]]:
    """The run's history from its events in id order: claims are numbered (attempt n), a queued
    event after the first one is a requeue, and what the requeue came from is said."""
    entries: list[dict[str, Any]] = []
    attempts = 0
    checkpoints = 0  # checkpoints in the current row of them
    previous: str | None = None  # the status before this event
    for event in events:
        if event.kind != "status":
            continue
        payload = event.payload or {}
        status = payload.get("status")
        kind, detail = _entry(payload, status, previous, attempts + 1, cloned_from_id)
        if kind is None:
            continue
        if kind == "claimed":
            attempts += 1
        if not payload.get(HISTORY_KEY) and not payload.get("cancel_requested"):
            previous = status
        entry = {"at": as_utc(event.created_at), "kind": kind, "detail": detail}
        if kind == "checkpoint" and entries and entries[-1]["kind"] == "checkpoint":
            # a run of checkpoints is one entry, the newest, saying how many there were
            checkpoints += 1
            entry["detail"] = f"{detail} (the newest of {checkpoints} in a row)"
            entries[-1] = entry
            continue
        checkpoints = 1
        entries.append(entry)
    return entries


def _entry(
    payload: dict[str, Any],
    status: str | None,
    previous: str | None,
    attempt: int,
    cloned_from_id: int | None,
) -> tuple[str | None, str]:
    note = payload.get(HISTORY_KEY)
    if note in TIMELINE_KINDS:
        return note, str(payload.get("message") or "")
    if payload.get("cancel_requested"):
        return "cancel_requested", "the worker stops after its current step"
    if payload.get("message"):
        return None, ""  # a progress note, not history
    if status == "queued":
        if previous is None:
            return "queued", f"cloned from run #{cloned_from_id}" if cloned_from_id else "launched"
        if previous == "running":
            return "requeued", "its worker shut down; back in the queue, to resume from its newest checkpoint"
        if previous == "queued":
            return "requeued", "sent again: no worker had claimed it"
        return "requeued", f"from {previous}; resumes from its newest checkpoint"
    if status == "running":
        worker = payload.get("worker")
        return "claimed", f"by worker {worker} (attempt {attempt})" if worker else f"attempt {attempt}"
    if status in FINISHED:
        return status, str(payload.get("error") or "")
    return None, ""


def run_timeline(session: Session, run: Run) -> list[dict[str, Any]]:
    events = session.scalars(
        select(RunEvent).where(RunEvent.run_id == run.id, RunEvent.kind == "status").order_by(RunEvent.id)
    )
    return timeline(events, run.cloned_from_id)


def queue_place(session: Session, run: Run, stale_after_s: float) -> dict[str, Any] | None:
    """For a queued run: `position` (1 = next; runs are taken in the order they entered the
    queue), `ahead` (runs queued before it) and `workers`, the live workers that could take it
    (`busy` with `current_run_id`, or idle); None for a run that is not queued."""
    if run.status != "queued":
        return None
    queued = session.scalars(select(Run.id).where(Run.status == "queued")).all()
    since = queued_since(session, list(queued))
    mine = (since.get(run.id) or utcnow(), run.id)
    ahead = sum(1 for other, at in since.items() if other != run.id and (at, other) < mine)
    cutoff = utcnow() - timedelta(seconds=stale_after_s)
    wants_cuda = (run.config or {}).get("train", {}).get("device") == "cuda"
    workers = [
        {
            "name": w.name,
            "devices": w.devices,
            "busy": w.current_run_id is not None,
            "current_run_id": w.current_run_id,
        }
        for w in session.scalars(select(WorkerRecord).order_by(WorkerRecord.name))
        if as_utc(w.heartbeat_at) > cutoff and (not wants_cuda or "cuda" in w.devices)
    ]
    return {"position": ahead + 1, "ahead": ahead, "workers": workers}

"""Server-Sent Events from the `run_events` table.

Each event goes out as `id: <RunEvent.id>`, `event: <kind>`, `data: <json>`, in id order, so a
client reconnecting with `Last-Event-ID` gets exactly what it missed. Between reads the stream
waits for a wake-up (backend.store.wakeup). It ends, after flushing, once the run is final and nothing
newer is left — never before the first read, so a finished run still replays its history — or
as soon as the grant it was opened on (a token, a share link) is revoked or expires.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
from fastapi.responses import StreamingResponse
from sqlalchemy import select

from backend.store import wakeup
from backend.store.db import get_sessionmaker
from backend.store.models import FINAL_STATUSES, Run, RunEvent, as_utc
from backend.store.settings import Settings

KEEPALIVE_S = 15.0
BATCH = 500  # events per database read
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _read(url: str, run_id: int, after_id: int) -> tuple[str | None, list[RunEvent]]:
    """The run's status, then the events after `after_id`. Status first: an event committed
    before the run turned final is then surely in the batch (or the next one)."""
    with get_sessionmaker(url)() as session:
        run_status = session.scalar(select(Run.status).where(Run.id == run_id))
        events = list(
            session.scalars(
                select(RunEvent)
                .where(RunEvent.run_id == run_id, RunEvent.id > after_id)
                .order_by(RunEvent.id)
                .limit(BATCH)
            )
        )
    return run_status, events


def format_event(event: RunEvent) -> str:
    created = as_utc(event.created_at)
    data = {
        "id": event.id,
        "run_id": event.run_id,
        "kind": event.kind,
        "step": event.step,
        "payload": event.payload,
        "created_at": created.isoformat() if created else None,
    }
    return f"id: {event.id}\nevent: {event.kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def run_events(
    settings: Settings,
    run_id: int,
    after_id: int,
    is_disconnected: Callable[[], Awaitable[bool]],
    still_granted: Callable[[], bool],
) -> AsyncIterator[str]:
    url = settings.resolved_database_url
    clock = anyio.current_time
    last_sent = clock()
    yield "retry: 3000\n\n"
    listener = wakeup.Listener(settings, run_id)
    try:
        while not await is_disconnected():
            if not await anyio.to_thread.run_sync(still_granted):
                return
            run_status, events = await anyio.to_thread.run_sync(_read, url, run_id, after_id)
            for event in events:
                yield format_event(event)
                after_id = event.id
            if events:
                last_sent = clock()
                continue  # drain the backlog before waiting
            if run_status is None or run_status in FINAL_STATUSES:
                return
            if clock() - last_sent >= KEEPALIVE_S:
                yield ": keep-alive\n\n"
                last_sent = clock()
            await listener.wait()
    finally:
        await listener.close()


def event_stream_response(
    settings: Settings,
    run_id: int,
    after_id: int,
    is_disconnected: Callable[[], Awaitable[bool]],
    still_granted: Callable[[], bool],
) -> StreamingResponse:
    return StreamingResponse(
        run_events(settings, run_id, after_id, is_disconnected, still_granted),
        media_type="text/event-stream",
        headers=HEADERS,
    )

"""The live stream of a run (Server-Sent Events), for its members and for share links."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from backend.deps import SessionDep, SettingsDep, StreamedRun
from backend.schemas import INT64_MAX
from backend.sse import event_stream_response
from backend.store import credentials
from backend.store.db import get_sessionmaker
from backend.store.settings import Settings

router = APIRouter(tags=["events"])

LastEventIdHeader = Annotated[
    str | None, Header(alias="Last-Event-ID", description="Resume after this event id (sent by EventSource).")
]
LastEventIdQuery = Annotated[int | None, Query(ge=0, le=INT64_MAX, description="Resume after this event id.")]

STREAM_DESCRIPTION = (
    "`text/event-stream` of the run's events in id order (`event:` metrics | status | chunks). "
    "Resumable with `Last-Event-ID`; ends once the run is final and every event was sent. "
    "EventSource cannot send headers: pass a ticket (POST /api/tickets, purpose `events`) as "
    "`?ticket=`; never a token. The stream ends once the token or share link it was opened with "
    "(directly or through its ticket) is revoked or expires."
)
STREAM_RESPONSES = {200: {"content": {"text/event-stream": {}}, "description": "The event stream."}}


def resume_after(header: str | None, query: int | None) -> int:
    """The id to resume after: the later of the query parameter (where a page starts its stream)
    and the header (what EventSource sends when it reconnects); an unusable header is ignored
    (a fresh stream is always a safe answer)."""
    try:
        from_header = min(max(int(header or 0), 0), INT64_MAX)
    except ValueError:
        from_header = 0
    return max(query or 0, from_header)


def grant_checker(settings: Settings, grant: credentials.Grant) -> Callable[[], bool]:
    """What the stream asks on each wake-up: does the grant it was opened on still hold?"""

    def still_granted() -> bool:
        with get_sessionmaker(settings.resolved_database_url)() as session:
            return credentials.grant_is_live(session, grant, settings.token_ttl)

    return still_granted


@router.get(
    "/runs/{run_id}/events",
    response_class=StreamingResponse,
    responses=STREAM_RESPONSES,
    description=STREAM_DESCRIPTION,
)
def run_events(
    streamed: StreamedRun,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    last_event_id_header: LastEventIdHeader = None,
    last_event_id: LastEventIdQuery = None,
) -> StreamingResponse:
    run, grant = streamed
    session.close()  # the stream reads with its own short sessions; hold no connection meanwhile
    after = resume_after(last_event_id_header, last_event_id)
    return event_stream_response(
        settings, run.id, after, request.is_disconnected, grant_checker(settings, grant)
    )

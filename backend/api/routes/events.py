"""The live stream of a run (Server-Sent Events)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from backend.access import get_visible_run
from backend.deps import CurrentUser, RunId, SessionDep, SettingsDep
from backend.schemas import INT64_MAX
from backend.sse import event_stream_response

router = APIRouter(tags=["events"])

LastEventIdHeader = Annotated[
    str | None, Header(alias="Last-Event-ID", description="Resume after this event id (sent by EventSource).")
]
LastEventIdQuery = Annotated[int | None, Query(ge=0, le=INT64_MAX, description="Resume after this event id.")]

STREAM_DESCRIPTION = (
    "`text/event-stream` of the run's events in id order (`event:` metrics | status | chunks). "
    "Resumable with `Last-Event-ID`; ends once the run is final and every event was sent. "
    "EventSource cannot send headers: pass the token as `?access_token=`."
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


@router.get(
    "/runs/{run_id}/events",
    response_class=StreamingResponse,
    responses=STREAM_RESPONSES,
    description=STREAM_DESCRIPTION,
)
def run_events(
    run_id: RunId,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
    last_event_id_header: LastEventIdHeader = None,
    last_event_id: LastEventIdQuery = None,
) -> StreamingResponse:
    run = get_visible_run(session, user, run_id)
    session.close()  # the stream reads with its own short sessions; hold no connection meanwhile
    after = resume_after(last_event_id_header, last_event_id)
    return event_stream_response(settings, run.id, after, request.is_disconnected)

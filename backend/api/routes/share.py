"""Read-only share links: anyone with the link sees one run, its metrics, chunks and live stream."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import StreamingResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend import auth, series
from backend.access import get_visible_run, not_found, require_change
from backend.api.routes.events import (
    STREAM_DESCRIPTION,
    STREAM_RESPONSES,
    LastEventIdHeader,
    LastEventIdQuery,
    resume_after,
)
from backend.api.routes.metrics import MaxPointsQuery, NamesQuery, SinceQuery, StepQuery
from backend.deps import CurrentUser, RunId, SessionDep, SettingsDep, ShareLinkId
from backend.models import Run, ShareLink, utcnow
from backend.schemas import ChunksOut, MetricsOut, RunShared, ShareCreated, ShareLinkPublic
from backend.sse import event_stream_response

router = APIRouter(tags=["share"])


@router.post("/runs/{run_id}/share", status_code=status.HTTP_201_CREATED, response_model=ShareCreated)
def create_share_link(run_id: RunId, session: SessionDep, user: CurrentUser) -> ShareCreated:
    """A link that shows this run read-only to anyone who has it, until revoked."""
    run = get_visible_run(session, user, run_id)
    require_change(session, user, run, "share")
    link, secret = auth.create_share_link(session, run, user)
    session.commit()
    return ShareCreated(id=link.id, token=secret, url=f"/share/{secret}")


@router.get("/runs/{run_id}/share", response_model=list[ShareLinkPublic])
def list_share_links(run_id: RunId, session: SessionDep, user: CurrentUser) -> list[ShareLink]:
    run = get_visible_run(session, user, run_id)
    return list(session.scalars(select(ShareLink).where(ShareLink.run_id == run.id).order_by(ShareLink.id)))


@router.delete("/runs/{run_id}/share/{link_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_share_link(
    run_id: RunId, link_id: ShareLinkId, session: SessionDep, user: CurrentUser
) -> Response:
    run = get_visible_run(session, user, run_id)
    require_change(session, user, run, "unshare")
    link = session.get(ShareLink, link_id)
    if link is None or link.run_id != run.id:
        raise not_found("share link", link_id)
    if link.revoked_at is None:
        link.revoked_at = utcnow()
        session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _shared_run(session: Session, token: str) -> Run:
    run = auth.run_for_share_token(session, token)
    if run is None:
        raise not_found("share link", "(this token)")  # never echo a secret
    return run


@router.get("/share/{token}", response_model=RunShared)
def shared_run(token: str, session: SessionDep) -> Run:
    return _shared_run(session, token)


@router.get("/share/{token}/metrics", response_model=MetricsOut)
def shared_metrics(
    token: str,
    session: SessionDep,
    settings: SettingsDep,
    names: NamesQuery = None,
    since_step: SinceQuery = None,
    max_points: MaxPointsQuery = None,
) -> MetricsOut:
    run = _shared_run(session, token)
    return series.read_metrics(
        session, run.id, series.split_names(names), since_step, max_points or settings.max_series_points
    )


@router.get("/share/{token}/chunks", response_model=ChunksOut)
def shared_chunks(token: str, session: SessionDep, step: StepQuery = None) -> ChunksOut:
    return series.read_chunks(session, _shared_run(session, token).id, step)


@router.get(
    "/share/{token}/events",
    response_class=StreamingResponse,
    responses=STREAM_RESPONSES,
    description=STREAM_DESCRIPTION,
)
def shared_events(
    token: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    last_event_id_header: LastEventIdHeader = None,
    last_event_id: LastEventIdQuery = None,
) -> StreamingResponse:
    run_id = _shared_run(session, token).id
    session.close()
    after = resume_after(last_event_id_header, last_event_id)
    return event_stream_response(settings, run_id, after, request.is_disconnected)

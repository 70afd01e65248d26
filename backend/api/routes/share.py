"""Read-only share links. A link's token opens one run: `GET /api/share/{token}` shows the run and
its config, and the token is then the credential of that run's read routes — the very routes a
member reads (`/api/runs/{id}/metrics`, `/metric-names`, `/chunks`, `/events`; see
`backend.deps.ReadableRun`)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status
from sqlalchemy import select

from backend.access import get_visible_run, not_found, require_change
from backend.deps import CurrentUser, RunId, SessionDep, SettingsDep, ShareLinkId
from backend.schemas import RunShared, ShareCreated, ShareLinkPublic
from backend.store import credentials
from backend.store.models import Run, ShareLink

router = APIRouter(tags=["share"])


@router.post("/runs/{run_id}/share", status_code=status.HTTP_201_CREATED, response_model=ShareCreated)
def create_share_link(
    run_id: RunId, request: Request, session: SessionDep, settings: SettingsDep, user: CurrentUser
) -> ShareCreated:
    """A link that shows this run read-only to anyone who has it, until revoked: an absolute URL
    on `PCM_PUBLIC_URL` (the dashboard's address as others reach it), else on the address this
    request came to. Its secret is shown only now; the run's links are listed without it."""
    run = get_visible_run(session, user, run_id)
    require_change(session, user, run, "share")
    link, secret = credentials.create_share_link(session, run, user)
    session.commit()
    base = settings.public_base(str(request.base_url))
    return ShareCreated(id=link.id, token=secret, url=f"{base}/share/{secret}")


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
    credentials.revoke_share_link(session, link)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/share/{token}", response_model=RunShared)
def shared_run(token: str, session: SessionDep) -> Run:
    """The run a share token opens (its id leads to the run's read routes)."""
    run = credentials.run_for_share_token(session, token)
    if run is None:
        raise not_found("share link", "(this token)")  # never echo a secret
    return run

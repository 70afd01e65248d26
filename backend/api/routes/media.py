"""A run's recorded episodes (`pcm_engine.media`): the list, and each file, for whoever may read
the run (members, its share link). The file is named by its row id, never by a path from the
client, and must resolve inside the run's folder. While a run is running, whoever may change it
asks for the episodes of the step it is training (backend/store/media_requests.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from sqlalchemy import select

from backend.access import get_visible_run, not_found, require_change
from backend.api.routes.artifacts import file_on_disk, run_folder
from backend.deps import (
    BearerSecret,
    CurrentUser,
    ReadableRun,
    RunId,
    SessionDep,
    SettingsDep,
    TicketQuery,
    read_access,
    redeem_ticket,
)
from backend.schemas import INT32_MAX, INT64_MAX, MediaOut, MediaRequestOut
from backend.store import media_requests
from backend.store.models import Run, RunMedia, User
from backend.store.settings import Settings

router = APIRouter(prefix="/runs/{run_id}", tags=["media"])

MediaId = Annotated[int, PathParam(ge=1, le=INT64_MAX, description="A media id (from the listing).")]
StepFilter = Annotated[int | None, Query(ge=0, le=INT32_MAX, description="Only this step's episodes.")]
TaskFilter = Annotated[int | None, Query(ge=0, le=INT32_MAX, description="Only this task's episodes.")]


def media_url(run_id: int, media_id: int) -> str:
    return f"/api/runs/{run_id}/media/{media_id}/file"


@router.get("/media", response_model=list[MediaOut])
def list_media(
    run: ReadableRun, session: SessionDep, step: StepFilter = None, task: TaskFilter = None
) -> list[MediaOut]:
    """The run's recorded episodes (every `eval.every` steps, `eval.record_episodes` per task, and
    the steps asked for with POST .../media/requests), by step, task and trajectory."""
    query = select(RunMedia).where(RunMedia.run_id == run.id)
    if step is not None:
        query = query.where(RunMedia.step == step)
    if task is not None:
        query = query.where(RunMedia.task == task)
    rows = session.scalars(query.order_by(RunMedia.step, RunMedia.task, RunMedia.trajectory))
    return [
        MediaOut.model_validate(
            {
                **{name: getattr(row, name) for name in MediaOut.model_fields if name != "url"},
                "url": media_url(run.id, row.id),
            }
        )
        for row in rows
    ]


@router.post("/media/requests", status_code=status.HTTP_202_ACCEPTED, response_model=MediaRequestOut)
def request_media(run_id: RunId, session: SessionDep, user: CurrentUser) -> MediaRequestOut:
    """Record the episodes of the step the running run is training now, eval step or not
    (`eval.record_episodes` per task, 2 when that is 0): its worker writes them when the step
    ends and a `media` event announces them. Whoever may cancel the run may ask."""
    run = get_visible_run(session, user, run_id)
    require_change(session, user, run, "record episodes of")
    requested_at = media_requests.request(session, run.id)
    if requested_at is None:
        session.refresh(run)  # the status that refused it (it may have ended since it was read)
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"run {run.id} is {run.status}: episodes are recorded on demand only while it is running "
            "(its worker records the step it trains)",
        )
    session.commit()
    return MediaRequestOut(run_id=run.id, requested_at=requested_at, step=run.steps_done + 1)


def get_media_run(
    run_id: RunId,
    session: SessionDep,
    settings: SettingsDep,
    secret: BearerSecret,
    ticket: TicketQuery = None,
) -> Run:
    """The run, if the caller may read it: any credential `ReadableRun` takes (a member's token,
    the run's share link), or a `download` ticket for this run (a link, which sends no header)."""
    if ticket is None:
        return read_access(session, settings, run_id, secret)[0]
    redeemed = redeem_ticket(session, settings, ticket, "download")
    if redeemed.run_id != run_id or redeemed.user_id is None:
        raise not_found("run", run_id)
    return get_visible_run(session, session.get(User, redeemed.user_id), run_id)


def media_path(settings: Settings, run: Run, media: RunMedia) -> Path:
    """The file on disk: `media.path` under the run folder, which it may not leave (a bad row
    cannot serve other files)."""
    base = run_folder(settings, run)
    return file_on_disk(base / media.path, [base], f"media {media.id}", "its run folder", plain_file=True)


@router.get(
    "/media/{media_id}/file",
    response_class=FileResponse,
    responses={200: {"content": {"image/gif": {}}}},
)
def media_file(
    media_id: MediaId,
    run: Annotated[Run, Depends(get_media_run)],
    session: SessionDep,
    settings: SettingsDep,
) -> FileResponse:
    """The episode's animated image (the `url` of its listing)."""
    media = session.scalar(select(RunMedia).where(RunMedia.id == media_id, RunMedia.run_id == run.id))
    if media is None:
        raise not_found("media", media_id)
    return FileResponse(media_path(settings, run, media), media_type=media.content_type)

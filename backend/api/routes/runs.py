"""Runs: launch, list, inspect, cancel, requeue, clone, delete."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Response, status
from sqlalchemy import ColumnElement, delete, func, or_, select
from sqlalchemy.orm import Session, joinedload

from backend.access import (
    can_change,
    get_visible_run,
    launch_lab,
    require_change,
    require_delete,
    require_move,
    visible_run_ids,
    visible_runs,
)
from backend.deps import CurrentUser, RunId, SessionDep, SettingsDep
from backend.errors import FieldErrors, FieldProblem
from backend.schemas import INT32_MAX, MAX_TAG_LENGTH, RunClone, RunCreate, RunDetail, RunPatch, RunsPublic
from backend.start_policy import check_carried_start, start_policy_folder
from backend.store import history, launch, lifecycle, run_filters
from backend.store.models import Run, User
from backend.store.settings import Settings
from pcm_engine.config_keys import ConfigFilterError, parse_config_filter

log = logging.getLogger(__name__)
router = APIRouter(prefix="/runs", tags=["runs"])

SORT_KEYS = {
    "created_at": Run.created_at,
    "started_at": Run.started_at,
    "finished_at": Run.finished_at,
    "name": Run.name,
    "status": Run.status,
    "steps_done": Run.steps_done,
    "id": Run.id,
}
MAX_CONFIG_FILTERS = 20
Sort = Literal[tuple(f"{sign}{key}" for key in SORT_KEYS for sign in ("", "-"))]  # type: ignore[valid-type]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=RunDetail)
def create_run(body: RunCreate, session: SessionDep, settings: SettingsDep, user: CurrentUser) -> Run:
    """Check the caller may launch there and the request's size, then validate the config and
    its cost, insert a queued run and send its task. A bad config is a 422 whose `fields` name
    the dotted paths to fix."""
    lab = launch_lab(session, user, body.lab_id)
    launch.check_request_size(body.config, body.overrides, settings)
    launch.refuse_server_paths(body.config, body.overrides)
    if body.preset is not None:
        base, source = launch.load_preset(body.preset), "preset"
    else:
        base, source = body.config or {}, "config"
    start = start_policy_folder(session, settings, user, body.start_from) if body.start_from else None
    config = launch.build_config(base, body.overrides, body.name, source=source, start_policy=start)
    launch.check_resources(config, body.overrides, source, settings)
    preset = body.preset.removesuffix(".yaml") if body.preset else None
    run = launch.new_run(session, settings, user, config, lab=lab, visibility=body.visibility, preset=preset)
    run.may_change = True  # the caller launched it
    return run


@router.get("", response_model=RunsPublic)
def list_runs(
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
    status_: Annotated[
        str | None, Query(alias="status", description="One status, or several separated by commas.")
    ] = None,
    selector: str | None = None,
    env: str | None = None,
    owner: Annotated[str | None, Query(description="The owner's username.")] = None,
    lab: Annotated[int | None, Query(ge=1, le=INT32_MAX, description="A lab id.")] = None,
    q: Annotated[
        str | None, Query(max_length=200, description="Text in the run's name or notes (any case).")
    ] = None,
    config: Annotated[
        list[str] | None,
        Query(
            max_length=MAX_CONFIG_FILTERS,
            description="dotted.key=value: runs whose config holds that value (repeat for AND); the value "
            "is read as YAML, then as the field's type (`pcm.budget=2`, `pcm.selector=pcm`).",
        ),
    ] = None,
    tag: Annotated[
        str | None, Query(max_length=MAX_TAG_LENGTH, description="Runs carrying this tag.")
    ] = None,
    sort: Annotated[Sort, Query(description="A column, '-' first for descending.")] = "-created_at",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=INT32_MAX)] = 0,
) -> RunsPublic:
    filters: list[ColumnElement[bool]] = [visible_runs(user)]
    if status_:
        filters.append(Run.status.in_([s.strip() for s in status_.split(",") if s.strip()]))
    if selector:
        filters.append(Run.selector == selector)
    if env:
        filters.append(Run.env_name == env)
    if owner:
        filters.append(Run.owner_id.in_(select(User.id).where(User.username == owner)))
    if lab is not None:
        filters.append(Run.lab_id == lab)
    if q:
        filters.append(or_(Run.name.icontains(q, autoescape=True), Run.notes.icontains(q, autoescape=True)))
    dialect = session.get_bind().dialect.name
    filters.extend(run_filters.config_equals(dialect, *_config_filter(text)) for text in config or [])
    if tag:
        filters.append(run_filters.has_tag(dialect, tag))
    count = session.scalar(select(func.count()).select_from(Run).where(*filters)) or 0
    column = SORT_KEYS[sort.lstrip("-")]
    order = column.desc() if sort.startswith("-") else column.asc()
    runs = list(
        session.scalars(
            select(Run)
            .options(joinedload(Run.owner))
            .where(*filters)
            .order_by(order, Run.id.desc())
            .limit(limit)
            .offset(offset)
        )
    )
    lifecycle.note_waiting_for_worker(session, runs, settings.queue_wait_warning_s)
    return RunsPublic.model_validate({"data": runs, "count": count}, from_attributes=True)


def _config_filter(text: str) -> tuple[str, Any]:
    try:
        return parse_config_filter(text)
    except ConfigFilterError as err:
        raise FieldErrors(
            [FieldProblem(("query", "config"), str(err), "value_error.config_filter", err.key)]
        ) from None


@router.get("/{run_id}", response_model=RunDetail)
def get_run(run_id: RunId, session: SessionDep, settings: SettingsDep, user: CurrentUser) -> Run:
    run = get_visible_run(session, user, run_id)
    lifecycle.note_waiting_for_worker(session, [run], settings.queue_wait_warning_s)
    return with_history(session, settings, run, user)


def with_history(session: Session, settings: Settings, run: Run, user: User) -> Run:
    """`run` with its event timeline, while queued its place in the queue, and whether `user`
    may change it (RunDetail)."""
    run.events = history.run_timeline(session, run)
    run.queue = history.queue_place(session, run, settings.stale_after_s)
    if run.queue:  # a busy worker names its run only to those who may see it
        workers = run.queue["workers"]
        seen = visible_run_ids(session, user, (w["current_run_id"] for w in workers))
        for worker in workers:
            if worker["current_run_id"] not in seen:
                worker["current_run_id"] = None
    run.may_change = can_change(session, user, run)
    return run


@router.patch("/{run_id}", response_model=RunDetail)
def patch_run(
    run_id: RunId, body: RunPatch, session: SessionDep, settings: SettingsDep, user: CurrentUser
) -> Run:
    """Set a run's tags and/or notes (those who may cancel it may); fields left out stay."""
    run = get_visible_run(session, user, run_id)
    require_change(session, user, run, "edit")
    if body.tags is not None:
        run.tags = list(dict.fromkeys(body.tags))  # first occurrence wins, order kept
    if body.notes is not None:
        run.notes = body.notes
    session.commit()
    session.refresh(run)
    return with_history(session, settings, run, user)


def _final_status_conflict(run: Run, action: str, allowed: str) -> HTTPException:
    return HTTPException(
        status.HTTP_409_CONFLICT, f"run {run.id} is {run.status}: only {allowed} runs can be {action}"
    )


@router.post("/{run_id}/cancel", response_model=RunDetail)
def cancel_run(run_id: RunId, session: SessionDep, settings: SettingsDep, user: CurrentUser) -> Run:
    """A queued (or stale) run is cancelled at once; a running one stops after its current step."""
    run = get_visible_run(session, user, run_id)
    require_change(session, user, run, "cancel")
    if lifecycle.request_cancel(session, run.id) is None:
        raise _final_status_conflict(run, "cancelled", "queued, running or stale")
    session.commit()
    session.refresh(run)
    return with_history(session, settings, run, user)


@router.post("/{run_id}/requeue", response_model=RunDetail)
def requeue_run(run_id: RunId, session: SessionDep, settings: SettingsDep, user: CurrentUser) -> Run:
    """A stale, failed or cancelled run goes back to the queue and resumes from its newest
    checkpoint; a run queued longer than `queue_wait_warning_s` with no worker claiming it is
    sent again."""
    run = get_visible_run(session, user, run_id)
    require_change(session, user, run, "requeue")
    if not lifecycle.requeue(session, run.id, settings.queue_wait_warning_s):
        allowed = f"{', '.join(lifecycle.REQUEUEABLE)} (or queued over {settings.queue_wait_warning_s:g} s)"
        raise _final_status_conflict(run, "requeued", allowed)
    session.commit()
    launch.send(session, settings, run)
    session.refresh(run)
    return with_history(session, settings, run, user)


@router.post("/{run_id}/clone", status_code=status.HTTP_201_CREATED, response_model=RunDetail)
def clone_run(
    run_id: RunId, body: RunClone, session: SessionDep, settings: SettingsDep, user: CurrentUser
) -> Run:
    """A new queued run from this run's stored config plus `overrides`. Copying a run out of its
    lab (another lab, or public) needs the right to change it; its starting policy comes along
    only if the caller may read that too."""
    source = get_visible_run(session, user, run_id)
    lab = launch_lab(session, user, body.lab_id if body.lab_id is not None else source.lab_id)
    visibility = body.visibility or source.visibility
    require_move(session, user, source, lab.id, visibility)
    launch.check_request_size(None, body.overrides, settings)
    launch.refuse_server_paths(None, body.overrides)
    if body.start_from is not None:
        start = start_policy_folder(session, settings, user, body.start_from)
    else:
        start = None
        check_carried_start(session, user, source, body.overrides)
    name = body.name or f"{source.name} (copy)"[:200]
    config = launch.build_config(source.config, body.overrides, name, source="config", start_policy=start)
    launch.check_resources(config, body.overrides, "config", settings)
    copy = launch.new_run(
        session, settings, user, config, lab=lab, visibility=visibility, preset=source.preset
    )
    copy.cloned_from_id = source.id  # lineage (the copy's timeline says so)
    session.commit()
    session.refresh(copy)
    return with_history(session, settings, copy, user)


@router.delete("/{run_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_run(run_id: RunId, session: SessionDep, settings: SettingsDep, user: CurrentUser) -> Response:
    """Delete a run that is not running, with its metrics, events, artifacts rows and run folder."""
    run = get_visible_run(session, user, run_id)
    require_delete(session, user, run)
    run_dir = run.run_dir
    # Conditional, so a worker claiming the run meanwhile makes this a 409 rather than an orphan.
    deleted = session.execute(
        delete(Run)
        .where(Run.id == run.id, Run.status != "running")
        .execution_options(synchronize_session=False)
    ).rowcount
    if deleted != 1:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"run {run.id} is running: cancel it first (POST /api/runs/{run.id}/cancel)",
        )
    session.commit()
    _remove_run_dir(settings, run_dir)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _remove_run_dir(settings: Settings, run_dir: str | None) -> None:
    """Remove the run's folder, but only inside the data dir (never a path we don't own)."""
    if not run_dir:
        return
    path, root = Path(run_dir).resolve(), settings.data_dir.resolve()
    if path.is_dir() and path.is_relative_to(root) and path != root:
        shutil.rmtree(path, ignore_errors=True)
        log.info("removed run folder %s", path)

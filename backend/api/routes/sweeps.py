"""Sweeps: launch a grid of runs (config values x seeds) as one, read it aggregated per arm
(mean and 95% interval over seeds), cancel it, add seeds, share it whole.

Who may do what follows the runs: a sweep is seen by whoever may see its runs (its lab and
visibility are theirs), launched and extended by an owner or member of its lab, cancelled and
shared by whoever may change its runs (backend/access.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.access import can_change, launch_lab, not_found, visible_runs
from backend.api.routes.compare import LevelQuery, MaxPointsQuery, SuccessQuery
from backend.deps import (
    BearerSecret,
    CurrentUser,
    SessionDep,
    SettingsDep,
    ShareLinkId,
    get_current_user,
    identify,
)
from backend.schemas import (
    INT64_MAX,
    RunPublic,
    ShareCreated,
    ShareLinkPublic,
    SweepCreate,
    SweepCreated,
    SweepOut,
    SweepSeeds,
    SweepSummary,
)
from backend.start_policy import start_policy_folder
from backend.store import credentials, launch, lifecycle, series, sweeps
from backend.store.credentials import SHARE_PREFIX
from backend.store.models import ShareLink, Sweep, User
from backend.store.settings import Settings
from pcm_engine import metrics as M

router = APIRouter(tags=["sweeps"])
SweepId = Annotated[int, Path(ge=1, le=INT64_MAX, description="A sweep id.")]
MAX_NAMES = 20


def get_visible_sweep(session: Session, user: User, sweep_id: int) -> Sweep:
    sweep = session.scalar(select(Sweep).where(Sweep.id == sweep_id, visible_runs(user, Sweep)))
    if sweep is None:
        raise not_found("sweep", sweep_id)
    return sweep


def readable_sweep(session: Session, settings: Settings, sweep_id: int, secret: str | None) -> Sweep:
    """The sweep, for a user who may see it or with a share token made for it (404 otherwise)."""
    if secret is not None and secret.startswith(SHARE_PREFIX):
        link = credentials.live_share_link(session, secret)
        sweep = session.get(Sweep, sweep_id) if link is not None and link.sweep_id == sweep_id else None
        if sweep is None:
            raise not_found("sweep", sweep_id)
        return sweep
    return get_visible_sweep(session, get_current_user(identify(session, settings, secret).user), sweep_id)


@router.post("/sweeps", status_code=status.HTTP_201_CREATED, response_model=SweepCreated)
def create_sweep(
    body: SweepCreate, session: SessionDep, settings: SettingsDep, user: CurrentUser
) -> SweepCreated:
    """One run per grid point x seed, each validated as POST /api/runs validates a run and given
    its seed as `train.seed`. Nothing is created unless every run would be: a bad grid key, a
    point whose config fails, or more runs than a sweep holds is a 422 naming the field."""
    lab = launch_lab(session, user, body.lab_id)
    launch.check_request_size(body.config, {**body.overrides, **body.grid}, settings)
    launch.refuse_server_paths(body.config, body.overrides)
    if body.preset is not None:
        base, source = launch.load_preset(body.preset), "preset"
    else:
        base, source = body.config or {}, "config"
    start = start_policy_folder(session, settings, user, body.start_from) if body.start_from else None
    recipe = sweeps.Recipe(base, source, body.overrides, body.grid, body.name, start)
    preset = body.preset.removesuffix(".yaml") if body.preset else None
    sweep, runs = sweeps.create(
        session,
        settings,
        user,
        recipe,
        body.seeds,
        lab=lab,
        visibility=body.visibility,
        preset=preset,
        start_from=body.start_from.model_dump(exclude_none=True) if body.start_from else None,
    )
    return SweepCreated(id=sweep.id, runs=[run.id for run in runs])


@router.get("/sweeps", response_model=list[SweepSummary])
def list_sweeps(
    session: SessionDep, user: CurrentUser, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[Sweep]:
    """The sweeps the caller may see, newest first."""
    query = select(Sweep).where(visible_runs(user, Sweep)).order_by(Sweep.id.desc()).limit(limit)
    return list(session.scalars(query))


@router.get("/sweeps/{sweep_id}", response_model=SweepOut)
def get_sweep(
    sweep_id: SweepId,
    session: SessionDep,
    settings: SettingsDep,
    secret: BearerSecret,
    names: Annotated[
        str | None,
        Query(description=f"Metric names separated by commas; default: {', '.join(sweeps.KEY_METRICS)}."),
    ] = None,
    max_points: MaxPointsQuery = None,
    success: SuccessQuery = M.EVAL_SUCCESS,
    level: LevelQuery = 0.5,
) -> SweepOut:
    """The sweep and its arms: per arm the mean and 95% t-interval over seeds of each series
    (`[[step, mean, lo, hi], ...]`; one seed: lo = hi = mean), of the training seconds per step,
    of its costs, and of its cost ratios to the sweep's plain-GRPO arm, seed by seed."""
    sweep = readable_sweep(session, settings, sweep_id, secret)
    wanted = series.split_names(names) or list(sweeps.KEY_METRICS)
    if len(wanted) > MAX_NAMES:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"names: at most {MAX_NAMES} metric names")
    runs = sweeps.sweep_runs(session, sweep.id)
    lifecycle.note_waiting_for_worker(session, runs, settings.queue_wait_warning_s)
    limit = max_points or settings.max_series_points
    return SweepOut.model_validate(
        {
            **SweepSummary.model_validate(sweep).model_dump(),
            "runs": [run.id for run in runs],
            "run_details": [RunPublic.model_validate(run) for run in runs],
            "arms": sweeps.summarise(session, sweep, runs, wanted, success, level, limit),
            "success": success,
            "level": level,
        }
    )


def changeable_sweep(session: Session, user: User, sweep_id: int, action: str) -> Sweep:
    """The sweep, if the caller may change its runs (the rule of `can_change`: its owner, an owner
    or member of its lab, an admin); 403 for a reader, 404 for anyone else."""
    sweep = get_visible_sweep(session, user, sweep_id)
    if not can_change(session, user, sweep):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"you may view sweep {sweep.id} but not {action} it: that needs the role owner or member "
            "in its lab (ask a lab owner to change your role)",
        )
    return sweep


@router.post("/sweeps/{sweep_id}/cancel")
def cancel_sweep(sweep_id: SweepId, session: SessionDep, user: CurrentUser) -> dict[str, list[int]]:
    """Cancel every unfinished run of the sweep (queued ones at once, running ones after their step)."""
    sweep = changeable_sweep(session, user, sweep_id, "cancel")
    return {"cancelled": sweeps.cancel(session, sweep)}


@router.post("/sweeps/{sweep_id}/seeds", status_code=status.HTTP_201_CREATED, response_model=SweepCreated)
def add_seeds(
    sweep_id: SweepId, body: SweepSeeds, session: SessionDep, settings: SettingsDep, user: CurrentUser
) -> SweepCreated:
    """A run of each new seed in every arm, made as the sweep's first runs were."""
    sweep = changeable_sweep(session, user, sweep_id, "extend")
    lab = launch_lab(session, user, sweep.lab_id)
    runs = sweeps.add_seeds(session, settings, user, sweep, body.seeds, lab)
    return SweepCreated(id=sweep.id, runs=[run.id for run in runs])


@router.post("/sweeps/{sweep_id}/share", status_code=status.HTTP_201_CREATED, response_model=ShareCreated)
def share_sweep(
    sweep_id: SweepId, request: Request, session: SessionDep, settings: SettingsDep, user: CurrentUser
) -> ShareCreated:
    """A link that shows the sweep page, and every run of the sweep, read-only, until revoked (on
    `PCM_PUBLIC_URL`, as a run's link is)."""
    sweep = changeable_sweep(session, user, sweep_id, "share")
    link, secret = credentials.create_sweep_share_link(session, sweep, user)
    session.commit()
    base = settings.public_base(str(request.base_url))
    return ShareCreated(id=link.id, token=secret, url=f"{base}/share/sweeps/{secret}")


@router.get("/sweeps/{sweep_id}/share", response_model=list[ShareLinkPublic])
def list_sweep_share_links(sweep_id: SweepId, session: SessionDep, user: CurrentUser) -> list[ShareLink]:
    sweep = get_visible_sweep(session, user, sweep_id)
    return list(
        session.scalars(select(ShareLink).where(ShareLink.sweep_id == sweep.id).order_by(ShareLink.id))
    )


@router.delete("/sweeps/{sweep_id}/share/{link_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_sweep_share_link(
    sweep_id: SweepId, link_id: ShareLinkId, session: SessionDep, user: CurrentUser
) -> Response:
    sweep = changeable_sweep(session, user, sweep_id, "unshare")
    link = session.get(ShareLink, link_id)
    if link is None or link.sweep_id != sweep.id:
        raise not_found("share link", link_id)
    credentials.revoke_share_link(session, link)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/share/sweeps/{token}", response_model=SweepSummary)
def shared_sweep(token: str, session: SessionDep) -> Sweep:
    """The sweep a share token opens; its id leads to GET /api/sweeps/{id} with the token."""
    link = credentials.live_share_link(session, token)
    sweep = None if link is None or link.sweep_id is None else session.get(Sweep, link.sweep_id)
    if sweep is None:
        raise not_found("share link", "(this token)")  # never echo a secret
    return sweep

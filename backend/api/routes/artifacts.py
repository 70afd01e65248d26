"""Checkpoints and exported policies of a run: listing and download (a folder as a zip)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import FileResponse
from sqlalchemy import select
from starlette.background import BackgroundTask

from backend.access import get_visible_run, not_found, visible_runs
from backend.deps import ArtifactId, CurrentUser, DownloaderDep, RunId, SessionDep, SettingsDep
from backend.schemas import ArtifactOut
from backend.store.models import Artifact, Run
from backend.store.settings import Settings

router = APIRouter(tags=["artifacts"])


@router.get("/runs/{run_id}/artifacts", response_model=list[ArtifactOut])
def list_artifacts(
    run_id: RunId, session: SessionDep, settings: SettingsDep, user: CurrentUser
) -> list[ArtifactOut]:
    """The run's artifacts, each named by its folder inside the run (never a server path)."""
    run = get_visible_run(session, user, run_id)
    rows = session.scalars(
        select(Artifact).where(Artifact.run_id == run.id).order_by(Artifact.step, Artifact.id)
    )
    return [
        ArtifactOut.model_validate({**public_fields(row), "name": artifact_name(settings, run, row)})
        for row in rows
    ]


def public_fields(artifact: Artifact) -> dict[str, object]:
    return {name: getattr(artifact, name) for name in ArtifactOut.model_fields if name != "name"}


def run_folder(settings: Settings, run: Run) -> Path:
    return Path(run.run_dir) if run.run_dir else settings.runs_dir / str(run.id)


def artifact_name(settings: Settings, run: Run, artifact: Artifact) -> str:
    """The artifact's folder relative to its run's folder (just its last part if it lies elsewhere)."""
    path = Path(artifact.path)
    base = run_folder(settings, run)
    return path.relative_to(base).as_posix() if path.is_relative_to(base) else path.name


def file_on_disk(path: Path, roots: list[Path], what: str, outside: str, *, plain_file: bool = False) -> Path:
    """`path` resolved, if it lies under one of `roots` (403 "<what> lies outside <outside>"
    otherwise: a bad row cannot serve arbitrary files) and is still there (404), as a plain file
    if `plain_file`."""
    path = path.resolve()
    if not any(path.is_relative_to(root.resolve()) for root in roots):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"{what} lies outside {outside}")
    if not (path.is_file() if plain_file else path.exists()):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{what} is no longer on disk")
    return path


def artifact_path(settings: Settings, run: Run, artifact: Artifact) -> Path:
    """The artifact on disk. Relative paths are relative to the run folder; either way it must lie
    inside the data dir or the run folder, so a bad row cannot serve arbitrary files."""
    base = run_folder(settings, run)
    return file_on_disk(
        base / artifact.path, [settings.data_dir, base], f"artifact {artifact.id}", "the data directory"
    )


@router.get(
    "/artifacts/{artifact_id}/download",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}, "application/zip": {}}}},
)
def download_artifact(
    artifact_id: ArtifactId, session: SessionDep, settings: SettingsDep, downloader: DownloaderDep
) -> FileResponse:
    """The file, or a folder (a checkpoint, a policy) zipped on the fly. A link (which cannot
    send headers) passes a ticket: POST /api/tickets, purpose `download`, then `?ticket=`."""
    artifact = session.get(Artifact, artifact_id)
    run = (
        session.scalar(select(Run).where(Run.id == artifact.run_id, visible_runs(downloader.user)))
        if artifact and downloader.run_id in (None, artifact.run_id)
        else None
    )
    if artifact is None or run is None:
        raise not_found("artifact", artifact_id)
    path = artifact_path(settings, run, artifact)
    if path.is_file():
        return FileResponse(path, filename=path.name, media_type="application/octet-stream")
    workdir = tempfile.mkdtemp(prefix="pcm-artifact-")
    archive = shutil.make_archive(str(Path(workdir) / path.name), "zip", root_dir=path)
    return FileResponse(
        archive,
        filename=f"run{run.id}-{path.name}.zip",
        media_type="application/zip",
        background=BackgroundTask(shutil.rmtree, workdir, ignore_errors=True),
    )

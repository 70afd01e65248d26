"""The policy a run launched over the API starts from. A caller names it by a run or an artifact
it may read (`start_from: {run: ID}` / `{artifact: ID}`), under the rule of downloads
(`backend.access`); the server turns that into the folder the worker loads, `policy.pretrained`.
A caller never writes that path, and no answer shows it: an id it may not read is refused with
the same words whether or not it exists."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.access import readable_artifact, visible_runs
from backend.api.routes.artifacts import artifact_path
from backend.errors import FieldErrors, FieldProblem
from backend.schemas import PolicyRef
from backend.store.launch import PRETRAINED
from backend.store.models import Artifact, Run, User
from backend.store.settings import Settings

POLICY = "policy"  # the artifact kind of an exported policy, the folder `from_pretrained` loads


def _refused(where: tuple[str, ...], message: str) -> FieldErrors:
    return FieldErrors([FieldProblem(("body", "start_from", *where), message)])


def start_policy_folder(session: Session, settings: Settings, user: User, ref: PolicyRef) -> str:
    """The folder of the policy `ref` names, if `user` may read it; otherwise a 422 on the field."""
    if ref.run is not None:
        where, (artifact, run) = ("run",), _exported_policy(session, user, ref.run)
    else:
        assert ref.artifact is not None  # PolicyRef holds exactly one
        where, (artifact, run) = ("artifact",), _policy_artifact(session, user, ref.artifact)
    try:
        return str(artifact_path(settings, run, artifact))
    except HTTPException:
        raise _refused(where, f"artifact {artifact.id} is no longer on disk") from None


def _exported_policy(session: Session, user: User, run_id: int) -> tuple[Artifact, Run]:
    run = session.scalar(select(Run).where(Run.id == run_id, visible_runs(user)))
    if run is None:
        raise _refused(("run",), f"no run {run_id} that you may read")
    artifact = session.scalar(
        select(Artifact)
        .where(Artifact.run_id == run.id, Artifact.kind == POLICY)
        .order_by(Artifact.step.desc(), Artifact.id.desc())
        .limit(1)
    )
    if artifact is None:
        raise _refused(("run",), f"run {run_id} has no exported policy (a run exports one when it succeeds)")
    return artifact, run


def _policy_artifact(session: Session, user: User, artifact_id: int) -> tuple[Artifact, Run]:
    try:
        artifact, run = readable_artifact(session, user, artifact_id)
    except HTTPException:
        raise _refused(("artifact",), f"no artifact {artifact_id} that you may read") from None
    if artifact.kind != POLICY:
        raise _refused(
            ("artifact",),
            f"artifact {artifact_id} is a {artifact.kind}: a run starts from an exported policy "
            f"(an artifact of kind '{POLICY}')",
        )
    return artifact, run


def check_carried_start(session: Session, user: User, source: Run, overrides: dict[str, Any]) -> None:
    """A clone keeps its source's `policy.pretrained` only if the cloner may read that policy
    too: an exported policy of a run they can see. Anything else — another lab's policy, or a
    path given on the CLI — would carry a server path across labs, so the clone must name its
    start (`start_from`) or drop it (`policy.pretrained: null`)."""
    folder = (source.config.get("policy") or {}).get("pretrained")
    if folder is None or PRETRAINED in overrides:
        return
    readable = session.scalar(
        select(Artifact.id)
        .join(Run, Run.id == Artifact.run_id)
        .where(Artifact.path == folder, Artifact.kind == POLICY, visible_runs(user))
        .limit(1)
    )
    if readable is None:
        raise FieldErrors(
            [
                FieldProblem(
                    ("body", "start_from"),
                    f"run {source.id} starts from a policy you may not read: give start_from "
                    "({run: ID} or {artifact: ID}), or the override policy.pretrained: null",
                    field=PRETRAINED,
                )
            ]
        )

"""Who may see, launch, change and share runs.

Seeing: a private run only its owner; a lab run every member of its lab (any role); a public run
every signed-in user; admins everything. A run the caller may not see is a 404, never a 403, so
its existence does not leak. Changing (cancel, requeue, share, tags and notes, recording a running
run's next step) and launching into a lab need the role owner or member in that lab (or owning
the run); viewers get a 403. Copying a run out of its lab (a clone into another lab, or made
public) needs the same right to change it. The whole table is in docs/architecture.md,
"Who may do what".
"""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import HTTPException, status
from sqlalchemy import ColumnElement, and_, or_, select, true
from sqlalchemy.orm import Session

from backend.store.models import Artifact, Lab, Membership, Run, Sweep, User

WRITE_ROLES = ("owner", "member")


def lab_role(session: Session, user: User, lab_id: int | None) -> str | None:
    if lab_id is None:
        return None
    return session.scalar(
        select(Membership.role).where(Membership.user_id == user.id, Membership.lab_id == lab_id)
    )


def visible_runs(user: User, model: type[Run] | type[Sweep] = Run) -> ColumnElement[bool]:
    """A WHERE clause selecting the runs (or, with `model=Sweep`, the sweeps) `user` may see."""
    if user.is_admin:
        return true()
    my_labs = select(Membership.lab_id).where(Membership.user_id == user.id)
    return or_(
        model.owner_id == user.id,
        model.visibility == "public",
        and_(model.visibility == "lab", model.lab_id.in_(my_labs)),
    )


def visible_run_ids(session: Session, user: User, ids: Iterable[int | None]) -> set[int]:
    """Those of the run ids `ids` that `user` may see (None and unknown ids left out)."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return set()
    return set(session.scalars(select(Run.id).where(Run.id.in_(wanted), visible_runs(user))))


def not_found(what: str, ident: object) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"{what} {ident} not found")


def get_visible_run(session: Session, user: User, run_id: int) -> Run:
    run = session.scalar(select(Run).where(Run.id == run_id, visible_runs(user)))
    if run is None:
        raise not_found("run", run_id)
    return run


def readable_artifact(session: Session, user: User, artifact_id: int) -> tuple[Artifact, Run]:
    """An artifact and its run, if the caller may see the run (the rule of downloads, and of a
    run started from an artifact); otherwise a 404, the same whether it exists or not."""
    found = session.execute(
        select(Artifact, Run)
        .join(Run, Run.id == Artifact.run_id)
        .where(Artifact.id == artifact_id, visible_runs(user))
    ).one_or_none()
    if found is None:
        raise not_found("artifact", artifact_id)
    artifact, run = found
    return artifact, run


def can_change(session: Session, user: User, run: Run | Sweep) -> bool:
    """Cancel, requeue or share: the run's (or sweep's) owner, an owner/member of its lab, or an admin."""
    return user.is_admin or run.owner_id == user.id or lab_role(session, user, run.lab_id) in WRITE_ROLES


def require_change(session: Session, user: User, run: Run, action: str) -> None:
    if not can_change(session, user, run):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"you may view run {run.id} but not {action} it: that needs the role owner or member "
            f"in its lab (ask a lab owner to change your role)",
        )


VISIBILITY_REACH = {"private": 0, "lab": 1, "public": 2}


def require_move(session: Session, user: User, run: Run, lab_id: int | None, visibility: str) -> None:
    """A copy of `run` (a clone) in lab `lab_id` with `visibility` moves the run's work to people
    who could not see it — another lab, or everyone — unless the run is public already. That
    needs the right to change the run (owner or member of its lab, the run's owner, an admin):
    a viewer reads a lab's runs but may not take them out of it."""
    if run.visibility == "public":
        return
    wider = VISIBILITY_REACH[visibility] > VISIBILITY_REACH[run.visibility]
    if (lab_id != run.lab_id or wider) and not can_change(session, user, run):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"you may view run {run.id} but not copy it out of its lab (into another lab, or "
            "public): that needs the role owner or member in its lab",
        )


def require_delete(session: Session, user: User, run: Run) -> None:
    """Deleting loses data for everyone: only the run's owner, its lab's owner, or an admin."""
    if not (user.is_admin or run.owner_id == user.id or lab_role(session, user, run.lab_id) == "owner"):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"only the owner of run {run.id}, an owner of its lab, or an admin may delete it",
        )


def launch_lab(session: Session, user: User, lab_id: int | None) -> Lab:
    """The lab a new run goes to: `lab_id`, or the user's first lab with a launching role.
    403 when the user may not launch there."""
    if lab_id is None:
        lab = session.scalar(
            select(Lab)
            .join(Membership)
            .where(Membership.user_id == user.id, Membership.role.in_(WRITE_ROLES))
            .order_by(Lab.id)
            .limit(1)
        )
        if lab is None and user.is_admin:
            lab = session.scalar(select(Lab).order_by(Lab.id).limit(1))
        if lab is None:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                "you are not an owner or member of any lab: ask a lab owner to add you "
                "(POST /api/labs/{id}/members), or an admin to create a lab for you",
            )
        return lab
    lab = session.get(Lab, lab_id)
    role = lab_role(session, user, lab_id) if lab is not None else None
    if lab is None or (role is None and not user.is_admin):
        raise not_found("lab", lab_id)
    if role not in WRITE_ROLES and not user.is_admin:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"your role in lab '{lab.name}' is {role}: launching runs needs owner or member",
        )
    return lab

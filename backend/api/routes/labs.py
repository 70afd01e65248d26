"""Labs and their members. Admins create labs (the creator is its first owner); owners manage
members. Who may do what: docs/architecture.md."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response, status
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from backend.access import lab_role, not_found
from backend.deps import CurrentUser, LabId, SessionDep, UserId
from backend.schemas import LabCreate, LabDetail, LabPublic, MemberAdd, MemberOut
from backend.store.models import Lab, Membership, Run, ShareLink, Sweep, User, utcnow

router = APIRouter(prefix="/labs", tags=["labs"])


def _visible_lab(session: Session, user: User, lab_id: int) -> tuple[Lab, str | None]:
    lab = session.get(Lab, lab_id)
    role = lab_role(session, user, lab_id) if lab is not None else None
    if lab is None or (role is None and not user.is_admin):
        raise not_found("lab", lab_id)
    return lab, role


def _require_owner(lab: Lab, role: str | None, user: User) -> None:
    if role != "owner" and not user.is_admin:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"only an owner of lab '{lab.name}' may change its members"
        )


def _detail(session: Session, lab: Lab, role: str | None) -> LabDetail:
    rows = session.execute(
        select(Membership.user_id, User.username, Membership.role)
        .join(User, User.id == Membership.user_id)
        .where(Membership.lab_id == lab.id)
        .order_by(User.username)
    )
    members = [MemberOut(user_id=uid, username=name, role=r) for uid, name, r in rows]
    return LabDetail(id=lab.id, name=lab.name, created_at=lab.created_at, role=role, members=members)


@router.get("", response_model=list[LabPublic])
def list_labs(session: SessionDep, user: CurrentUser) -> list[LabPublic]:
    """Your labs with your role (an admin sees every lab)."""
    roles = dict(
        session.execute(select(Membership.lab_id, Membership.role).where(Membership.user_id == user.id)).all()
    )
    query = select(Lab).order_by(Lab.id)
    if not user.is_admin:
        query = query.where(Lab.id.in_(roles))
    return [
        LabPublic(id=lab.id, name=lab.name, created_at=lab.created_at, role=roles.get(lab.id))
        for lab in session.scalars(query)
    ]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=LabDetail)
def create_lab(body: LabCreate, session: SessionDep, user: CurrentUser) -> LabDetail:
    """Admins only: a lab's owner can launch runs into it, so a lab of one's own would lift a
    viewer's (or anyone's) limits elsewhere."""
    if not user.is_admin:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "only an admin creates labs: ask an admin for one, or to be added"
        )
    if session.scalar(select(Lab.id).where(Lab.name == body.name)) is not None:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"a lab named '{body.name}' already exists: pick another name"
        )
    lab = Lab(name=body.name)
    session.add(lab)
    session.flush()
    session.add(Membership(user_id=user.id, lab_id=lab.id, role="owner"))
    session.commit()
    return _detail(session, lab, "owner")


@router.get("/{lab_id}", response_model=LabDetail)
def get_lab(lab_id: LabId, session: SessionDep, user: CurrentUser) -> LabDetail:
    lab, role = _visible_lab(session, user, lab_id)
    return _detail(session, lab, role)


@router.post("/{lab_id}/members", response_model=LabDetail)
def add_member(lab_id: LabId, body: MemberAdd, session: SessionDep, user: CurrentUser) -> LabDetail:
    """Add a user to the lab, or change their role. An unknown username is answered like a known
    one (the lab as it is), so the reply does not tell which usernames exist."""
    lab, role = _visible_lab(session, user, lab_id)
    _require_owner(lab, role, user)
    member = session.scalar(select(User).where(User.username == body.username))
    if member is None:
        return _detail(session, lab, role)
    membership = session.get(Membership, (member.id, lab.id))
    if membership is None:
        session.add(Membership(user_id=member.id, lab_id=lab.id, role=body.role))
    else:
        if membership.role == "owner" and body.role != "owner":
            _keep_an_owner(session, lab)
        membership.role = body.role
    session.commit()
    return _detail(session, lab, lab_role(session, user, lab.id))


@router.delete("/{lab_id}/members/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_member(lab_id: LabId, user_id: UserId, session: SessionDep, user: CurrentUser) -> Response:
    """Owners remove anyone; every member may leave. A lab always keeps at least one owner."""
    lab, role = _visible_lab(session, user, lab_id)
    if user_id != user.id:
        _require_owner(lab, role, user)
    membership = session.get(Membership, (user_id, lab.id))
    if membership is None:
        raise not_found("member", user_id)
    if membership.role == "owner":
        _keep_an_owner(session, lab)
    session.delete(membership)
    _revoke_share_links(session, user_id, lab.id)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _revoke_share_links(session: Session, user_id: int, lab_id: int) -> None:
    """A member who leaves (or is removed) takes their share links to the lab's runs with them:
    a link stays the act of someone who may still share the run."""
    session.execute(
        update(ShareLink)
        .where(
            ShareLink.created_by == user_id,
            ShareLink.revoked_at.is_(None),
            or_(
                ShareLink.run_id.in_(select(Run.id).where(Run.lab_id == lab_id)),
                ShareLink.sweep_id.in_(select(Sweep.id).where(Sweep.lab_id == lab_id)),
            ),
        )
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def _keep_an_owner(session: Session, lab: Lab) -> None:
    """Refuse a change that would leave the lab with no owner (called before demoting one)."""
    owners = session.scalar(
        select(func.count())
        .select_from(Membership)
        .where(Membership.lab_id == lab.id, Membership.role == "owner")
    )
    if (owners or 0) <= 1:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"lab '{lab.name}' needs at least one owner: make someone else owner first",
        )

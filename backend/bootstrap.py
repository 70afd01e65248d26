"""What must exist before the first request: the admin account and the "default" lab."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.store.credentials import set_password, verify_password
from backend.store.db import session_scope
from backend.store.models import Lab, Membership, User
from backend.store.settings import Settings

log = logging.getLogger(__name__)
DEFAULT_LAB = "default"


def _ensure(session: Session, settings: Settings) -> None:
    admin = session.scalar(select(User).where(User.username == settings.admin_username))
    if admin is None:
        admin = User(username=settings.admin_username, is_admin=True)
        session.add(admin)
        log.info("created the admin user '%s'", admin.username)
    admin.is_admin = True
    if settings.admin_password and not verify_password(settings.admin_password, admin.password_hash):
        set_password(session, admin, settings.admin_password)  # a changed one revokes old tokens
    lab = session.scalar(select(Lab).where(Lab.name == DEFAULT_LAB))
    if lab is None:
        lab = Lab(name=DEFAULT_LAB)
        session.add(lab)
    session.flush()
    if session.get(Membership, (admin.id, lab.id)) is None:
        session.add(Membership(user_id=admin.id, lab_id=lab.id, role="owner"))


def ensure_admin_and_default_lab(settings: Settings) -> None:
    """Idempotent. Several API processes starting at once may race; the loser retries once and
    then finds the rows the winner created."""
    for attempt in range(2):
        try:
            with session_scope(settings.resolved_database_url) as session:
                _ensure(session, settings)
            return
        except IntegrityError:
            if attempt:
                raise

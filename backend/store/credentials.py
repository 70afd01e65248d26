"""Passwords, API tokens, share-link tokens and tickets.

Passwords are hashed with scrypt and a per-user salt. Tokens are random secrets shown to the user
once; the database keeps only their SHA-256, so a leaked database holds no usable credential.
A token works until it is revoked or `Settings.token_ttl` after it was made; a password reset
revokes them all. A ticket is a single-use, seconds-long credential for one purpose on one run,
for the requests that cannot send headers (EventSource, download links), so that no long-lived
secret ever goes into a URL.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from functools import cache

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from backend.store.models import ApiToken, Run, ShareLink, Sweep, Ticket, User, as_utc, utcnow

# scrypt cost: ~16 MiB and a few tens of milliseconds per hash (OWASP's minimum recommendation).
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
TOKEN_PREFIX = "pcm_"
SHARE_PREFIX = "pcms_"
TICKET_PREFIX = "pcmt_"
# `last_used_at` is refreshed at most this often, so reads don't turn into writes.
_LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str | None) -> bool:
    if not stored:
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    candidate = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p))
    return hmac.compare_digest(candidate.hex(), digest)


@cache
def _dummy_hash() -> str:
    """A hash no password is known for, made with the current cost parameters."""
    return hash_password(secrets.token_urlsafe(32))


def authenticate(session: Session, username: str, password: str) -> User | None:
    """The user these credentials name, or None. An unknown username (or an account without a
    password) is checked against a dummy hash, so it costs what a wrong password costs: the time
    of the answer does not tell which usernames exist."""
    user = session.scalar(select(User).where(User.username == username))
    stored = user.password_hash if user is not None else None
    matches = verify_password(password, stored or _dummy_hash())
    return user if matches and stored else None


def set_password(session: Session, user: User, password: str) -> None:
    """Set or reset `user`'s password. A reset revokes every token the user holds: whoever
    learnt the old password (or a token made with it) is logged out everywhere."""
    user.password_hash = hash_password(password)
    if user.id is not None:
        session.execute(
            update(ApiToken)
            .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )


def token_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _new_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def create_api_token(session: Session, user: User, name: str) -> tuple[ApiToken, str]:
    """A new bearer token for `user`; returns the row and the secret (never stored)."""
    secret = _new_secret(TOKEN_PREFIX)
    token = ApiToken(
        user_id=user.id, name=name, token_hash=token_digest(secret), prefix=secret[: len(TOKEN_PREFIX) + 6]
    )
    session.add(token)
    session.flush()
    return token, secret


def token_expired(token: ApiToken, ttl: timedelta) -> bool:
    return as_utc(token.created_at) + ttl <= utcnow()


def live_api_token(session: Session, secret: str, ttl: timedelta) -> ApiToken | None:
    """The token `secret` names if it is neither revoked nor older than `ttl`; refreshes its
    `last_used_at`."""
    token = session.scalar(
        select(ApiToken).where(ApiToken.token_hash == token_digest(secret), ApiToken.revoked_at.is_(None))
    )
    if token is None or token_expired(token, ttl):
        return None
    now = utcnow()
    if token.last_used_at is None or now - as_utc(token.last_used_at) > _LAST_USED_RESOLUTION:
        token.last_used_at = now
        session.commit()
    return token


def revoke_token(session: Session, secret: str) -> bool:
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == token_digest(secret)))
    if token is None or token.revoked_at is not None:
        return False
    token.revoked_at = utcnow()
    return True


def create_share_link(session: Session, run: Run, user: User) -> tuple[ShareLink, str]:
    return _new_share_link(session, user, run_id=run.id)


def create_sweep_share_link(session: Session, sweep: Sweep, user: User) -> tuple[ShareLink, str]:
    """A link to a whole sweep: its page and the reads of every run of it (`share_link_opens`)."""
    return _new_share_link(session, user, sweep_id=sweep.id)


def _new_share_link(session: Session, user: User, **target: int) -> tuple[ShareLink, str]:
    secret = _new_secret(SHARE_PREFIX)
    link = ShareLink(token_hash=token_digest(secret), created_by=user.id, **target)
    session.add(link)
    session.flush()
    return link, secret


def share_link_opens(link: ShareLink, run: Run) -> bool:
    """A run's link opens that run; a sweep's link opens every run of the sweep."""
    return link.run_id == run.id or (link.sweep_id is not None and link.sweep_id == run.sweep_id)


def revoke_share_link(session: Session, link: ShareLink) -> None:
    """Revoke `link` (a run's or a sweep's) and commit; revoking it again changes nothing."""
    if link.revoked_at is None:
        link.revoked_at = utcnow()
        session.commit()


def live_share_link(session: Session, secret: str) -> ShareLink | None:
    return session.scalar(
        select(ShareLink).where(ShareLink.token_hash == token_digest(secret), ShareLink.revoked_at.is_(None))
    )


def run_for_share_token(session: Session, secret: str) -> Run | None:
    link = live_share_link(session, secret)
    return None if link is None or link.run_id is None else session.get(Run, link.run_id)


@dataclass(frozen=True)
class Grant:
    """What a request's access rests on: a login/API token, a share link, or neither (single-user
    mode). A ticket keeps the grant it was made under, and an open live stream re-checks it."""

    api_token_id: int | None = None
    share_link_id: int | None = None

    @classmethod
    def of_ticket(cls, ticket: Ticket) -> Grant:
        return cls(api_token_id=ticket.api_token_id, share_link_id=ticket.share_link_id)


def grant_is_live(session: Session, grant: Grant, token_ttl: timedelta) -> bool:
    """False once the grant's token is revoked or expired, or its share link revoked."""
    if grant.api_token_id is not None:
        token = session.get(ApiToken, grant.api_token_id)
        if token is None or token.revoked_at is not None or token_expired(token, token_ttl):
            return False
    if grant.share_link_id is not None:
        link = session.get(ShareLink, grant.share_link_id)
        if link is None or link.revoked_at is not None:
            return False
    return True


def create_ticket(
    session: Session, *, purpose: str, run_id: int, user_id: int | None, grant: Grant, ttl: timedelta
) -> tuple[Ticket, str]:
    """A new ticket; returns the row and the secret (never stored). Spent tickets are deleted
    here, so the table holds only the last `ttl`'s worth."""
    now = utcnow()
    session.execute(delete(Ticket).where(Ticket.expires_at <= now))
    secret = _new_secret(TICKET_PREFIX)
    ticket = Ticket(
        token_hash=token_digest(secret),
        purpose=purpose,
        run_id=run_id,
        user_id=user_id,
        api_token_id=grant.api_token_id,
        share_link_id=grant.share_link_id,
        created_at=now,
        expires_at=now + ttl,
    )
    session.add(ticket)
    session.flush()
    return ticket, secret


def redeem_ticket(session: Session, secret: str, purpose: str) -> Ticket | None:
    """The ticket `secret` names, now used up; None if it is unknown, used, expired or made for
    another purpose. One conditional UPDATE: two requests racing with one ticket cannot both
    win. The caller commits."""
    now = utcnow()
    digest = token_digest(secret)
    claimed = session.execute(
        update(Ticket)
        .where(
            Ticket.token_hash == digest,
            Ticket.purpose == purpose,
            Ticket.used_at.is_(None),
            Ticket.expires_at > now,
        )
        .values(used_at=now)
    )
    if claimed.rowcount != 1:
        return None
    return session.scalar(select(Ticket).where(Ticket.token_hash == digest))

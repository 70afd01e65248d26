"""Passwords, API tokens and share-link tokens.

Passwords are hashed with scrypt and a per-user salt. Tokens are random secrets shown to the user
once; the database keeps only their SHA-256, so a leaked database holds no usable credential.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.models import ApiToken, Run, ShareLink, User, as_utc, utcnow

# scrypt cost: ~16 MiB and a few tens of milliseconds per hash (OWASP's minimum recommendation).
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
TOKEN_PREFIX = "pcm_"
SHARE_PREFIX = "pcms_"
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


def user_for_token(session: Session, secret: str) -> User | None:
    """The user a live (not revoked) token belongs to; refreshes the token's `last_used_at`."""
    token = session.scalar(
        select(ApiToken).where(ApiToken.token_hash == token_digest(secret), ApiToken.revoked_at.is_(None))
    )
    if token is None:
        return None
    now = utcnow()
    if token.last_used_at is None or now - as_utc(token.last_used_at) > _LAST_USED_RESOLUTION:
        token.last_used_at = now
        session.commit()
    return session.get(User, token.user_id)


def revoke_token(session: Session, secret: str) -> bool:
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == token_digest(secret)))
    if token is None or token.revoked_at is not None:
        return False
    token.revoked_at = utcnow()
    return True


def create_share_link(session: Session, run: Run, user: User) -> tuple[ShareLink, str]:
    secret = _new_secret(SHARE_PREFIX)
    link = ShareLink(run_id=run.id, token_hash=token_digest(secret), created_by=user.id)
    session.add(link)
    session.flush()
    return link, secret


def run_for_share_token(session: Session, secret: str) -> Run | None:
    link = session.scalar(
        select(ShareLink).where(ShareLink.token_hash == token_digest(secret), ShareLink.revoked_at.is_(None))
    )
    return None if link is None else session.get(Run, link.run_id)

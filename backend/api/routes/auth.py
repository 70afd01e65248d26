"""Logging in, API tokens and user accounts."""

from __future__ import annotations

import anyio
from fastapi import APIRouter, HTTPException, Request, Response, status
from sqlalchemy import select

from backend.access import not_found
from backend.deps import AdminUser, BearerSecret, CurrentUser, SessionDep, SettingsDep, TokenId
from backend.logins import LoginGuard, LoginRefused
from backend.schemas import (
    LoginIn,
    LoginOut,
    Me,
    MembershipOut,
    TokenCreate,
    TokenCreated,
    TokenPublic,
    UserCreate,
    UserPublic,
)
from backend.store import credentials
from backend.store.db import session_scope
from backend.store.models import ApiToken, Membership, User, utcnow

router = APIRouter(tags=["auth"])


LOGIN_RESPONSES = {
    401: {"description": "Wrong username or password."},
    429: {"description": "Too many failed logins for this username or address: wait Retry-After s."},
    503: {"description": "Too many logins at once: try again after Retry-After s."},
}


def _check_password(database_url: str, body: LoginIn) -> int | None:
    with session_scope(database_url) as session:
        user = credentials.authenticate(session, body.username, body.password)
        return None if user is None else user.id


def _issue_login_token(database_url: str, user_id: int) -> LoginOut:
    with session_scope(database_url) as session:
        user = session.get(User, user_id)
        _, secret = credentials.create_api_token(session, user, "login")
        return LoginOut(token=secret, user=UserPublic.model_validate(user))


def _refusal(refused: LoginRefused) -> HTTPException:
    code = status.HTTP_503_SERVICE_UNAVAILABLE if refused.busy else status.HTTP_429_TOO_MANY_REQUESTS
    return HTTPException(
        code,
        f"{refused}: try again in {refused.retry_after} s",
        headers={"Retry-After": str(refused.retry_after)},
    )


@router.post("/auth/login", response_model=LoginOut, responses=LOGIN_RESPONSES)
async def login(body: LoginIn, request: Request, settings: SettingsDep) -> LoginOut:
    """Check a username and password; returns a new bearer token (named "login"). Failed logins
    make the username, and the address, wait before the next try (429 with Retry-After)."""
    guard: LoginGuard = request.app.state.login_guard
    address = request.client.host if request.client else "unknown"
    url = settings.resolved_database_url
    try:
        user_id = await guard.check(body.username, address, lambda: _check_password(url, body))
    except LoginRefused as refused:
        raise _refusal(refused) from None
    if user_id is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong username or password")
    return await anyio.to_thread.run_sync(_issue_login_token, url, user_id)


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(session: SessionDep, _user: CurrentUser, secret: BearerSecret) -> Response:
    """Revoke the token this request was made with (nothing to do in single-user mode)."""
    if secret is not None and credentials.revoke_token(session, secret):
        session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/auth/me", response_model=Me)
def me(session: SessionDep, user: CurrentUser) -> Me:
    memberships = session.scalars(
        select(Membership).where(Membership.user_id == user.id).order_by(Membership.lab_id)
    )
    labs = [MembershipOut(lab_id=m.lab_id, lab=m.lab.name, role=m.role) for m in memberships]
    return Me(**UserPublic.model_validate(user).model_dump(), labs=labs)


@router.post("/tokens", status_code=status.HTTP_201_CREATED, response_model=TokenCreated)
def create_token(body: TokenCreate, session: SessionDep, user: CurrentUser) -> TokenCreated:
    """A new API token for scripts; the secret is in this response only."""
    token, secret = credentials.create_api_token(session, user, body.name)
    session.commit()
    return TokenCreated(**TokenPublic.model_validate(token).model_dump(), token=secret)


@router.get("/tokens", response_model=list[TokenPublic])
def list_tokens(session: SessionDep, user: CurrentUser) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)))


@router.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_token(token_id: TokenId, session: SessionDep, user: CurrentUser) -> Response:
    token = session.get(ApiToken, token_id)
    if token is None or token.user_id != user.id:
        raise not_found("token", token_id)
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/users", status_code=status.HTTP_201_CREATED, response_model=UserPublic)
def create_user(body: UserCreate, session: SessionDep, _admin: AdminUser) -> User:
    """Admins create accounts; add them to a lab with POST /api/labs/{id}/members."""
    if session.scalar(select(User.id).where(User.username == body.username)) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"a user named '{body.username}' already exists")
    user = User(username=body.username, is_admin=body.is_admin)
    credentials.set_password(session, user, body.password)
    session.add(user)
    session.commit()
    return user


@router.get("/users", response_model=list[UserPublic])
def list_users(session: SessionDep, _admin: AdminUser) -> list[User]:
    return list(session.scalars(select(User).order_by(User.username)))

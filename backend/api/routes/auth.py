"""Logging in, API tokens and user accounts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Response, status
from sqlalchemy import select

from backend import auth
from backend.access import not_found
from backend.deps import AdminUser, CurrentUser, SessionDep, TokenId, bearer_secret
from backend.models import ApiToken, Membership, User, utcnow
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

router = APIRouter(tags=["auth"])


@router.post("/auth/login", response_model=LoginOut)
def login(body: LoginIn, session: SessionDep) -> LoginOut:
    """Check a username and password; returns a new bearer token (named "login")."""
    user = session.scalar(select(User).where(User.username == body.username))
    if user is None or not auth.verify_password(body.password, user.password_hash):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong username or password")
    _, secret = auth.create_api_token(session, user, "login")
    session.commit()
    return LoginOut(token=secret, user=UserPublic.model_validate(user))


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(
    session: SessionDep, _user: CurrentUser, secret: Annotated[str | None, Depends(bearer_secret)]
) -> Response:
    """Revoke the token this request was made with (nothing to do in single-user mode)."""
    if secret is not None and auth.revoke_token(session, secret):
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
    token, secret = auth.create_api_token(session, user, body.name)
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
    user = User(
        username=body.username, password_hash=auth.hash_password(body.password), is_admin=body.is_admin
    )
    session.add(user)
    session.commit()
    return user


@router.get("/users", response_model=list[UserPublic])
def list_users(session: SessionDep, _admin: AdminUser) -> list[User]:
    return list(session.scalars(select(User).order_by(User.username)))

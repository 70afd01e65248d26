"""FastAPI dependencies: settings, a database session, and the calling user."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.auth import user_for_token
from backend.db import get_sessionmaker
from backend.models import User
from backend.schemas import INT32_MAX, INT64_MAX
from backend.settings import Settings

# auto_error=False: we answer a missing token ourselves (401 with a hint), and single-user mode
# needs none. Declared as a security scheme so the OpenAPI docs offer an "Authorize" button.
_bearer = HTTPBearer(auto_error=False, description="A token from POST /api/auth/login or POST /api/tokens.")
# EventSource cannot send headers, so the event streams also take the token as a query parameter.
TOKEN_QUERY_PARAM = "access_token"


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]


def get_session(settings: SettingsDep) -> Iterator[Session]:
    """One session per request; endpoints commit what they change."""
    with get_sessionmaker(settings.resolved_database_url)() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})


def bearer_secret(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> str | None:
    if credentials is not None and credentials.scheme.lower() == "bearer":
        return credentials.credentials
    return request.query_params.get(TOKEN_QUERY_PARAM)


def get_optional_user(
    session: SessionDep, settings: SettingsDep, secret: Annotated[str | None, Depends(bearer_secret)]
) -> User | None:
    """The caller, or None when no token was sent. A token that is sent must be valid."""
    if settings.single_user:
        return session.scalar(select(User).where(User.username == settings.admin_username))
    if secret is None:
        return None
    user = user_for_token(session, secret)
    if user is None:
        raise _unauthorized("invalid or revoked token: log in again (POST /api/auth/login)")
    return user


OptionalUser = Annotated[User | None, Depends(get_optional_user)]


def get_current_user(user: OptionalUser) -> User:
    if user is None:
        raise _unauthorized(
            "authentication required: send 'Authorization: Bearer <token>' "
            "(get a token with POST /api/auth/login)"
        )
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


def get_admin(user: CurrentUser) -> User:
    if not user.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this needs an admin account")
    return user


AdminUser = Annotated[User, Depends(get_admin)]


# Path parameters, bounded like the columns they look up.
RunId = Annotated[int, Path(ge=1, le=INT64_MAX, description="A run id.")]
ArtifactId = Annotated[int, Path(ge=1, le=INT64_MAX, description="An artifact id.")]
LabId = Annotated[int, Path(ge=1, le=INT32_MAX, description="A lab id.")]
UserId = Annotated[int, Path(ge=1, le=INT32_MAX, description="A user id.")]
TokenId = Annotated[int, Path(ge=1, le=INT32_MAX, description="An API token id.")]
ShareLinkId = Annotated[int, Path(ge=1, le=INT32_MAX, description="A share link id.")]

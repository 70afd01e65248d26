"""FastAPI dependencies: settings, a database session, the calling user, and a run the caller
may read.

Long-lived credentials (login and API tokens, share tokens) are read from the `Authorization`
header only, never from the URL: the requests that cannot send headers (EventSource, download
links) carry a single-use ticket instead (`?ticket=`, from POST /api/tickets)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.access import get_visible_run, not_found
from backend.schemas import INT32_MAX, INT64_MAX
from backend.store import credentials
from backend.store.credentials import SHARE_PREFIX, Grant
from backend.store.db import get_sessionmaker
from backend.store.models import Run, Ticket, User
from backend.store.settings import Settings

# auto_error=False: we answer a missing token ourselves (401 with a hint), and single-user mode
# needs none. Declared as a security scheme so the OpenAPI docs offer an "Authorize" button.
_bearer = HTTPBearer(auto_error=False, description="A token from POST /api/auth/login or POST /api/tokens.")
TicketQuery = Annotated[
    str | None,
    Query(
        max_length=64,
        description="A ticket from POST /api/tickets, for a client that cannot send headers "
        "(EventSource, a download link); works once.",
    ),
]


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
    authorization: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str | None:
    if authorization is not None and authorization.scheme.lower() == "bearer":
        return authorization.credentials
    return None


BearerSecret = Annotated[str | None, Depends(bearer_secret)]


@dataclass(frozen=True)
class Caller:
    """Who sent a request (None: nobody signed in, or a share link's guest) and the grant it
    rests on, which a ticket made by this request keeps."""

    user: User | None
    grant: Grant


def identify(session: Session, settings: Settings, secret: str | None) -> Caller:
    """The caller a bearer secret names. A token that is sent must be live (not revoked, not
    expired)."""
    if settings.single_user:
        return Caller(session.scalar(select(User).where(User.username == settings.admin_username)), Grant())
    if secret is None:
        return Caller(None, Grant())
    token = credentials.live_api_token(session, secret, settings.token_ttl)
    if token is None:
        raise _unauthorized("invalid, expired or revoked token: log in again (POST /api/auth/login)")
    return Caller(session.get(User, token.user_id), Grant(api_token_id=token.id))


def get_optional_user(session: SessionDep, settings: SettingsDep, secret: BearerSecret) -> User | None:
    """The caller, or None when no token was sent. A token that is sent must be valid."""
    return identify(session, settings, secret).user


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


def read_access(session: Session, settings: Settings, run_id: int, secret: str | None) -> tuple[Run, Caller]:
    """Run `run_id` and who reads it, if the caller may: with a share token for exactly this run
    or for its sweep (sent like any token: `Authorization: Bearer pcms_...`), or as a user who can see it. A
    share token opens the run's reads and nothing else — not another run, and no route that
    needs a user. Any run the caller may not read is a 404."""
    if secret is not None and secret.startswith(SHARE_PREFIX):
        link = credentials.live_share_link(session, secret)
        run = session.get(Run, run_id) if link is not None else None
        if run is None or not credentials.share_link_opens(link, run):
            raise not_found("run", run_id)
        return run, Caller(None, Grant(share_link_id=link.id))
    caller = identify(session, settings, secret)
    return get_visible_run(session, get_current_user(caller.user), run_id), caller


def get_readable_run(run_id: RunId, session: SessionDep, settings: SettingsDep, secret: BearerSecret) -> Run:
    return read_access(session, settings, run_id, secret)[0]


ReadableRun = Annotated[Run, Depends(get_readable_run)]


def redeem_ticket(session: Session, settings: Settings, secret: str, purpose: str) -> Ticket:
    """The ticket, used up now; 401 unless it is unused, unexpired, made for `purpose`, and the
    grant it was made under still holds."""
    ticket = credentials.redeem_ticket(session, secret, purpose)
    if ticket is None or not credentials.grant_is_live(session, Grant.of_ticket(ticket), settings.token_ttl):
        raise _unauthorized(f"invalid, used or expired ticket: get a new one (POST /api/tickets, {purpose})")
    session.commit()
    return ticket


def get_streamed_run(
    run_id: RunId,
    session: SessionDep,
    settings: SettingsDep,
    secret: BearerSecret,
    ticket: TicketQuery = None,
) -> tuple[Run, Grant]:
    """A run's live stream opens with a ticket for it (what a browser's EventSource sends) or
    with any credential `ReadableRun` takes (a script's header). The grant comes along: the
    stream ends once it is revoked."""
    if ticket is None:
        run, caller = read_access(session, settings, run_id, secret)
        return run, caller.grant
    redeemed = redeem_ticket(session, settings, ticket, "events")
    grant = Grant.of_ticket(redeemed)
    if redeemed.run_id != run_id:
        raise not_found("run", run_id)
    if redeemed.user_id is None:  # a share link's ticket; the link opens exactly this run
        return session.get(Run, run_id), grant
    return get_visible_run(session, session.get(User, redeemed.user_id), run_id), grant


StreamedRun = Annotated[tuple[Run, Grant], Depends(get_streamed_run)]


@dataclass(frozen=True)
class Downloader:
    """Who downloads: a user, limited to one run's artifacts when a ticket opened the request."""

    user: User
    run_id: int | None


def get_downloader(
    session: SessionDep, settings: SettingsDep, secret: BearerSecret, ticket: TicketQuery = None
) -> Downloader:
    if ticket is None:
        return Downloader(get_current_user(identify(session, settings, secret).user), None)
    redeemed = redeem_ticket(session, settings, ticket, "download")
    return Downloader(session.get(User, redeemed.user_id), redeemed.run_id)


DownloaderDep = Annotated[Downloader, Depends(get_downloader)]

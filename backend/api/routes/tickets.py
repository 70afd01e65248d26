"""Tickets: single-use, seconds-long credentials for the two requests a browser cannot send a
header with — a live stream (EventSource) and a download link — so that no token ever goes into
a URL (where access logs, proxies and browser history keep it)."""

from __future__ import annotations

from fastapi import APIRouter, status
from sqlalchemy.orm import Session

from backend.access import get_visible_run
from backend.deps import (
    BearerSecret,
    Caller,
    SessionDep,
    SettingsDep,
    get_current_user,
    identify,
    read_access,
)
from backend.schemas import TicketCreate, TicketOut
from backend.store import credentials
from backend.store.settings import Settings

router = APIRouter(tags=["auth"])


def ticket_caller(session: Session, settings: Settings, body: TicketCreate, secret: str | None) -> Caller:
    """Who asks, if they may do what the ticket is for: a live stream is a read (a share
    token's too); a download needs a user who can see the run."""
    if body.purpose == "events":
        return read_access(session, settings, body.run_id, secret)[1]
    caller = identify(session, settings, secret)
    get_visible_run(session, get_current_user(caller.user), body.run_id)
    return caller


@router.post("/tickets", status_code=status.HTTP_201_CREATED, response_model=TicketOut)
def create_ticket(
    body: TicketCreate, session: SessionDep, settings: SettingsDep, secret: BearerSecret
) -> TicketOut:
    """A ticket for one live stream (`events`) or one download of the run, valid
    `PCM_TICKET_TTL_S` seconds (default 60): pass it as `?ticket=`. It works once, and only
    while the token or share link this request was made with holds."""
    caller = ticket_caller(session, settings, body, secret)
    ticket, ticket_secret = credentials.create_ticket(
        session,
        purpose=body.purpose,
        run_id=body.run_id,
        user_id=caller.user.id if caller.user else None,
        grant=caller.grant,
        ttl=settings.ticket_ttl,
    )
    session.commit()
    return TicketOut(ticket=ticket_secret, expires_at=ticket.expires_at)

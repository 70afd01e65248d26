"""The FastAPI application: `uvicorn --factory backend.app:create_app` (or `backend.app:app`).

On start it migrates the database, makes sure the admin and the "default" lab exist, and starts
the stale-run sweep. Settings come from the environment unless a `Settings` is passed (tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

import pcm_engine
from backend import accesslog, errors, pages
from backend.api import api_router
from backend.bootstrap import ensure_admin_and_default_lab
from backend.headers import SecurityHeaders
from backend.limits import BodySizeLimit
from backend.logins import LoginGuard
from backend.store.db import migrate
from backend.store.settings import Settings, get_settings
from backend.store.stale import sweep_forever

log = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    settings.check_safe_to_serve()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    await asyncio.to_thread(migrate, settings.resolved_database_url)
    await asyncio.to_thread(ensure_admin_and_default_lab, settings)
    sweeper = asyncio.create_task(sweep_forever(settings), name="stale-run sweep")
    log.info(
        "PCM Lab API ready: database %s, broker %s, %s",
        settings.resolved_database_url.split("://", 1)[0],
        settings.resolved_broker_url.split("://", 1)[0],
        "single-user (no login)" if settings.single_user else "tokens required",
    )
    try:
        yield
    finally:
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper


def create_app(settings: Settings | None = None) -> FastAPI:
    app = FastAPI(
        title="PCM Lab",
        version=pcm_engine.__version__,
        description="Launch, watch, compare and share GRPO / PCM training runs of VLA policies.",
        lifespan=lifespan,
        docs_url=None,  # pages.py serves /docs with a bundled Swagger UI; the defaults need a CDN
        redoc_url=None,
    )
    app.state.settings = settings or get_settings()
    app.state.login_guard = LoginGuard(app.state.settings)
    accesslog.install()
    errors.install(app)
    app.add_middleware(BodySizeLimit, max_bytes=app.state.settings.max_body_bytes)
    app.add_middleware(SecurityHeaders)
    app.include_router(api_router)
    pages.mount(app)
    return app


_app: FastAPI | None = None


def __getattr__(name: str) -> Any:
    """`backend.app:app` for uvicorn, built on first access (importing this module stays cheap)."""
    global _app
    if name == "app":
        if _app is None:
            _app = create_app()
        return _app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

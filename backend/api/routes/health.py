"""Liveness and the deployment profile."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

import pcm_engine
from backend.deps import SettingsDep
from backend.schemas import HealthOut
from backend.store.db import get_engine

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthOut, responses={503: {"model": HealthOut}})
def health(settings: SettingsDep) -> HealthOut | JSONResponse:
    engine = get_engine(settings.resolved_database_url)
    body = HealthOut(
        status="ok",
        database=engine.dialect.name,
        broker="filesystem" if settings.embedded else "redis",
        single_user=settings.single_user,
        version=pcm_engine.__version__,
    )
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        body.status, body.database = "error", f"{engine.dialect.name} unreachable: {exc.__class__.__name__}"
        return JSONResponse(body.model_dump(), status_code=503)
    return body

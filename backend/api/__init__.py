"""The REST API: one router per resource, all under /api."""

from fastapi import APIRouter

from backend.api.routes import (
    artifacts,
    auth,
    compare,
    contract,
    events,
    health,
    labs,
    media,
    metrics,
    presets,
    runs,
    share,
    sweeps,
    tickets,
    workers,
)

api_router = APIRouter(prefix="/api")
routes = (
    health,
    presets,
    contract,
    auth,
    tickets,
    labs,
    runs,
    metrics,
    media,
    events,
    compare,
    artifacts,
    workers,
    share,
    sweeps,
)
for module in routes:
    api_router.include_router(module.router)

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
    metrics,
    presets,
    runs,
    share,
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
    events,
    compare,
    artifacts,
    workers,
    share,
)
for module in routes:
    api_router.include_router(module.router)

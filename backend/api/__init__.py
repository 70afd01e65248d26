"""The REST API: one router per resource, all under /api."""

from fastapi import APIRouter

from backend.api.routes import (
    artifacts,
    auth,
    compare,
    events,
    health,
    labs,
    metrics,
    presets,
    runs,
    share,
    workers,
)

api_router = APIRouter(prefix="/api")
for module in (health, presets, auth, labs, runs, metrics, events, compare, artifacts, workers, share):
    api_router.include_router(module.router)

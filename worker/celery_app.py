"""The workers' Celery app: the broker configuration of the run store (backend/store/broker.py)
plus what only a consumer needs — one run at a time and the module that registers the task.
Importing it never imports torch."""

from __future__ import annotations

from celery import Celery

from backend.store.broker import celery_app
from backend.store.settings import Settings, get_settings


def make_celery(settings: Settings | None = None) -> Celery:
    app = celery_app(settings or get_settings())
    app.conf.update(
        worker_prefetch_multiplier=1,
        worker_concurrency=1,
        worker_hijack_root_logger=False,
        imports=("worker.tasks",),
    )
    return app

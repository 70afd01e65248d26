"""The Celery app, configured from `Settings`. Importing it never imports torch, so the API can
send tasks without loading the engine.

Embedded profile: kombu's file-system transport under `data_dir/broker` (no server); lab profile:
Redis. Tasks are acknowledged early and never retried by the broker: a run is claimed in the
database (backend.lifecycle.claim_run), and a lost run is found by its stale heartbeat and
requeued by a person, so a long task redelivered after a visibility timeout can't start twice.
"""

from __future__ import annotations

from celery import Celery

from backend.settings import Settings, get_settings

TRAIN_RUN_TASK = "pcm.train_run"


def make_celery(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    app = Celery("pcm_lab", broker=settings.resolved_broker_url)
    transport_options: dict = {"visibility_timeout": 7 * 24 * 3600}
    if settings.embedded:
        folder = settings.broker_dir.resolve()
        for sub in ("in", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        transport_options.update(
            data_folder_in=str(folder / "in"),
            data_folder_out=str(folder / "in"),
            processed_folder=str(folder / "processed"),
            control_folder=str(folder / "control"),  # exchange bindings; kombu's default is ./control
            store_processed=False,
            polling_interval=settings.broker_poll_s,
        )
    app.conf.update(
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        task_acks_late=False,
        task_ignore_result=True,
        result_backend=None,
        worker_prefetch_multiplier=1,
        worker_concurrency=1,
        worker_hijack_root_logger=False,
        task_default_queue=settings.queue,
        imports=("worker.tasks",),
    )
    return app


def send_train_run(run_id: int, settings: Settings | None = None) -> None:
    """Queue the training of one run (the payload is just its id)."""
    settings = settings or get_settings()
    make_celery(settings).send_task(TRAIN_RUN_TASK, args=[run_id], queue=settings.queue)

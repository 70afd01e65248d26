"""The broker, as both sides see it: the Celery configuration from `Settings`, and sending a run
to the workers by the task's name. Importing it never imports torch or the `worker` package, so
the API can queue runs without loading either.

Embedded profile: kombu's file-system transport under `data_dir/broker` (no server); lab profile:
Redis. Tasks are acknowledged early and never retried by the broker: a run is claimed in the
database (`lifecycle.claim_run`), and a lost run is found by its stale heartbeat and requeued by a
person, so a long task redelivered after a visibility timeout can't start twice.
"""

from __future__ import annotations

from celery import Celery

from backend.store.settings import Settings, get_settings

TRAIN_RUN_TASK = "pcm.train_run"
"""The name the worker registers its `train_run` task under; its only argument is the run id."""
JOIN_RUN_TASK = "pcm.join_run"
"""The task a worker answers by taking a seat of a multi-node run (worker/nodes.py); its
arguments are the run id, the attempt and the node rank (backend/store/nodes.py)."""


def celery_app(settings: Settings) -> Celery:
    """A Celery app on the configured broker, set up as the workers consume it. The workers add
    their task module and pool settings on top (worker/celery_app.py)."""
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
        task_default_queue=settings.queue,
    )
    return app


def send_train_run(run_id: int, settings: Settings | None = None) -> None:
    """Queue the training of one run (the payload is just its id)."""
    settings = settings or get_settings()
    celery_app(settings).send_task(TRAIN_RUN_TASK, args=[run_id], queue=settings.queue)


def send_join_run(
    run_id: int, attempt: int, node_rank: int, settings: Settings, countdown: float = 0
) -> None:
    """Ask the workers for node `node_rank` of a multi-node run's `attempt`."""
    celery_app(settings).send_task(
        JOIN_RUN_TASK, args=[run_id, attempt, node_rank], queue=settings.queue, countdown=countdown or None
    )

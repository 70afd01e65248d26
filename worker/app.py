"""The worker's Celery app: `celery -A worker.app worker -Q runs` (or `pcm worker`).

One worker process trains one run at a time in its main process (`--pool solo`, set here as the
default): CUDA is only ever initialised in the process that trains, never in a parent that forks.
A distributed run (`dist.world_size` > 1) trains in rank processes this process starts with
`torch.distributed.run` and supervises (worker/distributed.py); `pcm worker --gpus N` says how many.
The hooks below migrate the database before the first task, keep the worker's heartbeat, and turn
SIGTERM / Ctrl-C into "checkpoint, then put the run back in the queue".
"""

from __future__ import annotations

from celery import signals

from backend.store.db import migrate
from backend.store.redact import masked, redact
from backend.store.settings import get_settings
from worker.celery_app import make_celery
from worker.heartbeat import ensure_heartbeat, stop_heartbeat
from worker.runner import SHUTDOWN

app = make_celery(get_settings())
app.conf.worker_pool = "solo"


@signals.worker_init.connect
def _migrate(**_kwargs) -> None:
    """A worker without its database must not start: it would take tasks it cannot claim, and
    their runs would wait in `queued` forever. Celery logs and ignores an exception from a signal
    handler, so the reason leaves as SystemExit (non-zero exit, reason on stderr)."""
    url = get_settings().resolved_database_url
    try:
        migrate(url)
    except Exception as exc:
        reason = redact(f"{exc.__class__.__name__}: {exc}", url).splitlines()[0]
        raise SystemExit(f"pcm worker: cannot use the database {masked(url)}: {reason}") from exc


@signals.worker_ready.connect
def _start_heartbeat(sender, **_kwargs) -> None:
    ensure_heartbeat(get_settings(), sender.hostname)


@signals.worker_shutting_down.connect
def _stop_training(**_kwargs) -> None:
    SHUTDOWN.set()


@signals.worker_shutdown.connect
def _forget_worker(**_kwargs) -> None:
    stop_heartbeat()

"""The `train_run` Celery task. Its only argument is the run id; everything else is in the
database. Importing this module never imports torch (the engine loads inside the task)."""

from __future__ import annotations

import socket

from celery import shared_task

from backend.store.broker import TRAIN_RUN_TASK
from worker.runner import execute_run


@shared_task(name=TRAIN_RUN_TASK, bind=True, ignore_result=True)
def train_run(self, run_id: int) -> str:
    """Claim and train one run; a duplicate delivery of the message finds it claimed and returns."""
    worker_name = self.request.hostname or f"worker@{socket.gethostname()}"
    return execute_run(int(run_id), worker_name)

"""The workers' Celery tasks: `train_run` (its only argument is the run id; everything else is
in the database) and `join_run` (a seat of a multi-node run). Importing this module never
imports torch (the engine loads inside the task)."""

from __future__ import annotations

import socket

from celery import shared_task

from backend.store.broker import JOIN_RUN_TASK, TRAIN_RUN_TASK
from worker.runner import execute_run


@shared_task(name=TRAIN_RUN_TASK, bind=True, ignore_result=True)
def train_run(self, run_id: int) -> str:
    """Claim and train one run; a duplicate delivery of the message finds it claimed and returns."""
    return execute_run(int(run_id), worker_name(self))


@shared_task(name=JOIN_RUN_TASK, bind=True, ignore_result=True)
def join_run(self, run_id: int, attempt: int, node_rank: int) -> str:
    """Take seat `node_rank` of a multi-node run's `attempt` and run that node's ranks; a seat
    already taken (or an attempt that is over) is left alone."""
    from worker.nodes import join_run as join

    return join(int(run_id), int(attempt), int(node_rank), worker_name(self))


def worker_name(task) -> str:
    return task.request.hostname or f"worker@{socket.gethostname()}"

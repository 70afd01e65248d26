"""A worker as node 1.. of another worker's multi-node run (`dist.nodes` > 1): it answers the
run's join message (`pcm.join_run`, sent by node 0, worker/distributed.py) by taking the seat and
starting its node's ranks against node 0's rendezvous.

    take      -> the seat (backend/store/nodes.py), once; a closed seat, a seat of an attempt
                 that is over, or one already taken is left alone ("skipped")
    too small -> a worker with fewer rank slots than a node's ranks sends the message on
                 ("waiting"), as it does for a whole run (worker/distributed.py)
    start     -> the same torchrun command as node 0 but for this node rank, training
                 run_dir/config.yaml, which node 0 wrote: the nodes share the data folder
                 (PCM_DATA_DIR on a shared file system), as they share checkpoints
    supervise -> the heartbeat keeps the seat; a worker shutdown marks it `leaving`, and node 0
                 then stops the run at the end of the step (it checkpoints and is queued again)
    exit      -> the seat is done (exit 0) or failed with the tail of this node's log; node 0
                 fails the run naming it (a rank that dies ends the ranks of every node)

Importing this module never loads torch.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from backend.store import nodes
from backend.store.broker import send_join_run
from backend.store.db import session_scope
from backend.store.models import Run, RunNode
from backend.store.settings import Settings, get_settings
from worker.distributed import (
    OFFER_AGAIN_S,
    RankProcesses,
    ranks_failed,
    ranks_wanted,
    rendezvous_id,
    too_big,
)
from worker.heartbeat import ensure_heartbeat
from worker.runner import SHUTDOWN, RunExecution

log = logging.getLogger(__name__)


def node_log(node_rank: int) -> str:
    """The log file (in run_dir) of node `node_rank`'s torchrun agent and ranks."""
    return f"ranks-node{node_rank}.log"


class Seat:
    """One seat of a run's attempt, as the worker that answers its join message sees it."""

    def __init__(self, execution: RunExecution, attempt: int, node_rank: int):
        self.execution = execution
        self.attempt = attempt
        self.node_rank = node_rank
        self.key = (execution.run_id, attempt, node_rank)
        self.left = False

    def is_open(self) -> bool:
        with session_scope(self.execution.url) as session:
            state = session.scalar(
                select(RunNode.state).where(
                    RunNode.run_id == self.execution.run_id,
                    RunNode.attempt == self.attempt,
                    RunNode.node_rank == self.node_rank,
                )
            )
            return state == "open" and nodes.attempt_is_running(session, self.execution.run_id, self.attempt)

    def take(self) -> bool:
        with session_scope(self.execution.url) as session:
            return nodes.take_seat(session, *self.key, self.execution.worker_name)

    def send_again(self, countdown: float = 0) -> None:
        """Put the join message back for another worker."""
        send_join_run(*self.key, self.execution.settings, countdown=countdown)

    def leave_if_shutting_down(self, attachment) -> None:
        """Called while the ranks run: on a worker shutdown, mark the seat `leaving` (once), so
        node 0 stops the run; a lost seat needs nothing, rank 0 stops every node."""
        if SHUTDOWN.is_set() and not self.left and not attachment.lost.is_set():
            self.left = True
            with session_scope(self.execution.url) as session:
                nodes.leave_seat(session, *self.key, self.execution.worker_name)
            log.info("run %s: node %s leaves (worker shutdown)", self.execution.run_id, self.node_rank)

    def end(self, exit_code: int, error: str | None) -> None:
        with session_scope(self.execution.url) as session:
            nodes.end_seat(session, *self.key, self.execution.worker_name, exit_code, error)

    def rendezvous(self):
        """Node 0's rendezvous of this attempt, from the run's placement."""
        from pcm_engine.launch import Rendezvous

        with session_scope(self.execution.url) as session:
            placement = session.scalar(select(Run.placement).where(Run.id == self.execution.run_id)) or {}
        return Rendezvous(placement["endpoint"], rendezvous_id(self.execution.run_id, self.attempt))


def join_run(
    run_id: int, attempt: int, node_rank: int, worker_name: str, settings: Settings | None = None
) -> str:
    """Take seat `node_rank` of run `run_id`'s `attempt` and run that node's ranks; returns
    "skipped" | "deferred" | "waiting" | "done" | "failed" (see the module docstring)."""
    execution = RunExecution(run_id, worker_name, settings or get_settings())
    seat = Seat(execution, attempt, node_rank)
    if not seat.is_open():
        return "skipped"
    if SHUTDOWN.is_set():
        seat.send_again()
        return "deferred"
    if (reason := too_big(execution, ranks_wanted(execution))) is not None:
        log.info("run %s node %s %s", run_id, node_rank, reason)
        seat.send_again(countdown=OFFER_AGAIN_S)
        return "waiting"
    if not seat.take():
        return "skipped"
    heartbeat = ensure_heartbeat(execution.settings, worker_name)
    attachment = heartbeat.attach(run_id, seat=(attempt, node_rank))
    try:
        code, error = run_node(seat, attachment)
    except Exception as exc:  # the seat must not stay joined: node 0 names it in the run's error
        log.exception("run %s node %s failed to start", run_id, node_rank)
        code, error = -1, f"{type(exc).__name__}: {exc}"
    finally:
        heartbeat.detach()
    seat.end(code, error)
    return "done" if code == 0 else "failed"


def run_node(seat: Seat, attachment) -> tuple[int, str | None]:
    """Start and supervise this node's ranks; (torchrun's exit code, the error if it failed)."""
    from pcm_engine.config import RunConfig
    from pcm_engine.launch import torchrun_command

    execution = seat.execution
    config_path = execution.run_dir / "config.yaml"
    if not config_path.is_file():
        return 2, (
            f"no {config_path.name} in the run's folder on {execution.worker_name}: the nodes of a "
            "multi-node run must share the data folder (PCM_DATA_DIR)"
        )
    config = RunConfig.load(config_path)
    command = torchrun_command(
        config,
        seat.rendezvous(),
        "worker.ranks",
        "--run-id",
        str(execution.run_id),
        "--worker",
        execution.worker_name,
        node_rank=seat.node_rank,
    )
    log_name = node_log(seat.node_rank)
    code = RankProcesses(command, execution.run_dir, log_name).supervise(
        lambda _started: seat.leave_if_shutting_down(attachment)
    )
    return code, None if code == 0 else str(ranks_failed(code, execution.run_dir / log_name))

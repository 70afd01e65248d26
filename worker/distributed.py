"""A worker's distributed runs (`dist.world_size` > 1, one node): the worker's process starts the
run's ranks with `torch.distributed.run` and supervises them; rank 0 (worker/ranks.py) trains
into the database as the in-process path does.

    placement     -> runs.placement (rendezvous endpoint, this worker as node 0 with every rank)
    start         -> torchrun in its own process group, output in run_dir/ranks.log
    supervise     -> the heartbeat stays attached to this process; a shutdown or a lost
                     attachment writes run_dir/ranks_stop, which rank 0's should_stop reads
                     (every rank then checkpoints and returns)
    exit 0        -> run_dir/ranks_outcome.json (rank 0's) ends the run as in-process training
                     would: succeeded | cancelled | queued again | lost
    exit non-zero -> a rank died (torchrun ended the others): RanksFailed, the run fails with the
                     tail of ranks.log as its traceback

A worker with fewer rank slots (`pcm worker --gpus N`) than a run's world size leaves the run
queued and sends its message again later, for a bigger worker (`wait_for_slots`).

Importing this module never loads torch.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy import select, update

from backend.store import lifecycle, wakeup
from backend.store.broker import TRAIN_RUN_TASK, celery_app
from backend.store.db import session_scope
from backend.store.models import Run, RunEvent
from worker.runner import RanksFailed, RunExecution, StopCheck, StopReason

log = logging.getLogger(__name__)

LOG_FILE = "ranks.log"
STOP_FILE = "ranks_stop"
"""Written by the worker into run_dir to ask rank 0 to stop; holds a `StopReason` value."""
OUTCOME_FILE = "ranks_outcome.json"
"""Written by rank 0 when training returns: how it ended (`RanksOutcome`)."""

POLL_S = 0.2
"""How often the worker looks at its ranks (and at its shutdown flag and heartbeat)."""
TERMINATE_GRACE_S = 30.0
"""How long torchrun gets to end its ranks after SIGTERM before they are killed."""
WAIT_FOR_SLOTS_S = 10.0
"""A run too big for this worker is offered again after this many seconds (its message is sent
back with this countdown, so a bigger worker can take it; no worker spins on it meanwhile)."""
LOG_TAIL_CHARS = 6000


@dataclass(frozen=True)
class RanksOutcome:
    """What rank 0 reports when its training returned."""

    stopped_early: bool
    reason: str | None  # a StopReason value when stopped early
    step_count: int
    resumed_from: int | None

    def save(self, run_dir: Path) -> None:
        path = run_dir / OUTCOME_FILE
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(self)))
        temporary.replace(path)  # the worker never reads half a file

    @classmethod
    def load(cls, run_dir: Path) -> RanksOutcome | None:
        path = run_dir / OUTCOME_FILE
        return cls(**json.loads(path.read_text())) if path.is_file() else None


def requested_stop(run_dir: Path) -> StopReason | None:
    """The reason the worker asked the ranks to stop (rank 0 reads it), if it did."""
    path = run_dir / STOP_FILE
    return StopReason(path.read_text().strip()) if path.is_file() else None


# --- a run too big for this worker -------------------------------------------------------------


def ranks_wanted(execution: RunExecution) -> int:
    """The ranks one node of the run starts (`world_size / nodes` of its stored config; 1 for a
    run that is gone)."""
    with session_scope(execution.url) as session:
        config = session.scalar(select(Run.config).where(Run.id == execution.run_id)) or {}
    dist = config.get("dist") or {}
    return int(dist.get("world_size", 1)) // max(1, int(dist.get("nodes", 1)))


def wait_for_slots(execution: RunExecution, wanted: int, slots: int) -> str:
    """Leave a queued run that needs `wanted` ranks to a worker that has them: say so on its
    stream (once per worker), and send its message again after `WAIT_FOR_SLOTS_S`."""
    message = f"waits for a worker with {wanted} devices ({execution.worker_name} has {slots})"
    with session_scope(execution.url) as session:
        if session.scalar(select(Run.status).where(Run.id == execution.run_id)) != "queued":
            return "skipped"  # cancelled or taken meanwhile: nothing to wait for
        said = session.scalars(
            select(RunEvent.payload).where(RunEvent.run_id == execution.run_id, RunEvent.kind == "status")
        )
        if all(payload.get("message") != message for payload in said):
            lifecycle.record_event(
                session, execution.run_id, "status", {"status": "queued", "message": message, "wants": wanted}
            )
    wakeup.publish(execution.settings, execution.run_id)
    log.info("run %s: %s; offered again in %.0f s", execution.run_id, message, WAIT_FOR_SLOTS_S)
    settings = execution.settings
    celery_app(settings).send_task(
        TRAIN_RUN_TASK, args=[execution.run_id], queue=settings.queue, countdown=WAIT_FOR_SLOTS_S
    )
    return "waiting"


# --- starting and supervising the ranks ---------------------------------------------------------


def train_ranks(execution: RunExecution, config, stop: StopCheck) -> str:
    """Train a `dist.world_size` > 1 run in ranks on this machine; returns the outcome status
    (raises RanksFailed when a rank failed)."""
    from pcm_engine.launch import local_rendezvous, torchrun_command

    d = config.dist
    if d.nodes != 1:
        raise ValueError(f"dist.nodes is {d.nodes}: workers start one-node distributed runs only")
    run_dir = execution.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    for leftover in (STOP_FILE, OUTCOME_FILE):  # an earlier attempt's
        (run_dir / leftover).unlink(missing_ok=True)
    config.save(run_dir / "config.yaml")  # what the ranks train (with its SFT start resolved)
    rendezvous = local_rendezvous(f"run-{execution.run_id}")
    record_placement(execution, rendezvous.endpoint, d.world_size, d.strategy)
    execution.event(f"starting {d.world_size} ranks ({d.strategy})")
    command = torchrun_command(
        config,
        rendezvous,
        "worker.ranks",
        "--run-id",
        str(execution.run_id),
        "--worker",
        execution.worker_name,
    )
    code = RankProcesses(command, run_dir).supervise(stop)
    outcome = RanksOutcome.load(run_dir)
    if code != 0 or outcome is None:
        raise ranks_failed(code, run_dir / LOG_FILE)
    reason = StopReason(outcome.reason) if outcome.reason else None
    return execution.conclude(outcome.stopped_early, reason, outcome.step_count)


def record_placement(execution: RunExecution, endpoint: str, world_size: int, strategy: str) -> None:
    placement = {
        "endpoint": endpoint,
        "world_size": world_size,
        "strategy": strategy,
        "nodes": [{"worker": execution.worker_name, "node_rank": 0, "ranks": list(range(world_size))}],
    }
    with session_scope(execution.url) as session:
        session.execute(
            update(Run)
            .where(Run.id == execution.run_id)
            .values(placement=placement)
            .execution_options(synchronize_session=False)
        )


class RankProcesses:
    """The torchrun agent of one run (and through it the ranks), as the worker supervises it."""

    def __init__(self, command: list[str], run_dir: Path):
        self.command = command
        self.run_dir = run_dir
        self.asked: StopReason | None = None

    def supervise(self, stop: StopCheck) -> int:
        """Start the ranks and wait for them to exit; returns torchrun's exit code. The ranks
        never outlive this call: leaving it any other way (an exception, the worker told to
        exit) ends them."""
        with open(self.run_dir / LOG_FILE, "ab") as output:
            process = subprocess.Popen(
                self.command,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a signal meant for the worker does not reach the ranks
            )
        try:
            while (code := process.poll()) is None:
                self.pass_on_stop(stop)
                time.sleep(POLL_S)
            return code
        finally:
            if process.poll() is None:
                terminate(process)

    def pass_on_stop(self, stop: StopCheck) -> None:
        """Ask rank 0 to stop (once) when the worker shuts down or loses the run."""
        reason = stop.local_reason()
        if reason is not None and self.asked is None:
            self.asked = reason
            (self.run_dir / STOP_FILE).write_text(reason.value)
            log.info("run %s: asked the ranks to stop (%s)", self.run_dir.name, reason.value)


def child_pids(pid: int) -> list[int]:
    """The processes `pid` started (Linux's /proc; torchrun starts each rank in its own session,
    so a signal to torchrun's process group does not reach them)."""
    found: list[int] = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(child) for child in children.read_text().split()]
        except OSError:
            pass
    return found


def terminate(process: subprocess.Popen) -> None:
    """End torchrun and its ranks: SIGTERM to torchrun (it ends its ranks), then SIGKILL to
    whatever is left after `TERMINATE_GRACE_S`."""
    ranks = child_pids(process.pid)
    process.terminate()
    try:
        process.wait(timeout=TERMINATE_GRACE_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    for pid in ranks:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def ranks_failed(code: int, log_path: Path) -> RanksFailed:
    """The error of a run whose ranks failed: torchrun's exit code, and the failed rank with its
    exit as torchrun's summary names them (the first observed failure)."""
    tail = log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:] if log_path.is_file() else ""
    if code == 0:
        return RanksFailed("the ranks exited without rank 0's outcome (see ranks.log)", tail)
    cause = tail.rpartition("Root Cause")[2]
    rank = re.search(r"rank\s*:\s*(\d+)", cause)
    exit_code = re.search(r"exitcode\s*:\s*(-?\d+)", cause)
    how = re.search(r"traceback\s*:\s*(.+)", cause)
    detail = ""
    if rank and exit_code:
        detail = f"rank {rank.group(1)} exited with {exit_code.group(1)}"
        if how and "N/A" not in how.group(1) and "To enable traceback" not in how.group(1):
            detail += f" ({how.group(1).strip()})"
        detail += "; "
    return RanksFailed(f"{detail}torch.distributed.run exited {code}, ending every rank", tail)

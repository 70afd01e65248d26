"""A worker's distributed runs (`dist.world_size` > 1): the worker that claims the run is its
node 0; its process starts the node's ranks with `torch.distributed.run` and supervises them;
global rank 0 (worker/ranks.py, always on node 0) trains into the database as the in-process
path does. A run over `dist.nodes` > 1 machines also needs workers for nodes 1..: node 0 opens
their seats and sends a join message per seat (worker/nodes.py answers it).

    placement     -> runs.placement (rendezvous endpoint, which worker holds which node; the
                     seats' changes are copied in by backend/store/nodes.py)
    start         -> torchrun in its own process group, output in run_dir/ranks.log; node 0's
                     agent holds the rendezvous and waits up to dist.timeout_s for the others
    supervise     -> the heartbeat stays attached to this process; a shutdown, a lost
                     attachment or another node's worker shutting down writes run_dir/ranks_stop,
                     which rank 0's should_stop reads (every rank then checkpoints and returns)
    exit 0        -> run_dir/ranks_outcome.json (rank 0's) ends the run as in-process training
                     would: succeeded | cancelled | queued again | lost
    exit non-zero -> a rank died (torchrun ended the others), or a node found no worker in time:
                     RanksFailed, the run fails with the tail of ranks.log as its traceback
    end           -> the seats nobody took are closed (their join messages do nothing)

A worker with fewer rank slots (`pcm worker --gpus N`) than a node of the run needs leaves the
run queued and sends its message again later, for a bigger worker; so does a worker offered a
multi-node run while another run gathers its nodes (`not_now`).

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
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy import select, update

from backend.store import lifecycle, nodes, wakeup
from backend.store.broker import TRAIN_RUN_TASK, celery_app, send_join_run
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
SEATS_POLL_S = 1.0
"""How often node 0 looks at the seats of the run's other nodes."""
SEATS_SETTLE_S = 15.0
"""How long node 0, its ranks failed, waits for the other nodes to record how theirs ended."""
TERMINATE_GRACE_S = 30.0
"""How long torchrun gets to end its ranks after SIGTERM before they are killed."""
OFFER_AGAIN_S = 10.0
"""A run (or a seat) this worker leaves for later is offered again after this many seconds (its
message is sent back with this countdown, so another worker can take it; no worker spins on it
meanwhile)."""
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


# --- a run this worker leaves for later ----------------------------------------------------------


def ranks_wanted(execution: RunExecution) -> int:
    """The ranks one node of the run starts (`world_size / nodes` of its stored config; 1 for a
    run that is gone)."""
    world_size, count = run_shape(execution)
    return world_size // count


def run_shape(execution: RunExecution) -> tuple[int, int]:
    """(dist.world_size, dist.nodes) of the run's stored config; (1, 1) for a run that is gone."""
    with session_scope(execution.url) as session:
        config = session.scalar(select(Run.config).where(Run.id == execution.run_id)) or {}
    dist = config.get("dist") or {}
    return int(dist.get("world_size", 1)), max(1, int(dist.get("nodes", 1)))


def too_big(execution: RunExecution, wanted: int) -> str | None:
    """Why this worker leaves a run (or a node of one) for later, if it has fewer rank slots
    than the `wanted` ranks of a node."""
    from worker.environment import rank_slots

    slots = rank_slots()
    if wanted > slots:
        return f"waits for a worker with {wanted} devices ({execution.worker_name} has {slots})"
    return None


GATHERING = "waits while another run gathers the workers of its nodes"
"""Why a worker leaves a multi-node run queued while another one gathers (`nodes.gather`)."""


def leave_for_later(execution: RunExecution, message: str) -> str:
    """Leave a queued run to another worker, or to this one later: say why on its stream (once
    per reason and worker), and send its message again after `OFFER_AGAIN_S`."""
    with session_scope(execution.url) as session:
        if session.scalar(select(Run.status).where(Run.id == execution.run_id)) != "queued":
            return "skipped"  # cancelled or taken meanwhile: nothing to wait for
        said = session.scalars(
            select(RunEvent.payload).where(RunEvent.run_id == execution.run_id, RunEvent.kind == "status")
        )
        if all(payload.get("message") != message for payload in said):
            lifecycle.record_event(
                session, execution.run_id, "status", {"status": "queued", "message": message}
            )
    wakeup.publish(execution.settings, execution.run_id)
    log.info("run %s: %s; offered again in %.0f s", execution.run_id, message, OFFER_AGAIN_S)
    settings = execution.settings
    celery_app(settings).send_task(
        TRAIN_RUN_TASK, args=[execution.run_id], queue=settings.queue, countdown=OFFER_AGAIN_S
    )
    return "waiting"


# --- starting and supervising the ranks ---------------------------------------------------------


def train_ranks(execution: RunExecution, config, stop: StopCheck) -> str:
    """Train a `dist.world_size` > 1 run as its node 0: this machine's ranks, and for
    `dist.nodes` > 1 the seats other workers take (worker/nodes.py). Returns the outcome status
    (raises RanksFailed when a rank failed)."""
    from pcm_engine.launch import advertised_rendezvous, local_rendezvous, torchrun_command

    d = config.dist
    run_dir = execution.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    for leftover in (STOP_FILE, OUTCOME_FILE):  # an earlier attempt's
        (run_dir / leftover).unlink(missing_ok=True)
    config.save(run_dir / "config.yaml")  # what the ranks of every node train (SFT start resolved)
    attempt = current_attempt(execution)
    name = rendezvous_id(execution.run_id, attempt)
    if d.nodes == 1:
        rendezvous = local_rendezvous(name)
    else:
        rendezvous = advertised_rendezvous(execution.settings.advertise_host, name)
    others = RunNodes(execution, attempt, d.nodes)  # their seats were opened with the claim
    others.open(
        nodes.placement(
            rendezvous.endpoint, d.world_size, d.strategy, d.nodes, attempt, execution.worker_name
        )
    )
    execution.event(
        f"starting {d.world_size} ranks ({d.strategy})"
        + (f" on {d.nodes} nodes; waiting for {d.nodes - 1} more worker(s) to join" if d.nodes > 1 else "")
    )
    command = torchrun_command(
        config,
        rendezvous,
        "worker.ranks",
        "--run-id",
        str(execution.run_id),
        "--worker",
        execution.worker_name,
    )
    try:
        code = RankProcesses(command, run_dir, LOG_FILE).supervise(
            lambda started: others.look(stop, run_dir, started)
        )
    finally:
        others.close()
    if others.abandoned is not None:
        return execution.stopped(others.abandoned)
    outcome = RanksOutcome.load(run_dir)
    if code != 0 or outcome is None:
        raise others.explain(ranks_failed(code, run_dir / LOG_FILE), d.timeout_s)
    reason = StopReason(outcome.reason) if outcome.reason else None
    return execution.conclude(outcome.stopped_early, reason, outcome.step_count)


def rendezvous_id(run_id: int, attempt: int) -> str:
    """The name every node of one attempt of a run gives the rendezvous."""
    return f"run-{run_id}-a{attempt}"


def current_attempt(execution: RunExecution) -> int:
    with session_scope(execution.url) as session:
        return session.scalar(select(Run.attempt).where(Run.id == execution.run_id)) or 0


class RunNodes:
    """Node 0's view of a run's other nodes (`nodes` > 1; nothing to do for one node): it asks
    the workers to take their seats (opened with the claim, `nodes.gather`), turns a seat whose
    worker shuts down into a stop request for rank 0, and closes the seats nobody took when the
    attempt ends."""

    def __init__(self, execution: RunExecution, attempt: int, count: int):
        self.execution = execution
        self.attempt = attempt
        self.count = count
        self.asked: StopReason | None = None  # what rank 0 was asked to stop for
        self.abandoned: StopReason | None = None  # why the ranks were ended while gathering
        self.gathering = count > 1  # node 0's agent still waits for the other nodes' agents
        self.leaving = False  # another node's worker shuts down
        self.failed_to_start: int | None = None  # a node whose worker could not start its ranks
        self.cancel_requested = False
        self._looked = 0.0

    def open(self, placement: dict) -> None:
        """Write the run's placement (the seats' workers read the rendezvous there), then send
        one join message per seat."""
        with session_scope(self.execution.url) as session:
            session.execute(
                update(Run)
                .where(Run.id == self.execution.run_id)
                .values(placement=placement)
                .execution_options(synchronize_session=False)
            )
        for node_rank in range(1, self.count):
            send_join_run(self.execution.run_id, self.attempt, node_rank, self.execution.settings)

    def look(self, stop: StopCheck, run_dir: Path, started: bool) -> bool:
        """Called every `POLL_S` while node 0's agent runs (`started`: its ranks are up, which
        happens once every node's agent has joined the rendezvous); True to end it at once.

        Before: no rank trains yet, so a shutdown, a lost run or a cancel ends the agent at once
        with nothing to checkpoint (`abandoned` says why), and so does a node whose worker could
        not start its ranks (`failed_to_start`; the run fails naming it) — node 0 need not wait
        out dist.timeout_s. After: ask rank 0 to stop (once, through run_dir/ranks_stop) when
        this worker shuts down or loses the run, or when another node's worker shuts down; rank
        0 reads a cancel itself."""
        reason = stop.local_reason()
        if self.gathering and started:
            self.execution.event(f"all {self.count} nodes joined; training")
        self.gathering = self.count > 1 and not started
        self._look_at_seats()
        if self.gathering:
            reason = reason or (StopReason.CANCEL if self.cancel_requested else None)
            if reason is not None:
                self.abandoned = reason
                run_id = self.execution.run_id
                log.info("run %s: stopped while waiting for its nodes (%s)", run_id, reason.value)
            return reason is not None or self.failed_to_start is not None
        reason = reason or (StopReason.SHUTDOWN if self.leaving else None)
        if reason is not None and self.asked is None:
            self.asked = reason
            (run_dir / STOP_FILE).write_text(reason.value)
            log.info("run %s: asked the ranks to stop (%s)", self.execution.run_id, reason.value)
        return False

    def _look_at_seats(self) -> None:
        """Read the seats (and, while gathering, the cancel flag), once a second."""
        now = time.monotonic()
        if self.count == 1 or now - self._looked < SEATS_POLL_S:
            return
        self._looked = now
        with session_scope(self.execution.url) as session:
            held = nodes.seats(session, self.execution.run_id, self.attempt)
            if self.gathering:
                cancel = select(Run.cancel_requested).where(Run.id == self.execution.run_id)
                self.cancel_requested = bool(session.scalar(cancel))
        if self.gathering:
            failed = [seat.node_rank for seat in held if seat.state == "failed"]
            self.failed_to_start = failed[0] if failed else None
        self.leaving = any(seat.state == "leaving" for seat in held)

    def close(self) -> None:
        if self.count > 1:
            with session_scope(self.execution.url) as session:
                nodes.close_seats(session, self.execution.run_id, self.attempt)

    def settled_seats(self) -> list:
        """The seats once their workers have recorded how their ranks ended (a rank that died
        elsewhere ends node 0's ranks about when its own node's agent exits), or as they are
        after `SEATS_SETTLE_S`."""
        deadline = time.monotonic() + SEATS_SETTLE_S
        while True:
            with session_scope(self.execution.url) as session:
                held = list(nodes.seats(session, self.execution.run_id, self.attempt))
            if all(seat.state not in nodes.HELD_STATES for seat in held) or time.monotonic() > deadline:
                return held
            time.sleep(SEATS_POLL_S)

    def explain(self, failure: RanksFailed, timeout_s: float) -> RanksFailed:
        """`failure` (node 0's), saying which other nodes never found a worker, or how the
        ranks of the other nodes that failed ended (a rank that dies on one node makes every
        node's ranks fail: the one killed shows which)."""
        if self.count == 1:
            return failure
        held = self.settled_seats()
        untaken = [seat.node_rank for seat in held if seat.state == "closed"]
        failed = [seat for seat in held if seat.state == "failed"]
        if self.failed_to_start is not None:
            (seat,) = [seat for seat in held if seat.node_rank == self.failed_to_start]
            message = f"node {seat.node_rank} ({seat.worker}) could not start its ranks: {seat.error}"
            return RanksFailed(message, failure.log_tail)
        if untaken:
            message = (
                f"node(s) {', '.join(map(str, untaken))} of {self.count} found no worker within "
                f"dist.timeout_s ({timeout_s:.0f} s): each needs a worker with "
                f"{ranks_wanted(self.execution)} free device(s) sharing this data folder; {failure}"
            )
        elif failed:
            others = "; ".join(
                f"node {seat.node_rank} ({seat.worker}): {seat.error or f'exit {seat.exit_code}'}"
                for seat in failed
            )
            message = f"node 0: {failure}; {others}"
        else:
            return failure
        return RanksFailed(message, failure.log_tail)


class RankProcesses:
    """The torchrun agent of one node of a run (and through it the node's ranks), as its worker
    supervises it; its output goes to run_dir/`log_name`."""

    def __init__(self, command: list[str], run_dir: Path, log_name: str):
        self.command = command
        self.run_dir = run_dir
        self.log_name = log_name

    def supervise(self, look: Callable[[bool], bool | None]) -> int:
        """Start the ranks and wait for them to exit, calling `look(started)` every `POLL_S`
        (`started`: the agent has started its ranks, i.e. the rendezvous is complete; `look`
        passes on stop requests, and answers True to end the ranks at once); returns torchrun's
        exit code. The ranks never outlive this call: leaving it any other way (an exception,
        the worker told to exit) ends them."""
        with open(self.run_dir / self.log_name, "ab") as output:
            process = subprocess.Popen(
                self.command,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a signal meant for the worker does not reach the ranks
            )
        try:
            started = False
            while (code := process.poll()) is None:
                started = started or bool(child_pids(process.pid))
                if look(started):
                    terminate(process)
                    return process.returncode
                time.sleep(POLL_S)
            return code
        finally:
            if process.poll() is None:
                terminate(process)


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

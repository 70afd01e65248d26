"""The seats of a multi-node run (`dist.nodes` > 1): node 0 is the worker that claimed the run;
each other node rank of an attempt is a `RunNode` row that exactly one worker takes.

    gather         node 0, in its claim's transaction: one open seat per node rank 1..nodes-1,
                   unless another run is still gathering its nodes
    take_seat      a worker answering the run's join message: open -> joined, once
    seat_heartbeat the seat's worker, every heartbeat: False once the attempt is over
    leave_seat     the seat's worker shuts down: joined -> leaving (node 0 then stops the run)
    end_seat       the seat's ranks exited: -> done | failed, with the exit code and error
    close_seats    node 0, when the attempt ends: the seats nobody took -> closed

A seat belongs to one attempt (`runs.attempt` when node 0 claimed it): a join message of an
earlier attempt finds its seat closed, or its run's attempt moved on, and does nothing.

Every change of a seat also rewrites that node of the run's `placement` (worker and state), in
the same transaction and under a lock of the run's row, so the run's page shows who holds which
node without reading this table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from backend.store.models import Run, RunNode, utcnow

HELD_STATES = ("joined", "leaving")
"""A worker holds the seat and its ranks run."""


def open_seats(session: Session, run_id: int, attempt: int, nodes: int) -> list[int]:
    """One open seat for each node rank 1..nodes-1 of `attempt`; returns their node ranks."""
    ranks = list(range(1, nodes))
    session.add_all(RunNode(run_id=run_id, attempt=attempt, node_rank=rank, state="open") for rank in ranks)
    session.flush()
    return ranks


def attempt_is_running(session: Session, run_id: int, attempt: int) -> bool:
    return (
        session.scalar(
            select(Run.id).where(Run.id == run_id, Run.status == "running", Run.attempt == attempt)
        )
        is not None
    )


def take_seat(session: Session, run_id: int, attempt: int, node_rank: int, worker: str) -> bool:
    """open -> joined for exactly one worker, while the attempt still runs; False otherwise (a
    second delivery, a closed seat, or an attempt that is over)."""
    if not attempt_is_running(session, run_id, attempt):
        return False
    result = session.execute(
        update(RunNode)
        .where(_seat(run_id, attempt, node_rank), RunNode.state == "open")
        .values(state="joined", worker=worker, heartbeat_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return _placed(session, run_id, attempt, result.rowcount == 1)


def seat_heartbeat(session: Session, run_id: int, attempt: int, node_rank: int, worker: str) -> bool:
    """Refresh a held seat's heartbeat; False when the seat is no longer this worker's or its
    attempt is over (the run stopped, failed, or went back to the queue)."""
    if not attempt_is_running(session, run_id, attempt):
        return False
    result = session.execute(
        update(RunNode)
        .where(_seat(run_id, attempt, node_rank), RunNode.worker == worker, RunNode.state.in_(HELD_STATES))
        .values(heartbeat_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def leave_seat(session: Session, run_id: int, attempt: int, node_rank: int, worker: str) -> bool:
    """joined -> leaving: the seat's worker shuts down and asks node 0 to stop the run."""
    result = session.execute(
        update(RunNode)
        .where(_seat(run_id, attempt, node_rank), RunNode.worker == worker, RunNode.state == "joined")
        .values(state="leaving")
        .execution_options(synchronize_session=False)
    )
    return _placed(session, run_id, attempt, result.rowcount == 1)


def end_seat(
    session: Session,
    run_id: int,
    attempt: int,
    node_rank: int,
    worker: str,
    exit_code: int,
    error: str | None = None,
) -> None:
    """The seat's ranks exited: done (exit 0) or failed, with the exit code and `error`."""
    result = session.execute(
        update(RunNode)
        .where(_seat(run_id, attempt, node_rank), RunNode.worker == worker)
        .values(state="done" if exit_code == 0 else "failed", exit_code=exit_code, error=error)
        .execution_options(synchronize_session=False)
    )
    _placed(session, run_id, attempt, result.rowcount == 1)


def close_seats(session: Session, run_id: int, attempt: int) -> int:
    """The attempt is over: its seats nobody took are closed (their join messages then do
    nothing); returns how many."""
    result = session.execute(
        update(RunNode)
        .where(RunNode.run_id == run_id, RunNode.attempt == attempt, RunNode.state == "open")
        .values(state="closed")
        .execution_options(synchronize_session=False)
    )
    _placed(session, run_id, attempt, result.rowcount > 0)
    return result.rowcount


GATHER_LOCK = 0x70636D6E
"""PostgreSQL advisory lock key that makes `gather` one at a time (SQLite has one writer anyway)."""


def gather(session: Session, run_id: int, nodes: int) -> bool:
    """Open the seats of run `run_id`'s current attempt, just claimed in this transaction —
    unless another run is still gathering its nodes: then False, and the caller rolls the claim
    back and leaves the run queued. So two multi-node runs never each hold a worker while both
    wait for the other's. Atomic: the claim's UPDATE holds SQLite's one write lock, and on
    PostgreSQL the advisory lock makes the check and the seats one step."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": GATHER_LOCK})
    if gathering(session, other_than=run_id) is not None:
        return False
    attempt = session.scalar(select(Run.attempt).where(Run.id == run_id))
    open_seats(session, run_id, attempt, nodes)
    return True


def gathering(session: Session, other_than: int) -> int | None:
    """A running run (other than `other_than`) whose attempt still has an open seat: it waits
    for workers to join."""
    return session.scalar(
        select(Run.id)
        .join(RunNode, (RunNode.run_id == Run.id) & (RunNode.attempt == Run.attempt))
        .where(Run.status == "running", RunNode.state == "open", Run.id != other_than)
        .limit(1)
    )


def seats(session: Session, run_id: int, attempt: int) -> Sequence[RunNode]:
    """The seats of one attempt, by node rank."""
    return session.scalars(
        select(RunNode)
        .where(RunNode.run_id == run_id, RunNode.attempt == attempt)
        .order_by(RunNode.node_rank)
    ).all()


def placement(
    endpoint: str, world_size: int, strategy: str, nodes: int, attempt: int, leader: str
) -> dict[str, Any]:
    """A distributed run's `runs.placement` as node 0 (`leader`) writes it when it starts the
    ranks: node i holds global ranks i*k..(i+1)*k-1 (k = world_size / nodes); nodes 1.. are open
    seats until a worker takes them."""
    per_node = world_size // nodes
    return {
        "endpoint": endpoint,
        "world_size": world_size,
        "strategy": strategy,
        "attempt": attempt,
        "nodes": [
            {
                "worker": leader if rank == 0 else None,
                "node_rank": rank,
                "ranks": list(range(rank * per_node, (rank + 1) * per_node)),
                "state": "joined" if rank == 0 else "open",
            }
            for rank in range(nodes)
        ],
    }


def _placed(session: Session, run_id: int, attempt: int, changed: bool) -> bool:
    """Copy the attempt's seats into the run's placement (when a seat `changed`); returns
    `changed`. The run's row is locked first, so two seats changing at once both land."""
    if not changed:
        return False
    stored = session.scalar(select(Run.placement).where(Run.id == run_id).with_for_update())
    if not stored or stored.get("attempt") != attempt:
        return True
    held = {seat.node_rank: seat for seat in seats(session, run_id, attempt)}
    nodes = [
        {**node, "worker": held[node["node_rank"]].worker, "state": held[node["node_rank"]].state}
        if node["node_rank"] in held
        else node
        for node in stored["nodes"]
    ]
    session.execute(
        update(Run)
        .where(Run.id == run_id)
        .values(placement={**stored, "nodes": nodes})
        .execution_options(synchronize_session=False)
    )
    return True


def _seat(run_id: int, attempt: int, node_rank: int):
    return (RunNode.run_id == run_id) & (RunNode.attempt == attempt) & (RunNode.node_rank == node_rank)

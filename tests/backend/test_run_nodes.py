"""The seats of a multi-node run (backend/store/nodes.py) on hand-made cases, against SQLite and
PostgreSQL: one worker per seat, a seat of an attempt that is over is nobody's, and every change
of a seat shows in the run's placement."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from backend.store import lifecycle, nodes
from backend.store.db import migrate, session_scope
from backend.store.models import Run
from tests.worker.checks import add_queued_run

LEADER, OTHER, THIRD = "w0@a", "w1@b", "w2@c"


@pytest.fixture(params=["sqlite_url", pytest.param("postgres_url", marks=pytest.mark.slow)])
def three_nodes(request) -> tuple[str, int]:
    """A run that LEADER claimed (attempt 1) with the placement and open seats of 3 nodes x 2
    ranks; returns (database url, run id)."""
    url = request.getfixturevalue(request.param)
    migrate(url)
    with session_scope(url) as session:
        run = add_queued_run(session)
        assert lifecycle.claim_run(session, run.id, LEADER)
        placement = nodes.placement("10.0.0.5:29400", 6, "ddp", 3, 1, LEADER)
        session.execute(update(Run).where(Run.id == run.id).values(placement=placement))
        assert nodes.open_seats(session, run.id, 1, 3) == [1, 2]
        return url, run.id


def placed(url: str, run_id: int) -> list[tuple]:
    with session_scope(url) as session:
        return [
            (n["node_rank"], n["worker"], n["state"], n["ranks"])
            for n in session.get(Run, run_id).placement["nodes"]
        ]


def test_the_placement_gives_each_node_its_ranks_and_leaves_the_seats_open():
    placement = nodes.placement("h:1", 4, "fsdp", 2, 3, LEADER)
    assert placement == {
        "endpoint": "h:1",
        "world_size": 4,
        "strategy": "fsdp",
        "attempt": 3,
        "nodes": [
            {"worker": LEADER, "node_rank": 0, "ranks": [0, 1], "state": "joined"},
            {"worker": None, "node_rank": 1, "ranks": [2, 3], "state": "open"},
        ],
    }


def test_a_seat_is_taken_once_and_shows_in_the_placement(three_nodes):
    url, run_id = three_nodes
    with session_scope(url) as session:
        assert nodes.take_seat(session, run_id, 1, 1, OTHER)
        assert not nodes.take_seat(session, run_id, 1, 1, THIRD)  # a second delivery or worker
        assert not nodes.take_seat(session, run_id, 1, 5, THIRD)  # no such node
    assert placed(url, run_id) == [
        (0, LEADER, "joined", [0, 1]),
        (1, OTHER, "joined", [2, 3]),
        (2, None, "open", [4, 5]),
    ]


def test_a_held_seat_beats_leaves_and_ends(three_nodes):
    url, run_id = three_nodes
    with session_scope(url) as session:
        assert nodes.take_seat(session, run_id, 1, 2, OTHER)
        assert nodes.seat_heartbeat(session, run_id, 1, 2, OTHER)
        assert not nodes.seat_heartbeat(session, run_id, 1, 2, THIRD)  # not its seat
        assert not nodes.seat_heartbeat(session, run_id, 1, 1, OTHER)  # an open seat has no holder
        assert not nodes.leave_seat(session, run_id, 1, 2, THIRD)
        assert nodes.leave_seat(session, run_id, 1, 2, OTHER)
        assert nodes.seat_heartbeat(session, run_id, 1, 2, OTHER)  # leaving, the ranks still run
        nodes.end_seat(session, run_id, 1, 2, OTHER, 0)
        assert [(s.node_rank, s.state, s.exit_code) for s in nodes.seats(session, run_id, 1)] == [
            (1, "open", None),
            (2, "done", 0),
        ]
    assert placed(url, run_id)[2][1:3] == (OTHER, "done")


def test_a_failed_node_keeps_its_exit_code_and_error(three_nodes):
    url, run_id = three_nodes
    with session_scope(url) as session:
        assert nodes.take_seat(session, run_id, 1, 1, OTHER)
        nodes.end_seat(session, run_id, 1, 1, OTHER, 1, "rank 2 exited with -9")
        (seat, _) = nodes.seats(session, run_id, 1)
        assert (seat.state, seat.exit_code, seat.error) == ("failed", 1, "rank 2 exited with -9")
    assert placed(url, run_id)[1][2] == "failed"


def test_closing_an_attempt_closes_only_the_seats_nobody_took(three_nodes):
    url, run_id = three_nodes
    with session_scope(url) as session:
        assert nodes.take_seat(session, run_id, 1, 1, OTHER)
        assert nodes.close_seats(session, run_id, 1) == 1
        assert not nodes.take_seat(session, run_id, 1, 2, THIRD)  # its join message came too late
        assert [s.state for s in nodes.seats(session, run_id, 1)] == ["joined", "closed"]
    assert [p[2] for p in placed(url, run_id)] == ["joined", "joined", "closed"]


def test_a_seat_of_an_attempt_that_is_over_is_nobodys(three_nodes):
    """The run went back to the queue (or failed): an open seat can't be taken, a held one's
    heartbeat is refused (its worker then stops), and the next attempt's seats are its own."""
    url, run_id = three_nodes
    with session_scope(url) as session:
        assert nodes.take_seat(session, run_id, 1, 1, OTHER)
        assert lifecycle.finish_run(session, run_id, LEADER, "queued")
        assert not nodes.take_seat(session, run_id, 1, 2, THIRD)
        assert not nodes.seat_heartbeat(session, run_id, 1, 1, OTHER)
        assert lifecycle.claim_run(session, run_id, THIRD)  # attempt 2, THIRD is node 0
        assert nodes.open_seats(session, run_id, 2, 2) == [1]
        assert not nodes.seat_heartbeat(session, run_id, 1, 1, OTHER)  # still attempt 1's seat
        assert not nodes.take_seat(session, run_id, 1, 2, LEADER)
        assert nodes.take_seat(session, run_id, 2, 1, OTHER)
        assert nodes.seat_heartbeat(session, run_id, 2, 1, OTHER)


def test_one_run_gathers_its_nodes_at_a_time(three_nodes):
    """A second multi-node run claimed while the first still has an open seat gets no seats (its
    worker rolls the claim back and leaves it queued); once the first has its nodes, it may."""
    url, first = three_nodes
    with session_scope(url) as session:
        owner = session.get(Run, first).owner_id
        second_run = Run(
            name="r2", owner_id=owner, config={}, config_hash="h", selector="pcm", env_name="tabletop",
            steps_total=3, summary={},
        )  # fmt: skip
        session.add(second_run)
        session.flush()
        second = second_run.id
        assert lifecycle.claim_run(session, second, OTHER)
        assert nodes.gathering(session, other_than=second) == first
        assert not nodes.gather(session, second, 2)
        assert nodes.seats(session, second, 1) == []
    with session_scope(url) as session:
        assert nodes.take_seat(session, first, 1, 1, THIRD) and nodes.take_seat(session, first, 1, 2, THIRD)
        assert nodes.gathering(session, other_than=second) is None
        assert nodes.gather(session, second, 2)
        assert [(s.attempt, s.node_rank, s.state) for s in nodes.seats(session, second, 1)] == [
            (1, 1, "open")
        ]
        assert nodes.gathering(session, other_than=first) == second

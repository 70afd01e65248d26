"""A run over two nodes (`dist.nodes` 2, one gloo rank each on the CPU) through two real worker
processes on PostgreSQL and Redis: the worker that claims the run is node 0 and holds the
rendezvous, the other takes the seat of node 1 from the join message (worker/distributed.py,
worker/nodes.py, backend/store/nodes.py). The workers share the data folder, as a lab's
machines share it over a network file system."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest
from sqlalchemy import select

from backend.store.models import RunNode, as_utc
from tests.services import ServiceStack, wait_for
from tests.worker.checks import (
    artifacts,
    assert_trained,
    events_in_db,
    rank_pids,
    run_row,
    train_over_http,
)

pytestmark = pytest.mark.slow

TWO_NODES = {
    "grpo.groups_per_step": 2,
    "dist.world_size": 2,
    "dist.nodes": 2,
    "dist.backend": "gloo",
    "dist.timeout_s": 20,
    "train.device": "cpu",
}


def seats(stack: ServiceStack, run_id: int) -> list[tuple[int, int, str, str | None]]:
    """(attempt, node rank, state, worker) of every seat of the run."""
    with stack.session() as session:
        rows = session.scalars(
            select(RunNode).where(RunNode.run_id == run_id).order_by(RunNode.attempt, RunNode.node_rank)
        )
        return [(seat.attempt, seat.node_rank, seat.state, seat.worker) for seat in rows]


def workers_by_name(stack: ServiceStack) -> dict[str, str]:
    """The stack's process name ('w1') of each registered worker ('w1@host')."""
    return {record.name: record.name.partition("@")[0] for record in stack.worker_records()}


def start_long_run(stack: ServiceStack, client) -> tuple[int, str]:
    """A 2-node run of 200 steps, once it made its first step: (its id, node 1's worker)."""
    overrides = {"train.steps": 200, "train.checkpoint_every": 0}
    run_id = stack.create_run(client, **TWO_NODES, **overrides)["id"]
    wait_for(lambda: (run_row(stack, run_id).steps_done or 0) >= 1, 120, "the first step")
    return run_id, run_row(stack, run_id).placement["nodes"][1]["worker"]


def start_waiting_run(stack: ServiceStack, client) -> int:
    """A 2-node run, once its node 0 waits for a worker to take node 1: its id."""
    run_id = stack.create_run(client, **TWO_NODES, **{"train.steps": 50})["id"]
    wait_for(lambda: seats(stack, run_id) == [(1, 1, "open", None)], 60, "node 0 to wait for node 1")
    return run_id


@pytest.fixture
def two_workers(lab_stack):
    lab_stack.start_api()
    lab_stack.start_workers("w1", "w2")
    return lab_stack


def test_a_two_node_run_trains_through_two_workers(two_workers):
    stack = two_workers
    steps = 3
    run, events, _ = train_over_http(
        stack, **TWO_NODES, **{"train.steps": steps, "eval.every": 3, "train.checkpoint_every": 3}
    )

    assert_trained(stack, run, events, steps)  # metrics once per step (rank 0 only), policy registered
    assert [a.step for a in artifacts(stack, run["id"]) if a.kind == "checkpoint"] == [3]
    placement = run_row(stack, run["id"]).placement
    assert re.fullmatch(r"127\.0\.0\.1:\d+", placement["endpoint"])  # PCM_ADVERTISE_HOST's default
    leader, follower = (node["worker"] for node in placement["nodes"])
    assert {leader, follower} == set(workers_by_name(stack))  # one node on each worker
    assert [(n["node_rank"], n["ranks"]) for n in placement["nodes"]] == [(0, [0]), (1, [1])]
    assert run_row(stack, run["id"]).worker == leader  # node 0 owns the run
    wait_for(lambda: seats(stack, run["id"]) == [(1, 1, "done", follower)], 30, "node 1 to end")
    assert run_row(stack, run["id"]).placement["nodes"][1]["state"] == "done"
    messages = [e.payload.get("message", "") for e in events_in_db(stack, run["id"])]
    assert "starting 2 ranks (ddp) on 2 nodes; waiting for 1 more worker(s) to join" in messages
    assert "all 2 nodes joined; training" in messages
    run_dir = stack.settings.runs_dir / str(run["id"])
    assert (run_dir / "ranks.log").is_file() and (run_dir / "ranks-node1.log").is_file()
    wait_for(
        lambda: all(r.current_run_id is None for r in stack.worker_records()), 30, "both workers to be idle"
    )


def test_a_node_whose_worker_shuts_down_sends_the_run_back_and_a_lone_worker_cannot_hold_it(two_workers):
    """SIGTERM to node 1's worker: its seat turns `leaving`, node 0 stops the run at the end of
    the step with a checkpoint and queues it again. The one worker left claims it as node 0,
    and when no worker takes node 1 within dist.timeout_s the run fails saying so."""
    stack = two_workers
    with stack.client() as client:
        run_id, follower = start_long_run(stack, client)
        assert stack.signal(workers_by_name(stack)[follower], signal.SIGTERM, timeout=90) == 0
        run = stack.wait_status(client, run_id, ("failed", "succeeded", "cancelled"), timeout=120)

    assert run["status"] == "failed" and run["attempt"] == 2, run
    assert "node(s) 1 of 2 found no worker within dist.timeout_s (20 s)" in run["error"], run["error"]
    first = [seat for seat in seats(stack, run_id) if seat[0] == 1]
    assert first == [(1, 1, "done", follower)]  # it left cleanly: its ranks checkpointed and exited 0
    assert seats(stack, run_id)[-1][:3] == (2, 1, "closed")  # nobody took node 1 of attempt 2
    checkpoints = [a.step for a in artifacts(stack, run_id) if a.kind == "checkpoint"]
    assert checkpoints, "the stop wrote a checkpoint"
    statuses = [e.payload["status"] for e in events_in_db(stack, run_id) if e.kind == "status"]
    assert "queued" in statuses[1:]  # sent back once, before the second attempt


def test_two_multi_node_runs_queued_together_train_one_after_the_other(two_workers):
    """Two workers, two 2-node runs: each worker could claim one and wait forever for the other
    to join it. While one run gathers its nodes, a worker leaves the other queued (and stays free
    to join), so both runs train."""
    stack = two_workers
    with stack.client() as client:
        ids = [stack.create_run(client, f"r{i}", **TWO_NODES, **{"train.steps": 2})["id"] for i in range(2)]
        finished = [stack.wait_status(client, run_id, ("failed", "succeeded"), timeout=240) for run_id in ids]

    assert [run["status"] for run in finished] == ["succeeded", "succeeded"], [r["error"] for r in finished]
    assert all(run["attempt"] == 1 for run in finished)
    waited = [
        e.payload.get("message")
        for run_id in ids
        for e in events_in_db(stack, run_id)
        if e.payload.get("status") == "queued" and "message" in e.payload
    ]
    assert waited and set(waited) == {"waits while another run gathers the workers of its nodes"}


def test_killing_a_rank_of_node_1_fails_the_run_naming_that_node(two_workers):
    stack = two_workers
    with stack.client() as client:
        run_id, follower = start_long_run(stack, client)
        (rank,) = wait_for(lambda: rank_pids(stack, follower), 10, "node 1's rank")
        os.kill(rank, signal.SIGKILL)
        run = stack.wait_status(client, run_id, ("failed", "succeeded", "cancelled"), timeout=90)

    assert run["status"] == "failed", run
    error = run["error"]
    assert (
        "node 0: rank 0 exited with 1" in error and f"node 1 ({follower}): rank 1 exited with -9" in error
    ), error
    assert seats(stack, run_id)[0][2] == "failed"
    assert not Path(f"/proc/{rank}").exists()
    wait_for(
        lambda: all(r.current_run_id is None for r in stack.worker_records()), 30, "both workers to be idle"
    )


def test_a_run_waiting_for_its_nodes_is_cancelled_at_once(lab_stack):
    """One worker, a 2-node run: node 0 waits for a worker to take node 1 (dist.timeout_s 20 s).
    A cancel meanwhile ends node 0's agent at once, with nothing to checkpoint, and closes the
    seat."""
    stack = lab_stack
    stack.start_api()
    stack.start_workers("w1")
    with stack.client() as client:
        run_id = start_waiting_run(stack, client)
        assert client.post(f"/api/runs/{run_id}/cancel").json()["status"] == "running"
        run = stack.wait_status(client, run_id, ("cancelled", "failed"), timeout=15)  # < dist.timeout_s

    assert run["status"] == "cancelled" and run["steps_done"] == 0, run
    assert seats(stack, run_id) == [(1, 1, "closed", None)]
    assert artifacts(stack, run_id) == []
    placement = run_row(stack, run_id).placement
    assert [(n["worker"], n["state"]) for n in placement["nodes"]][1] == (None, "closed")
    wait_for(lambda: stack.worker_records()[0].current_run_id is None, 30, "the worker to be idle")


def test_a_node_whose_worker_cannot_start_fails_the_run_at_once_naming_it(lab_stack, tmp_path):
    """Node 1's worker does not share node 0's data folder: it finds no config.yaml, its seat
    fails, and node 0 ends its agent at once (not after dist.timeout_s) and fails the run saying
    which node could not start and why."""
    stack = lab_stack
    stack.start_api()
    stack.start_workers("w1")
    with stack.client() as client:
        run_id = start_waiting_run(stack, client)
        stack.spawn("w2", "worker", "--name", "w2@%h", "--data-dir", str(tmp_path / "elsewhere"))
        run = stack.wait_status(client, run_id, ("failed", "succeeded", "cancelled"), timeout=60)

    assert run["status"] == "failed", run
    (seat,) = seats(stack, run_id)
    assert seat[2] == "failed" and seat[3].startswith("w2@")
    assert run["error"].startswith(
        f"RanksFailed: node 1 ({seat[3]}) could not start its ranks: no config.yaml"
    ), run
    assert "must share the data folder (PCM_DATA_DIR)" in run["error"]
    row = run_row(stack, run_id)
    took = (as_utc(row.finished_at) - as_utc(row.started_at)).total_seconds()
    assert took < TWO_NODES["dist.timeout_s"], took  # sooner than the rendezvous could time out

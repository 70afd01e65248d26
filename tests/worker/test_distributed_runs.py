"""Distributed runs (`dist.world_size` 2, gloo on the CPU) through real worker processes on
PostgreSQL and Redis: the worker starts the ranks with torch.distributed.run and supervises them
(worker/distributed.py, worker/ranks.py)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from backend.store import lifecycle
from backend.store.models import utcnow
from tests.conftest import REDIS_URL, create_postgres_database, drop_postgres_database
from tests.services import ServiceStack, wait_for
from tests.worker.checks import (
    artifacts,
    assert_one_row_per_step_and_name,
    assert_trained,
    events_in_db,
    metric_rows,
    rank_pids,
    run_row,
    train_over_http,
)

pytestmark = pytest.mark.slow

TWO_RANKS = {
    "grpo.groups_per_step": 2,
    "dist.world_size": 2,
    "dist.backend": "gloo",
    "dist.timeout_s": 30,
    "train.device": "cpu",
}
UNTIL_STOPPED = {"train.steps": 200, "train.checkpoint_every": 0}


def start_worker_with_slots(stack: ServiceStack, name: str, gpus: int) -> None:
    """`pcm worker --gpus N`, returned once it has registered."""
    process = stack.spawn(name, "worker", "--name", f"{name}@%h", "--gpus", str(gpus))

    def registered() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"worker {name} exited with {process.returncode}\n{stack.logs()}")
        return any(r.name.startswith(f"{name}@") for r in stack.worker_records())

    wait_for(registered, stack.start_timeout, f"worker {name} to register", interval=0.2)


@pytest.fixture(scope="module")
def two_slot_worker(tmp_path_factory):
    """The API and one worker with two rank slots on a fresh PostgreSQL database and Redis,
    shared by the tests that train 2-rank runs (one at a time)."""
    url, database = create_postgres_database()
    queue = f"runs-test-{uuid.uuid4().hex[:8]}"
    root = tmp_path_factory.mktemp("distributed")
    try:
        with ServiceStack(root, database_url=url, broker_url=REDIS_URL, queue=queue) as stack:
            stack.start_api()
            start_worker_with_slots(stack, "w2", gpus=2)
            yield stack
    finally:
        import redis

        redis.Redis.from_url(REDIS_URL).delete(queue)
        drop_postgres_database(database)


def steps_done(stack: ServiceStack, run_id: int) -> int:
    return run_row(stack, run_id).steps_done or 0


def messages(stack: ServiceStack, run_id: int) -> list[str]:
    return [e.payload["message"] for e in events_in_db(stack, run_id) if "message" in (e.payload or {})]


def test_a_two_rank_run_trains_through_a_worker_like_a_one_process_run(two_slot_worker):
    stack = two_slot_worker
    steps = 4
    run, events, _ = train_over_http(
        stack, **TWO_RANKS, **{"train.steps": steps, "eval.every": 2, "train.checkpoint_every": 2}
    )

    assert_trained(stack, run, events, steps)  # metrics once per step, checkpoints and policy registered
    assert [a.step for a in artifacts(stack, run["id"]) if a.kind == "checkpoint"] == [2, 4]
    (worker,) = stack.worker_records()
    assert worker.devices == "cpu x2"
    placement = run_row(stack, run["id"]).placement
    assert re.fullmatch(r"127\.0\.0\.1:\d+", placement.pop("endpoint"))  # the rendezvous
    assert placement == {
        "world_size": 2,
        "strategy": "ddp",
        "attempt": 1,
        "nodes": [{"worker": worker.name, "node_rank": 0, "ranks": [0, 1], "state": "joined"}],
    }
    assert "starting 2 ranks (ddp)" in messages(stack, run["id"])
    wait_for(lambda: stack.worker_records()[0].current_run_id is None, 10, "the worker to be idle")


def test_killing_one_rank_fails_the_run_without_hanging(two_slot_worker):
    stack = two_slot_worker
    with stack.client() as client:
        run_id = stack.create_run(client, **TWO_RANKS, **UNTIL_STOPPED)["id"]
        wait_for(lambda: steps_done(stack, run_id) >= 1, 90, "the first step")
        ranks = wait_for(lambda: rank_pids(stack), 10, "the rank processes")
        assert len(ranks) == 2
        os.kill(ranks[-1], signal.SIGKILL)
        killed_at = time.monotonic()
        run = stack.wait_status(client, run_id, ("failed", "succeeded", "cancelled"), timeout=60)

    assert run["status"] == "failed", run
    print(f"failed {time.monotonic() - killed_at:.1f} s after the kill: {run['error']}")
    assert "torch.distributed.run exited" in run["error"] and "-9" in run["error"], run["error"]
    assert "\n" not in run["error"]
    assert "Root Cause" in run["traceback"]  # the tail of ranks.log
    assert not any(Path(f"/proc/{pid}").exists() for pid in ranks)  # no rank outlives the run
    wait_for(lambda: stack.worker_records()[0].current_run_id is None, 10, "the worker to be idle")


def test_cancel_stops_every_rank_with_a_checkpoint(two_slot_worker):
    stack = two_slot_worker
    with stack.client() as client:
        run_id = stack.create_run(client, **TWO_RANKS, **UNTIL_STOPPED)["id"]
        wait_for(lambda: steps_done(stack, run_id) >= 1, 90, "the first step")
        ranks = rank_pids(stack)
        assert client.post(f"/api/runs/{run_id}/cancel").json()["cancel_requested"]
        at_request = steps_done(stack, run_id)
        run = stack.wait_status(client, run_id, ("cancelled", "failed", "succeeded"), timeout=60)

    assert run["status"] == "cancelled", run
    assert at_request <= run["steps_done"] <= at_request + 1
    (checkpoint,) = artifacts(stack, run_id)
    assert (checkpoint.kind, checkpoint.step) == ("checkpoint", run["steps_done"])
    assert Path(checkpoint.path, "state.pt").is_file()
    assert max(step for step, *_ in metric_rows(stack, run_id)) == run["steps_done"]
    wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in ranks), 10, "the ranks to exit")


def test_a_run_wider_than_the_worker_stays_queued_for_a_bigger_worker(lab_stack):
    stack = lab_stack
    stack.start_api()
    start_worker_with_slots(stack, "w1", gpus=1)
    with stack.client() as client:
        run_id = stack.create_run(client, **TWO_RANKS)["id"]
        wanted = "waits for a worker with 2 devices"
        wait_for(lambda: any(wanted in m for m in messages(stack, run_id)), 30, "the waiting note")
        time.sleep(2)  # a while longer: nothing claims it
        run = client.get(f"/api/runs/{run_id}").json()
        (worker,) = stack.worker_records()
        assert (run["status"], run["attempt"], run["worker"]) == ("queued", 0, None), run
        assert worker.devices == "cpu" and worker.current_run_id is None
        assert "offered again in" in stack.logs()

        # the message it sent back (held until its countdown) returns to the queue as it stops
        assert stack.signal("w1", signal.SIGTERM) == 0
        start_worker_with_slots(stack, "w2", gpus=2)
        run = stack.wait_status(client, run_id, ("succeeded", "failed"), timeout=60)

    assert (run["status"], run["worker"].split("@")[0]) == ("succeeded", "w2"), run
    assert sum(wanted in m for m in messages(stack, run_id)) == 1  # said once, however often offered


def test_a_run_taken_away_stops_its_ranks_and_keeps_its_status(two_slot_worker):
    """A run marked stale while its ranks train: the worker's heartbeat is refused, the worker
    asks the ranks to stop, and they checkpoint and exit, leaving the status alone."""
    stack = two_slot_worker
    with stack.client() as client:
        run_id = stack.create_run(client, **TWO_RANKS, **UNTIL_STOPPED)["id"]
        wait_for(lambda: steps_done(stack, run_id) >= 1, 90, "the first step")
        ranks = rank_pids(stack)
        with stack.session() as session:  # as the API's sweeper would, had the heartbeat lapsed
            assert lifecycle.mark_stale(session, 0, now=utcnow() + timedelta(hours=1)) == [run_id]
        wait_for(lambda: stack.worker_records()[0].current_run_id is None, 60, "the worker to be idle")
        run = client.get(f"/api/runs/{run_id}").json()

    assert run["status"] == "stale"
    (checkpoint,) = artifacts(stack, run_id)
    assert checkpoint.step == steps_done(stack, run_id)
    assert not any(Path(f"/proc/{pid}").exists() for pid in ranks)


def test_sigterm_checkpoints_every_rank_and_another_worker_resumes_the_run(lab_stack):
    stack, steps = lab_stack, 40  # a tiny step takes ~0.1 s: enough of them that the stop lands mid-run
    stack.start_api()
    start_worker_with_slots(stack, "w1", gpus=2)
    with stack.client() as client:
        overrides = {"train.steps": steps, "train.checkpoint_every": 0}
        run_id = stack.create_run(client, **TWO_RANKS, **overrides)["id"]
        wait_for(lambda: steps_done(stack, run_id) >= 1, 90, "the first step")
        ranks = rank_pids(stack)
        assert stack.signal("w1", signal.SIGTERM) == 0  # the ranks finish their step, then all exit
        queued = client.get(f"/api/runs/{run_id}").json()
        assert not any(Path(f"/proc/{pid}").exists() for pid in ranks)
        (checkpoint,) = artifacts(stack, run_id)
        assert queued["status"] == "queued" and checkpoint.step == queued["steps_done"] < steps

        start_worker_with_slots(stack, "w2", gpus=2)  # takes the message the first worker sent back
        run = stack.wait_status(client, run_id, ("succeeded", "failed"), timeout=90)

    assert (run["status"], run["attempt"], run["steps_done"]) == ("succeeded", 2, steps), run
    assert f"resumed from the checkpoint of step {checkpoint.step}" in messages(stack, run_id)
    assert_one_row_per_step_and_name(stack, run_id, steps)


def test_a_worker_told_to_quit_at_once_leaves_no_rank_behind(lab_stack):
    """SIGQUIT (Celery's cold shutdown) ends the worker at once, without waiting for the step:
    its ranks go with it."""
    stack = lab_stack
    stack.start_api()
    start_worker_with_slots(stack, "w1", gpus=2)
    with stack.client() as client:
        run_id = stack.create_run(client, **TWO_RANKS, **UNTIL_STOPPED)["id"]
        wait_for(lambda: steps_done(stack, run_id) >= 1, 90, "the first step")
        ranks = rank_pids(stack)
        assert len(ranks) == 2
        stack.signal("w1", signal.SIGQUIT, timeout=40)
    wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in ranks), 10, "the ranks to exit")


def test_the_supervising_side_never_loads_torch():
    """The worker imports worker.distributed for every task, wide or not (the ranks load torch)."""
    code = "import sys, worker.distributed, worker.ranks; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_pcm_worker_refuses_fewer_than_one_rank_slot(tmp_path):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PCM_")}
    done = subprocess.run(
        [sys.executable, "-m", "pcm_lab.cli", "worker", "--gpus", "0", "--data-dir", str(tmp_path)],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0 and "--gpus must be at least 1" in done.stderr

"""Faults, with real worker processes: a worker killed with SIGKILL, one stopped with SIGTERM, a
task message delivered twice, and a cancel while training."""

from __future__ import annotations

import shutil
import signal
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from backend.store import lifecycle
from backend.store.broker import send_train_run
from backend.store.models import Artifact, Run, utcnow
from tests.services import ServiceStack, wait_for
from tests.worker.checks import artifacts, assert_one_row_per_step_and_name, events_in_db, metric_rows

pytestmark = pytest.mark.slow


def newest_checkpoint(stack: ServiceStack, run_id: int) -> int | None:
    with stack.session() as session:
        query = select(Artifact.step).where(Artifact.run_id == run_id, Artifact.kind == "checkpoint")
        return max(session.scalars(query), default=None)


def steps_done(stack: ServiceStack, run_id: int) -> int:
    with stack.session() as session:
        return session.scalar(select(Run.steps_done).where(Run.id == run_id))


def db_statuses(stack: ServiceStack, run_id: int) -> list[str]:
    """The run's status changes as recorded in the database (progress messages left out)."""
    events = events_in_db(stack, run_id)
    return [e.payload["status"] for e in events if e.kind == "status" and "message" not in e.payload]


def resumed_steps(stack: ServiceStack, run_id: int) -> list[int]:
    return [
        e.payload["step"] for e in events_in_db(stack, run_id) if "resumed" in e.payload.get("message", "")
    ]


def test_kill_9_turns_the_run_stale_and_a_requeued_run_resumes_from_its_checkpoint(tmp_path):
    steps = 6
    with ServiceStack(tmp_path, env={"PCM_STALE_AFTER_S": "3"}) as stack:
        stack.start_api()
        stack.start_worker("w1")
        client = stack.client()
        run_id = stack.create_run(client, **{"train.steps": steps, "train.checkpoint_every": 2})["id"]

        wait_for(lambda: newest_checkpoint(stack, run_id), 60, "the first checkpoint")
        stack.signal("w1", signal.SIGKILL)
        killed_at = time.time()
        checkpoint = newest_checkpoint(stack, run_id)
        assert checkpoint < steps
        stack.start_worker("w2")  # idle until the run is requeued

        stale = stack.wait_status(client, run_id, ("stale",), timeout=30)
        assert stale["error"] == "worker heartbeat lost" and stale["worker"].startswith("w1@")
        assert client.post(f"/api/runs/{run_id}/requeue").json()["status"] == "queued"
        run = stack.wait_status(client, run_id, ("succeeded", "failed"))

        assert (run["status"], run["attempt"], run["steps_done"]) == ("succeeded", 2, steps), run
        assert run["worker"].startswith("w2@")
        # it resumes from the newest complete checkpoint on disk: the recorded one, or a later one
        # the killed worker finished writing but not recording
        [resumed] = resumed_steps(stack, run_id)
        assert checkpoint <= resumed < steps and resumed % 2 == 0
        rows = assert_one_row_per_step_and_name(stack, run_id, steps)
        # the steps after the checkpoint were trained again and their rows overwritten
        redone = {step for step, _, _, wall_time in rows if wall_time > killed_at}
        assert redone == set(range(resumed + 1, steps + 1))
        assert {a.kind for a in artifacts(stack, run_id)} == {"checkpoint", "policy"}
        client.close()


def test_sigterm_checkpoints_the_run_and_puts_it_back_for_another_worker(embedded_stack):
    steps = 6
    stack = embedded_stack
    stack.start_api()
    stack.start_worker("w1")
    client = stack.client()
    run_id = stack.create_run(client, **{"train.steps": steps, "train.checkpoint_every": 0})["id"]

    wait_for(lambda: steps_done(stack, run_id) >= 1, 60, "the first step")
    assert stack.signal("w1", signal.SIGTERM) == 0  # the worker finishes its step, then exits
    queued = client.get(f"/api/runs/{run_id}").json()
    assert queued["status"] == "queued" and queued["attempt"] == 1
    stopped_at = newest_checkpoint(stack, run_id)
    assert stopped_at == queued["steps_done"] < steps  # checkpointed exactly where it stopped
    assert stack.worker_records() == []

    stack.start_worker("w2")  # takes the message the first worker sent back
    run = stack.wait_status(client, run_id, ("succeeded", "failed"))
    assert (run["status"], run["attempt"], run["steps_done"]) == ("succeeded", 2, steps)
    assert resumed_steps(stack, run_id) == [stopped_at]
    assert_one_row_per_step_and_name(stack, run_id, steps)
    client.close()


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    """One API and two idle workers, shared by the tests that leave the processes running."""
    with ServiceStack(tmp_path_factory.mktemp("two-workers")) as stack:
        stack.start_api()
        stack.start_workers("w1", "w2")
        yield stack


def test_a_duplicated_task_message_never_starts_a_second_copy(two_workers):
    stack = two_workers
    with stack.client() as client:
        run_id = stack.create_run(client, **{"train.steps": 3})["id"]
        send_train_run(run_id, stack.settings)  # two more deliveries of the same run
        send_train_run(run_id, stack.settings)
        run = stack.wait_status(client, run_id, ("succeeded", "failed"))

    assert (run["status"], run["attempt"]) == ("succeeded", 1)
    assert db_statuses(stack, run_id).count("running") == 1  # one claim (checkpoint notes aside)
    wait_for(
        lambda: stack.logs(tail=10**7).count(f"run {run_id}: not queued") == 2,
        30,
        "both duplicates to be skipped",
    )
    metric_events = [e.step for e in events_in_db(stack, run_id) if e.kind == "metrics"]
    assert metric_events == [1, 2, 3]  # trained once: each step logged once


def test_cancel_stops_a_running_run_within_one_step(two_workers):
    stack = two_workers
    with stack.client() as client:
        run_id = stack.create_run(client, **{"train.steps": 200, "train.checkpoint_every": 0})["id"]
        wait_for(lambda: steps_done(stack, run_id) >= 1, 60, "the first step")
        answer = client.post(f"/api/runs/{run_id}/cancel").json()
        assert answer["status"] == "running" and answer["cancel_requested"]
        at_request = steps_done(stack, run_id)
        run = stack.wait_status(client, run_id, ("cancelled", "failed"), timeout=60)

    assert run["status"] == "cancelled" and run["finished_at"]
    assert at_request <= run["steps_done"] <= at_request + 1
    (checkpoint,) = artifacts(stack, run_id)
    assert checkpoint.kind == "checkpoint" and checkpoint.step == run["steps_done"]
    assert Path(checkpoint.path, "state.pt").is_file()
    assert max(step for step, *_ in metric_rows(stack, run_id)) == run["steps_done"]


def test_a_run_taken_away_from_its_worker_stops_at_the_next_step(two_workers):
    """A run marked stale while its worker still trains (e.g. a long database outage) is no longer
    that worker's: its next heartbeat is refused and it stops, leaving the status alone."""
    stack = two_workers
    with stack.client() as client:
        run_id = stack.create_run(client, **{"train.steps": 200, "train.checkpoint_every": 0})["id"]
        wait_for(lambda: steps_done(stack, run_id) >= 1, 60, "the first step")
        with stack.session() as session:  # as the API's sweeper would, had the heartbeat lapsed
            assert lifecycle.mark_stale(session, 0, now=utcnow() + timedelta(hours=1)) == [run_id]
        at_stale = steps_done(stack, run_id)
        stopped = wait_for(lambda: newest_checkpoint(stack, run_id), 60, "the worker to checkpoint and stop")
        wait_for(
            lambda: all(r.current_run_id is None for r in stack.worker_records()),
            30,
            "both workers to be idle",
        )
        run = client.get(f"/api/runs/{run_id}").json()

    assert run["status"] == "stale" and run["attempt"] == 1
    assert at_stale <= stopped <= at_stale + 1  # the step in flight finishes, then it stops
    assert steps_done(stack, run_id) == stopped


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="needs a machine without CUDA to fail")
def test_an_exception_fails_the_run_with_its_type_message_and_traceback(two_workers):
    stack = two_workers
    with stack.client() as client:  # valid for the API; the worker has no CUDA device
        run_id = stack.create_run(client, **{"train.device": "cuda"})["id"]
        run = stack.wait_status(client, run_id, ("failed", "succeeded"))

    assert run["status"] == "failed" and run["finished_at"]
    assert (
        run["error"] == "RuntimeError: train.device is 'cuda' but torch sees no CUDA device on this machine"
    )
    assert "Traceback" in run["traceback"] and "pick_device" in run["traceback"]
    assert db_statuses(stack, run_id) == ["queued", "running", "failed"]


def test_an_sft_start_is_trained_once_for_runs_that_share_it(two_workers):
    """Two runs launched together with policy.init=sft: one worker behaviour-clones the start
    (announcing it on the run's stream), the other waits for it and reuses it."""
    stack = two_workers
    with stack.client() as client:
        ids = [
            stack.create_run(client, name=n, **{"policy.init": "sft", "train.steps": 1})["id"] for n in "ab"
        ]
        runs = [stack.wait_status(client, run_id, ("succeeded", "failed")) for run_id in ids]

    assert [r["status"] for r in runs] == ["succeeded", "succeeded"]
    notes = {
        run_id: [e.payload.get("history") for e in events_in_db(stack, run_id) if e.payload.get("history")]
        for run_id in ids
    }
    # the preset's start has two stages (pre-training, fine-tuning), each cached in its folder:
    # both trained once, by one run's worker (announced on its stream); the other run reused them
    stages = sorted((stack.data_dir / "sft-starts").iterdir())
    assert len(stages) == 2 and all((stage / "policy" / "policy.json").is_file() for stage in stages)
    assert sorted(("start_trained" in n, "start_reused" in n) for n in notes.values()) == [
        (False, True),
        (True, False),
    ]
    assert runs[0]["start"]["hash"] == runs[1]["start"]["hash"] in {stage.name for stage in stages}
    assert {r["start"]["state"] for r in runs} == {"ready"}
    assert sorted(r["start"]["reused"] for r in runs) == [False, True]

"""Assertions on what a run left in the database, shared by the worker tests."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from sqlalchemy import func, select

from backend.store.models import Artifact, ChunkMask, Metric, Run, RunEvent, User
from pcm_engine import metrics as M
from tests.services import ServiceStack, read_events
from worker.artifacts import folder_digest


def add_queued_run(session) -> Run:
    """One queued run, owned by a new user "ada", with an empty config (for tests of what the
    worker writes into a run's row)."""
    user = User(username="ada")
    session.add(user)
    session.flush()
    run = Run(
        name="r", owner_id=user.id, config={}, config_hash="h", selector="pcm", env_name="tabletop",
        steps_total=3, summary={},
    )  # fmt: skip
    session.add(run)
    session.flush()
    return run


def train_over_http(stack: ServiceStack, **overrides) -> tuple[dict, list[dict], float]:
    """POST a tiny run; returns (the final run, its whole event stream, seconds from POST to
    'running')."""
    with stack.client() as client:
        posted = time.monotonic()
        run = stack.create_run(client, **overrides)
        assert run["status"] == "queued"
        stack.wait_status(client, run["id"], ("running", "succeeded", "failed"))
        to_running = time.monotonic() - posted
        events = list(read_events(client, run["id"]))
        final = client.get(f"/api/runs/{run['id']}").json()
    return final, events, to_running


def status_events(events: list[dict]) -> list[str]:
    """The statuses a stream announced, in order (progress messages left out)."""
    return [e["payload"]["status"] for e in events if e["kind"] == "status" and "message" not in e["payload"]]


def metric_rows(stack: ServiceStack, run_id: int) -> list[tuple[int, str, float, float]]:
    with stack.session() as session:
        query = select(Metric.step, Metric.name, Metric.value, Metric.wall_time).where(
            Metric.run_id == run_id
        )
        return [tuple(row) for row in session.execute(query)]


def artifacts(stack: ServiceStack, run_id: int) -> list[Artifact]:
    with stack.session() as session:
        return list(
            session.scalars(select(Artifact).where(Artifact.run_id == run_id).order_by(Artifact.step))
        )


def events_in_db(stack: ServiceStack, run_id: int) -> list[RunEvent]:
    with stack.session() as session:
        return list(session.scalars(select(RunEvent).where(RunEvent.run_id == run_id).order_by(RunEvent.id)))


def assert_one_row_per_step_and_name(stack: ServiceStack, run_id: int, steps: int) -> list[tuple]:
    """Exactly one row per (step, name), and every training step 1..steps has its metrics."""
    rows = metric_rows(stack, run_id)
    counts = Counter((step, name) for step, name, _, _ in rows)
    assert max(counts.values()) == 1
    for step in range(1, steps + 1):
        names = {name for (s, name) in counts if s == step}
        assert {M.ROLLOUT_SUCCESS, M.PCM_KEPT_FRACTION, M.TIME_UPDATE} <= names, step
    return rows


def assert_trained(stack: ServiceStack, run: dict, events: list[dict], steps: int) -> None:
    """A run that went queued -> running -> succeeded in one attempt, with everything it logged
    in the database and delivered over the event stream."""
    run_id = run["id"]
    assert run["status"] == "succeeded", run
    assert (run["steps_done"], run["attempt"], run["error"]) == (steps, 1, None)
    assert status_events(events) == ["queued", "running", "succeeded"]
    sse_ids = [int(e["sse_id"]) for e in events]
    assert sse_ids == sorted(sse_ids) and len(set(sse_ids)) == len(sse_ids)

    # the stream carried every step's metrics once, step 0 being the eval before training
    metric_events = [e for e in events if e["kind"] == "metrics"]
    assert [e["step"] for e in metric_events] == list(range(steps + 1))
    assert M.EVAL_SUCCESS in metric_events[0]["payload"]["metrics"]
    assert M.EVAL_SUCCESS in metric_events[-1]["payload"]["metrics"]

    # ... and the database holds exactly those values
    rows = assert_one_row_per_step_and_name(stack, run_id, steps)
    stored = {(step, name): value for step, name, value, _ in rows}
    streamed = {(e["step"], k): v for e in metric_events for k, v in e["payload"]["metrics"].items()}
    assert stored == {key: value for key, value in streamed.items() if value is not None}
    chunk_events = [e for e in events if e["kind"] == "chunks"]
    with stack.session() as session:
        chunk_rows = session.scalar(
            select(func.count()).select_from(ChunkMask).where(ChunkMask.run_id == run_id)
        )
    assert chunk_rows == sum(e["payload"]["count"] for e in chunk_events) > 0

    # checkpoints and the exported policy are registered with their content hashes
    found = artifacts(stack, run_id)
    kinds = Counter(a.kind for a in found)
    assert kinds["policy"] == 1 and kinds["checkpoint"] >= 1
    for artifact in found:
        assert (artifact.size_bytes, artifact.sha256) == folder_digest(Path(artifact.path))
    assert [a for a in found if a.kind == "policy"][0].step == steps

    with stack.client() as client:
        detail = client.get(f"/api/runs/{run_id}").json()
    assert (stack.data_dir / "runs" / str(run_id)).is_dir() and "run_dir" not in detail  # no server paths
    assert detail["environment"]["packages"]["torch"] and detail["environment"]["python"]
    assert detail["environment"]["device"] == "cpu"
    assert detail["summary"][M.EVAL_SUCCESS] == stored[(steps, M.EVAL_SUCCESS)]


def run_row(stack: ServiceStack, run_id: int) -> Run:
    with stack.session() as session:
        return session.scalar(select(Run).where(Run.id == run_id))


def rank_pids(stack: ServiceStack, worker: str | None = None) -> list[int]:
    """The rank processes of a worker's torchrun agent (the agent is the worker's child): of
    the worker named `worker`, or of the stack's only worker."""
    from worker.distributed import child_pids

    records = stack.worker_records()
    (record,) = records if worker is None else [r for r in records if r.name == worker]
    return [pid for agent in child_pids(record.pid) for pid in child_pids(agent)]

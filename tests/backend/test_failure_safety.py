"""Failing loudly and losing nothing: a broker password never reaches a caller, a run no worker
claims can be requeued and says it waits for a worker, and the live stream polls through a Redis
outage without losing or repeating an event."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from backend.store import lifecycle, wakeup
from backend.store.db import session_scope
from backend.store.models import RunEvent, utcnow
from tests.backend.conftest import launch
from tests.services import free_port, wait_for

PASSWORD = "s3cret-broker-pw"


def test_broker_password_is_masked_in_the_503_and_the_runs_error(make_client) -> None:
    client = make_client(broker_url=f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0")
    response = client.post("/api/runs", json={"preset": "tabletop_pcm", "name": "lost"})

    assert response.status_code == 503
    assert PASSWORD not in response.text
    assert "redis://:**@127.0.0.1" in response.json()["detail"]
    run = client.get("/api/runs").json()["data"][0]
    assert run["status"] == "failed" and PASSWORD not in json.dumps(run)


def backdate_queued_event(client, run_id: int, by: timedelta) -> None:
    """As if the run had entered the queue `by` ago (and no worker had taken it since)."""
    with client.db() as session:
        newest = session.scalar(select(func.max(RunEvent.id)).where(RunEvent.run_id == run_id))
        session.execute(update(RunEvent).where(RunEvent.id == newest).values(created_at=utcnow() - by))


def test_a_run_no_worker_claims_says_so_and_can_be_requeued(make_client) -> None:
    client = make_client(queue_wait_warning_s=60)
    run_id = launch(client)["id"]
    assert client.get(f"/api/runs/{run_id}").json()["waiting_for_worker_since"] is None
    assert client.post(f"/api/runs/{run_id}/requeue").status_code == 409  # not waiting long yet

    backdate_queued_event(client, run_id, timedelta(minutes=5))
    waiting = client.get(f"/api/runs/{run_id}").json()["waiting_for_worker_since"]
    assert waiting is not None
    listed = client.get("/api/runs").json()["data"]
    assert [r["waiting_for_worker_since"] for r in listed if r["id"] == run_id] == [waiting]

    requeued = client.post(f"/api/runs/{run_id}/requeue")
    assert requeued.status_code == 200, requeued.text
    assert requeued.json()["status"] == "queued"
    assert len(client.broker_messages()) == 2  # the launch and the requeue
    assert client.get(f"/api/runs/{run_id}").json()["waiting_for_worker_since"] is None  # queued anew


def test_a_claimed_run_is_not_waiting_for_a_worker(make_client) -> None:
    client = make_client(queue_wait_warning_s=60)
    run_id = launch(client)["id"]
    backdate_queued_event(client, run_id, timedelta(minutes=5))
    with client.db() as session:
        assert lifecycle.claim_run(session, run_id, "w1")
    assert client.get(f"/api/runs/{run_id}").json()["waiting_for_worker_since"] is None
    assert client.post(f"/api/runs/{run_id}/requeue").status_code == 409


# --- the live stream through a Redis outage ------------------------------------------------------


class PrivateRedis:
    """A redis-server of this test's own on a free port, which the test may kill and restart."""

    def __init__(self):
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""],
            stdout=subprocess.DEVNULL,
        )
        import redis

        def answers() -> bool:
            try:
                return bool(redis.Redis.from_url(self.url).ping())
            except redis.ConnectionError:
                return False

        wait_for(answers, 10, f"redis-server on port {self.port}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    yield server
    server.kill()


def sse_ids(body: str) -> list[int]:
    return [int(line.removeprefix("id: ")) for line in body.splitlines() if line.startswith("id: ")]


def test_live_stream_polls_through_a_redis_outage_and_loses_or_repeats_nothing(
    make_client, private_redis: PrivateRedis
) -> None:
    client = make_client(broker_url=private_redis.url, sse_poll_s=0.1)
    settings = client.settings
    run_id = launch(client)["id"]

    def write_event(i: int) -> None:
        with session_scope(settings.resolved_database_url) as session:
            lifecycle.record_event(session, run_id, "metrics", {"i": i}, step=i)
        wakeup.publish(settings, run_id)

    def finish() -> None:
        with session_scope(settings.resolved_database_url) as session:
            assert lifecycle.claim_run(session, run_id, "w1")
            assert lifecycle.finish_run(session, run_id, "w1", "succeeded")
        wakeup.publish(settings, run_id)

    def write_through_an_outage() -> None:
        for i in range(30):
            if i == 10:
                private_redis.kill()  # wake-ups stop: the stream must poll
            if i == 20:
                private_redis.start()  # and take wake-ups again
            write_event(i)
            time.sleep(0.05)
        finish()

    writer = threading.Thread(target=write_through_an_outage)
    writer.start()
    try:
        stream = client.get(f"/api/runs/{run_id}/events")  # returns once the run is final
    finally:
        writer.join()

    assert stream.status_code == 200, stream.text
    with client.db() as session:
        in_db = list(session.scalars(select(RunEvent.id).where(RunEvent.run_id == run_id).order_by("id")))
    assert sse_ids(stream.text) == in_db  # every event, once, in order (the stream ended: run final)

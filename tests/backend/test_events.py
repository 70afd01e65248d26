"""The live stream: Server-Sent Events from run_events, resumable with Last-Event-ID."""

from __future__ import annotations

import json
import threading
import time

from sqlalchemy import func, select

from backend.store import lifecycle
from backend.store.models import RunEvent
from tests.backend.conftest import Api, launch


def parse_sse(text: str) -> list[dict]:
    """Events of a stream body as dicts with `id`, `event` and parsed `data` (comments dropped)."""
    events = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":"))
        if "data" in fields:
            events.append(
                {"id": int(fields["id"]), "event": fields["event"], "data": json.loads(fields["data"])}
            )
    return events


def finished_run_with_metrics(client: Api) -> int:
    """A run that trained 3 steps and succeeded: queued, running, 3 metrics events, succeeded."""
    run_id = launch(client)["id"]
    with client.db() as session:
        lifecycle.claim_run(session, run_id, "w1")
    for step in range(3):
        with client.db() as session:
            lifecycle.record_event(session, run_id, "metrics", {"metrics": {"x": step}}, step=step)
    with client.db() as session:
        lifecycle.finish_run(session, run_id, "w1", "succeeded")
    return run_id


def test_a_finished_run_replays_its_history_and_the_stream_ends(client: Api) -> None:
    run_id = finished_run_with_metrics(client)

    response = client.get(f"/api/runs/{run_id}/events")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache" and response.headers["x-accel-buffering"] == "no"
    events = parse_sse(response.text)
    assert [e["event"] for e in events] == ["status", "status", "metrics", "metrics", "metrics", "status"]
    ids = [e["id"] for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert [e["data"]["step"] for e in events if e["event"] == "metrics"] == [0, 1, 2]
    assert events[-1]["data"]["payload"]["status"] == "succeeded"
    assert all(e["data"]["run_id"] == run_id for e in events)


def test_last_event_id_resumes_after_that_event(client: Api) -> None:
    run_id = finished_run_with_metrics(client)
    ids = [e["id"] for e in parse_sse(client.get(f"/api/runs/{run_id}/events").text)]

    by_header = parse_sse(
        client.get(f"/api/runs/{run_id}/events", headers={"Last-Event-ID": str(ids[2])}).text
    )
    assert [e["id"] for e in by_header] == ids[3:]
    by_query = parse_sse(client.get(f"/api/runs/{run_id}/events", params={"last_event_id": ids[-1]}).text)
    assert by_query == []
    # a page starts with ?last_event_id; when EventSource reconnects, its newer header wins
    both = client.get(
        f"/api/runs/{run_id}/events", params={"last_event_id": ids[1]}, headers={"Last-Event-ID": str(ids[3])}
    )
    assert [e["id"] for e in parse_sse(both.text)] == ids[4:]


def test_metrics_say_where_the_live_stream_should_start(client: Api) -> None:
    """`last_event_id` of /metrics: the page's stream starts after what the series already hold."""
    run_id = launch(client)["id"]
    with client.db() as session:
        lifecycle.claim_run(session, run_id, "w1")
        lifecycle.record_event(
            session, run_id, "status", {"status": "running", "message": "building the SFT start"}
        )
    with client.db() as session:
        note_id = session.scalar(select(func.max(RunEvent.id)).where(RunEvent.run_id == run_id))
    cursor = client.get(f"/api/runs/{run_id}/metrics").json()["last_event_id"]
    assert cursor == note_id - 1  # while a progress note is the newest event, it is still sent
    for step in (1, 2):
        with client.db() as session:
            lifecycle.record_event(session, run_id, "metrics", {"metrics": {"x": step}}, step=step)
    cursor = client.get(f"/api/runs/{run_id}/metrics").json()["last_event_id"]
    with client.db() as session:
        lifecycle.record_event(session, run_id, "metrics", {"metrics": {"x": 3}}, step=3)
        lifecycle.finish_run(session, run_id, "w1", "succeeded")
    after = parse_sse(client.get(f"/api/runs/{run_id}/events", params={"last_event_id": cursor}).text)
    assert [(e["event"], e["data"]["step"]) for e in after] == [("metrics", 3), ("status", None)]


def test_a_live_stream_delivers_new_events_and_ends_when_the_run_does(client: Api) -> None:
    run_id = launch(client)["id"]
    with client.db() as session:
        lifecycle.claim_run(session, run_id, "w1")

    def worker() -> None:
        time.sleep(0.3)
        with client.db() as session:
            lifecycle.record_event(session, run_id, "metrics", {"metrics": {"x": 1.0}}, step=1)
        time.sleep(0.2)
        with client.db() as session:
            lifecycle.finish_run(session, run_id, "w1", "failed", error="boom")

    thread = threading.Thread(target=worker)
    thread.start()
    events = parse_sse(client.get(f"/api/runs/{run_id}/events").text)  # returns when the stream ends
    thread.join()

    assert [e["event"] for e in events] == ["status", "status", "metrics", "status"]
    assert events[-1]["data"]["payload"] == {"status": "failed", "error": "boom"}

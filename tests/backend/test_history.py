"""A run's history: the event timeline builder (backend/store/history.py) on its own, and the API
contract `GET /api/runs/{id}` -> `"events": [{"at", "kind", "detail"}]`, the queue place of a
queued run, and the lineage of a clone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from backend.store import lifecycle
from backend.store.history import HISTORY_KEY, timeline
from backend.store.models import RunEvent, WorkerRecord, utcnow
from tests.backend.conftest import Api, launch

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def events(*payloads: dict, kind: str = "status") -> list[RunEvent]:
    return [
        RunEvent(
            id=i,
            run_id=1,
            kind=payload.pop("_kind", kind),
            payload=payload,
            created_at=T0 + timedelta(seconds=i),
        )
        for i, payload in enumerate(payloads, start=1)
    ]


def test_the_timeline_numbers_attempts_names_requeues_and_leaves_out_progress_and_metrics() -> None:
    rows = events(
        {"status": "queued"},
        {"status": "running", "worker": "w1"},
        {"status": "running", "message": "training start ab12: stage 1 of 2, epoch 1 of 6, ~3 min left"},
        {"status": "running", "message": "training start ab12: 1 stage(s)", HISTORY_KEY: "start_training"},
        {"_kind": "metrics", "step": 1, "metrics": {"sft/loss": 1.0}},
        {"status": "running", "message": "checkpoint at step 1", "step": 1, HISTORY_KEY: "checkpoint"},
        {"status": "running", "message": "epoch 3 of 9"},
        {"status": "running", "message": "checkpoint at step 2", "step": 2, HISTORY_KEY: "checkpoint"},
        {"_kind": "chunks", "step": 2, "count": 8},
        {"status": "running", "cancel_requested": True},
        {"status": "cancelled", "error": None},
        {"status": "queued"},
        {"status": "running", "worker": "w2"},
        {"status": "running", "message": "resumed from the checkpoint of step 2", HISTORY_KEY: "resumed"},
        {"status": "stale", "error": "worker heartbeat lost"},
        {"status": "queued"},
        {"status": "running"},
        {"status": "queued"},  # its worker shut down
        {"status": "queued"},  # sent again, nobody claimed it
        {"status": "running", "worker": "w1"},
        {"status": "succeeded", "error": None},
    )
    got = timeline(rows, cloned_from_id=7)

    assert all(set(entry) == {"at", "kind", "detail"} for entry in got)
    assert [(e["kind"], e["detail"]) for e in got] == [
        ("queued", "cloned from run #7"),
        ("claimed", "by worker w1 (attempt 1)"),
        ("start_training", "training start ab12: 1 stage(s)"),
        ("checkpoint", "checkpoint at step 2 (the newest of 2 in a row)"),
        ("cancel_requested", "the worker stops after its current step"),
        ("cancelled", ""),
        ("requeued", "from cancelled; resumes from its newest checkpoint"),
        ("claimed", "by worker w2 (attempt 2)"),
        ("resumed", "resumed from the checkpoint of step 2"),
        ("stale", "worker heartbeat lost"),
        ("requeued", "from stale; resumes from its newest checkpoint"),
        ("claimed", "attempt 3"),
        ("requeued", "its worker shut down; back in the queue, to resume from its newest checkpoint"),
        ("requeued", "sent again: no worker had claimed it"),
        ("claimed", "by worker w1 (attempt 4)"),
        ("succeeded", ""),
    ]
    assert got[0]["at"] == T0 + timedelta(seconds=1) and got[-1]["at"] > got[-2]["at"]
    assert timeline(events({"status": "queued"}))[0]["detail"] == "launched"


def test_get_run_tells_its_history_after_cancel_and_requeue(client: Api) -> None:
    run_id = launch(client)["id"]
    with client.db() as session:
        assert lifecycle.claim_run(session, run_id, "w1")
    client.post(f"/api/runs/{run_id}/cancel")
    with client.db() as session:
        assert lifecycle.finish_run(session, run_id, "w1", "cancelled")
    requeued = client.post(f"/api/runs/{run_id}/requeue").json()

    run = client.get(f"/api/runs/{run_id}").json()
    assert [e["kind"] for e in run["events"]] == [
        "queued",
        "claimed",
        "cancel_requested",
        "cancelled",
        "requeued",
    ]
    assert run["events"][1]["detail"] == "by worker w1 (attempt 1)" and run["attempt"] == 1
    assert all(set(e) == {"at", "kind", "detail"} for e in run["events"])
    assert requeued["events"] == run["events"]  # the action's answer carries it too


def test_a_queued_run_knows_its_place_and_the_workers_that_could_take_it(client: Api) -> None:
    first, second = launch(client, "a")["id"], launch(client, "b")["id"]
    with client.db() as session:
        now = utcnow()
        session.add_all(
            [
                WorkerRecord(
                    name="busy", hostname="h", pid=1, devices="cpu", heartbeat_at=now, current_run_id=99
                ),
                WorkerRecord(name="idle", hostname="h", pid=2, devices="cpu", heartbeat_at=now),
                WorkerRecord(name="gone", hostname="h", pid=3, heartbeat_at=now - timedelta(days=1)),
            ]
        )

    place = client.get(f"/api/runs/{second}").json()["queue"]
    assert (place["position"], place["ahead"]) == (2, 1)
    assert [(w["name"], w["busy"]) for w in place["workers"]] == [("busy", True), ("idle", False)]
    assert client.get(f"/api/runs/{first}").json()["queue"]["position"] == 1
    client.post(f"/api/runs/{first}/cancel")
    assert client.get(f"/api/runs/{second}").json()["queue"]["position"] == 1
    assert client.get(f"/api/runs/{first}").json()["queue"] is None  # not queued: no place


def test_a_clone_records_the_run_it_came_from(client: Api) -> None:
    source = launch(client, "src")
    clone = client.post(f"/api/runs/{source['id']}/clone", json={}).json()

    assert clone["cloned_from_id"] == source["id"] and source["cloned_from_id"] is None
    got = client.get(f"/api/runs/{clone['id']}").json()
    assert got["cloned_from_id"] == source["id"] and got["start"] is None  # no worker made a start yet
    assert got["events"][0] == {
        **got["events"][0],
        "kind": "queued",
        "detail": f"cloned from run #{source['id']}",
    }

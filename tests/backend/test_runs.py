"""Launching, listing and the lifecycle of runs through the API (SQLite and PostgreSQL)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from backend.store import lifecycle
from backend.store.models import Metric, Run, RunEvent, ShareLink
from pcm_engine.config import RunConfig
from pcm_engine.metrics import ROLLOUT_SUCCESS
from tests.backend.conftest import Api, launch


def test_create_from_preset_with_overrides_queues_a_task(client: Api) -> None:
    run = launch(client, "budget-3", overrides={"pcm.budget": 3, "pcm.selector": "uniform"})

    assert run["status"] == "queued"
    assert run["name"] == "budget-3" and run["owner"] == "admin" and run["visibility"] == "lab"
    assert run["preset"] == "tabletop_pcm" and run["selector"] == "uniform" and run["env_name"] == "tabletop"
    assert run["config"]["pcm"]["budget"] == 3 and run["config"]["name"] == "budget-3"
    expected = RunConfig.load("configs/tabletop_pcm.yaml", {"pcm.budget": 3, "pcm.selector": "uniform"})
    expected.name = "budget-3"
    assert run["config_hash"] == expected.config_hash()
    assert run["steps_total"] == expected.train.steps
    [message] = client.broker_messages()
    assert client.settings.queue in message.name
    assert json.loads(message.read_text())["headers"]["argsrepr"] == f"[{run['id']}]"


def test_create_from_a_whole_config(client: Api) -> None:
    run = launch(client, "whole", preset=None, config={"pcm": {"selector": "full"}, "train": {"steps": 7}})
    assert (run["selector"], run["steps_total"], run["preset"]) == ("full", 7, None)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [({"pcm.budget": 0}, "pcm.budget"), ({"pcm.no_such_field": 1}, "pcm.no_such_field")],
)
def test_a_bad_override_is_a_422_naming_the_dotted_field(client: Api, overrides: dict, field: str) -> None:
    response = client.post(
        "/api/runs", json={"name": "bad", "preset": "tabletop_pcm", "overrides": overrides}
    )

    assert response.status_code == 422
    body = response.json()
    assert body["fields"] == [field]
    assert body["detail"][0]["loc"] == ["body", "overrides", field]
    assert client.broker_messages() == []


def test_a_bad_field_of_a_whole_config_is_located_in_the_config(client: Api) -> None:
    response = client.post("/api/runs", json={"name": "bad", "config": {"pcm": {"budget": 0}}})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "config", "pcm", "budget"]
    assert response.json()["fields"] == ["pcm.budget"]


def test_a_cross_field_error_points_at_the_override_involved(client: Api) -> None:
    response = client.post(
        "/api/runs", json={"name": "x", "preset": "tabletop_pcm", "overrides": {"grpo.mini_batches": 1000}}
    )
    assert response.status_code == 422
    assert response.json()["fields"] == ["grpo.mini_batches"]
    assert "exceeds" in response.json()["detail"][0]["msg"]


@pytest.mark.parametrize("preset", ["no_such_preset", "../configs/tabletop_pcm", "/etc/hostname"])
def test_an_unknown_preset_is_a_422_naming_preset(client: Api, preset: str) -> None:
    response = client.post("/api/runs", json={"name": "x", "preset": preset})
    assert response.status_code == 422
    assert response.json()["fields"] == ["preset"]
    assert "tabletop_pcm" in response.json()["detail"][0]["msg"]  # says what would work


def test_a_body_needs_a_preset_or_a_config(client: Api) -> None:
    assert client.post("/api/runs", json={"name": "x"}).status_code == 422
    both = client.post("/api/runs", json={"name": "x", "preset": "tabletop_pcm", "config": {}})
    assert both.status_code == 422


def test_list_filters_sort_and_pagination(client: Api) -> None:
    launch(client, "alpha pcm", overrides={"pcm.selector": "pcm"})
    launch(client, "beta full", overrides={"pcm.selector": "full"})
    gamma = launch(client, "gamma full", overrides={"pcm.selector": "full"})
    client.post(f"/api/runs/{gamma['id']}/cancel")

    def names(**params) -> list[str]:
        body = client.get("/api/runs", params=params).json()
        return [run["name"] for run in body["data"]]

    assert names(sort="name") == ["alpha pcm", "beta full", "gamma full"]
    assert names(sort="-name") == ["gamma full", "beta full", "alpha pcm"]
    assert names(sort="-created_at")[0] == "gamma full"
    assert names(selector="full", sort="name") == ["beta full", "gamma full"]
    assert names(status="cancelled") == ["gamma full"]
    assert names(status="queued,cancelled", sort="name") == ["alpha pcm", "beta full", "gamma full"]
    assert names(q="ta f") == ["beta full"]
    assert names(env="tabletop", owner="admin", sort="name") == ["alpha pcm", "beta full", "gamma full"]
    assert names(owner="nobody") == []
    page = client.get("/api/runs", params={"sort": "name", "limit": 2, "offset": 1}).json()
    assert page["count"] == 3 and [r["name"] for r in page["data"]] == ["beta full", "gamma full"]
    assert client.get("/api/runs", params={"sort": "bogus"}).json()["fields"] == ["sort"]


def test_get_a_missing_run_is_404(client: Api) -> None:
    assert client.get("/api/runs/999").status_code == 404


def test_cancel_requeue_and_their_conflicts(client: Api) -> None:
    run_id = launch(client)["id"]

    cancelled = client.post(f"/api/runs/{run_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = client.post(f"/api/runs/{run_id}/cancel")
    assert again.status_code == 409 and "cancelled" in again.json()["detail"]

    requeued = client.post(f"/api/runs/{run_id}/requeue")
    assert requeued.status_code == 200 and requeued.json()["status"] == "queued"
    assert len(client.broker_messages()) == 2  # the launch and the requeue
    assert client.post(f"/api/runs/{run_id}/requeue").status_code == 409  # queued is not requeueable


def test_cancelling_a_running_run_flags_it_for_its_worker(client: Api) -> None:
    run_id = launch(client)["id"]
    with client.db() as session:
        assert lifecycle.claim_run(session, run_id, "w1")

    response = client.post(f"/api/runs/{run_id}/cancel")
    assert response.json()["status"] == "running" and response.json()["cancel_requested"] is True
    assert client.delete(f"/api/runs/{run_id}").status_code == 409


def test_clone_copies_the_stored_config_with_overrides(client: Api) -> None:
    source = launch(client, "src", overrides={"pcm.budget": 4})
    response = client.post(f"/api/runs/{source['id']}/clone", json={"overrides": {"pcm.selector": "full"}})

    assert response.status_code == 201
    clone = response.json()
    assert clone["id"] != source["id"] and clone["status"] == "queued" and clone["name"] == "src (copy)"
    assert clone["config"]["pcm"]["budget"] == 4 and clone["selector"] == "full"
    bad = client.post(f"/api/runs/{source['id']}/clone", json={"overrides": {"pcm.budget": -1}})
    assert bad.status_code == 422 and bad.json()["fields"] == ["pcm.budget"]


def test_delete_removes_the_run_and_its_folder(client: Api) -> None:
    run_id = launch(client)["id"]
    run_dir = client.settings.runs_dir / str(run_id)
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.jsonl").write_text("{}\n")
    with client.db() as session:
        session.get(Run, run_id).run_dir = str(run_dir)
        session.add(Metric(run_id=run_id, name=ROLLOUT_SUCCESS, step=1, value=0.5, wall_time=0.0))
    client.post(f"/api/runs/{run_id}/share")

    assert client.delete(f"/api/runs/{run_id}").status_code == 204
    assert client.get(f"/api/runs/{run_id}").status_code == 404
    assert not run_dir.exists()
    with client.db() as session:
        assert session.scalar(select(Run).where(Run.id == run_id)) is None
        for table in (Metric, RunEvent, ShareLink):  # the database cascades
            assert session.scalar(select(func.count()).select_from(table)) == 0

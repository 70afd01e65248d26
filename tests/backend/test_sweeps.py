"""Sweeps over the API (issue 16, item 3): create, read aggregated, cancel, extend, share, and who
may do which — on SQLite and on PostgreSQL (the `client` fixture's two databases)."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import func, select

from backend.store.models import Metric, Run, Sweep
from pcm_engine import metrics as M
from tests.backend.conftest import Api
from tests.backend.test_security import Lab, make_lab

GRID = {"pcm.selector": ["full", "pcm"], "pcm.budget": [1, 2]}


def create(client: Api, headers: dict | None = None, **body) -> dict:
    body = {"name": "sw", "preset": "tabletop_pcm", "grid": GRID, "seeds": [0, 1], **body}
    response = client.post("/api/sweeps", json=body, headers=headers or {})
    assert response.status_code == 201, response.text
    return response.json()


def counts(client: Api) -> tuple[int, int]:
    with client.db() as session:
        return session.scalar(select(func.count()).select_from(Run)), session.scalar(
            select(func.count()).select_from(Sweep)
        )


def test_a_sweep_is_one_run_per_point_and_seed_with_paired_seeds(client: Api) -> None:
    created = create(client)
    assert len(created["runs"]) == 8 and len(client.broker_messages()) == 8
    seen = set()
    for run_id in created["runs"]:
        run = client.get(f"/api/runs/{run_id}").json()
        config = run["config"]
        assert run["sweep_id"] == created["id"] and run["status"] == "queued"
        seen.add((config["pcm"]["selector"], config["pcm"]["budget"], config["train"]["seed"]))
        assert run["name"].startswith("sw [pcm.selector=")
    assert seen == {(s, b, seed) for s in ("full", "pcm") for b in (1, 2) for seed in (0, 1)}
    sweep = client.get(f"/api/sweeps/{created['id']}").json()
    assert sweep["runs"] == created["runs"] and sweep["seeds"] == [0, 1]
    assert [arm["values"] for arm in sweep["arms"]] == [
        {"pcm.selector": s, "pcm.budget": b} for s in ("full", "pcm") for b in (1, 2)
    ]
    assert all(arm["seeds"] == [0, 1] and len(arm["runs"]) == 2 for arm in sweep["arms"])
    # each PCM arm is divided by the GRPO arm of its own budget
    assert [arm["baseline"] for arm in sweep["arms"]] == [0, 1, 0, 1]
    assert client.get("/api/sweeps").json()[0]["id"] == created["id"]


def add_metrics(client: Api, run_id: int, rows: dict[int, dict[str, float]]) -> None:
    with client.db() as session:
        for step, values in rows.items():
            for name, value in values.items():
                session.add(Metric(run_id=run_id, name=name, step=step, value=value, wall_time=1e9 + step))


def test_arms_aggregate_mean_and_t_interval_over_seeds(client: Api) -> None:
    created = create(client, grid={"pcm.selector": ["full", "pcm"]}, seeds=[0, 1, 2])
    grpo, pcm = created["runs"][:3], created["runs"][3:]
    for i, run_id in enumerate(grpo):  # update 2 s, step 4 s; eval 0.2, 0.4, 0.6 at step 2
        add_metrics(
            client, run_id, {1: {M.TIME_STEP: 4, M.TIME_UPDATE: 2}, 2: {M.TIME_STEP: 4, M.TIME_UPDATE: 2}}
        )
        add_metrics(client, run_id, {2: {M.EVAL_SUCCESS: 0.2 * (i + 1)}})
    for i, run_id in enumerate(pcm):  # update 0.5, 1, 1.5 s (seed by seed: ratios 0.25, 0.5, 0.75)
        rows = {s: {M.TIME_STEP: 3, M.TIME_UPDATE: 0.5 * (i + 1)} for s in (1, 2)}
        add_metrics(client, run_id, rows)
    sweep = client.get(f"/api/sweeps/{created['id']}").json()
    full, masked = sweep["arms"]
    step, mean, lo, hi = full["series"][M.EVAL_SUCCESS][0]
    half = 4.302653 * 0.2 / math.sqrt(3)  # values 0.2, 0.4, 0.6: sd 0.2
    assert step == 2 and (mean, lo, hi) == pytest.approx((0.4, 0.4 - half, 0.4 + half), abs=1e-6)
    assert full["series"][M.TIME_UPDATE] == [[1, 2, 2, 2], [2, 2, 2, 2]]
    assert masked["series"][M.EVAL_SUCCESS] == []
    assert full["wall_clock"][-1] == [2, 8, 8, 8]  # 2 steps of 4 s
    assert masked["baseline"] == 0 and full["ratios"]["update_mean_s"][:1] == [1]
    mean, lo, hi, n = masked["ratios"]["update_mean_s"]
    assert (mean, n) == (pytest.approx(0.5), 3) and lo < 0.5 < hi
    assert masked["costs"]["update_mean_s"][0] == pytest.approx(1.0)
    assert full["costs"]["success_final"][0] == pytest.approx(0.4)
    assert masked["ratios"]["step_mean_s"][0] == pytest.approx(0.75)
    one_name = client.get(f"/api/sweeps/{created['id']}?names={M.TIME_UPDATE}").json()
    assert list(one_name["arms"][0]["series"]) == [M.TIME_UPDATE]


def test_a_bad_grid_key_or_value_is_named_and_nothing_is_created(client: Api) -> None:
    before = counts(client)
    typo = client.post(
        "/api/sweeps", json={"preset": "tabletop_pcm", "grid": {"pcm.budgett": [1, 2]}, "seeds": [0]}
    )
    assert typo.status_code == 422 and typo.json()["fields"] == ["pcm.budgett"]
    assert "not a config field" in typo.text
    bad_point = client.post(
        "/api/sweeps", json={"preset": "tabletop_pcm", "grid": {"pcm.budget": [2, 0]}, "seeds": [0, 1]}
    )
    assert bad_point.status_code == 422 and bad_point.json()["fields"] == ["pcm.budget"]
    assert bad_point.json()["detail"][0]["loc"] == ["body", "grid", "pcm.budget"]
    assert "pcm.budget=0" in bad_point.text
    not_a_list = client.post(
        "/api/sweeps", json={"preset": "tabletop_pcm", "grid": {"pcm.budget": 2}, "seeds": [0]}
    )
    assert not_a_list.status_code == 422
    twice = client.post("/api/sweeps", json={"preset": "tabletop_pcm", "seeds": [0, 0]})
    assert twice.status_code == 422 and "twice" in twice.text
    assert counts(client) == before and client.broker_messages() == []


def test_points_times_seeds_are_capped(client: Api) -> None:
    response = client.post(
        "/api/sweeps",
        json={"preset": "tabletop_pcm", "grid": {"pcm.budget": list(range(1, 10))}, "seeds": list(range(8))},
    )
    assert response.status_code == 422
    assert "9 grid points x 8 seeds = 72 runs" in response.text and "at most 64" in response.text
    assert counts(client) == (0, 0)


def test_cancel_stops_every_unfinished_run(client: Api) -> None:
    created = create(client, grid={"pcm.budget": [1, 2]}, seeds=[0])
    cancelled = client.post(f"/api/sweeps/{created['id']}/cancel")
    assert cancelled.status_code == 200 and sorted(cancelled.json()["cancelled"]) == created["runs"]
    statuses = {r["status"] for r in client.get(f"/api/sweeps/{created['id']}").json()["run_details"]}
    assert statuses == {"cancelled"}
    assert client.post(f"/api/sweeps/{created['id']}/cancel").json() == {"cancelled": []}


def test_more_seeds_add_a_run_to_every_arm(client: Api) -> None:
    created = create(client, seeds=[0])
    more = client.post(f"/api/sweeps/{created['id']}/seeds", json={"seeds": [3, 4]})
    assert more.status_code == 201 and len(more.json()["runs"]) == 8
    sweep = client.get(f"/api/sweeps/{created['id']}").json()
    assert sweep["seeds"] == [0, 3, 4] and all(arm["seeds"] == [0, 3, 4] for arm in sweep["arms"])
    again = client.post(f"/api/sweeps/{created['id']}/seeds", json={"seeds": [4, 5]})
    assert again.status_code == 422 and again.json()["fields"] == ["seeds"] and "[4]" in again.text
    too_many = client.post(f"/api/sweeps/{created['id']}/seeds", json={"seeds": list(range(10, 24))})
    assert too_many.status_code == 422 and "12 runs already in the sweep" in too_many.text
    assert client.post("/api/sweeps/999/seeds", json={"seeds": [9]}).status_code == 404


@pytest.fixture
def lab(make_client) -> Lab:
    return make_lab(make_client)


def test_roles_as_for_runs(lab: Lab) -> None:
    """A lab member launches, cancels, extends and shares; a viewer reads; another lab sees nothing."""
    carol, bob = lab.as_("carol"), lab.as_("bob")
    body = {"preset": "tabletop_pcm", "grid": {"pcm.budget": [1, 2]}, "seeds": [0], "lab_id": lab.lab_a}
    assert lab.client.post("/api/sweeps", json=body, headers=carol).status_code == 403
    created = create(lab.client, lab.as_("alice"), **body)
    url = f"/api/sweeps/{created['id']}"
    assert lab.client.get(url, headers=carol).status_code == 200
    for action, payload in (("cancel", None), ("seeds", {"seeds": [1]}), ("share", None)):
        refused = lab.client.post(f"{url}/{action}", json=payload, headers=carol)
        assert refused.status_code == 403 and "owner or member" in refused.text, action
    assert lab.client.get(url, headers=bob).status_code == 404
    assert lab.client.post(f"{url}/cancel", headers=bob).status_code == 404
    assert lab.client.get("/api/sweeps", headers=bob).json() == []
    assert lab.client.get(url).status_code == 401
    assert lab.client.post(f"{url}/seeds", json={"seeds": [1]}, headers=lab.as_("alice")).status_code == 201


def test_a_share_link_opens_the_sweep_and_its_runs_only(lab: Lab) -> None:
    alice = lab.as_("alice")
    created = create(lab.client, alice, grid={"pcm.budget": [1, 2]}, seeds=[0])
    other = lab.launch("alice")
    shared = lab.client.post(f"/api/sweeps/{created['id']}/share", headers=alice)
    assert shared.status_code == 201
    token, link_id = shared.json()["token"], shared.json()["id"]
    assert shared.json()["url"].endswith(f"/share/sweeps/{token}")
    guest = {"Authorization": f"Bearer {token}"}
    assert lab.client.get(f"/api/share/sweeps/{token}").json()["id"] == created["id"]
    assert lab.client.get(f"/api/sweeps/{created['id']}", headers=guest).status_code == 200
    for run_id in created["runs"]:
        assert lab.client.get(f"/api/runs/{run_id}/metrics", headers=guest).status_code == 200
    assert lab.client.get(f"/api/runs/{other['id']}/metrics", headers=guest).status_code == 404
    assert lab.client.get("/api/runs", headers=guest).status_code == 401  # no route that needs a user
    assert lab.client.get(f"/api/share/{token}").status_code == 404  # not a run's link
    links = lab.client.get(f"/api/sweeps/{created['id']}/share", headers=alice).json()
    assert [link["sweep_id"] for link in links] == [created["id"]]
    revoked = lab.client.delete(f"/api/sweeps/{created['id']}/share/{link_id}", headers=alice)
    assert revoked.status_code == 204
    assert lab.client.get(f"/api/sweeps/{created['id']}", headers=guest).status_code == 404
    assert lab.client.get(f"/api/share/sweeps/{token}").status_code == 404


def test_a_sweep_share_token_is_masked_in_access_logs() -> None:
    from backend.accesslog import redact

    for path in ("/share/sweeps/pcms_secret", "/api/share/sweeps/pcms_secret"):
        assert "pcms_secret" not in redact(f"GET {path} HTTP/1.1")

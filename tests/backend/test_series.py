"""Metric series (since_step, downsampling), chunk records and run comparison."""

from __future__ import annotations

from backend.store.models import ChunkMask, Metric
from backend.store.series import downsample
from pcm_engine.metrics import PCM_KEPT_FRACTION, ROLLOUT_SUCCESS, TRAIN_POLICY_LOSS
from tests.backend.conftest import Api, launch

T0 = 1_700_000_000.0


def add_metrics(client: Api, run_id: int, name: str, steps: range, value=lambda step: step / 10) -> None:
    with client.db() as session:
        session.add_all(
            Metric(run_id=run_id, name=name, step=s, value=value(s), wall_time=T0 + 2 * s) for s in steps
        )


def test_downsample_keeps_evenly_spaced_points_and_the_last() -> None:
    points = list(range(101))
    kept = downsample(points, 11)
    assert kept == list(range(0, 101, 10))
    assert downsample(list(range(10)), 4) == [0, 3, 6, 9]
    assert downsample([1, 2], 5) == [1, 2]
    assert downsample(list(range(1000)), 7)[-1] == 999


def test_series_since_step_and_names(client: Api) -> None:
    run_id = launch(client)["id"]
    add_metrics(client, run_id, ROLLOUT_SUCCESS, range(5))
    add_metrics(client, run_id, TRAIN_POLICY_LOSS, range(3), value=lambda s: -s)

    body = client.get(f"/api/runs/{run_id}/metrics").json()
    assert body["last_step"] == 4
    assert body["series"][ROLLOUT_SUCCESS] == [[s, s / 10] for s in range(5)]
    assert body["series"][TRAIN_POLICY_LOSS] == [[0, 0], [1, -1], [2, -2]]
    assert body["wall_time"][ROLLOUT_SUCCESS][-1] == [4, 8.0]  # seconds since the first metric

    only = client.get(
        f"/api/runs/{run_id}/metrics", params={"names": f"{TRAIN_POLICY_LOSS},{PCM_KEPT_FRACTION}"}
    )
    assert only.json()["series"] == {TRAIN_POLICY_LOSS: [[0, 0], [1, -1], [2, -2]], PCM_KEPT_FRACTION: []}

    newer = client.get(
        f"/api/runs/{run_id}/metrics", params={"names": ROLLOUT_SUCCESS, "since_step": 2}
    ).json()
    assert newer["series"][ROLLOUT_SUCCESS] == [[3, 0.3], [4, 0.4]]

    names = client.get(f"/api/runs/{run_id}/metric-names").json()
    assert names == sorted([ROLLOUT_SUCCESS, TRAIN_POLICY_LOSS])


def test_series_are_downsampled_on_the_server(client: Api) -> None:
    run_id = launch(client)["id"]
    add_metrics(client, run_id, ROLLOUT_SUCCESS, range(1000))

    body = client.get(f"/api/runs/{run_id}/metrics", params={"max_points": 50}).json()
    steps = [step for step, _ in body["series"][ROLLOUT_SUCCESS]]
    assert len(steps) == 50 and steps[0] == 0 and steps[-1] == 999
    assert body["last_step"] == 999


def test_chunks_default_to_the_latest_step(client: Api) -> None:
    run_id = launch(client)["id"]
    with client.db() as session:
        for step in (1, 3):
            for trajectory in range(2):
                for chunk in range(3):
                    session.add(
                        ChunkMask(
                            run_id=run_id,
                            step=step,
                            trajectory=trajectory,
                            chunk=chunk,
                            phase="approach" if chunk < 2 else "active_grip",
                            kept=chunk == 2,
                            success=trajectory == 0,
                            group=0,
                        )
                    )

    latest = client.get(f"/api/runs/{run_id}/chunks").json()
    assert latest["step"] == 3 and latest["steps"] == [1, 3] and len(latest["records"]) == 6
    assert latest["records"][2] == {
        "trajectory": 0,
        "chunk": 2,
        "phase": "active_grip",
        "kept": True,
        "success": True,
        "group": 0,
    }
    assert client.get(f"/api/runs/{run_id}/chunks", params={"step": 1}).json()["step"] == 1
    empty = client.get(f"/api/runs/{launch(client)['id']}/chunks").json()
    assert empty == {"step": None, "steps": [], "records": []}


def test_compare_lists_only_config_keys_that_differ(client: Api) -> None:
    a = launch(client, "a", overrides={"pcm.budget": 2})
    b = launch(client, "b", overrides={"pcm.budget": 5, "pcm.selector": "uniform"})
    add_metrics(client, a["id"], ROLLOUT_SUCCESS, range(3))

    body = client.get("/api/compare", params={"ids": f"{a['id']},{b['id']}"}).json()
    assert [run["id"] for run in body["runs"]] == [a["id"], b["id"]]
    ids = [str(a["id"]), str(b["id"])]
    assert body["config_diff"] == {
        "name": dict(zip(ids, ["a", "b"], strict=True)),
        "pcm.budget": dict(zip(ids, [2, 5], strict=True)),
        "pcm.selector": dict(zip(ids, ["pcm", "uniform"], strict=True)),
    }
    assert body["series"][ids[0]][ROLLOUT_SUCCESS] == [[0, 0.0], [1, 0.1], [2, 0.2]]
    assert body["series"][ids[1]] == {}

    assert client.get("/api/compare", params={"ids": "1,x"}).json()["fields"] == ["ids"]
    assert client.get("/api/compare", params={"ids": f"{a['id']},999"}).status_code == 404

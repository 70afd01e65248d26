"""/api/compare's derived numbers: computed by pcm_engine.analysis on the full series in the
database, not on the downsampled series the page draws."""

from __future__ import annotations

from sqlalchemy import insert

from backend.store.models import Metric
from pcm_engine import analysis
from pcm_engine import metrics as M
from tests.backend.conftest import Api, launch

STEPS = 2_500  # more than the 2,000 points a drawn series is downsampled to
EVAL_EVERY = 100


def synthetic_rows(seconds_per_step: float, update_s: float) -> list[dict]:
    """A run's rows: every step times and updates; every EVAL_EVERY steps an evaluation (its
    seconds inside time/step_s) whose success climbs by 0.04."""
    rows = []
    for step in range(STEPS):
        row = {"step": step, M.TIME_STEP: seconds_per_step + step % 7 / 10, M.TIME_UPDATE: update_s}
        row[M.ROLLOUT_SUCCESS] = min(1.0, step / STEPS)
        if step % EVAL_EVERY == 0:
            row.update({M.TIME_EVAL: 1.5, M.EVAL_SUCCESS: step // EVAL_EVERY * 0.04})
            row[M.TIME_STEP] += 1.5
        rows.append(row)
    return rows


def store(client: Api, run_id: int, rows: list[dict]) -> None:
    with client.db() as session:
        session.execute(
            insert(Metric),
            [
                {"run_id": run_id, "name": name, "step": row["step"], "value": value, "wall_time": 0.0}
                for row in rows
                for name, value in row.items()
                if name != "step"
            ],
        )


def test_compare_computes_wall_clock_and_costs_on_the_full_series(client: Api) -> None:
    grpo = launch(client, "grpo", overrides={"pcm.selector": analysis.BASELINE_SELECTOR})
    pcm = launch(client, "pcm")
    grpo_rows, pcm_rows = synthetic_rows(4.0, 2.0), synthetic_rows(3.0, 0.5)
    store(client, grpo["id"], grpo_rows)
    store(client, pcm["id"], pcm_rows)

    body = client.get(
        "/api/compare",
        params={"ids": f"{grpo['id']},{pcm['id']}", "names": M.ROLLOUT_SUCCESS, "level": 0.5},
    ).json()

    grpo_id, pcm_id = str(grpo["id"]), str(pcm["id"])
    assert len(body["series"][pcm_id][M.ROLLOUT_SUCCESS]) == client.settings.max_series_points < STEPS
    expected = analysis.run_costs(pcm_rows, M.EVAL_SUCCESS, 0.5)
    costs = body["costs"][pcm_id]
    assert costs["steps"] == STEPS
    assert costs["training_seconds"] == expected.training_seconds
    assert costs["training_seconds"] == sum(r[M.TIME_STEP] - r.get(M.TIME_EVAL, 0.0) for r in pcm_rows)
    assert costs == {**expected.__dict__}
    assert costs["level_step"] == 1_300  # the first evaluation at 0.52

    # the wall-clock axis: training seconds at every drawn step, the last one the run's total
    wall = body["wall_clock"][pcm_id]
    assert [step for step, _ in wall] == [step for step, _ in body["series"][pcm_id][M.ROLLOUT_SUCCESS]]
    assert wall[-1] == [STEPS - 1, expected.training_seconds]

    assert body["baseline_id"] == grpo["id"]
    assert body["ratios"][grpo_id]["update_mean_s"] == 1.0
    assert body["ratios"][pcm_id]["update_mean_s"] == 0.25
    assert body["ratios"][pcm_id]["training_seconds"] == (
        expected.training_seconds / analysis.run_costs(grpo_rows, M.EVAL_SUCCESS, 0.5).training_seconds
    )


def test_compare_measures_the_level_on_the_success_metric_asked_for(client: Api) -> None:
    run = launch(client)
    store(client, run["id"], synthetic_rows(1.0, 0.5))
    ask = {"ids": str(run["id"]), "names": M.TIME_STEP}

    on_train = client.get("/api/compare", params={**ask, "success": M.ROLLOUT_SUCCESS, "level": 0.2}).json()
    assert on_train["costs"][str(run["id"])]["level_step"] == 500
    assert on_train["baseline_id"] is None and on_train["ratios"] == {str(run["id"]): {}}
    assert client.get("/api/compare", params={**ask, "success": M.TIME_STEP}).status_code == 422
    assert client.get("/api/compare", params={**ask, "level": 1.5}).status_code == 422

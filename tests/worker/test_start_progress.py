"""The SFT start as a visible stage of a run, with a real worker process: its loss is in the run's
metrics while it trains (API contract: `GET /api/runs/{id}/metrics?names=sft/loss` holds points),
`runs.start` tells the epoch and time left, a cancel stops it between epochs, and a later run that
differs only in its RL seed and eval settings reuses the start and says so."""

from __future__ import annotations

import pytest

from pcm_engine import metrics as M
from tests.services import ServiceStack, wait_for

pytestmark = pytest.mark.slow

ONE_STAGE = {"policy.init": "sft", "sft.pretrain_demos_per_task": 0, "train.steps": 1}


def kinds(run: dict) -> list[str]:
    return [e["kind"] for e in run["events"]]


def test_the_start_streams_its_loss_and_progress_and_is_reused_by_a_run_with_another_seed(tmp_path):
    with ServiceStack(tmp_path) as stack:
        stack.start_api()
        stack.start_worker("w1")
        client = stack.client()

        # long enough to watch: cancelled while it trains
        slow = stack.create_run(client, "slow", **ONE_STAGE, **{"sft.epochs": 400, "sft.seed": 1})["id"]

        def training_with_points():
            run = client.get(f"/api/runs/{slow}").json()
            loss = client.get(f"/api/runs/{slow}/metrics", params={"names": M.SFT_LOSS}).json()["series"]
            start = run["start"] or {}
            if (
                run["status"] == "running"
                and start.get("state") == "training"
                and len(loss.get(M.SFT_LOSS, [])) >= 2
            ):
                return run, loss[M.SFT_LOSS]

        run, points = wait_for(training_with_points, 90, "sft/loss points while the start trains")
        start = run["start"]
        assert run["steps_done"] == 0 and run["summary"] == {}  # no RL step yet, progress untouched
        assert start["stage"] == start["stages"] == 1 and start["epochs"] == 400 and 1 <= start["epoch"] < 400
        assert start["eta_s"] is not None and start["eta_s"] >= 0 and start["reused"] is False
        assert [step for step, _ in points] == list(range(1, len(points) + 1))  # steps = epochs
        assert "start_training" in kinds(run)

        client.post(f"/api/runs/{slow}/cancel")
        cancelled = stack.wait_status(client, slow, ("cancelled", "failed", "succeeded"), timeout=60)
        assert cancelled["status"] == "cancelled" and cancelled["start"]["state"] == "training"
        assert kinds(cancelled)[-2:] == ["cancel_requested", "cancelled"]

        # a start trained to the end, then reused by a run that differs in train.seed and eval
        first = stack.create_run(client, "first", **ONE_STAGE, **{"sft.epochs": 2})["id"]
        made = stack.wait_status(client, first, ("succeeded", "failed"))
        second = stack.create_run(
            client, "second", **ONE_STAGE, **{"sft.epochs": 2, "train.seed": 3, "eval.episodes_per_task": 1}
        )["id"]
        reused = stack.wait_status(client, second, ("succeeded", "failed"))
        client.close()

    assert made["status"] == reused["status"] == "succeeded"
    assert made["start"]["reused"] is False and reused["start"]["reused"] is True
    assert made["start"]["hash"] == reused["start"]["hash"] != cancelled["start"]["hash"]
    for key in ("trained_at", "success", "task_success"):
        assert made["start"][key] == reused["start"][key]
    assert 0 <= made["start"]["success"] <= 1 and set(made["start"]["task_success"]) == {"0", "1"}
    assert "start_trained" in kinds(made) and "start_reused" in kinds(reused)
    [note] = [e for e in reused["events"] if e["kind"] == "start_reused"]
    assert note["detail"].startswith(f"reusing start {made['start']['hash']} (trained ")
    assert f"success {made['start']['success']:.0%})" in note["detail"]

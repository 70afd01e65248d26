"""Every wait shows progress, and the run keeps its history, in a real browser against a real stack:
the SFT start of a run that needs one is a visible stage (epochs, time left, its loss) within
10 s of launching it; a queued run says where it is in the queue and who could take it; after
cancel + requeue the page shows the run's event timeline with its attempts."""

from __future__ import annotations

import time

import pytest

from tests.e2e.conftest import FAST_RUN
from tests.e2e.test_dashboard import wait_points, wait_status

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]

# a one-stage start of many tiny epochs: long enough to watch (~10-20 s), short enough for a test
SLOW_START = {
    **FAST_RUN,
    "policy.init": "sft",
    "sft.pretrain_demos_per_task": 0,
    "sft.epochs": 600,
    "train.steps": 1,
}


def timeline(page) -> list[str]:
    """The kinds of the page's timeline entries, checkpoints left out."""
    kinds = page.eval_on_selector_all("#timeline li", "items => items.map((li) => li.dataset.kind)")
    return [kind for kind in kinds if kind != "checkpoint"]


def test_the_start_is_a_visible_stage_within_10_s_of_launch(stack, open_context, shoot):
    with stack.client() as client:
        launched = time.monotonic()
        run = client.post(
            "/api/runs", json={"preset": "tabletop_pcm", "name": "e2e-start", "overrides": SLOW_START}
        )
        assert run.status_code == 201, run.text
        run_id = run.json()["id"]
        page = open_context().new_page()
        page.goto(f"{stack.base_url}/runs/{run_id}")
        page.wait_for_selector("#start-stage:not([hidden]) #start-line", timeout=10_000)
        took = time.monotonic() - launched
        history = client.get(f"/api/runs/{run_id}").json()["events"]
        assert took < 10.5, f"the stage showed {took:.1f} s after the launch; the run's history: {history}"
        assert page.get_attribute("#start-stage", "data-state") in ("preparing", "training")
        # then its epochs, time left and loss, as they come (later on a busy machine)
        page.wait_for_function(
            "() => Number(document.querySelector('#start-progress')?.getAttribute('aria-valuenow')) > 0",
            timeout=90_000,
        )
        wait_points(page, "sft-loss-chart", 0, timeout=30_000)
        line = page.text_content("#start-line")
        assert line.startswith("training start ") and " of 600" in line
        page.wait_for_function("() => document.querySelector('#start-line').textContent.includes('left')")
        shoot(page, "run-start-training")
        assert "start training" in [kind.replace("_", " ") for kind in timeline(page)]
        client.post(f"/api/runs/{run_id}/cancel")  # free the worker for the next test
        wait_status(page, "cancelled", timeout=60_000)


def test_queue_place_and_the_timeline_after_cancel_and_requeue(stack, open_context, shoot):
    with stack.client() as client:
        busy = client.post(
            "/api/runs",
            json={
                "preset": "tabletop_pcm",
                "name": "e2e-busy",
                "overrides": {**FAST_RUN, "train.steps": 5000},
            },
        ).json()["id"]
        stack.wait_status(client, busy, ("running",))
        queued = client.post(
            "/api/runs", json={"preset": "tabletop_pcm", "name": "e2e-queued", "overrides": FAST_RUN}
        ).json()["id"]

    page = open_context().new_page()
    page.goto(f"{stack.base_url}/runs/{queued}")
    page.wait_for_selector("#queue-line")
    line = page.text_content("#queue-line")
    assert line.startswith("position 1 in the queue (0 ahead)") and f"busy with run #{busy}" in line
    page.click("#cancel-run")
    page.click("#cancel-confirm-yes")
    wait_status(page, "cancelled")
    assert page.locator("#queue-place").is_hidden()

    # the busy run: cancel it while it trains, requeue it, and read its history
    page.goto(f"{stack.base_url}/runs/{busy}")
    wait_status(page, "running")
    page.click("#cancel-run")
    page.click("#cancel-confirm-yes")
    wait_status(page, "cancelled", timeout=60_000)
    page.click("#requeue-run")
    wait_status(page, "running", timeout=60_000)
    page.wait_for_function(
        "() => document.querySelectorAll('#timeline li[data-kind=\"claimed\"]').length === 2"
    )
    page.wait_for_selector('#timeline li[data-kind="resumed"]')
    kinds = timeline(page)
    assert kinds[6] == "resumed"
    assert kinds[:6] == ["queued", "claimed", "cancel_requested", "cancelled", "requeued", "claimed"], kinds
    claims = page.eval_on_selector_all(
        '#timeline li[data-kind="claimed"]', "items => items.map((li) => li.textContent)"
    )
    assert "(attempt 1)" in claims[0] and "(attempt 2)" in claims[1] and "w1@" in claims[1]
    assert "attempt 2" in page.text_content("#lineage")
    shoot(page, "run-history-after-requeue")

    page.reload()  # the history is the server's, not the page's memory
    page.wait_for_selector('#timeline li[data-kind="requeued"]')
    assert timeline(page)[:6] == kinds[:6]
    with stack.client() as client:
        client.post(f"/api/runs/{busy}/cancel")
    wait_status(page, "cancelled", timeout=60_000)

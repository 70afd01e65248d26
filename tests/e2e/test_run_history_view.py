"""frontend/static/js/runhistory.js in the real browser without a server (the `page` fixture of
test_modules.py): what the run page says of a reused start, a queued run and a clone."""

from __future__ import annotations

import pytest

from tests.e2e.test_modules import page  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RENDER = """async (run) => {
  const { loadContract } = await import('/static/js/contract.js');
  const { SeriesStore } = await import('/static/js/charts.js');
  const { RunHistory, waitSections, historySection } = await import('/static/js/runhistory.js');
  document.body.replaceChildren(...waitSections(), historySection());
  new RunHistory(await loadContract(), new SeriesStore()).render(run);
  const text = (id) => document.getElementById(id)?.textContent ?? null;
  return {
    start: document.getElementById('start-stage').hidden ? null : text('start-line'),
    tasks: text('start-tasks'),
    lossChartShown: !document.getElementById('sft-loss-card').hidden,
    queue: document.getElementById('queue-place').hidden ? null : text('queue-line'),
    lineage: text('lineage'),
    clonedHref: document.querySelector('#lineage a')?.getAttribute('href') ?? null,
    timeline: [...document.querySelectorAll('#timeline li')].map((li) => li.textContent),
  };
}"""


def test_a_reused_start_a_clone_and_its_history(page):  # noqa: F811
    run = {
        "status": "succeeded",
        "attempt": 1,
        "cloned_from_id": 4,
        "start": {
            "hash": "ab12cd34ef56ab78",
            "state": "ready",
            "reused": True,
            "trained_at": "2026-11-28T12:00:00+00:00",
            "seconds": 250.0,
            "success": 0.4,
            "task_success": {"0": 0.25, "1": 0.5},
        },
        "queue": None,
        "events": [
            {"at": "2026-11-28T13:00:00Z", "kind": "queued", "detail": "cloned from run #4"},
            {
                "at": "2026-11-28T13:00:01Z",
                "kind": "start_reused",
                "detail": "reusing start ab12cd34ef56ab78",
            },
        ],
    }
    got = page.evaluate(RENDER, run)
    assert got["start"].startswith("reusing start ab12cd34ef56ab78 (trained ")
    assert got["start"].endswith(", in 4 min 10 s, success 40%)")
    assert got["tasks"] == "task 0: 25%task 1: 50%"
    assert got["lossChartShown"] is False  # no epoch of this run to draw
    assert got["queue"] is None
    assert got["lineage"] == "cloned from run #4 · start ab12cd34ef56ab78 · attempt 1"
    assert got["clonedHref"] == "/runs/4"
    assert len(got["timeline"]) == 2 and got["timeline"][0].endswith("queued — cloned from run #4")
    assert got["timeline"][1].endswith("start reused — reusing start ab12cd34ef56ab78")


def test_a_queued_run_says_where_it_is_and_who_could_take_it(page):  # noqa: F811
    queue = {
        "position": 3,
        "ahead": 2,
        "workers": [
            {"name": "w1@gpu", "devices": "cuda:0", "busy": True, "current_run_id": 9},
            {"name": "w2@gpu", "devices": "cuda:0", "busy": False, "current_run_id": None},
            {"name": "w3@gpu", "devices": "cuda:0", "busy": True, "current_run_id": None},  # not ours to see
        ],
    }
    got = page.evaluate(
        RENDER, {"status": "queued", "attempt": 0, "start": None, "queue": queue, "events": []}
    )
    assert got["start"] is None
    assert got["queue"] == (
        "position 3 in the queue (2 ahead) · "
        "workers that could take it: w1@gpu (busy with run #9), w2@gpu (idle), "
        "w3@gpu (busy with a run you may not see)"
    )
    alone = page.evaluate(RENDER, {"status": "queued", "attempt": 0, "queue": {**queue, "workers": []}})
    assert alone["queue"].endswith("no live worker could take it: start one (pcm worker)")


def test_a_start_this_run_trains_shows_its_loss_chart(page):  # noqa: F811
    start = {
        "hash": "ab12cd34ef56ab78",
        "state": "training",
        "stage": 1,
        "stages": 2,
        "epoch": 2,
        "epochs": 6,
    }
    got = page.evaluate(
        RENDER, {"status": "running", "attempt": 1, "start": start, "queue": None, "events": []}
    )
    assert got["start"].startswith("training start ab12cd34ef56ab78: stage 1 of 2, epoch 2 of 6")
    assert got["lossChartShown"] is True

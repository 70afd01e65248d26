"""Sweeps in the browser against a real stack (API + one Celery worker): a 2 x 2 x 2 sweep
(selector x budget x seeds) of tiny runs launched from the launch form's sweep section, trained by
the worker, aggregated on the sweep page with 95% bands and what PCM bought, linked from its runs
and the runs page, and shared with someone who is not logged in. Also the form's grid parser."""

from __future__ import annotations

import re

import pytest

from tests.e2e import test_modules
from tests.e2e.conftest import FAST_RUN, override_lines
from tests.e2e.test_dashboard import open_launch_form

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(420)]

page = test_modules.page  # frontend/ served from disk, for the pure helpers

# Per arm of a sweep figure: [upper, lower, mean] (sweep.js bandTraces).
BAND_JS = """(id) => {
  const g = document.getElementById(id);
  return (g && g.data || []).map((t) => ({ name: t.name, y: t.y, fill: t.fill || null }));
}"""


def test_a_sweeps_start_reads_plainly(page) -> None:
    said = page.evaluate(
        """async () => {
      const { startOf } = await import('/static/js/sweep.js');
      return [startOf(null), startOf({ run: 7, artifact: null }), startOf({ run: null, artifact: 12 })];
    }"""
    )
    assert said == ["", " · starting from run #7's policy", " · starting from policy artifact #12"]


def test_grid_and_seed_parsing(page) -> None:
    result = page.evaluate(
        """async () => {
      const { parseGrid, parseSeeds } = await import('/static/js/sweepform.js');
      let bad = null;
      try { parseSeeds('0, x'); } catch (err) { bad = err.message; }
      return {
        grid: parseGrid(
          'pcm.selector = full, pcm\\npcm.budget = 1, 2\\nenv.tasks = [[0], [1]]\\ntrain.steps = 5'),
        seeds: parseSeeds('0, 1 2'),
        bad,
      };
    }"""
    )
    assert result["grid"] == {
        "pcm.selector": ["full", "pcm"],
        "pcm.budget": [1, 2],
        "env.tasks": [[0], [1]],
        "train.steps": [5],
    }
    assert result["seeds"] == [0, 1, 2] and "'x' is not a seed" in result["bad"]


def test_a_2x2x2_sweep_from_the_form_aggregates_with_intervals(stack, open_context, shoot, console) -> None:
    console.allow("status of 422")  # the grid typo below, refused on purpose
    context = open_context()
    page = context.new_page()
    open_launch_form(page, stack.base_url)
    page.fill("#f-name", "e2e-sweep")
    # opened first: leaving the overrides box re-renders the form (a later click could miss)
    page.click("#sweep-section > summary")
    page.click("#launch-form details:has(#launch-overrides) > summary")
    page.fill("#launch-overrides", override_lines(FAST_RUN))
    # a typo in the grid is named beside the grid, and nothing is launched
    page.fill("#sweep-grid", "pcm.selectr = full, pcm")
    page.click("#sweep-launch")
    page.wait_for_selector("#sweep-grid-err p")
    assert "line 1, pcm.selectr" in page.inner_text("#sweep-grid-err")
    page.fill("#sweep-grid", "pcm.selector = full, pcm\npcm.budget = 1, 2")
    page.fill("#sweep-seeds", "0, 1")
    page.click("#sweep-launch")
    page.wait_for_url(re.compile(r"/sweeps/\d+$"))
    sweep_id = int(page.url.rsplit("/", 1)[1])
    page.wait_for_selector("#arms-table tbody tr[data-arm='3']")
    assert page.locator("#sweep-runs-table tbody tr").count() == 8

    # the page refreshes itself until every run is done
    page.wait_for_function(
        "() => [...document.querySelectorAll('#arms-table td[data-col=seeds]')]"
        ".every((td) => td.textContent === '2 (2 done)')",
        timeout=300_000,
    )
    page.wait_for_function("() => document.getElementById('sweep-cancel').hidden")
    arms = page.locator("#arms-table tbody tr")
    labels = [arms.nth(i).locator("th").inner_text() for i in range(4)]
    assert 'pcm.selector="full", pcm.budget=1' in labels[0] and 'pcm.selector="pcm"' in labels[3]
    # GRPO arms are the baselines; each PCM arm has an update-time ratio with its interval
    assert arms.nth(0).locator("td[data-col=update-ratio]").inner_text() == "baseline"
    pcm_ratio = arms.nth(2).locator("td[data-col=update-ratio]").inner_text()
    assert re.fullmatch(r"\d+\.\d\d× ± \d+\.\d\d", pcm_ratio), pcm_ratio
    assert "±" in arms.nth(0).locator("td[data-col=update]").inner_text()

    # bands: per arm an upper edge, a lower edge filled up to it, and the mean between them
    page.select_option("#sweep-metric", "time/update_s")
    page.wait_for_function(
        "() => document.getElementById('sweep-metric-title').textContent.startsWith('time/update_s')"
    )
    traces = page.evaluate(BAND_JS, "sweep-metric-step")
    assert len(traces) == 12 and [t["fill"] for t in traces[:3]] == [None, "tonexty", None]
    for upper, lower, mean in zip(traces[0::3], traces[1::3], traces[2::3], strict=True):
        assert all(lo <= m <= hi for lo, m, hi in zip(lower["y"], mean["y"], upper["y"], strict=True))
    assert any(
        hi > lo
        for upper, lower in zip(traces[0::3], traces[1::3], strict=True)
        for lo, hi in zip(lower["y"], upper["y"], strict=True)
    )
    assert len(page.evaluate(BAND_JS, "sweep-eval-wall")) == 12
    shoot(page, "sweep")

    # a run links to its sweep; the runs page lists the sweep
    page.click("#sweep-runs-table tbody tr:first-child a")
    page.wait_for_selector("#run-sweep-link")
    assert page.get_attribute("#run-sweep-link", "href") == f"/sweeps/{sweep_id}"
    page.goto(stack.base_url + "/")
    page.wait_for_selector(f"#sweeps-list li[data-sweep-id='{sweep_id}'] a")

    # shared whole: a logged-out context sees the sweep page read-only
    page.goto(f"{stack.base_url}/sweeps/{sweep_id}")
    page.click("#share-run")
    page.wait_for_function("() => document.getElementById('share-url').value.includes('/share/sweeps/')")
    guest = open_context().new_page()
    guest.goto(page.input_value("#share-url"))
    guest.wait_for_selector("#arms-table tbody tr[data-arm='3']")
    assert guest.locator("#sweep-cancel, #share-run, #sweep-add-seeds").count() == 0
    assert len(guest.evaluate(BAND_JS, "sweep-eval-step")) == 12


def test_cancel_and_add_seeds_from_the_sweep_page(stack, open_context) -> None:
    with stack.client() as client:
        body = {
            "name": "e2e-cancel",
            "preset": "tabletop_pcm",
            "grid": {"pcm.budget": [1, 2]},
            "seeds": [0],
            "overrides": {**FAST_RUN, "train.steps": 50},
        }
        created = client.post("/api/sweeps", json=body)
        assert created.status_code == 201, created.text
    page = open_context().new_page()
    page.goto(f"{stack.base_url}/sweeps/{created.json()['id']}")
    page.fill("#sweep-more-seeds", "5")
    page.click("#sweep-add-seeds")
    page.wait_for_function("() => document.querySelectorAll('#sweep-runs-table tbody tr').length === 4")
    page.click("#sweep-cancel")
    page.click("#sweep-cancel-confirm-yes")  # asked once
    page.wait_for_function(
        "() => [...document.querySelectorAll('#sweep-runs-table .status')]"
        ".every((s) => ['cancelled'].includes(s.dataset.status))",
        timeout=120_000,
    )

"""The dashboard's pure JS helpers, run in the real browser without a server: Playwright answers
the page's requests from frontend/ on disk (plotly.js from the plotly wheel, /api/contract from the
function the API serves it with)."""

from __future__ import annotations

import mimetypes
from pathlib import Path

import pytest

from backend.api.routes.contract import contract_body, metric_templates
from backend.pages import FRONTEND_DIR, plotly_js
from pcm_engine import metrics as M
from pcm_engine.phases import PHASES

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ORIGIN = "http://dashboard.test"
PAGE = (
    "<!doctype html><html><head><link rel='icon' href='data:,'></head><body><div id='g'></div></body></html>"
)


@pytest.fixture
def page(open_context):
    context = open_context()

    def serve(route):
        path = route.request.url.removeprefix(ORIGIN)
        if path == "/":
            return route.fulfill(body=PAGE, content_type="text/html")
        if path == "/api/contract":
            return route.fulfill(body=contract_body()[0], content_type="application/json")
        file = plotly_js() if path == "/static/vendor/plotly.min.js" else FRONTEND_DIR / path.lstrip("/")
        if file is None or not Path(file).is_file():
            return route.fulfill(status=404, body="")
        return route.fulfill(path=str(file), content_type=mimetypes.guess_type(str(file))[0] or "text/plain")

    context.route(f"{ORIGIN}/**", serve)
    page = context.new_page()
    page.goto(ORIGIN + "/")
    page.add_script_tag(url="/static/vendor/plotly.min.js")
    return page


def test_series_store_appends_live_points_and_redraws_only_on_edits(page):
    result = page.evaluate(
        """async () => {
      const { SeriesStore, LiveChart } = await import('/static/js/charts.js');
      const store = new SeriesStore();
      const chart = new LiveChart(document.getElementById('g'), {
        traces: [{ name: 'a', value: 'm/a' }, { name: 'sum', value: (row) => row['m/a'] + row['m/b'] }],
      });
      store.addSeries({ 'm/a': [[1, 1], [2, 2]], 'm/b': [[1, 10], [2, 20]] });
      chart.render(store); store.commit();
      let extends_ = 0;
      const extend = Plotly.extendTraces;
      Plotly.extendTraces = (...a) => { extends_ += 1; return extend(...a); };
      store.addRow(3, { 'm/a': 3, 'm/b': 30 });         // a new step: appended in place
      chart.update(store); store.commit();
      const afterAppend = { extends: extends_, x: [...chart.node.data[0].x], sum: [...chart.node.data[1].y] };
      store.addRow(3, { 'm/a': 3 });                    // a replayed value: nothing to draw
      const replayEdited = store.minEditedStep;
      store.addRow(2, { 'm/a': 5 });                    // a resumed step overwrote step 2: redraw
      chart.update(store); store.commit();
      Plotly.extendTraces = extend;
      return { afterAppend, replayEdited, extendsAfterEdit: extends_, a: [...chart.node.data[0].y] };
    }"""
    )
    assert result["afterAppend"] == {"extends": 1, "x": [1, 2, 3], "sum": [11, 22, 33]}
    assert result["replayEdited"] == float("inf")  # nothing changed since the last commit
    assert result["extendsAfterEdit"] == 1
    assert result["a"] == [1, 5, 3]


def test_override_lines_and_error_locations(page):
    result = page.evaluate(
        """async () => {
      const { parseOverrideLines, nest } = await import('/static/js/schemaform.js');
      const { pathOfLoc } = await import('/static/js/launch.js');
      let bad = null;
      try { parseOverrideLines('no equals sign'); } catch (e) { bad = e.message; }
      return {
        parsed: parseOverrideLines([
          '# comment', 'pcm.budget=4', 'env.tasks=[0, 1]', 'policy.pretrained=runs/sft', '',
          'grpo.dynamic_sampling=false',
        ].join('\\n')),
        nested: nest({ 'pcm.budget': 4, 'pcm.phases.release_low': 0.2, name: 'x' }),
        bad,
        locs: [
          pathOfLoc(['body', 'overrides', 'pcm.budget']),
          pathOfLoc(['body', 'config', 'pcm', 'phases', 'release_low']),
          pathOfLoc(['body', 'preset']),
          pathOfLoc(['body', 'config']),
        ],
      };
    }"""
    )
    assert result["parsed"] == {
        "pcm.budget": 4,
        "env.tasks": [0, 1],
        "policy.pretrained": "runs/sft",
        "grpo.dynamic_sampling": False,
    }
    assert result["nested"] == {"pcm": {"budget": 4, "phases": {"release_low": 0.2}}, "name": "x"}
    assert "line 1" in result["bad"]
    assert result["locs"] == ["pcm.budget", "pcm.phases.release_low", "preset", ""]


def test_chunk_map_colours_phases_and_marks_kept_chunks(page):
    result = page.evaluate(
        """async () => {
      const { drawChunkMap } = await import('/static/js/chunks.js');
      const { loadContract } = await import('/static/js/contract.js');
      const { phaseColor } = await import('/static/js/phases.js');
      const M = await loadContract(); // phases: active_grip, pre_grasp, release_ramp, approach, tail
      const records = [
        { trajectory: 0, chunk: 0, phase: 'approach', kept: false, success: true, group: 0 },
        { trajectory: 0, chunk: 1, phase: 'active_grip', kept: true, success: true, group: 0 },
        { trajectory: 1, chunk: 0, phase: 'pre_grasp', kept: true, success: false, group: 0 },
      ];
      const stats = drawChunkMap(document.getElementById('g'), records, M, { selector: 'pcm' });
      const data = document.getElementById('g').data;
      const ok = data.find((t) => t.name === 'trajectory succeeded');
      const swatches = data.filter((t) => t.x.length === 1 && t.x[0] === null);
      const legend = swatches.map((t) => [t.name, t.marker.color]);
      return { z: data[0].z, kept: [data[1].x, data[1].y], okRows: ok.y, stats: stats.counts, legend,
               grip: phaseColor(0), hover: data[0].text[0][0], dropped: stats.dropped };
    }"""
    )
    # a mixed group took part: its dropped chunk was left out by the selector
    assert "not selected by the pcm selector" in result["hover"]
    assert result["dropped"] == {"dynamic": 0, "selector": 1}
    # z = 2 * phase index + kept; a trajectory with fewer chunks leaves null cells
    assert result["z"] == [[6, 1], [3, None]]
    assert result["kept"] == [[1, 0], [0, 1]]
    assert result["okRows"] == [0]
    assert result["stats"]["active_grip"] == {"kept": 1, "total": 1}
    assert ["active grip", result["grip"]] in result["legend"]


def test_chunk_drop_reasons_follow_the_recorded_groups(page):
    reasons = page.evaluate(
        """async () => {
      const { dropReasons } = await import('/static/js/chunks.js');
      const records = [
        { trajectory: 0, chunk: 0, phase: 'tail', kept: false, success: false, group: 0 },  // all failed
        { trajectory: 1, chunk: 0, phase: 'tail', kept: false, success: false, group: 0 },
        { trajectory: 2, chunk: 0, phase: 'tail', kept: false, success: true, group: 1 },   // mixed
        { trajectory: 3, chunk: 0, phase: 'tail', kept: true, success: false, group: 1 },
      ];
      return [dropReasons(records), dropReasons(records, { dynamicSampling: false })];
    }"""
    )
    assert reasons[0] == ["dynamic", "dynamic", "selector", "kept"]
    assert reasons[1] == ["selector", "selector", "selector", "kept"]  # no dynamic sampling: all took part


def emittable_metric_names() -> list[str]:
    """Every metric name the engine can emit: the fixed ones, and every name template filled in
    for each phase (per-task templates for two task indices)."""
    values = {"phase": PHASES, "task": (0, 1)}
    filled = [
        spec.template.replace("{" + spec.over + "}", str(value))
        for spec in metric_templates().values()
        for value in values[spec.over]
    ]
    return list(dict.fromkeys(M.all_metric_names() + filled))


def test_the_run_page_can_draw_every_metric_the_engine_emits(page):
    """What "can draw" means: built as the run page builds them, over a store holding two steps of every name
    the engine can emit, some chart draws a trace with points for each name — one of the named
    charts, or the "every other metric" chart once the name is picked in its list."""
    names = emittable_metric_names()
    drawn = page.evaluate(
        """async (names) => {
      const { loadContract } = await import('/static/js/contract.js');
      const { runCharts } = await import('/static/js/runcharts.js');
      const { SeriesStore } = await import('/static/js/charts.js');
      const M = await loadContract();
      const store = new SeriesStore();
      for (const step of [1, 2]) store.addRow(step, Object.fromEntries(names.map((n) => [n, 0.5])));
      const charts = [];
      for (const def of runCharts(M)) {
        const node = Object.assign(document.createElement('div'), { id: def.id });
        document.body.append(node);
        charts.push(def.make(node, [...charts]));
      }
      const drawn = {};
      const collect = (chart) => {
        for (const trace of chart.node.data.filter((t) => (t.x || []).length)) {
          for (const name of trace.meta || []) (drawn[name] ??= new Set()).add(chart.node.id);
        }
      };
      for (const chart of charts) {
        chart.render(store);
        collect(chart);
      }
      const other = charts[charts.length - 1];
      for (const option of [...other.picker.options]) {
        other.picker.value = option.value;
        other.picker.dispatchEvent(new Event('change'));
        collect(other);
      }
      return Object.fromEntries(Object.entries(drawn).map(([name, ids]) => [name, [...ids]]));
    }""",
        names,
    )
    assert not [name for name in names if name not in drawn], "metrics no chart can draw"
    # the "every other metric" list offers only what no named chart draws
    assert not [name for name, charts in drawn.items() if len(charts) > 1 and "chart-other" in charts]
    assert any(charts == ["chart-other"] for charts in drawn.values())

// The compare page: several runs' curves against step and against training wall-clock, "what PCM
// bought" relative to the plain GRPO run, and the config keys that differ. Every number it shows
// (wall-clock, time to a success level, costs and their ratios) comes computed from /api/compare
// (pcm_engine.analysis on the full series); the page only draws. The view (runs, curve, success
// level) lives in the URL.

import { api, ensureSession } from "./api.js";
import { drawFigure, stepAxis } from "./charts.js";
import { loadContract, metricAxis } from "./contract.js";
import { fmtBytes, fmtDuration, fmtPct, fmtRatio, fmtSeconds, isNum } from "./format.js";
import { drawTaskCurves, taskMetrics } from "./taskcurves.js";
import { clear, el, mountNav, notice, poll, readQuery, statusBadge, writeQuery } from "./ui.js";

const REFRESH_MS = 4000;
// A run is drawn in its method's colour (the contract's, the same in every view, whatever the
// order of the ids); several runs of one method differ by dash.
const DASHES = ["solid", "dash", "dot", "dashdot", "longdash", "longdashdot"];

export async function mountComparePage() {
  await ensureSession();
  mountNav();
  const M = await loadContract();
  const view = { metric: M.ROLLOUT_SUCCESS, level: "50", on: "eval", ...readQuery() };
  const controls = document.getElementById("compare-controls");
  const message = document.getElementById("compare-message");
  const successMetric = () => (view.on === "eval" ? M.EVAL_SUCCESS : M.ROLLOUT_SUCCESS);
  let data = null;
  let loads = 0; // a newer view's answer must not be replaced by a slower, older one

  buildControls(controls, view, M.all, () => {
    writeQuery(view);
    load();
  });

  const render = () => {
    const runs = data.runs;
    const colorOf = new Map(runs.map((r) => [r.id, M.methodColor(r.selector)]));
    const dashOf = new Map(runs.map((r) => {
      const sameMethod = runs.filter((other) => other.selector === r.selector);
      return [r.id, DASHES[sameMethod.indexOf(r) % DASHES.length]];
    }));
    const labelOf = (r) => `#${r.id} ${r.name} (${r.selector})`;
    const isBaseline = (r) => r.id === data.baseline_id;
    const walls = new Map(runs.map((r) => [r.id, new Map(data.wall_clock[r.id] || [])]));
    const yaxis = { title: { text: view.metric }, ...metricAxis(view.metric) };
    const trace = (r, xOf) => {
      const pts = (data.series[r.id] || {})[view.metric] || [];
      return {
        type: "scatter", mode: pts.length < 30 ? "lines+markers" : "lines", name: labelOf(r),
        x: pts.map(([s]) => xOf(r, s)), y: pts.map(([, v]) => v),
        line: { color: colorOf.get(r.id), dash: dashOf.get(r.id), width: isBaseline(r) ? 3 : 2 },
      };
    };
    const steps = runs.flatMap((r) => ((data.series[r.id] || {})[view.metric] || []).map(([s]) => s));
    drawFigure(document.getElementById("compare-step"), runs.map((r) => trace(r, (_, s) => s)),
      { yaxis, height: 320, hovermode: "x unified", xaxis: stepAxis(steps) });
    drawFigure(document.getElementById("compare-wall"), runs.map((r) => trace(r, (run, s) => walls.get(run.id).get(s) ?? null)),
      { yaxis, height: 320, hovermode: "closest", xaxis: { title: { text: "training seconds (evaluation excluded)" } } });
    renderBought(runs, labelOf, colorOf, isBaseline);
    renderDiff(runs, labelOf);
    loadTaskCurves({ colorOf, labelOf }).catch((err) => console.warn("per-task curves failed:", err));
  };

  const renderBought = (runs, labelOf, colorOf, isBaseline) => {
    const base = runs.find(isBaseline);
    // Each cost with its ratio to the baseline run on a second line ("0.13× GRPO"), so the table
    // stays narrow enough for a laptop screen.
    const cell = (r, key, format, col) => {
      const value = data.costs[r.id][key];
      const td = el("td", { class: "num", "data-col": col }, format(value));
      const ratio = (data.ratios[r.id] || {})[key];
      if (!isBaseline(r) && isNum(ratio)) td.append(el("small", { class: "ratio" }, `${fmtRatio(ratio)} GRPO`));
      return td;
    };
    const headers = [
      "run", `${view.on} success final / best`, `steps to ${view.level}%`, `time to ${view.level}%`,
      "training time", "update s (mean)", "update s (total)", "training s per step", "activations (mean)", "kept fraction",
    ];
    const table = el("table", { class: "table", id: "bought-table" },
      el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", { scope: "col", class: h === "run" ? null : "num" }, h)))),
      el("tbody", {}, runs.map((r) => {
        const costs = data.costs[r.id];
        return el("tr", { "data-run-id": r.id, class: isBaseline(r) ? "baseline-row" : null },
          el("th", { scope: "row", class: "run-cell" },
            el("span", { class: "swatch", style: { background: colorOf.get(r.id) }, "aria-hidden": "true" }),
            el("a", { href: `/runs/${r.id}` }, labelOf(r)),
            el("div", { class: "run-cell-meta" }, statusBadge(r.status), isBaseline(r) ? " baseline (plain GRPO)" : null)),
          el("td", { class: "num" }, `${fmtPct(costs.success_final)} / ${fmtPct(costs.success_best)}`),
          el("td", { class: "num" }, isNum(costs.level_step) ? String(costs.level_step) : "not reached"),
          cell(r, "level_seconds", fmtDuration, "wall-to-level"),
          cell(r, "training_seconds", fmtDuration, "wall"),
          cell(r, "update_mean_s", fmtSeconds, "update"),
          cell(r, "update_total_s", fmtSeconds),
          cell(r, "step_mean_s", fmtSeconds),
          cell(r, "activation_mean_bytes", fmtBytes, "activations"),
          el("td", { class: "num" }, fmtPct(costs.kept_fraction_mean)));
      })));
    const note = base
      ? `Ratios are to ${labelOf(base)} (selector ${M.selectors.baseline}, plain GRPO): below 1× = cheaper or sooner. `
        + "Times are training time: the sum of time/step_s less evaluation (time/eval_s), over every step."
      : `No run with selector ${M.selectors.baseline} (plain GRPO) in this comparison, so there is no baseline for the ratios.`;
    clear(document.getElementById("compare-bought")).append(el("div", { class: "table-scroll" }, table), el("p", { class: "help" }, note));
  };

  const renderDiff = (runs, labelOf) => {
    const keys = Object.keys(data.config_diff || {});
    const box = clear(document.getElementById("compare-diff"));
    if (!keys.length) {
      box.append(el("p", { class: "muted" }, runs.length > 1 ? "The configs are identical." : "Pick two or more runs to see config differences."));
      return;
    }
    const show = (v) => (v === undefined ? "—" : JSON.stringify(v));
    box.append(el("div", { class: "table-scroll" }, el("table", { class: "table diff-table", id: "diff-table" },
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "config key"), ...runs.map((r) => el("th", { scope: "col" }, labelOf(r))))),
      el("tbody", {}, keys.map((key) => {
        const values = data.config_diff[key];
        return el("tr", { "data-key": key }, el("th", { scope: "row" }, el("code", {}, key)),
          ...runs.map((r) => el("td", {}, el("code", {}, show(values[r.id] ?? values[String(r.id)])))));
      })))));
  };

  /** Eval success per task: the tasks any of the runs logged, then their series in one call. */
  const loadTaskCurves = async (style) => {
    const ticket = loads;
    const lists = await Promise.all(data.runs.map((r) => api(`/api/runs/${r.id}/metric-names`)));
    const names = [...taskMetrics(M, lists.flat()).values()];
    const answer = names.length ? await api("/api/compare", { query: { ids: view.ids, names: names.join(",") } }) : null;
    if (ticket !== loads) return;
    drawTaskCurves(document.getElementById("compare-tasks"), M, data.runs, answer ? answer.series : {}, style);
  };

  async function load() {
    if (!view.ids) {
      notice(message, "Choose runs to compare: select them on the Runs page, or type run ids above.");
      return;
    }
    const ticket = (loads += 1);
    try {
      const query = { ids: view.ids, names: view.metric, success: successMetric(), level: Number(view.level) / 100 };
      const answer = await api("/api/compare", { query });
      if (ticket !== loads) return;
      data = answer;
      clear(message);
      document.title = `Compare ${data.runs.map((r) => `#${r.id}`).join(", ")} · PCM Lab`;
      render();
    } catch (err) {
      notice(message, `Could not compare: ${err.message}`, "error");
    }
  }

  await load();
  poll(load, REFRESH_MS, () => data && data.runs.some((r) => M.isActive(r.status)));
}

function buildControls(form, view, metricChoices, onChange) {
  const ids = el("input", { id: "compare-ids", type: "text", value: view.ids || "", placeholder: "e.g. 3,4", inputmode: "numeric" });
  const metric = el("select", { id: "compare-metric" }, ...metricChoices.map((m) => el("option", { value: m }, m)));
  metric.value = view.metric;
  const level = el("input", { id: "compare-level", type: "number", min: 0, max: 100, step: 1, value: view.level });
  const on = el("select", { id: "compare-on" }, el("option", { value: "eval" }, "eval success"), el("option", { value: "train" }, "train (rollout) success"));
  on.value = view.on;
  metric.addEventListener("change", () => {
    view.metric = metric.value;
    onChange();
  });
  level.addEventListener("input", () => {
    if (level.checkValidity() && level.value !== "") {
      view.level = level.value;
      onChange();
    }
  });
  on.addEventListener("change", () => {
    view.on = on.value;
    onChange();
  });
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    view.ids = ids.value.replace(/\s+/g, "");
    onChange();
  });
  clear(form).append(
    el("div", { class: "field" }, el("label", { for: "compare-ids" }, "run ids"), ids),
    el("div", { class: "field field-button" }, el("button", { type: "submit", class: "btn btn-primary" }, "Compare")),
    el("div", { class: "field" }, el("label", { for: "compare-metric" }, "curve"), metric),
    el("div", { class: "field" }, el("label", { for: "compare-level" }, "success level (%)"), level),
    el("div", { class: "field" }, el("label", { for: "compare-on" }, "measured on"), on),
  );
}

// The compare page: several runs' curves against step and against wall-clock (cumulative
// time/step_s), "what PCM bought" relative to the GRPO (selector full) run, and the config keys
// that differ. The view (runs, metric, success level) lives in the URL.

import { api, ensureSession } from "./api.js";
import { drawFigure } from "./charts.js";
import { fmtBytes, fmtDuration, fmtPct, fmtRatio, fmtSeconds, isNum, mean } from "./format.js";
import { loadMetrics } from "./metrics.js";
import { clear, el, isActive, mountNav, notice, poll, readQuery, statusBadge, writeQuery } from "./ui.js";

const REFRESH_MS = 4000;
const RUN_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"];
const BASELINE_SELECTOR = "full"; // plain GRPO: every chunk back-propagated

/** Cumulative seconds at each step from per-step durations: Map step -> seconds so far. */
function cumulative(points, steps) {
  const per = new Map(points);
  const out = new Map();
  let total = 0;
  for (const step of steps) {
    total += per.get(step) ?? 0;
    out.set(step, total);
  }
  return out;
}

/** First [step, value] with value >= level. */
function firstReaching(points, level) {
  return points.find(([, v]) => v >= level);
}

export async function mountComparePage() {
  await ensureSession();
  mountNav();
  const M = await loadMetrics();
  const view = { metric: M.ROLLOUT_SUCCESS, level: "50", on: "eval", ...readQuery() };
  const controls = document.getElementById("compare-controls");
  const message = document.getElementById("compare-message");
  const metricChoices = [
    M.ROLLOUT_SUCCESS, M.EVAL_SUCCESS, M.PCM_KEPT_FRACTION, M.TIME_UPDATE, M.TIME_STEP,
    M.MEM_ACTIVATION, M.MEM_PEAK_RSS, M.TRAIN_POLICY_LOSS, M.TRAIN_ENTROPY, M.TRAIN_GRAD_NORM,
  ];
  const successMetric = () => (view.on === "eval" ? M.EVAL_SUCCESS : M.ROLLOUT_SUCCESS);
  const names = () => [...new Set([...metricChoices, successMetric()])];
  let data = null;

  buildControls(controls, view, metricChoices, () => {
    writeQuery(view);
    if (data) render();
  }, (ids) => {
    view.ids = ids;
    writeQuery(view);
    load();
  });

  const render = () => {
    const runs = data.runs;
    const baseline = runs.find((r) => r.selector === BASELINE_SELECTOR);
    const colorOf = new Map(runs.map((r, i) => [r.id, RUN_COLORS[i % RUN_COLORS.length]]));
    const labelOf = (r) => `#${r.id} ${r.name} (${r.selector})`;
    const seriesOf = (r, name) => (data.series[r.id] || data.series[String(r.id)] || {})[name] || [];
    const wallOf = (r) => {
      const steps = [...new Set(Object.values(data.series[r.id] || {}).flatMap((pts) => pts.map((p) => p[0])))].sort((a, b) => a - b);
      return cumulative(seriesOf(r, M.TIME_STEP), steps);
    };
    const walls = new Map(runs.map((r) => [r.id, wallOf(r)]));
    const percent = [M.ROLLOUT_SUCCESS, M.EVAL_SUCCESS, M.PCM_KEPT_FRACTION].includes(view.metric);
    const yaxis = { title: { text: view.metric }, ...(percent ? { tickformat: ".0%", range: [-0.02, 1.02] } : {}),
      ...(view.metric.startsWith("mem/") ? { tickformat: ".3s", ticksuffix: "B" } : {}) };
    const trace = (r, xOf) => {
      const pts = seriesOf(r, view.metric);
      return {
        type: "scatter", mode: pts.length < 30 ? "lines+markers" : "lines", name: labelOf(r),
        x: pts.map(([s]) => xOf(s)), y: pts.map(([, v]) => v),
        line: { color: colorOf.get(r.id), width: r.selector === BASELINE_SELECTOR ? 3 : 2 },
      };
    };
    drawFigure(document.getElementById("compare-step"), runs.map((r) => trace(r, (s) => s)),
      { yaxis, height: 320, hovermode: "x unified" });
    drawFigure(document.getElementById("compare-wall"), runs.map((r) => trace(r, (s) => walls.get(r.id).get(s) ?? null)),
      { yaxis, height: 320, hovermode: "closest", xaxis: { title: { text: "wall-clock seconds (cumulative time/step_s)" } } });
    renderBought(runs, baseline, labelOf, colorOf, seriesOf, walls);
    renderDiff(runs, labelOf);
  };

  const renderBought = (runs, baseline, labelOf, colorOf, seriesOf, walls) => {
    const level = Number(view.level) / 100;
    const rows = runs.map((r) => {
      const success = seriesOf(r, successMetric());
      const hit = firstReaching(success, level);
      const update = seriesOf(r, M.TIME_UPDATE).map(([, v]) => v);
      const act = seriesOf(r, M.MEM_ACTIVATION).map(([, v]) => v);
      return {
        run: r,
        final: success.length ? success[success.length - 1][1] : undefined,
        best: success.length ? Math.max(...success.map(([, v]) => v)) : undefined,
        hitStep: hit ? hit[0] : undefined,
        hitWall: hit ? walls.get(r.id).get(hit[0]) : undefined,
        updateMean: mean(update),
        updateTotal: update.length ? update.reduce((a, b) => a + b, 0) : undefined,
        actMean: mean(act),
        kept: mean(seriesOf(r, M.PCM_KEPT_FRACTION).map(([, v]) => v)),
        stepMean: mean(seriesOf(r, M.TIME_STEP).map(([, v]) => v)),
      };
    });
    const base = baseline && rows.find((x) => x.run.id === baseline.id);
    const ratio = (a, b) => (isNum(a) && isNum(b) && b > 0 ? a / b : undefined);
    // Each cost with its ratio to the baseline run on a second line ("0.13×"), so the table
    // stays narrow enough for a laptop screen.
    const cell = (row, key, format, { invert = false, col } = {}) => {
      const td = el("td", { class: "num", "data-col": col }, format(row[key]));
      if (!base || row === base || !isNum(row[key])) return td;
      const x = invert ? ratio(base[key], row[key]) : ratio(row[key], base[key]);
      if (isNum(x)) td.append(el("small", { class: "ratio" }, invert ? `${fmtRatio(x)} faster` : `${fmtRatio(x)} GRPO`));
      return td;
    };
    const headers = [
      "run", `${view.on} success final / best`, `steps to ${view.level}%`, `time to ${view.level}%`,
      "update s (mean)", "update s (total)", "step s (mean)", "activations (mean)", "kept fraction",
    ];
    const table = el("table", { class: "table", id: "bought-table" },
      el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", { scope: "col", class: h === "run" ? null : "num" }, h)))),
      el("tbody", {}, rows.map((row) => el("tr", { "data-run-id": row.run.id, class: row === base ? "baseline-row" : null },
        el("th", { scope: "row", class: "run-cell" },
          el("span", { class: "swatch", style: { background: colorOf.get(row.run.id) }, "aria-hidden": "true" }),
          el("a", { href: `/runs/${row.run.id}` }, labelOf(row.run)),
          el("div", { class: "run-cell-meta" }, statusBadge(row.run.status), row === base ? " baseline (plain GRPO)" : null)),
        el("td", { class: "num" }, `${fmtPct(row.final)} / ${fmtPct(row.best)}`),
        el("td", { class: "num" }, isNum(row.hitStep) ? String(row.hitStep) : "not reached"),
        cell(row, "hitWall", fmtDuration, { invert: true, col: "wall-to-level" }),
        cell(row, "updateMean", fmtSeconds, { col: "update" }),
        cell(row, "updateTotal", fmtSeconds),
        cell(row, "stepMean", fmtSeconds),
        cell(row, "actMean", fmtBytes, { col: "activations" }),
        el("td", { class: "num" }, fmtPct(row.kept))))));
    const note = base
      ? `Ratios are to ${labelOf(base.run)} (selector ${BASELINE_SELECTOR}, plain GRPO): below 1× = cheaper. Time to the level sums time/step_s (evaluation excluded).`
      : `No run with selector ${BASELINE_SELECTOR} (plain GRPO) in this comparison, so there is no baseline for the ratios.`;
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

  async function load() {
    if (!view.ids) {
      notice(message, "Choose runs to compare: select them on the Runs page, or type run ids above.");
      return;
    }
    try {
      data = await api("/api/compare", { query: { ids: view.ids, names: names().join(",") } });
      clear(message);
      document.title = `Compare ${data.runs.map((r) => `#${r.id}`).join(", ")} · PCM Lab`;
      render();
    } catch (err) {
      notice(message, `Could not compare: ${err.message}`, "error");
    }
  }

  await load();
  poll(load, REFRESH_MS, () => data && data.runs.some((r) => isActive(r.status)));
}

function buildControls(form, view, metricChoices, onChange, onIds) {
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
    onIds(view.ids); // the success series to fetch changes
  });
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    onIds(ids.value.replace(/\s+/g, ""));
  });
  clear(form).append(
    el("div", { class: "field" }, el("label", { for: "compare-ids" }, "run ids"), ids),
    el("div", { class: "field field-button" }, el("button", { type: "submit", class: "btn btn-primary" }, "Compare")),
    el("div", { class: "field" }, el("label", { for: "compare-metric" }, "curve"), metric),
    el("div", { class: "field" }, el("label", { for: "compare-level" }, "success level (%)"), level),
    el("div", { class: "field" }, el("label", { for: "compare-on" }, "measured on"), on),
  );
}

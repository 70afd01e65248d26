// Live Plotly charts over a step-indexed metric store.
//
// A chart is declared as data (title, traces that read a value out of a step's row, layout); the
// same declaration draws the initial figure (Plotly.react) and appends live points
// (Plotly.extendTraces). A value that changes at an already-plotted step (a resumed step
// overwriting its metrics) makes the chart redraw with react. Every figure drawn here gets a
// CSV (its series) and a PNG export button (`addExportBar`), and step axes get whole-step ticks.

import { el } from "./ui.js";

const Plotly = window.Plotly;

/**
 * Every metric value seen for a run, by step: step -> {name: value}. Consumers draw from it, then
 * call `commit()`; until then `minEditedStep` says how far back history changed since the last
 * commit (a new step only appends; a value arriving for an already-drawn step does not).
 */
export class SeriesStore {
  constructor() {
    this.rows = new Map();
    this.steps = []; // sorted
    this.names = new Set(); // every metric name seen
    this.minEditedStep = Infinity;
  }

  get lastStep() {
    return this.steps.length ? this.steps[this.steps.length - 1] : -Infinity;
  }

  /** Merge `{name: [[step, value], ...]}` (the /metrics and /compare answers). */
  addSeries(series) {
    for (const [name, points] of Object.entries(series || {})) {
      for (const [step, value] of points) this.set(step, name, value);
    }
  }

  /** Merge one step's `{name: value}` (a live "metrics" event). */
  addRow(step, metrics) {
    for (const [name, value] of Object.entries(metrics || {})) this.set(step, name, value);
  }

  set(step, name, value) {
    let row = this.rows.get(step);
    // A replayed value (the event stream starts from the run's first event) changes nothing.
    if (row && row[name] === value) return;
    if (!row) {
      row = {};
      this.rows.set(step, row);
      const appended = step > this.lastStep;
      this.steps.push(step);
      if (!appended) this.steps.sort((a, b) => a - b);
    }
    // Editing (or inserting) a step that charts may already show: they must redraw from it.
    this.minEditedStep = Math.min(this.minEditedStep, step);
    row[name] = value;
    this.names.add(name);
  }

  /** Every consumer has drawn the current state. */
  commit() {
    this.minEditedStep = Infinity;
  }

  /** [[step, value]] of one metric (or of a function of the row). */
  points(valueOf, fromStep = -Infinity) {
    const read = typeof valueOf === "function" ? valueOf : (row) => row[valueOf];
    const out = [];
    for (const step of this.steps) {
      if (step <= fromStep) continue;
      const v = read(this.rows.get(step), step);
      if (typeof v === "number" && Number.isFinite(v)) out.push([step, v]);
    }
    return out;
  }
}

/**
 * The metric names a trace's `value` reads: the name itself, or the `metrics` a function value
 * declares (e.g. a sum over phases). Each drawn trace carries them as its Plotly `meta`.
 */
export function metricsRead(value) {
  return typeof value === "function" ? value.metrics || [] : [value];
}

const PLOT_CONFIG = {
  responsive: true,
  displaylogo: false,
  modeBarButtonsToRemove: ["select2d", "lasso2d", "autoScale2d", "toggleSpikelines"],
};

// Plotly renders a subset of HTML in every label it draws (trace names, titles, hover text,
// category ticks): a run named `<a href="…">` would become a live link in a legend. So every
// string of a figure is escaped in `plot`, the one place figures reach Plotly: labels show as
// typed, and a "\n" in them breaks the line. Templates are this code's own markup, not data.
const TEMPLATE_KEYS = new Set(["hovertemplate", "texttemplate"]);

/** `text` as Plotly shows it literally ("\n" -> a line break). */
function plotText(text) {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/\n/g, "<br>");
}

/** A copy of a figure's data or layout with every string but templates passed through plotText. */
function escapeFigure(value, key = "") {
  if (typeof value === "string") return TEMPLATE_KEYS.has(key) ? value : plotText(value);
  if (ArrayBuffer.isView(value)) return value;
  if (Array.isArray(value)) return value.map((item) => escapeFigure(item, key));
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, escapeFigure(v, k)]));
  }
  return value;
}

function plot(node, data, layout) {
  addExportBar(node);
  return Plotly.react(node, escapeFigure(data), escapeFigure(layout), PLOT_CONFIG);
}

// --- export ------------------------------------------------------------------------------------

/** A label as typed (undoes plotText: the figure Plotly holds is escaped). */
function unplotText(text) {
  return String(text).replace(/<br>/g, " ").replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
}

function csvCell(value) {
  if (value === null || value === undefined) return "";
  const text = String(value);
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/**
 * Every drawn series of a Plotly figure as CSV, one row per point: `series,x,y` (and `z` for a
 * heat map, one row per cell). Legend-only traces (no points) are left out.
 */
export function figureCsv(data) {
  const heat = data.some((trace) => trace.z);
  const rows = [heat ? ["series", "x", "y", "z"] : ["series", "x", "y"]];
  data.forEach((trace, i) => {
    const name = unplotText(trace.name || `${trace.type || "trace"} ${i + 1}`);
    if (trace.z) {
      trace.z.forEach((line, r) => line.forEach((z, c) => {
        if (z !== null && z !== undefined) rows.push([name, trace.x ? trace.x[c] : c, trace.y ? trace.y[r] : r, z]);
      }));
      return;
    }
    const xs = trace.x || [];
    const ys = trace.y || [];
    for (let k = 0; k < Math.max(xs.length, ys.length); k += 1) {
      if (xs[k] === null && ys[k] === null) continue;
      rows.push(heat ? [name, xs[k], ys[k], ""] : [name, xs[k], ys[k]]);
    }
  });
  return rows.map((row) => row.map(csvCell).join(",")).join("\n") + "\n";
}

function download(href, filename) {
  const link = el("a", { href, download: filename, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
}

/** Once per chart node: "CSV" and "PNG" buttons under it, named after the node's id. */
function addExportBar(node) {
  if (node.dataset.exportBar) return;
  node.dataset.exportBar = "1";
  const name = node.id || "chart";
  const label = node.getAttribute("aria-label") || name;
  const csv = el("button", { type: "button", class: "btn-link export-csv", title: `the series of "${label}" as CSV`,
    onclick: () => {
      const url = URL.createObjectURL(new Blob([figureCsv(node.data || [])], { type: "text/csv" }));
      download(url, `${name}.csv`);
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } }, "CSV");
  const png = el("button", { type: "button", class: "btn-link export-png", title: `"${label}" as a PNG image`,
    onclick: () => Plotly.downloadImage(node, {
      format: "png", filename: name, width: node.clientWidth || 700, height: node.clientHeight || 300,
    }) }, "PNG");
  node.after(el("div", { class: "chart-export", "aria-label": `export ${label}` }, "export: ", csv, " ", png));
}

// --- axes --------------------------------------------------------------------------------------

/** A tick spacing of 1, 2 or 5 × 10^k steps (never below one step) giving about `ticks` ticks. */
export function stepDtick(span, ticks = 8) {
  const raw = Math.max(1, span / ticks);
  const power = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * power).find((d) => d >= raw);
}

/** Axis settings for a step axis over `steps`: whole-step ticks only (no "0.5"). */
export function stepAxis(steps) {
  const finite = steps.filter((s) => typeof s === "number" && Number.isFinite(s));
  const span = finite.length ? Math.max(...finite) - Math.min(...finite) : 0;
  return { tick0: 0, dtick: stepDtick(span), tickformat: "d" };
}

const AXIS_KEY = /^([xy])axis\d*$/;

/**
 * Every axis of a layout: titles never over tick labels (automargin, a gap), and numbers in
 * plain or exponent form (1e-8, never Plotly's SI "10n"; a byte axis keeps its own format).
 */
function tidyAxes(layout) {
  for (const [key, axis] of Object.entries(layout)) {
    const match = AXIS_KEY.exec(key);
    if (!match || !axis || typeof axis !== "object") continue;
    const title = typeof axis.title === "object" ? { standoff: 6, ...axis.title } : axis.title;
    layout[key] = { automargin: true, exponentformat: "e", ...axis, ...(title ? { title } : {}) };
  }
  return layout;
}

/**
 * Why a chart node will never get data, when the page knows (e.g. "cancelled before it started"):
 * set with `setNoDataText`, it replaces the chart's own "waiting for data…"-style text.
 */
function noDataText(node) {
  return node.dataset.noData || null;
}

export function setNoDataText(node, text) {
  if (text) node.dataset.noData = text;
  else delete node.dataset.noData;
}

/** An empty figure: no axes from −1 to 6, only the message. */
function emptyAxes(layout, text) {
  for (const key of Object.keys(layout)) {
    if (AXIS_KEY.test(key)) layout[key] = { ...layout[key], range: [0, 1], showticklabels: false, showgrid: false, dtick: undefined };
  }
  layout.annotations = waitingAnnotation(text);
  return layout;
}

/** Names of a layout's x axes ("xaxis", "xaxis2", ...): a LiveChart's are all step axes. */
function xAxes(layout) {
  return Object.keys(layout).filter((key) => /^xaxis\d*$/.test(key));
}

/** Layout shared by every chart; `extra` is merged one level deep. */
export function baseLayout(extra = {}) {
  const layout = {
    margin: { l: 56, r: 16, t: 30, b: 40 },
    height: 270,
    font: { family: "system-ui, sans-serif", size: 12 },
    // Legend above the plot: below it collides with the x-axis title on short charts.
    legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom", traceorder: "normal" },
    xaxis: { title: { text: "step" }, zeroline: false },
    yaxis: { zeroline: false },
    hovermode: "x unified",
    // Whole trace names in hover labels: Plotly's default cut at 15 characters can split an
    // escaped character (plotText) and leaves runs with a common prefix indistinguishable.
    hoverlabel: { namelength: -1 },
    paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "#fbfbfd",
  };
  for (const [k, v] of Object.entries(extra)) {
    layout[k] = v && typeof v === "object" && !Array.isArray(v) && layout[k] ? { ...layout[k], ...v } : v;
  }
  return tidyAxes(layout);
}

function waitingAnnotation(text = "waiting for data…") {
  return [{ text, showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5, font: { color: "#888" } }];
}

/**
 * A line / area / bar chart. spec: {layout, traces: [{name, value (metric name or row => number),
 * type ("scatter" | "bar"), ...any Plotly trace props}]}.
 */
export class LiveChart {
  constructor(node, spec) {
    this.node = node;
    this.spec = spec;
    this.lastStep = -Infinity; // newest step drawn
    this.points = 0;
  }

  traceProps(trace) {
    const { value, ...props } = trace;
    return { type: "scatter", mode: "lines", meta: metricsRead(value), ...props };
  }

  /** Every metric name this chart draws. */
  metrics() {
    return this.spec.traces.flatMap((trace) => metricsRead(trace.value));
  }

  /** Draw everything from the store. */
  render(store) {
    let points = 0;
    const data = this.spec.traces.map((trace) => {
      const pts = store.points(trace.value);
      points += pts.length;
      return { ...this.traceProps(trace), x: pts.map((p) => p[0]), y: pts.map((p) => p[1]) };
    });
    const layout = baseLayout(this.spec.layout);
    this.dtick = stepAxis(store.steps).dtick;
    for (const key of xAxes(layout)) layout[key] = { ...stepAxis(store.steps), ...layout[key] };
    if (!points) emptyAxes(layout, noDataText(this.node) || this.spec.emptyText);
    plot(this.node, data, layout);
    this.lastStep = store.lastStep;
    this.points = points;
  }

  /** Append what is new since the last draw; redraw when a drawn step changed. */
  update(store) {
    if (store.minEditedStep <= this.lastStep || !this.points) return this.render(store);
    if (store.lastStep <= this.lastStep) return undefined;
    const xs = [];
    const ys = [];
    let added = 0;
    for (const trace of this.spec.traces) {
      const pts = store.points(trace.value, this.lastStep);
      xs.push(pts.map((p) => p[0]));
      ys.push(pts.map((p) => p[1]));
      added += pts.length;
    }
    this.lastStep = store.lastStep;
    if (!added) return undefined;
    Plotly.extendTraces(this.node, { x: xs, y: ys }, this.spec.traces.map((_, i) => i));
    this.points += added;
    const { dtick } = stepAxis(store.steps);
    if (dtick !== this.dtick) { // more steps: wider whole-step ticks
      this.dtick = dtick;
      Plotly.relayout(this.node, Object.fromEntries(xAxes(baseLayout(this.spec.layout)).map((key) => [`${key}.dtick`, dtick])));
    }
    return undefined;
  }
}

/**
 * A (row label x step) heat map, e.g. keep weight p_c per phase per step. spec: {rows: [{label,
 * value}], layout, colorscale, zmin, zmax}. Heat maps grow along x in every row at once, which
 * extendTraces cannot express, so updates redraw with react (cheap at these sizes).
 */
export class LiveHeatmap {
  constructor(node, spec) {
    this.node = node;
    this.spec = spec;
    this.lastStep = -Infinity;
  }

  metrics() {
    return this.spec.rows.flatMap((row) => metricsRead(row.value));
  }

  render(store) {
    const { rows } = this.spec;
    const reads = rows.map((r) => (typeof r.value === "function" ? r.value : (row) => row[r.value]));
    const steps = store.steps.filter((s) => reads.some((read) => isFinite(read(store.rows.get(s)))));
    const z = reads.map((read) => steps.map((s) => {
      const v = read(store.rows.get(s));
      return typeof v === "number" && Number.isFinite(v) ? v : null;
    }));
    const trace = {
      type: "heatmap",
      x: steps,
      y: rows.map((r) => r.label),
      z,
      zmin: this.spec.zmin,
      zmax: this.spec.zmax,
      colorscale: this.spec.colorscale || "Viridis",
      colorbar: { thickness: 10, len: 0.9, title: { text: this.spec.colorbarTitle || "" } },
      hovertemplate: "%{y}<br>step %{x}: %{z:.3f}<extra></extra>",
      meta: this.metrics(),
    };
    const layout = baseLayout({ hovermode: "closest", margin: { l: 96 }, ...this.spec.layout });
    layout.xaxis = { ...layout.xaxis, ...stepAxis(steps) };
    if (!steps.length) emptyAxes(layout, noDataText(this.node));
    plot(this.node, [trace], layout);
    this.lastStep = store.lastStep;
  }

  update(store) {
    if (store.minEditedStep <= this.lastStep || store.lastStep > this.lastStep) this.render(store);
  }
}

function isFinite(v) {
  return typeof v === "number" && Number.isFinite(v);
}

/** Plotly.react with the shared config, for one-off figures (chunk map, compare page). */
export function drawFigure(node, data, layout) {
  return plot(node, data, baseLayout(layout));
}

/**
 * A categorical colour scale: integer z in [0, colors.length) maps to colors[z] exactly
 * (use with zmin = 0, zmax = colors.length - 1).
 */
export function discreteColorscale(colors) {
  const n = colors.length;
  if (n === 1) return [[0, colors[0]], [1, colors[0]]];
  const scale = [];
  colors.forEach((color, i) => {
    scale.push([Math.max(0, (i - 0.5) / (n - 1)), color], [Math.min(1, (i + 0.5) / (n - 1)), color]);
  });
  return scale;
}

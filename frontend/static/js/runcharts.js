// What the run page plots: one declaration per chart (see charts.js), and last a chart of every
// metric no other chart draws, so whatever the engine emits can be drawn. Built from the contract
// and the phase colour map, so no name or colour is typed twice.

import { LiveChart, LiveHeatmap } from "./charts.js";
import { metricAxis, metricLabel } from "./contract.js";
import { phaseColor, phaseLabel } from "./phases.js";
import { TaskSuccessChart } from "./taskcurves.js";
import { clear, el } from "./ui.js";

const TIME_COLORS = ["#4c78a8", "#f2b701", "#e45756", "#bab0ac"];

/** The step's time split, in stacking order, each with its colour (the same on both time charts). */
function timeSplit(M) {
  return [M.TIME_ROLLOUT, M.TIME_SELECT, M.TIME_UPDATE, M.TIME_OTHER].map((name, i) => ({
    name,
    label: metricLabel(name).replace(" (s)", ""),
    color: TIME_COLORS[i],
  }));
}

/**
 * With several ranks: per timing that has a spread (M.spreads: rollout, select, update), the
 * slowest rank's seconds (solid) and how much faster the fastest rank was (dotted, same colour).
 */
function rankSpreadChart(node, M) {
  const traces = timeSplit(M)
    .filter(({ name }) => M.spreads[name])
    .flatMap(({ name, label, color }) => [
      { name: `${label}: slowest rank`, legendgroup: name, value: name, line: { color } },
      { name: `${label}: spread`, legendgroup: name, value: M.spreads[name], line: { color, dash: "dot" } },
    ]);
  return new LiveChart(node, {
    emptyText: "no per-rank timings logged yet",
    layout: { yaxis: { title: { text: "seconds" }, rangemode: "tozero" } },
    traces,
  });
}

function sumOf(names) {
  const sum = (row) => {
    let total = 0;
    for (const n of names) {
      if (typeof row[n] !== "number") return undefined;
      total += row[n];
    }
    return total;
  };
  sum.metrics = names;
  return sum;
}

/** One trace per phase for a per-phase family ("score", "keep", "kept"), in the phase colours. */
function phaseTraces(M, family, { line = {}, ...props } = {}) {
  return M.phases.map((phase, i) => ({
    ...props,
    name: phaseLabel(phase),
    legendgroup: phase, // a phase's traces in one chart hide and show together
    value: M.metric(family, phase),
    line: { ...line, color: phaseColor(i) },
    ...(props.stackgroup ? { fillcolor: phaseColor(i) } : {}),
  }));
}

/**
 * Every metric the run logged that none of `charts` draws (e.g. a metric the engine added after
 * these charts were written), one at a time: pick it from a list that grows as names arrive.
 */
export class OtherMetricsChart {
  constructor(node, charts) {
    this.node = node;
    this.chartsAbove = charts; // asked each time: a chart above may draw more names as they arrive
    this.picker = el("select", { id: "other-metric", "aria-label": "metric" });
    this.picker.addEventListener("change", () => this.show(this.picker.value));
    node.before(el("div", { class: "field inline-field" }, el("label", { for: "other-metric" }, "metric"), this.picker));
    this.options = [];
    this.chart = null;
    this.store = null;
  }

  metrics() {
    return this.options;
  }

  /** Offer every name of `store` no other chart draws; keep the chosen one. */
  syncOptions(store) {
    const drawn = new Set(this.chartsAbove.flatMap((chart) => chart.metrics()));
    const names = [...store.names].filter((name) => !drawn.has(name)).sort();
    if (names.join("\n") === this.options.join("\n")) return;
    this.options = names;
    const chosen = this.picker.value || names[0];
    clear(this.picker).append(...names.map((name) => el("option", { value: name }, name)));
    if (chosen) this.picker.value = chosen;
  }

  /** Draw `name` from the store last rendered. */
  show(name) {
    this.chart = new LiveChart(this.node, {
      emptyText: "no other metric logged yet",
      layout: { yaxis: { title: { text: name ? metricLabel(name) : "" }, ...(name ? metricAxis(name) : {}) } },
      traces: name ? [{ name, value: name, line: { color: "#555" } }] : [],
    });
    this.chart.render(this.store);
  }

  render(store) {
    this.store = store;
    this.syncOptions(store);
    this.show(this.picker.value);
  }

  update(store) {
    this.store = store;
    const before = this.options.length;
    this.syncOptions(store);
    if (!before && this.options.length) this.show(this.picker.value);
    else this.chart.update(store);
  }
}

/**
 * In place of a chart that means nothing for this run: a note saying why. It still claims the
 * chart's metrics, so they do not turn up under "every other metric".
 */
class ChartNote {
  constructor(node, text, metrics) {
    node.classList.add("chart-note");
    node.setAttribute("role", "note");
    node.append(el("p", { class: "muted" }, text));
    this.names = metrics;
  }

  metrics() {
    return this.names;
  }

  render() {}

  update() {}
}

/**
 * [{id, title, help, wide, make(node, chartsAbove) -> chart}] in page order; the run page draws
 * them from every metric the run has logged. `run` (its `selector`) decides the PCM-only panels:
 * on a plain GRPO run (`selector: full`, every chunk back-propagated) keep weights steer nothing,
 * so a note stands in for them and the phase score says it is for reference only. A run over
 * several ranks (`config.dist.world_size` > 1) also gets the per-rank time spread chart.
 */
export function runCharts(M, run = {}) {
  const plainGrpo = run.selector === M.selectors.baseline;
  const ranks = run.config?.dist?.world_size ?? 1;
  const keepNames = M.perPhase("keep");
  const charts = [
    {
      id: "chart-success",
      title: "Success rate",
      help: "training rollouts and held-out evaluation",
      make: (node) => new LiveChart(node, {
        layout: { yaxis: metricAxis(M.ROLLOUT_SUCCESS) },
        traces: [
          { name: "train (rollouts)", value: M.ROLLOUT_SUCCESS, line: { color: "#1f77b4" } },
          { name: "eval", value: M.EVAL_SUCCESS, mode: "lines+markers", line: { color: "#2ca02c", width: 3 } },
        ],
      }),
    },
    {
      id: "chart-task-success",
      title: "Eval success per task",
      help: "held-out evaluation, one line per task (episodes of each: watch them below)",
      make: (node) => new TaskSuccessChart(node, M),
    },
    {
      id: "chart-kept",
      title: "Chunks back-propagated per phase",
      help: "stacked; dashed = chunks available before selection",
      make: (node) => new LiveChart(node, {
        layout: { yaxis: { title: { text: "chunks" }, rangemode: "tozero" } },
        traces: [
          ...phaseTraces(M, "kept", { stackgroup: "kept", mode: "lines", line: { width: 0.5 } }),
          {
            name: "available (all phases)",
            value: sumOf(M.perPhase("available")),
            line: { color: "#333", dash: "dash", width: 1.5 },
          },
        ],
      }),
    },
    {
      id: "chart-score",
      title: "Phase score (the run's pcm.score: C_c, or D² if debiased)",
      help: "success–failure action divergence per phase; dotted: the same with outcomes "
        + "shuffled (noise level)" + (plainGrpo
        ? `. For reference only: selector ${run.selector} back-propagates every chunk, so no score steers the update.`
        : ""),
      make: (node) => new LiveChart(node, {
        emptyText: "no score yet: C_c needs a group with both successes and failures",
        layout: { yaxis: { title: { text: "C_c" } } },
        traces: [
          ...phaseTraces(M, "score", { mode: "lines+markers", marker: { size: 4 } }),
          ...phaseTraces(M, "score_null", { line: { dash: "dot", width: 1 }, showlegend: false })
            .map((trace) => ({ ...trace, name: `${trace.name} (shuffled)` })),
        ],
      }),
    },
    plainGrpo ? {
      id: "chart-keep-note",
      title: "Keep weights p_c: not used by this run",
      help: "PCM-only panels",
      make: (node) => new ChartNote(node, `This run's selector is ${run.selector} (plain GRPO): every chunk of every `
        + "trajectory that takes part is back-propagated, so the keep weights p_c (and their phase × step map) "
        + "decide nothing and are not drawn. Launch with pcm.selector: pcm to see them.", keepNames),
    } : null,
    plainGrpo ? null : {
      id: "chart-keep",
      title: "Keep weight p_c",
      help: "refreshed every T_rc steps; floor p_min",
      make: (node) => new LiveChart(node, {
        layout: { yaxis: { range: [0, 1.05], title: { text: "p_c" } } },
        traces: phaseTraces(M, "keep", { line: { shape: "hv" } }),
      }),
    },
    plainGrpo ? null : {
      id: "chart-keep-map",
      title: "Keep weight p_c, phase × step",
      help: "brighter = more of the phase's chunks get gradients",
      make: (node) => new LiveHeatmap(node, {
        rows: M.phases.map((phase) => ({ label: phaseLabel(phase), value: M.metric("keep", phase) })),
        zmin: 0,
        zmax: 1,
        colorbarTitle: "p_c",
      }),
    },
    {
      id: "chart-kept-fraction",
      title: "Kept fraction",
      help: "share of chunks that reach the actor's forward pass",
      make: (node) => new LiveChart(node, {
        layout: { yaxis: metricAxis(M.PCM_KEPT_FRACTION) },
        traces: [{ name: "kept fraction", value: M.PCM_KEPT_FRACTION, line: { color: "#9467bd" } }],
      }),
    },
    {
      id: "chart-time",
      title: "Step time split",
      help: "seconds per step: rollout / selection / actor update / other"
        + (ranks > 1 ? ` (the slowest of ${ranks} ranks)` : ""),
      make: (node) => new LiveChart(node, {
        layout: { barmode: "stack", bargap: 0.1, yaxis: { title: { text: "seconds" }, rangemode: "tozero" } },
        traces: timeSplit(M).map(({ name, label, color }) => ({ type: "bar", name: label, value: name, marker: { color } })),
      }),
    },
    ranks > 1 ? {
      id: "chart-rank-spread",
      title: `Per-rank time spread (${ranks} ranks)`,
      help: "seconds per step of the slowest rank (solid) and how much faster the fastest rank was (dotted): "
        + "a wide spread means ranks wait on the slowest one",
      make: (node) => rankSpreadChart(node, M),
    } : null,
    {
      id: "chart-memory",
      title: "Memory",
      help: "activations saved for backward (top) and peak RSS (bottom), each on its own axis",
      make: (node) => new LiveChart(node, {
        // two panes over one step axis: on one plot with two y axes both lines fill the height and cross
        layout: {
          xaxis: { anchor: "y2" }, // the step axis under the lower pane
          yaxis: { ...metricAxis(M.MEM_ACTIVATION), title: { text: "activations" }, domain: [0.56, 1] },
          yaxis2: { ...metricAxis(M.MEM_PEAK_RSS), title: { text: "peak RSS" }, domain: [0, 0.44], anchor: "x" },
        },
        traces: [
          { name: "activation bytes", value: M.MEM_ACTIVATION, line: { color: "#e45756" } },
          { name: "peak RSS", value: M.MEM_PEAK_RSS, yaxis: "y2", line: { color: "#72b7b2" } },
        ],
      }),
    },
    {
      id: "chart-optim",
      title: "Optimisation",
      help: "policy loss, clip fraction, entropy, grad norm",
      wide: true,
      make: (node) => {
        const names = [M.TRAIN_POLICY_LOSS, M.TRAIN_CLIP_FRACTION, M.TRAIN_ENTROPY, M.TRAIN_GRAD_NORM];
        const layout = { grid: { rows: 1, columns: 4, pattern: "independent" }, showlegend: false, hovermode: "closest" };
        names.forEach((name, i) => {
          const k = i ? String(i + 1) : "";
          layout[`xaxis${k}`] = { title: { text: "step" } };
          layout[`yaxis${k}`] = { title: { text: metricLabel(name) } };
        });
        return new LiveChart(node, {
          layout,
          traces: names.map((name, i) => ({
            name: metricLabel(name),
            value: name,
            xaxis: i ? `x${i + 1}` : "x",
            yaxis: i ? `y${i + 1}` : "y",
            line: { color: "#555" },
          })),
        });
      },
    },
  ].filter(Boolean);
  charts.push({
    id: "chart-other",
    title: "Every other metric",
    help: "any metric the run logged that no chart above draws",
    wide: true,
    make: (node, chartsAbove) => new OtherMetricsChart(node, chartsAbove),
  });
  return charts;
}

// Per-task eval success curves (the contract's `eval_task` template, "eval/task_success/{task}"):
// a live chart on the run page, one line per task as the tasks' names arrive, and small multiples
// on the compare page, one panel per task with a line per run.

import { LiveChart, drawFigure } from "./charts.js";
import { metricAxis } from "./contract.js";

/** {task number: metric name} of every per-task eval name among `names`, tasks ascending. */
export function taskMetrics(M, names) {
  const [before, after] = M.metric("eval_task", "\u0000").split("\u0000");
  const found = [];
  for (const name of names) {
    if (!name.startsWith(before) || !name.endsWith(after)) continue;
    const task = name.slice(before.length, name.length - after.length);
    if (/^\d+$/.test(task)) found.push([Number(task), name]);
  }
  return new Map(found.sort((a, b) => a[0] - b[0]));
}

/** The run page's chart: one line per task whose eval success the run has logged. */
export class TaskSuccessChart {
  constructor(node, M) {
    this.node = node;
    this.M = M;
    this.tasks = new Map();
    this.chart = this.makeChart();
  }

  makeChart() {
    const first = [...this.tasks.values()][0] ?? this.M.EVAL_SUCCESS;
    return new LiveChart(this.node, {
      emptyText: "no per-task eval yet: it comes with every eval (eval.every)",
      layout: { yaxis: metricAxis(first) },
      traces: [...this.tasks].map(([task, name]) => ({ name: `task ${task}`, value: name, mode: "lines+markers" })),
    });
  }

  metrics() {
    return [...this.tasks.values()];
  }

  /** New tasks among the store's names: a new chart with a line for each. */
  sync(store) {
    const tasks = taskMetrics(this.M, store.names);
    if (tasks.size === this.tasks.size) return false;
    this.tasks = tasks;
    this.chart = this.makeChart();
    return true;
  }

  render(store) {
    this.sync(store);
    this.chart.render(store);
  }

  update(store) {
    if (this.sync(store)) this.chart.render(store);
    else this.chart.update(store);
  }
}

/**
 * The compare page's panels: one per task of `series` ({run id: {name: [[step, value]]}}), a line
 * per run in its colour. Returns how many tasks were drawn.
 */
export function drawTaskCurves(node, M, runs, series, { colorOf, labelOf }) {
  const names = new Set(runs.flatMap((r) => Object.keys(series[r.id] || {})));
  const tasks = [...taskMetrics(M, names)];
  const columns = Math.min(4, Math.max(1, tasks.length));
  const rows = Math.max(1, Math.ceil(tasks.length / columns));
  const layout = {
    grid: { rows, columns, pattern: "independent" },
    height: 60 + 220 * rows,
    hovermode: "closest",
    annotations: tasks.length ? [] : [{ text: "no per-task eval logged yet", showarrow: false,
      xref: "paper", yref: "paper", x: 0.5, y: 0.5, font: { color: "#888" } }],
  };
  const data = [];
  tasks.forEach(([task, name], i) => {
    const k = i ? String(i + 1) : "";
    layout[`xaxis${k}`] = { title: { text: `task ${task}: step` } };
    layout[`yaxis${k}`] = metricAxis(name);
    for (const r of runs) {
      const pts = (series[r.id] || {})[name] || [];
      data.push({
        type: "scatter", mode: "lines+markers", name: labelOf(r), legendgroup: String(r.id), showlegend: i === 0,
        x: pts.map(([s]) => s), y: pts.map(([, v]) => v), xaxis: `x${k}`, yaxis: `y${k}`,
        line: { color: colorOf.get(r.id) },
      });
    }
  });
  drawFigure(node, data, layout);
  node.dataset.tasks = String(tasks.length);
  return tasks.length;
}

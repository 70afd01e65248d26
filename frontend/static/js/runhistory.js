// A run's waits and history on its page (GET /api/runs/{id}): the SFT start as a stage of its own
// (epochs as a progress bar, time left, its loss live, then its success per task, or the cached
// start it reused), the place of a queued run in the queue and the workers that could take it,
// the lineage (cloned from, start) and the event timeline. Metric names come from the contract;
// event kinds and details are the server's words, shown as they are.

import { LiveChart } from "./charts.js";
import { fmtDate, fmtDuration, fmtPct, isNum } from "./format.js";
import { clear, el } from "./ui.js";

/** The start and queue sections, placed under the run header. */
export function waitSections() {
  return [
    el("section", { id: "start-stage", class: "card", "aria-labelledby": "start-title", hidden: true }),
    el("section", { id: "queue-place", class: "card", "aria-label": "place in the queue", hidden: true }),
  ];
}

/** The history section (lineage and timeline), placed above the run's details. */
export function historySection() {
  return el("section", { id: "run-history", class: "card", "aria-labelledby": "history-title" },
    el("h2", { id: "history-title" }, "History"),
    el("p", { id: "lineage", class: "muted" }),
    el("ol", { id: "timeline", class: "timeline" }));
}

/** "start ab12… (trained <date>, success 40%)": how a ready start is named. */
function readyLine(start) {
  const parts = [];
  if (start.trained_at) parts.push(`trained ${fmtDate(start.trained_at)}`);
  if (isNum(start.seconds)) parts.push(`in ${fmtDuration(start.seconds)}`);
  if (isNum(start.success)) parts.push(`success ${fmtPct(start.success, 0)}`);
  return `start ${start.hash}${parts.length ? ` (${parts.join(", ")})` : ""}`;
}

/** Date and time to the second: a timeline's entries are often seconds apart. */
function fmtMoment(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

function epochBar(done, total) {
  const pct = total ? Math.min(100, (100 * done) / total) : 0;
  return el("span", { class: "progress", id: "start-progress", role: "progressbar", "aria-valuemin": 0,
    "aria-valuemax": total, "aria-valuenow": done, "aria-label": "SFT epochs done",
    style: { width: "min(32rem, 100%)" } },
  el("span", { class: "progress-fill", style: { width: `${pct}%` } }),
  el("span", { class: "progress-text" }, `epoch ${done} / ${total}`));
}

export class RunHistory {
  /** `M`: the contract; `store`: the page's SeriesStore (the loss chart draws from it). */
  constructor(M, store) {
    this.M = M;
    this.store = store;
    this.section = document.getElementById("start-stage");
    this.summary = el("div", { id: "start-summary" });
    const node = el("div", { id: "sft-loss-chart", class: "chart", role: "img", "aria-label": "SFT loss per epoch" });
    this.figure = el("figure", { class: "chart-card", id: "sft-loss-card" }, node);
    this.section.append(el("h2", { id: "start-title" }, "Behaviour-cloned start"), this.summary, this.figure);
    this.chart = new LiveChart(node, {
      traces: [{ name: "SFT loss", value: M.SFT_LOSS }],
      layout: { xaxis: { title: { text: "epoch (pre-training first, if any)" } }, yaxis: { title: { text: "loss" } } },
      emptyText: "no epoch yet",
    });
  }

  render(run) {
    this.renderStart(run);
    this.renderQueue(run);
    this.renderHistory(run);
  }

  renderStart(run) {
    const start = run.start;
    const wasHidden = this.section.hidden;
    this.section.hidden = !start;
    if (!start) return;
    // the loss chart only where this run trains (or trained) the start: a reused start, or one
    // that is still loading or another run is training, has no epochs of this run to draw
    const figureWasHidden = this.figure.hidden;
    this.figure.hidden = Boolean(start.reused) || start.state === "preparing" || start.state === "waiting";
    if ((wasHidden || figureWasHidden) && !this.figure.hidden) this.chart.render(this.store); // drawn at its visible size
    this.section.dataset.state = start.state;
    const lines = [];
    if (start.state === "training") {
      const stage = start.stages > 1 ? `stage ${start.stage} of ${start.stages}, ` : "";
      const eta = isNum(start.eta_s) ? `, ~${fmtDuration(start.eta_s)} left` : ", timing the first epoch…";
      lines.push(el("p", { id: "start-line" }, `training start ${start.hash}: ${stage}epoch ${start.epoch ?? 0} of ${start.epochs ?? "?"}${eta}`));
      lines.push(epochBar(start.epoch ?? 0, start.epochs ?? 0));
      if (isNum(start.loss)) lines.push(el("p", { class: "muted" }, `loss ${start.loss.toPrecision(3)}`));
    } else if (start.state === "preparing") {
      lines.push(el("p", { id: "start-line" }, "preparing the SFT start: loading the engine, then its cache or demos…"));
    } else if (start.state === "waiting") {
      lines.push(el("p", { id: "start-line" }, `waiting for start ${start.hash}: another run is training it`));
    } else {
      lines.push(el("p", { id: "start-line" }, `${start.reused ? "reusing " : ""}${readyLine(start)}`));
      const tasks = Object.entries(start.task_success || {});
      if (tasks.length) {
        lines.push(el("ul", { class: "inline-list", id: "start-tasks", "aria-label": "the start's eval success per task" },
          tasks.map(([task, value]) => el("li", {}, `task ${task}: ${fmtPct(value, 0)}`))));
      }
    }
    clear(this.summary).append(...lines);
  }

  renderQueue(run) {
    const box = document.getElementById("queue-place");
    const place = run.queue;
    box.hidden = !place;
    if (!place) return;
    const busy = (w) => {
      if (!w.busy) return "idle";
      return w.current_run_id === null ? "busy with a run you may not see" : `busy with run #${w.current_run_id}`;
    };
    const workers = place.workers.length
      ? `workers that could take it: ${place.workers.map((w) => `${w.name} (${busy(w)})`).join(", ")}`
      : "no live worker could take it: start one (pcm worker)";
    clear(box).append(el("p", { id: "queue-line" },
      `position ${place.position} in the queue (${place.ahead} ahead) · ${workers}`));
  }

  renderHistory(run) {
    const lineage = [];
    if (run.cloned_from_id) {
      lineage.push("cloned from ", el("a", { href: `/runs/${run.cloned_from_id}` }, `run #${run.cloned_from_id}`));
    }
    if (run.start?.hash) lineage.push(lineage.length ? " · " : "", "start ", el("code", {}, run.start.hash));
    if (run.attempt) lineage.push(lineage.length ? " · " : "", `attempt ${run.attempt}`);
    clear(document.getElementById("lineage")).append(...lineage);
    const events = run.events || []; // not in a share link's view of the run
    document.getElementById("run-history").hidden = !events.length && !lineage.length;
    clear(document.getElementById("timeline")).append(...events.map((e) =>
      el("li", { class: `timeline-${e.kind}`, "data-kind": e.kind },
        el("time", { datetime: e.at }, fmtMoment(e.at)), " ",
        el("strong", {}, e.kind.replace(/_/g, " ")),
        e.detail ? ` — ${e.detail}` : "")));
  }
}

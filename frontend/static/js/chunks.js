// The "which chunks got gradients" map: trajectories x chunk index for one training step.
// Colour = phase (one colour per phase, from phases.js); bright = back-propagated, faded = dropped
// before the forward pass, and a "×" on every back-propagated chunk so the mask reads in grey
// print too. A left-hand column shows each trajectory's outcome (colours from the contract).
//
// Why a chunk was dropped: the engine records whole groups (pcm_engine/chunk_records.py), so a
// group whose recorded rollouts all succeeded or all failed had no advantage, and with
// `grpo.dynamic_sampling` it was dropped before the update; in any other group a dropped chunk was
// not selected by the run's selector.

import { discreteColorscale, drawFigure } from "./charts.js";
import { fade, fadedPhaseColor, phaseColor, phaseLabel } from "./phases.js";
import { el } from "./ui.js";

const NEUTRAL = "#7f7f7f"; // the "faded = dropped" legend swatch, whatever the phase

/** group -> "all succeeded" | "all failed" | null (mixed), from the recorded (whole) groups. */
function groupOutcomes(records) {
  const seen = new Map();
  for (const r of records) {
    const outcomes = seen.get(r.group) || new Set();
    outcomes.add(Boolean(r.success));
    seen.set(r.group, outcomes);
  }
  return new Map([...seen].map(([group, outcomes]) => [group,
    outcomes.size === 2 ? null : outcomes.has(true) ? "all succeeded" : "all failed"]));
}

/**
 * Why each record's chunk was or was not back-propagated: "kept", "dynamic" (its group was all
 * success or all failure and dynamic sampling dropped it) or "selector" (not selected).
 */
export function dropReasons(records, { dynamicSampling = true } = {}) {
  const outcomeOf = groupOutcomes(records);
  return records.map((r) => {
    if (r.kept) return "kept";
    return dynamicSampling && outcomeOf.get(r.group) ? "dynamic" : "selector";
  });
}

/**
 * Draw `records` ({trajectory, chunk, phase, kept, success, group}) into `node`; the contract `M`
 * fixes the phase order and the outcome colours; `run` ({selector, dynamicSampling}) explains the
 * dropped chunks. Returns the counts the caption reads.
 */
export function drawChunkMap(node, records, M, run = {}) {
  const phaseList = [...M.phases];
  const { success: SUCCESS_COLOR, failure: FAILURE_COLOR } = M.colors.outcomes;
  const reasons = dropReasons(records, run);
  const outcomeOf = groupOutcomes(records);
  const why = {
    kept: () => "back-propagated",
    dynamic: (r) => `dropped: its group ${outcomeOf.get(r.group)}, so dynamic sampling left it out (no advantage)`,
    selector: () => `dropped: not selected by the ${run.selector || "run's"} selector`,
  };
  for (const r of records) if (!phaseList.includes(r.phase)) phaseList.push(r.phase);
  const trajectories = [...new Set(records.map((r) => r.trajectory))].sort((a, b) => a - b);
  const rowOf = new Map(trajectories.map((t, i) => [t, i]));
  const width = records.reduce((m, r) => Math.max(m, r.chunk + 1), 0);

  // z = 2 * phase index + kept: one discrete colour per (phase, kept) pair.
  const z = trajectories.map(() => new Array(width).fill(null));
  const hover = trajectories.map(() => new Array(width).fill(""));
  const outcome = new Map();
  const counts = Object.fromEntries(phaseList.map((p) => [p, { kept: 0, total: 0 }]));
  const dropped = { dynamic: 0, selector: 0 };
  records.forEach((r, i) => {
    const row = rowOf.get(r.trajectory);
    const p = phaseList.indexOf(r.phase);
    z[row][r.chunk] = 2 * p + (r.kept ? 1 : 0);
    hover[row][r.chunk] = `trajectory ${r.trajectory} (group ${r.group}, ${r.success ? "success" : "failure"})` +
      `\nchunk ${r.chunk}: ${phaseLabel(r.phase)}\n${why[reasons[i]](r)}`;
    if (reasons[i] !== "kept") dropped[reasons[i]] += 1;
    outcome.set(r.trajectory, { success: r.success, group: r.group });
    counts[r.phase].total += 1;
    if (r.kept) counts[r.phase].kept += 1;
  });
  const colors = phaseList.flatMap((_, i) => [fadedPhaseColor(i), phaseColor(i)]);
  const rows = trajectories.map((_, i) => i);

  const heat = {
    type: "heatmap",
    x: Array.from({ length: width }, (_, i) => i),
    y: rows,
    z,
    text: hover,
    hovertemplate: "%{text}<extra></extra>",
    zmin: 0,
    zmax: colors.length - 1,
    colorscale: discreteColorscale(colors),
    showscale: false,
    xgap: 1,
    ygap: 1,
  };
  const keptMarks = { x: [], y: [] };
  for (const r of records) if (r.kept) {
    keptMarks.x.push(r.chunk);
    keptMarks.y.push(rowOf.get(r.trajectory));
  }
  const marks = {
    type: "scatter", mode: "markers", name: "back-propagated (×)", x: keptMarks.x, y: keptMarks.y,
    marker: { symbol: "x-thin", size: 7, line: { width: 1.5, color: "#111" }, color: "#111" },
    hoverinfo: "skip",
  };
  const outcomeTrace = (success) => {
    const ts = trajectories.filter((t) => outcome.get(t).success === success);
    return {
      type: "scatter", mode: "markers", name: success ? "trajectory succeeded" : "trajectory failed",
      x: ts.map(() => -1.2), y: ts.map((t) => rowOf.get(t)),
      marker: { symbol: "square", size: 10, color: success ? SUCCESS_COLOR : FAILURE_COLOR },
      hovertemplate: `${success ? "success" : "failure"}<extra></extra>`,
      meta: success ? "success" : "failure",
    };
  };
  // Legend-only entries: one swatch per phase, and what "faded" means.
  const swatch = (name, color) => ({
    type: "scatter", mode: "markers", name, x: [null], y: [null],
    marker: { symbol: "square", size: 12, color }, hoverinfo: "skip",
  });
  const legend = [
    ...phaseList.map((p, i) => swatch(phaseLabel(p), phaseColor(i))),
    swatch("faded = dropped", fade(NEUTRAL)),
  ];

  drawFigure(node, [heat, marks, outcomeTrace(true), outcomeTrace(false), ...legend], {
    height: Math.max(240, 110 + 20 * trajectories.length),
    hovermode: "closest",
    margin: { l: 78, r: 16, t: 36, b: 40 },
    // ticks at chunk 0, 1, ... only: the outcome column left of 0 is no chunk
    xaxis: { title: { text: "chunk index" }, range: [-1.8, width - 0.5], zeroline: false,
      tickmode: "array", tickvals: Array.from({ length: width }, (_, i) => i).filter((i) => i % (width > 30 ? 5 : 1) === 0) },
    yaxis: {
      autorange: "reversed",
      tickvals: rows,
      ticktext: trajectories.map((t) => `traj ${t} ${outcome.get(t).success ? "✓" : "✗"}`),
      zeroline: false,
      showgrid: false,
    },
    plot_bgcolor: "#ffffff",
    annotations: records.length ? [] : [{ text: "no chunk records yet", showarrow: false,
      xref: "paper", yref: "paper", x: 0.5, y: 0.5, font: { color: "#888" } }],
  });
  const groups = (label) => [...outcomeOf].filter(([, o]) => o === label).map(([g]) => g);
  return { counts, phases: phaseList, trajectories: trajectories.length, dropped, groups, run };
}

/** "why the rest were dropped" sentence of the caption, or null when every chunk was kept. */
function droppedSentence({ dropped, groups, run }) {
  const parts = [];
  if (dropped.dynamic) {
    const which = ["all failed", "all succeeded"].filter((o) => groups(o).length)
      .map((o) => `group${groups(o).length > 1 ? "s" : ""} ${groups(o).join(", ")} ${o}`);
    parts.push(`${dropped.dynamic} chunks dropped by dynamic sampling (${which.join("; ")}: no advantage, no update)`);
  }
  if (dropped.selector) parts.push(`${dropped.selector} chunks not selected by the ${run.selector || "run's"} selector`);
  return parts.length ? el("span", { class: "chunk-why", id: "chunk-why" }, `Why not back-propagated: ${parts.join("; ")}.`) : null;
}

/** "kept by phase: [■ active grip 8/12] ..." caption under the map. */
export function chunkCaption(step, stats) {
  const { counts, phases, trajectories } = stats;
  const kept = phases.reduce((s, p) => s + counts[p].kept, 0);
  const total = phases.reduce((s, p) => s + counts[p].total, 0);
  const share = total ? ` (${((100 * kept) / total).toFixed(0)}%)` : "";
  return el(
    "div",
    { class: "chunk-caption" },
    el("span", {}, `step ${step}: ${kept} of ${total} chunks back-propagated${share} over ${trajectories} recorded trajectories — by phase: `),
    ...phases.map((p, i) => counts[p].total ? el("span", { class: "phase-chip" },
      el("span", { class: "swatch", style: { background: phaseColor(i) }, "aria-hidden": "true" }),
      `${phaseLabel(p)} ${counts[p].kept}/${counts[p].total}`) : null),
    droppedSentence(stats),
  );
}

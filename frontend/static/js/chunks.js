// The "which chunks got gradients" map: trajectories x chunk index for one training step.
// Colour = phase (one colour per phase, from phases.js); bright = back-propagated, faded = dropped
// before the forward pass, and a "×" on every back-propagated chunk so the mask reads in grey
// print too. A left-hand column shows each trajectory's outcome.

import { discreteColorscale, drawFigure } from "./charts.js";
import { fade, fadedPhaseColor, phaseColor, phaseLabel } from "./phases.js";
import { el } from "./ui.js";

const SUCCESS_COLOR = "#2ca02c";
const FAILURE_COLOR = "#d62728";
const NEUTRAL = "#7f7f7f"; // the "faded = dropped" legend swatch, whatever the phase

/**
 * Draw `records` ({trajectory, chunk, phase, kept, success, group}) into `node`; `phases` fixes
 * the colour order. Returns per-phase {kept, total} counts for the caption.
 */
export function drawChunkMap(node, records, phases) {
  const phaseList = [...phases];
  for (const r of records) if (!phaseList.includes(r.phase)) phaseList.push(r.phase);
  const trajectories = [...new Set(records.map((r) => r.trajectory))].sort((a, b) => a - b);
  const rowOf = new Map(trajectories.map((t, i) => [t, i]));
  const width = records.reduce((m, r) => Math.max(m, r.chunk + 1), 0);

  // z = 2 * phase index + kept: one discrete colour per (phase, kept) pair.
  const z = trajectories.map(() => new Array(width).fill(null));
  const hover = trajectories.map(() => new Array(width).fill(""));
  const outcome = new Map();
  const counts = Object.fromEntries(phaseList.map((p) => [p, { kept: 0, total: 0 }]));
  for (const r of records) {
    const row = rowOf.get(r.trajectory);
    const p = phaseList.indexOf(r.phase);
    z[row][r.chunk] = 2 * p + (r.kept ? 1 : 0);
    hover[row][r.chunk] = `trajectory ${r.trajectory} (group ${r.group}, ${r.success ? "success" : "failure"})` +
      `\nchunk ${r.chunk}: ${phaseLabel(r.phase)}\n${r.kept ? "back-propagated" : "dropped"}`;
    outcome.set(r.trajectory, { success: r.success, group: r.group });
    counts[r.phase].total += 1;
    if (r.kept) counts[r.phase].kept += 1;
  }
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
    xaxis: { title: { text: "chunk index" }, range: [-1.8, width - 0.5], zeroline: false, dtick: width > 30 ? 5 : 1 },
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
  return { counts, phases: phaseList, trajectories: trajectories.length };
}

/** "kept by phase: [■ active grip 8/12] ..." caption under the map. */
export function chunkCaption(step, { counts, phases, trajectories }) {
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
  );
}

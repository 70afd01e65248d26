// The browser's one copy of what the server defines in Python: metric names and name templates
// (pcm_engine/metrics.py), phases, run statuses, selectors and colours, from GET /api/contract (public,
// revalidated by its ETag). Pages read `C.ROLLOUT_SUCCESS`, `C.metric("keep", phase)`, `C.spreads`,
// `C.statuses.cancellable` or `C.isActive(status)` from it and never type a name, status or selector.

import { api } from "./api.js";
import { usePhaseColors } from "./phases.js";

let loaded = null;

/** The contract, fetched once per page. */
export function loadContract() {
  loaded ??= api("/api/contract", { auth: false }).then(build);
  return loaded;
}

function build({ metrics, phases, statuses, selectors, colors }) {
  usePhaseColors(phases.map((phase) => colors.phases[phase]));
  const metric = (family, value) => {
    const { over, template } = metrics.templates[family];
    return template.replace(`{${over}}`, value);
  };
  return {
    ...metrics.constants, // ROLLOUT_SUCCESS, TIME_UPDATE, ...: the Python constants' names
    all: metrics.names,
    spreads: metrics.spreads, // a timing's name -> its slowest-minus-fastest rank name (several ranks)
    phases,
    statuses,
    selectors,
    colors, // {phases, outcomes: {success, failure}, methods: {selector: colour}}
    /** A method's (selector's) one colour, the same on every page. */
    methodColor: (selector) => colors.methods[selector] ?? "#555555",
    /** One name of a family: metric("keep", "pre_grasp") -> "pcm/keep/pre_grasp". */
    metric,
    /** Every name of a per-phase family, in phase order. */
    perPhase: (family) => phases.map((phase) => metric(family, phase)),
    isActive: (status) => statuses.active.includes(status),
    isFinal: (status) => statuses.final.includes(status),
  };
}

/** Short axis/legend label: "train/policy_loss" -> "policy loss". */
export function metricLabel(name) {
  const last = name.split("/").pop();
  return last.replace(/_s$/, " (s)").replace(/_/g, " ");
}

/**
 * Plotly y-axis settings from the unit a name ends in (the engine's naming rule): a rate,
 * fraction or success in %, bytes in B, anything else as it is. Trailing numbers (a task index)
 * are skipped: "eval/task_success/3" is a success.
 */
export function metricAxis(name) {
  const unit = name.split("/").filter((part) => !/^\d+$/.test(part)).pop();
  if (/(_rate|_fraction|success)$/.test(unit)) return { tickformat: ".0%", range: [-0.02, 1.02] };
  if (/_bytes$/.test(unit)) return { tickformat: ".3s", ticksuffix: "B", rangemode: "tozero" };
  return {};
}

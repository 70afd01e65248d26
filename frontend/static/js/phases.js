// The one phase -> colour map. Every chart, legend and heat map takes its phase colours from here
// so "active_grip" is the same red on the run page, the chunk map and the compare page.

const PHASE_COLORS = {
  active_grip: "#d62728", // the grasp itself: where outcomes diverge most
  pre_grasp: "#ff7f0e",
  release_ramp: "#9467bd",
  approach: "#1f77b4",
  tail: "#7f7f7f",
};

// Any phase the engine adds later still gets a distinct colour.
const SPARE_COLORS = ["#2ca02c", "#8c564b", "#e377c2", "#17becf", "#bcbd22"];

export function phaseColor(phase, index = 0) {
  return PHASE_COLORS[phase] || SPARE_COLORS[index % SPARE_COLORS.length];
}

/** The colour blended towards white: a chunk of this phase that did NOT get gradients. */
export function fadedPhaseColor(phase, index = 0, amount = 0.72) {
  return mix(phaseColor(phase, index), "#ffffff", amount);
}

/** Human label: "active_grip" -> "active grip". */
export function phaseLabel(phase) {
  return phase.replace(/_/g, " ");
}

function mix(hexA, hexB, t) {
  const a = parseHex(hexA);
  const b = parseHex(hexB);
  const c = a.map((v, i) => Math.round(v + (b[i] - v) * t));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

function parseHex(hex) {
  const h = hex.replace("#", "");
  return [0, 2, 4].map((i) => parseInt(h.slice(i, i + 2), 16));
}

// The one phase -> colour map. Every chart, legend and heat map takes its phase colours from here
// so a phase is the same colour on the run page, the chunk map and the compare page. The colours
// come from the contract (GET /api/contract `colors.phases`, set by contract.js when it loads), by
// the phase's index in the contract's phase list; a phase the contract does not know cycles through them.

let PHASE_COLORS = ["#7f7f7f"]; // until the contract has loaded

/** The contract's phase colours, in phase order (contract.js calls this once). */
export function usePhaseColors(colors) {
  if (colors.length) PHASE_COLORS = colors;
}

export function phaseColor(index) {
  return PHASE_COLORS[index % PHASE_COLORS.length];
}

/** A phase's colour blended towards white: a chunk of this phase that did NOT get gradients. */
export function fadedPhaseColor(index) {
  return fade(phaseColor(index));
}

/** A colour blended towards white (how the chunk map draws what was dropped). */
export function fade(color, amount = 0.72) {
  return mix(color, "#ffffff", amount);
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

// The browser's single source of metric names. They come from GET /api/metric-names (the list in
// pcm_engine/metrics.py plus the phases); pages ask this module for `M.ROLLOUT_SUCCESS` or
// `M.keep("pre_grasp")` instead of typing names. The keys mirror the Python constants.

import { api } from "./api.js";

// Python constant -> the name in pcm_engine/metrics.py. Used only when the endpoint does not send
// its own constant map; each one is checked against the endpoint's list at load time.
const KNOWN = {
  ROLLOUT_SUCCESS: "rollout/success_rate",
  EVAL_SUCCESS: "eval/success_rate",
  TRAIN_POLICY_LOSS: "train/policy_loss",
  TRAIN_CLIP_FRACTION: "train/clip_fraction",
  TRAIN_ENTROPY: "train/entropy",
  TRAIN_APPROX_KL: "train/approx_kl",
  TRAIN_GRAD_NORM: "train/grad_norm",
  PCM_KEPT_FRACTION: "pcm/kept_fraction",
  PCM_KEPT_CHUNKS: "pcm/kept_chunks",
  TIME_ROLLOUT: "time/rollout_s",
  TIME_SELECT: "time/select_s",
  TIME_UPDATE: "time/update_s",
  TIME_OTHER: "time/other_s",
  TIME_STEP: "time/step_s",
  MEM_ACTIVATION: "mem/activation_bytes",
  MEM_PEAK_RSS: "mem/peak_rss_bytes",
};

// Per-phase families, as templates on the phase name (metrics.py: score_metric, score_null_metric,
// keep_metric, ...).
const PER_PHASE = {
  score: "pcm/score/{phase}",
  scoreNull: "pcm/score_null/{phase}",
  keep: "pcm/keep/{phase}",
  kept: "pcm/kept/{phase}",
  available: "pcm/available/{phase}",
};

let loaded = null;

/** Load once per page. `source` picks the endpoint (the share page has its own, without auth). */
export function loadMetrics(path = "/api/metric-names", auth = true) {
  loaded ??= api(path, { auth }).then(build);
  return loaded;
}

function build(body) {
  const list = Array.isArray(body) ? body : body.names || body.metrics || [];
  const phases = (!Array.isArray(body) && body.phases) || [];
  const constants = { ...KNOWN, ...((!Array.isArray(body) && body.constants) || {}) };
  const templates = { ...PER_PHASE, ...((!Array.isArray(body) && body.per_phase) || {}) };
  const known = new Set(list);
  for (const [key, name] of Object.entries(constants)) {
    if (list.length && !known.has(name)) console.warn(`metric ${key}=${name} is not in /api/metric-names`);
  }
  const family = (kind) => (phase) => templates[kind].replace("{phase}", phase);
  return {
    all: list,
    phases,
    ...constants,
    score: family("score"),
    scoreNull: family("scoreNull"),
    keep: family("keep"),
    kept: family("kept"),
    available: family("available"),
    /** Names of one per-phase family, in phase order. */
    perPhase(kind) {
      return phases.map(family(kind));
    },
  };
}

/** Short axis/legend label: "train/policy_loss" -> "policy loss". */
export function metricLabel(name) {
  const last = name.split("/").pop();
  return last.replace(/_s$/, " (s)").replace(/_/g, " ");
}

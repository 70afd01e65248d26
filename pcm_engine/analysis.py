"""Analysis of training runs: rank correlation, and reductions of metric rows (eval curves, time
to a success level, a run's costs and their ratios to plain GRPO) shared by the reproduction
benchmark and the dashboard's compare page (`/api/compare`).

Numpy only, no torch: the API process imports this module (the proxy check, which needs the
policy, is `pcm_engine.proxy_check`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pcm_engine import metrics as M
from pcm_engine.pcm import GRPO_SELECTOR

# --- rank correlation ---------------------------------------------------------------------------


def ranks(values: Sequence[float]) -> np.ndarray:
    """1-based ranks; tied values share the mean of the ranks they span (as scipy's rankdata)."""
    x = np.asarray(values, dtype=np.float64)
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    out = np.empty(len(x))
    start = 0
    while start < len(x):
        end = start
        while end + 1 < len(x) and sorted_x[end + 1] == sorted_x[start]:
            end += 1
        out[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return out


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation (Pearson correlation of tie-averaged ranks); NaN when it is not
    defined: fewer than two points, or a sequence whose values are all equal."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D of one length, got {x.shape} and {y.shape}")
    if len(x) < 2:
        return float("nan")
    rx, ry = ranks(x) - (len(x) + 1) / 2, ranks(y) - (len(y) + 1) / 2
    denominator = np.sqrt((rx**2).sum() * (ry**2).sum())
    return float((rx * ry).sum() / denominator) if denominator > 0 else float("nan")


# --- reductions of metric rows ------------------------------------------------------------------


@dataclass(frozen=True)
class EvalCurve:
    """Eval success of one run against its step and its cumulative training seconds."""

    steps: np.ndarray
    success: np.ndarray
    seconds: np.ndarray  # training time up to that step, evaluation excluded


def training_seconds(rows: list[dict]) -> dict[int, float]:
    """Cumulative seconds of training up to each step: `time/step_s` minus `time/eval_s`, so the
    (identical) evaluation protocol does not count as any method's training time."""
    total, out = 0.0, {0: 0.0}
    for row in rows:
        if M.TIME_STEP in row:
            total += row[M.TIME_STEP] - row.get(M.TIME_EVAL, 0.0)
            out[row["step"]] = total
    return out


def eval_curve(rows: list[dict]) -> EvalCurve:
    return success_curve(rows, M.EVAL_SUCCESS)


def success_curve(rows: list[dict], name: str) -> EvalCurve:
    """`name` (eval or rollout success) against its step and its cumulative training seconds."""
    seconds = training_seconds(rows)
    evals = [(r["step"], r[name]) for r in rows if name in r]
    return EvalCurve(
        steps=np.array([s for s, _ in evals], dtype=np.int64),
        success=np.array([v for _, v in evals], dtype=np.float64),
        seconds=np.array([seconds.get(s, np.nan) for s, _ in evals], dtype=np.float64),
    )


def first_crossing(values: Sequence[float], threshold: float) -> int | None:
    """Index of the first value at or above `threshold`, or None if none reaches it."""
    hits = np.flatnonzero(np.asarray(values, dtype=np.float64) >= threshold)
    return int(hits[0]) if len(hits) else None


def metric_series(rows: list[dict], name: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of the training-step rows that carry `name`."""
    pairs = [(r["step"], r[name]) for r in rows if name in r and M.TIME_STEP in r]
    return np.array([s for s, _ in pairs], dtype=np.int64), np.array([v for _, v in pairs], dtype=np.float64)


# --- comparing runs -----------------------------------------------------------------------------

COST_METRICS: tuple[str, ...] = (
    M.TIME_STEP,
    M.TIME_EVAL,
    M.TIME_UPDATE,
    M.MEM_ACTIVATION,
    M.PCM_KEPT_FRACTION,
)
"""The metrics `run_costs` reads besides the success metric (a caller loads only these)."""

BASELINE_SELECTOR = GRPO_SELECTOR
"""The run every other run's costs are divided by: plain GRPO, every chunk back-propagated."""


@dataclass(frozen=True)
class RunCosts:
    """What one run reached and what it cost, from its full metric rows. Seconds are training
    seconds (`training_seconds`: evaluation excluded); None where the run has no such values."""

    steps: int  # training steps logged
    training_seconds: float
    success_final: float | None
    success_best: float | None
    level_step: int | None  # first step whose success reaches the level
    level_seconds: float | None  # training seconds up to that step
    step_mean_s: float | None  # training seconds per step
    update_mean_s: float | None
    update_total_s: float | None
    activation_mean_bytes: float | None
    kept_fraction_mean: float | None


RATIO_COSTS: tuple[str, ...] = (
    "training_seconds",
    "level_seconds",
    "step_mean_s",
    "update_mean_s",
    "update_total_s",
    "activation_mean_bytes",
)
"""The `RunCosts` fields `cost_ratios` divides by the baseline's (below 1 = cheaper or sooner)."""


def run_costs(rows: list[dict], success: str, level: float) -> RunCosts:
    """`rows` as `metrics.read_metrics` gives them (one dict per step), `success` the success
    metric the level is measured on (eval or rollout), `level` in [0, 1]."""
    seconds = training_seconds(rows)
    curve = success_curve(rows, success)
    hit = first_crossing(curve.success, level)
    steps = len(metric_series(rows, M.TIME_STEP)[0])
    total = seconds[max(seconds)]
    _, update = metric_series(rows, M.TIME_UPDATE)
    return RunCosts(
        steps=steps,
        training_seconds=total,
        success_final=_number(curve.success[-1]) if len(curve.success) else None,
        success_best=_number(curve.success.max()) if len(curve.success) else None,
        level_step=None if hit is None else int(curve.steps[hit]),
        level_seconds=None if hit is None else _number(curve.seconds[hit]),
        step_mean_s=total / steps if steps else None,
        update_mean_s=_mean(update),
        update_total_s=_number(update.sum()) if len(update) else None,
        activation_mean_bytes=_mean(metric_series(rows, M.MEM_ACTIVATION)[1]),
        kept_fraction_mean=_mean(metric_series(rows, M.PCM_KEPT_FRACTION)[1]),
    )


def cost_ratios(costs: RunCosts, baseline: RunCosts) -> dict[str, float]:
    """Each of `RATIO_COSTS` over the baseline's, where both have it and the baseline's is > 0."""
    ratios = {}
    for name in RATIO_COSTS:
        value, base = getattr(costs, name), getattr(baseline, name)
        if value is not None and base is not None and base > 0:
            ratios[name] = value / base
    return ratios


def _mean(values: np.ndarray) -> float | None:
    return _number(values.mean()) if len(values) else None


def _number(value: float) -> float | None:
    """A float for JSON: NaN (a step evaluated before any training time exists) becomes None."""
    return float(value) if np.isfinite(value) else None

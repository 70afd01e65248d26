"""Aggregation of a sweep's runs over seeds: the mean of each arm's runs and the 95% interval of
that mean (Student's t with n - 1 degrees of freedom; one seed gives lo = hi = mean), per step of a
series and per cost, and the ratios of an arm's costs to its plain-GRPO arm's, paired by seed.

Numpy and `pcm_engine.analysis` only: no database, no HTTP (the sweep route feeds it rows)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import fields

import numpy as np

from pcm_engine.analysis import RunCosts, cost_ratios

CONFIDENCE = 0.95
Band = list[float]
"""`[step, mean, lo, hi]` for a point of a series; `[mean, lo, hi, n]` for a single number."""


def t_two_sided_probability(t: float, df: int) -> float:
    """P(|T| <= t) for Student's T with integer `df` >= 1 (Abramowitz & Stegun 26.7.3-4: exact
    finite sums in theta = atan(t / sqrt(df)))."""
    theta = math.atan(t / math.sqrt(df))
    cos2, sin = math.cos(theta) ** 2, math.sin(theta)
    if df % 2 == 1:
        term, total = math.cos(theta), 0.0
        if df > 1:
            total = term
            for k in range(3, df - 1, 2):  # cos, (2/3) cos^3, (2*4)/(3*5) cos^5, ...
                term *= cos2 * (k - 1) / k
                total += term
        return 2 / math.pi * (theta + sin * total)
    term, total = 1.0, 1.0
    for k in range(2, df - 1, 2):  # 1, (1/2) cos^2, (1*3)/(2*4) cos^4, ...
        term *= cos2 * (k - 1) / k
        total += term
    return sin * total


def t_critical(df: int, confidence: float = CONFIDENCE) -> float:
    """The t with P(|T| <= t) = `confidence` (12.706 for df 1, 4.303 for 2, ... 1.96 in the limit)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    lo, hi = 0.0, 1.0
    while t_two_sided_probability(hi, df) < confidence:
        hi *= 2
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_two_sided_probability(mid, df) < confidence else (lo, mid)
    return (lo + hi) / 2


def mean_interval(values: Sequence[float]) -> tuple[float, float, float]:
    """(mean, lo, hi): the 95% t-interval of the mean of `values` (at least one)."""
    x = np.asarray(values, dtype=np.float64)
    mean = float(x.mean())
    if len(x) < 2:
        return mean, mean, mean
    half = t_critical(len(x) - 1) * float(x.std(ddof=1)) / math.sqrt(len(x))
    return mean, mean - half, mean + half


def aggregate_series(runs: Sequence[Sequence[Sequence[float]]]) -> list[Band]:
    """One series per seed, `[[step, value], ...]`, -> `[[step, mean, lo, hi], ...]` at every step
    some seed has, over the seeds that have it (a seed that is still running counts where it
    has got to)."""
    at_step: dict[int, list[float]] = {}
    for points in runs:
        for step, value in points:
            if value is not None and math.isfinite(value):
                at_step.setdefault(int(step), []).append(float(value))
    return [[step, *mean_interval(values)] for step, values in sorted(at_step.items())]


def aggregate_costs(costs: Sequence[RunCosts]) -> dict[str, Band]:
    """Per numeric `RunCosts` field, `[mean, lo, hi, n]` over the runs that have a value."""
    out: dict[str, Band] = {}
    for field in fields(RunCosts):
        values = [getattr(c, field.name) for c in costs if getattr(c, field.name) is not None]
        if values:
            out[field.name] = [*mean_interval(values), len(values)]
    return out


def paired_ratios(arm: Mapping[int, RunCosts], baseline: Mapping[int, RunCosts]) -> dict[str, Band]:
    """`cost_ratios` of each seed's run to the baseline run of the same seed (same start, same
    rollout streams), as `[mean, lo, hi, n]` per ratio over the seeds both arms have."""
    per_ratio: dict[str, list[float]] = {}
    for seed in sorted(arm.keys() & baseline.keys()):
        for name, value in cost_ratios(arm[seed], baseline[seed]).items():
            per_ratio.setdefault(name, []).append(value)
    return {name: [*mean_interval(values), len(values)] for name, values in per_ratio.items()}

"""Report of bench/reproduce.py: reads its raw results, draws img/results/*.png and writes
results.md (default docs/): the settings every method shares (checked: only `pcm.selector`,
`pcm.budget`, `pcm.reweight` and `pcm.score` may differ), tables, figures, the paper's orderings and
the issue's targets checked by stated rules (with the margin of every miss), the time each method
takes to reach GRPO's final success, and the proxy check of both phase scores.

Kept apart from the runner so `python bench/reproduce.py --report-only` and the figures can change
without touching how runs are launched. Everything here reads metric rows and saved configs;
nothing trains.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from reproduce_plan import ALLOWED_DIFFERENCES, Method, Plan, check_settings

from pcm_engine import metrics as M
from pcm_engine.analysis import EvalCurve, eval_curve, first_crossing, metric_series, spearman
from pcm_engine.config import RunConfig
from pcm_engine.phases import PHASES

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ReportPaths:
    """Where a report goes: `root/results.md` and its figures in `root/img/results/`."""

    root: Path

    @property
    def results_md(self) -> Path:
        return self.root / "results.md"

    @property
    def figures(self) -> Path:
        return self.root / "img" / "results"


DOCS = ReportPaths(ROOT / "docs")
RESULTS_MD = DOCS.results_md
FIGURES = DOCS.figures

THRESHOLD_FRACTION = 0.75
"""Default success threshold: this fraction of the way from the SFT start to GRPO's final eval
success (the paper's 98% sits just below its GRPO plateau). Fixed before looking at any method."""

# The targets, fixed before looking at any result.
PCM_WITHIN_POINTS = 3.0  # PCM (paper) at the mid budget ends at most this far below GRPO
SPEEDUP_TARGET = 2.0  # PCM reaches GRPO's final level this many times sooner (training wall-clock)
UNIFORM_GAP_POINTS = 5.0  # uniform ends at least this far below PCM
DEBIASED_RHO_TARGET = 0.5  # Spearman of the debiased score with the measured V_c
LEVEL_EPS = 1e-9  # float slack when a seed-mean curve is compared with a mean of the same numbers


def load_run_configs(out: Path, methods: list[Method], seeds: int) -> dict[tuple[str, int], dict]:
    """The config each finished or started run saved (`config.yaml`), as plain data."""
    configs = {}
    for method in methods:
        for seed in range(seeds):
            path = out / "runs" / method.name / f"seed{seed}" / "config.yaml"
            if path.exists():
                configs[(method.name, seed)] = yaml.safe_load(path.read_text()) or {}
    return configs


# --- reading results ----------------------------------------------------------------------------


@dataclass
class RunData:
    method: str
    seed: int
    rows: list[dict]
    curve: EvalCurve

    @property
    def final(self) -> float | None:
        return float(self.curve.success[-1]) if len(self.curve.success) else None


@dataclass
class Spread:
    """A statistic over seeds: the per-seed values, their mean, sd (ddof 1) and range."""

    values: list[float]

    @property
    def mean(self) -> float:
        return float(np.mean(self.values)) if self.values else float("nan")

    @property
    def sd(self) -> float:
        return float(np.std(self.values, ddof=1)) if len(self.values) > 1 else float("nan")

    @property
    def lo(self) -> float:
        return float(np.min(self.values)) if self.values else float("nan")

    @property
    def hi(self) -> float:
        return float(np.max(self.values)) if self.values else float("nan")


@dataclass
class LevelTime:
    """When the seed-mean eval curve first reaches a success level (eval steps after 0): the step,
    and the training seconds the seeds had spent by then (mean, min, max over seeds)."""

    level: float
    step: int | None = None
    seconds: Spread | None = None
    seeds_reaching: int = 0  # seeds whose own curve reaches the level at some eval after step 0
    best: float = float("nan")  # the highest value of the seed-mean curve after step 0

    @property
    def reached(self) -> bool:
        return self.step is not None


@dataclass
class MethodResult:
    """One method over its seeds."""

    method: Method
    runs: list[RunData]
    eval_steps: np.ndarray
    eval_mean: np.ndarray
    eval_sd: np.ndarray
    eval_lo: np.ndarray
    eval_hi: np.ndarray
    eval_seconds: np.ndarray  # mean over seeds of training seconds at each eval step
    eval_seconds_runs: np.ndarray  # [runs, eval steps] training seconds of each seed
    final_by_seed: dict[int, float]
    update_s: Spread
    step_s: Spread
    kept_fraction: Spread
    activation_bytes: Spread
    color: str | None = None
    threshold: float = float("nan")
    steps_to_threshold: int | None = None
    seconds_to_threshold: float | None = None
    seeds_reaching: int = 0
    to_grpo_level: LevelTime | None = None

    @property
    def final(self) -> list[float]:
        return list(self.final_by_seed.values())

    @property
    def final_mean(self) -> float:
        return float(np.mean(self.final)) if self.final else float("nan")

    @property
    def final_sd(self) -> float:
        return float(np.std(self.final, ddof=1)) if len(self.final) > 1 else float("nan")

    @property
    def mean_update_s(self) -> float:
        return self.update_s.mean

    @property
    def mean_step_s(self) -> float:
        return self.step_s.mean

    @property
    def mean_kept_fraction(self) -> float:
        return self.kept_fraction.mean


def load_runs(out: Path, method: Method, seeds: int) -> list[RunData]:
    runs = []
    for seed in range(seeds):
        rows = M.read_metrics(out / "runs" / method.name / f"seed{seed}")
        if rows:
            runs.append(RunData(method.name, seed, rows, eval_curve(rows)))
    return runs


def run_mean(run: RunData, key: str, *, updated_only: bool = False) -> float | None:
    """Mean of a per-step metric over one run's training steps; `updated_only` skips steps without
    an update (no mixed group: nothing to keep, so no kept fraction to speak of)."""
    values = [
        r[key]
        for r in run.rows
        if key in r and M.TIME_STEP in r and (r.get(M.TRAIN_UPDATED, 0.0) > 0 or not updated_only)
    ]
    return float(np.mean(values)) if values else None


def seed_spread(runs: list[RunData], key: str, *, updated_only: bool = False) -> Spread:
    """Per seed, the run's mean of a per-step metric; the Spread over seeds."""
    values = [run_mean(run, key, updated_only=updated_only) for run in runs]
    return Spread([v for v in values if v is not None])


def step_mean(runs: list[RunData], key: str, *, updated_only: bool = False) -> float:
    """Mean over seeds of each seed's mean of a per-step metric."""
    return seed_spread(runs, key, updated_only=updated_only).mean


def train_seconds(run: RunData) -> float | None:
    values = [r[M.TIME_STEP] - r.get(M.TIME_EVAL, 0.0) for r in run.rows if M.TIME_STEP in r]
    return float(np.mean(values)) if values else None


def summarise_method(method: Method, runs: list[RunData]) -> MethodResult:
    common = sorted(set.intersection(*(set(run.curve.steps.tolist()) for run in runs))) if runs else []
    table = np.array([[run.curve.success[run.curve.steps == s][0] for s in common] for run in runs])
    seconds = np.array([[run.curve.seconds[run.curve.steps == s][0] for s in common] for run in runs])
    empty = np.zeros(0)
    step_s = [train_seconds(run) for run in runs]
    return MethodResult(
        method=method,
        runs=runs,
        eval_steps=np.array(common, dtype=np.int64),
        eval_mean=table.mean(axis=0) if common else empty,
        eval_sd=table.std(axis=0, ddof=1) if common and len(runs) > 1 else np.full(len(common), np.nan),
        eval_lo=table.min(axis=0) if common else empty,
        eval_hi=table.max(axis=0) if common else empty,
        eval_seconds=seconds.mean(axis=0) if common else empty,
        eval_seconds_runs=seconds if common else np.zeros((len(runs), 0)),
        final_by_seed={run.seed: run.final for run in runs if run.final is not None},
        update_s=seed_spread(runs, M.TIME_UPDATE),
        step_s=Spread([v for v in step_s if v is not None]),
        kept_fraction=seed_spread(runs, M.PCM_KEPT_FRACTION, updated_only=True),
        activation_bytes=seed_spread(runs, M.MEM_ACTIVATION),
    )


def sft_start_success(results: list[MethodResult]) -> float:
    starts = [run.curve.success[0] for r in results for run in r.runs if run.curve.steps[:1].tolist() == [0]]
    return float(np.mean(starts)) if starts else float("nan")


def auto_threshold(results: list[MethodResult], start: float) -> float:
    """THRESHOLD_FRACTION of the way from the start to GRPO's final success (to the best
    method's when GRPO is not in the run), rounded to half a point."""
    reference = next((r for r in results if r.method.name == "full" and r.final), None)
    finals = [r.final_mean for r in results if r.final]
    top = reference.final_mean if reference else max(finals, default=start)
    return round(2 * (start + THRESHOLD_FRACTION * max(0.0, top - start)), 2) / 2


def apply_threshold(result: MethodResult, threshold: float) -> None:
    """Steps and training seconds to the threshold on the seed-mean eval curve; the step-0 eval
    (the shared SFT start) does not count as reaching it."""
    result.threshold = threshold
    trained = result.eval_steps > 0
    hit = first_crossing(result.eval_mean[trained], threshold)
    if hit is not None:
        result.steps_to_threshold = int(result.eval_steps[trained][hit])
        result.seconds_to_threshold = float(result.eval_seconds[trained][hit])
    result.seeds_reaching = sum(
        first_crossing(run.curve.success[run.curve.steps > 0], threshold) is not None for run in result.runs
    )


def time_to_level(result: MethodResult, level: float) -> LevelTime:
    """When `result`'s seed-mean eval curve first reaches `level` after step 0, and the training
    seconds (eval excluded) each seed had spent by that eval step."""
    trained = result.eval_steps > 0
    out = LevelTime(level)
    if not trained.any():
        return out
    curve = result.eval_mean[trained]
    out.best = float(curve.max())
    out.seeds_reaching = sum(
        first_crossing(run.curve.success[run.curve.steps > 0], level - LEVEL_EPS) is not None
        for run in result.runs
    )
    hit = first_crossing(curve, level - LEVEL_EPS)
    if hit is not None:
        out.step = int(result.eval_steps[trained][hit])
        column = result.eval_seconds_runs[:, trained][:, hit]
        out.seconds = Spread([float(v) for v in column if np.isfinite(v)])
    return out


def paired_difference(a: MethodResult, b: MethodResult) -> Spread:
    """Per seed both methods have, `a`'s final eval success minus `b`'s (seeds are paired)."""
    seeds = sorted(set(a.final_by_seed) & set(b.final_by_seed))
    return Spread([a.final_by_seed[s] - b.final_by_seed[s] for s in seeds])


def seed_mean_series(runs: list[RunData], name: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, mean over seeds) of a per-step metric, over the steps every seed has."""
    series = [metric_series(run.rows, name) for run in runs]
    series = [s for s in series if len(s[0])]
    if not series:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    common = sorted(set.intersection(*(set(steps.tolist()) for steps, _ in series)))
    values = np.array([[dict(zip(s.tolist(), v, strict=True))[c] for c in common] for s, v in series])
    return np.array(common, dtype=np.int64), values.mean(axis=0)


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average (shorter at the start), so a curve is not shifted in time."""
    if window <= 1 or len(values) == 0:
        return values
    cumulative = np.cumsum(np.insert(values, 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    lo = np.maximum(0, idx - window)
    return (cumulative[idx] - cumulative[lo]) / (idx - lo)


def phase_allocation(runs: list[RunData], metric, last_fraction: float = 1 / 3) -> dict[str, Spread]:
    """Chunks of each phase per updated trajectory, averaged over the last part of training: per
    seed, then the Spread over seeds."""
    out = {}
    for phase in PHASES:
        per_seed = []
        for run in runs:
            rows = [r for r in run.rows if M.TIME_STEP in r]
            tail = rows[int(len(rows) * (1 - last_fraction)) :]
            per_traj = [
                r.get(metric(phase), 0.0) / r[M.TRAIN_UPDATE_TRAJECTORIES]
                for r in tail
                if r.get(M.TRAIN_UPDATE_TRAJECTORIES, 0) > 0
            ]
            if per_traj:
                per_seed.append(float(np.mean(per_traj)))
        out[phase] = Spread(per_seed)
    return out


def final_keep_weights(runs: list[RunData]) -> dict[str, Spread]:
    last = [[r for r in run.rows if M.TIME_STEP in r][-1] for run in runs if run.rows]
    return {c: Spread([r[M.keep_metric(c)] for r in last if M.keep_metric(c) in r]) for c in PHASES}


def pairing_check(results: list[MethodResult]) -> tuple[int, int, list[str]]:
    """Seeds are paired: at step 1 every run still holds the shared SFT policy and draws its task
    schedule and rollout sampling from (seed, step) streams, so every method's step-1 rollouts must
    be the same. Returns (seeds that agree, seeds compared, disagreements) over the step-1 train
    success rate, chunk count and episode steps."""
    keys = (M.ROLLOUT_SUCCESS, M.ROLLOUT_CHUNKS, M.ROLLOUT_EPISODE_STEPS)
    by_seed: dict[int, dict[str, tuple]] = {}
    for r in results:
        for run in r.runs:
            first = next((row for row in run.rows if row.get("step") == 1 and M.TIME_STEP in row), None)
            if first is not None:
                by_seed.setdefault(run.seed, {})[r.method.name] = tuple(first.get(k) for k in keys)
    agree, compared, problems = 0, 0, []
    for seed, values in sorted(by_seed.items()):
        if len(values) < 2:
            continue
        compared += 1
        if len(set(values.values())) == 1:
            agree += 1
        else:
            problems.append(f"seed {seed}: " + ", ".join(f"{m} {v}" for m, v in values.items()))
    return agree, compared, problems


# --- figures ------------------------------------------------------------------------------------

PHASE_COLORS = dict(zip(PHASES, ["#bdbdbd", "#6baed6", "#d62728", "#ff7f0e", "#9467bd"], strict=False))
BUDGET_BLUES = ("#9ecae1", "#2171b5", "#08306b")


def method_color(method: Method, budgets: tuple[int, int, int]) -> str:
    """GRPO black, PCM (paper score) blue, darker with a larger budget; the variants each their own."""
    o = method.overrides
    if o.get("pcm.selector") == "full":
        return "#222222"
    if o.get("pcm.selector") == "uniform":
        return "#e6550d"
    if o.get("pcm.selector") == "top_phase":
        return "#a63603"
    if o.get("pcm.reweight") == "unbiased":
        return "#31a354"
    if o.get("pcm.score") == "debiased":
        return "#756bb1"
    return BUDGET_BLUES[list(budgets).index(method.budget)] if method.budget in budgets else "#2171b5"


def plt_figure(ncols: int = 1, nrows: int = 1, width: float = 7.0, height: float = 4.2):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False)
    return plt, fig, axes


class Figures:
    """Saves figures under a report's img/results/ and returns their page-relative paths."""

    def __init__(self, paths: ReportPaths):
        self.paths = paths

    def save(self, plt, fig, name: str) -> str:
        self.paths.figures.mkdir(parents=True, exist_ok=True)
        fig.tight_layout()
        fig.savefig(self.paths.figures / name, dpi=110)
        plt.close(fig)
        return f"img/results/{name}"


def plot_eval(
    out: Figures, results: list[MethodResult], threshold: float, level: float | None, wall_clock: bool
) -> str:
    plt, fig, axes = plt_figure()
    ax = axes[0][0]
    for r in results:
        if not len(r.eval_steps):
            continue
        x = r.eval_seconds / 60 if wall_clock else r.eval_steps
        ax.plot(x, r.eval_mean, marker="o", ms=3, label=r.method.label, color=r.color)
        ax.fill_between(x, r.eval_lo, r.eval_hi, alpha=0.12, color=r.color)
    ax.axhline(threshold, ls="--", lw=1, color="grey", label=f"threshold {threshold:.1%}")
    if level is not None and np.isfinite(level):
        ax.axhline(level, ls=":", lw=1, color="black", label=f"GRPO's final level {level:.1%}")
    ax.set_xlabel("training minutes (eval excluded)" if wall_clock else "step")
    ax.set_ylabel("eval success (mean; band = min-max over seeds)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return out.save(plt, fig, "eval_vs_wallclock.png" if wall_clock else "eval_vs_step.png")


def plot_per_step(
    out: Figures, results: list[MethodResult], name: str, ylabel: str, file: str, transform
) -> str:
    plt, fig, axes = plt_figure()
    ax = axes[0][0]
    for r in results:
        steps, values = seed_mean_series(r.runs, name)
        if len(steps):
            ax.plot(steps, transform(values), label=r.method.label, color=r.color, lw=1.2)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return out.save(plt, fig, file)


def plot_phase_panels(
    out: Figures, results: list[MethodResult], metric, ylabel: str, file: str, stacked: bool
) -> str:
    """One panel per method: per-phase series over training (kept-chunk shares or p_c)."""
    ncols = 3
    nrows = max(1, math.ceil(len(results) / ncols))
    plt, fig, axes = plt_figure(ncols, nrows, width=12, height=3.2 * nrows)
    for ax, r in zip(axes.flat, results, strict=False):
        series = {c: seed_mean_series(r.runs, metric(c)) for c in PHASES}
        steps = next((s for s, _ in series.values() if len(s)), np.zeros(0))
        values = np.array([v if len(v) == len(steps) else np.zeros(len(steps)) for _, v in series.values()])
        window = max(1, len(steps) // 15)
        if stacked and len(steps):
            total = values.sum(axis=0)
            shares = np.divide(values, total, out=np.zeros_like(values), where=total > 0)
            ax.stackplot(
                steps, *[smooth(s, window) for s in shares], labels=PHASES, colors=list(PHASE_COLORS.values())
            )
            ax.set_ylim(0, 1)
        elif len(steps):
            for c, v in zip(PHASES, values, strict=True):
                ax.plot(steps, v, label=c, color=PHASE_COLORS[c], lw=1.2)
            ax.set_ylim(0, 1.05)
        ax.set_title(r.method.label, fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel, fontsize=8)
    for ax in list(axes.flat)[len(results) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7, loc="lower left")
    return out.save(plt, fig, file)


def plot_proxy(out: Figures, points: list[dict]) -> str:
    """V_c against each score: the paper's C_c (left) and the signed debiased D² (right)."""
    plt, fig, axes = plt_figure(ncols=2, width=11, height=4.5)
    steps = sorted({p["step"] for p in points})
    markers = dict(zip(steps, "osD^v<>ph*", strict=False))
    for ax, key, xlabel in (
        (axes[0][0], "paper", "paper score C_c"),
        (axes[0][1], "debiased", "debiased score D² (signed)"),
    ):
        here = [p for p in points if p.get(key) is not None]
        for p in here:
            ax.scatter(
                p[key],
                math.sqrt(p["variance"]),
                color=PHASE_COLORS[p["phase"]],
                marker=markers.get(p["step"], "o"),
                s=28,
            )
        if key == "debiased":
            ax.axvline(0, color="grey", lw=0.8)
        rho = proxy_rho(points, key)[0]
        ax.set_title(f"Spearman rho = {num(rho)} over {len(here)} points", fontsize=9)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("measured sqrt(V_c) (per-chunk gradient std)")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    ax = axes[0][0]
    for c in PHASES:
        ax.scatter([], [], color=PHASE_COLORS[c], label=c)
    for s in steps:
        ax.scatter([], [], color="black", marker=markers.get(s, "o"), label=f"step {s}")
    ax.legend(fontsize=7)
    return out.save(plt, fig, "proxy_check.png")


def make_figures(
    paths: ReportPaths, results: list[MethodResult], threshold: float, level: float | None, proxy: dict | None
) -> dict[str, str]:
    out = Figures(paths)
    masked = [r for r in results if r.method.budget is not None]
    figures = {
        "eval_step": plot_eval(out, results, threshold, level, wall_clock=False),
        "eval_time": plot_eval(out, results, threshold, level, wall_clock=True),
        "update": plot_per_step(
            out,
            results,
            M.TIME_UPDATE,
            "cumulative actor-update minutes",
            "cumulative_update.png",
            lambda v: np.cumsum(v) / 60,
        ),
        "activation": plot_per_step(
            out,
            results,
            M.MEM_ACTIVATION,
            "activation MB saved for backward (smoothed)",
            "activation.png",
            lambda v: smooth(v, max(1, len(v) // 15)) / 2**20,
        ),
        "allocation": plot_phase_panels(
            out,
            [r for r in results if r.method.name == "full"] + masked,
            M.kept_metric,
            "share of kept chunks",
            "allocation.png",
            stacked=True,
        ),
        "keep": plot_phase_panels(out, results, M.keep_metric, "p_c", "keep_weights.png", stacked=False),
    }
    if proxy and proxy["points"]:
        figures["proxy"] = plot_proxy(out, proxy_points_of(proxy))
    return figures


# --- the proxy check ------------------------------------------------------------------------------


def proxy_points_of(proxy: dict) -> list[dict]:
    """The proxy points with both scores named: a proxy.json from before the debiased score has
    only `score` (the paper's C_c) and no `debiased`."""
    return [{**p, "paper": p.get("paper", p.get("score"))} for p in proxy["points"]]


def proxy_rho(points: list[dict], key: str, transform=None) -> tuple[float, dict[int, float], int]:
    """Spearman of score `key` against V_c over every point that has it, within each checkpoint's
    points, and the number of points."""
    here = [p for p in points if p.get(key) is not None]

    def score(p):
        return transform(p[key]) if transform else p[key]

    pooled = spearman([score(p) for p in here], [p["variance"] for p in here]) if here else math.nan
    per_step = {}
    for step in sorted({p["step"] for p in here}):
        at = [p for p in here if p["step"] == step]
        per_step[step] = spearman([score(p) for p in at], [p["variance"] for p in at])
    return pooled, per_step, len(here)


def clipped_root(d2: float) -> float:
    return math.sqrt(max(0.0, d2))


def proxy_section(proxy: dict | None, figures: dict[str, str]) -> list[str]:
    if not proxy or not proxy["points"]:
        return ["No proxy-check points (no mixed groups at the sampled checkpoints)."]
    points = proxy_points_of(proxy)
    paper, paper_steps, n_paper = proxy_rho(points, "paper")
    debiased, debiased_steps, n_debiased = proxy_rho(points, "debiased")
    clipped = proxy_rho(points, "debiased", clipped_root)[0]
    negative = sum(1 for p in points if p.get("debiased") is not None and p["debiased"] < 0)
    dims = proxy.get("score_dims")
    dims_text = f"action dims {dims} (the env's `score_dims`)" if dims else "the run's score dims"

    def per_step(values: dict[int, float]) -> str:
        return ", ".join(f"step {s}: {num(v)}" for s, v in values.items())

    lines = [
        f"Source: `{proxy['method']}` seed {proxy['seed']} (one run; no spread over seeds), at the SFT "
        f"start and saved checkpoints; {proxy['batches']} fresh rollout batch(es) per checkpoint, up "
        f"to {proxy['samples_per_phase']} chunks of each phase from mixed groups. `V_c` is the trace of "
        "the covariance of per-chunk policy-gradient vectors (each chunk's own clipped surrogate, "
        "summed over its tokens, differentiated with respect to the action head and the last decoder "
        "layer). Both scores are computed on the same batch and chunks, on "
        f"{dims_text}: the paper's `C_c` (spec §3) and the debiased `D²` (signed, mean over mixed "
        "groups; undefined for a phase without a mixed group of ≥ 3 trajectories holding it).",
        "",
        "Spearman is rank-based, and `s_c = sqrt(max(0, D²))` is monotone in `D²` except that it ties "
        "every negative value at 0, so the two rankings differ only among negative points. The "
        "correlation below ranks the **signed `D²`** (the unbiased estimate itself, nothing thrown "
        f"away); the clipped `sqrt(max(0, D²))` is given beside it ({negative} of {n_debiased} points "
        "negative).",
        "",
        f"- **Paper score `C_c` vs `V_c`: Spearman {num(paper)} over {n_paper} points**; per "
        f"checkpoint: {per_step(paper_steps)}.",
        f"- **Debiased score `D²` vs `V_c`: Spearman {num(debiased)} over {n_debiased} points** "
        f"(clipped sqrt(max(0, D²)): {num(clipped)}); per checkpoint: {per_step(debiased_steps)}.",
        "",
        "(— where a checkpoint has fewer than two points or all-equal values.)",
        "",
        "| step | batch | phase | C_c | D² (signed) | sqrt(V_c) | chunks sampled |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in points:
        lines.append(
            f"| {p['step']} | {p['batch']} | {p['phase']} | {num(p['paper'], '{:.3f}')} | "
            f"{num(p.get('debiased'), '{:.4f}')} | {math.sqrt(p['variance']):.4g} | {p['samples']} |"
        )
    if "proxy" in figures:
        lines += ["", f"![proxy check]({figures['proxy']})"]
    return lines


# --- formatting -----------------------------------------------------------------------------------


def isnan(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def pct(x: float | None) -> str:
    return "—" if isnan(x) else f"{100 * x:.1f}%"


def points(x: float | None) -> str:
    return "—" if isnan(x) else f"{100 * x:+.1f}"


def num(x: float | None, fmt: str = "{:.2f}") -> str:
    return "—" if isnan(x) else fmt.format(x)


def duration(seconds: float | None) -> str:
    if isnan(seconds):
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"


def mean_sd(spread: Spread, fmt: Callable[[float], str], sd_fmt: Callable[[float], str] | None = None) -> str:
    """Mean ± sd (n=k) of a Spread (sd with `sd_fmt`, default `fmt`), sd left out for one seed."""
    if not spread.values:
        return "—"
    if len(spread.values) == 1:
        return f"{fmt(spread.mean)} (n=1)"
    return f"{fmt(spread.mean)} ± {(sd_fmt or fmt)(spread.sd)} (n={len(spread.values)})"


def time_range(spread: Spread | None) -> str:
    if spread is None or not spread.values:
        return "—"
    if len(spread.values) == 1:
        return duration(spread.mean)
    return f"{duration(spread.mean)} ({duration(spread.lo)}–{duration(spread.hi)})"


# --- claims ---------------------------------------------------------------------------------------


def difference_se(a: MethodResult, b: MethodResult, episodes: int) -> float:
    """Standard error of the difference of two seed-mean final successes: seed spread, floored by
    the binomial noise of one eval of `episodes` episodes."""

    def var_of_mean(r: MethodResult) -> float:
        sd = r.final_sd if not math.isnan(r.final_sd) else 0.0
        p = min(max(r.final_mean, 0.05), 0.95)
        return max(sd**2, p * (1 - p) / episodes) / max(1, len(r.final))

    return math.sqrt(var_of_mean(a) + var_of_mean(b))


@dataclass
class Claim:
    text: str
    held: bool | None  # None: could not be checked (a method or the proxy check is missing)
    evidence: str
    shortfall: str | None = None  # by how much a missed target was missed

    def line(self) -> str:
        miss = f" **Missed by {self.shortfall}.**" if self.held is False and self.shortfall else ""
        return f"- **{verdict(self.held)}** — {self.text} {self.evidence}.{miss}"


def verdict(held: bool | None) -> str:
    return "not checked" if held is None else ("held" if held else "did not hold")


def compare(text: str, a: MethodResult, b: MethodResult, episodes: int, rule) -> Claim:
    """A claim about `a`'s final success against `b`'s; `rule(diff, se)` returns (held, miss in
    points) with the stated 2-SE rule."""
    diff, se = a.final_mean - b.final_mean, difference_se(a, b, episodes)
    evidence = (
        f"{a.method.label} {pct(a.final_mean)} vs {b.method.label} {pct(b.final_mean)}: "
        f"{100 * diff:+.1f} points, 2 SE = {200 * se:.1f} points"
    )
    held, miss = rule(diff, se)
    return Claim(text, bool(held), evidence, None if held else f"{100 * miss:.1f} points")


def within_2se(diff: float, se: float) -> tuple[bool, float]:
    return abs(diff) <= 2 * se, abs(diff) - 2 * se


def below(diff: float, se: float) -> tuple[bool, float]:
    """Lower by more than the noise: a difference within 2 SE counts as equal (the stated rule)."""
    return diff < -2 * se, diff + 2 * se


def not_above_2se(diff: float, se: float) -> tuple[bool, float]:
    return diff <= 2 * se, diff - 2 * se


def paper_claims(by_name: dict[str, MethodResult], budgets, episodes: int) -> list[Claim]:
    """The paper's ordering, each checked by a stated rule on final eval success."""
    low, mid, high = budgets
    full, pcm = by_name.get("full"), by_name.get(f"pcm_b{mid}")
    if pcm is None:
        return []
    claims = []
    if full:
        claims.append(
            compare(f"Per step, PCM B={mid} learns as well as GRPO.", pcm, full, episodes, within_2se)
        )
        claims.append(wall_clock_claim(full, pcm, mid))
    against_pcm = (
        (f"uniform_b{mid}", "Random masking (uniform) ends lower than PCM.", below),
        (f"top_phase_b{mid}", "top_phase (full masking) ends lower than PCM.", below),
        (f"pcm_b{low}", f"The smaller budget B={low} ends lower than B={mid}.", below),
        (f"pcm_b{high}", f"The larger budget B={high} is no better than B={mid}.", not_above_2se),
    )
    for name, text, rule in against_pcm:
        if name in by_name:
            claims.append(compare(text, by_name[name], pcm, episodes, rule))
    return claims


def step_ratio(full: MethodResult, other: MethodResult) -> str:
    return (
        f"; a training step takes {num(other.mean_step_s)} s vs {num(full.mean_step_s)} s "
        f"({num(full.mean_step_s / other.mean_step_s, '{:.2f}')}×)"
    )


def wall_clock_claim(full: MethodResult, pcm: MethodResult, mid: int) -> Claim:
    text = f"PCM B={mid} reaches the threshold sooner in wall-clock than GRPO."
    per_step = step_ratio(full, pcm)
    if pcm.seconds_to_threshold is None:
        best = float(np.max(pcm.eval_mean[pcm.eval_steps > 0])) if (pcm.eval_steps > 0).any() else math.nan
        short = f"{100 * (pcm.threshold - best):.1f} points of success" if not isnan(best) else None
        return Claim(
            text,
            False,
            f"PCM's mean curve never reached the threshold (best {pct(best)})" + per_step,
            short,
        )
    if full.seconds_to_threshold is None:
        return Claim(text, True, "GRPO's mean curve never reached the threshold; PCM's did" + per_step)
    ratio = full.seconds_to_threshold / pcm.seconds_to_threshold
    evidence = f"{duration(pcm.seconds_to_threshold)} vs {duration(full.seconds_to_threshold)}: {ratio:.2f}×"
    return Claim(text, ratio > 1, evidence + per_step, f"{1 - ratio:.2f}× of speed-up (needs > 1×)")


def target_claims(
    by_name: dict[str, MethodResult], budgets, proxy: dict | None, chunks_per_trajectory: float
) -> list[Claim]:
    """The issue's targets, fixed before the runs: each with its statistic and, when missed, by
    how much."""
    _, mid, _ = budgets
    full, pcm = by_name.get("full"), by_name.get(f"pcm_b{mid}")
    share = (
        pcm.mean_kept_fraction
        if pcm and not isnan(pcm.mean_kept_fraction)
        else mid / chunks_per_trajectory
        if chunks_per_trajectory and not isnan(chunks_per_trajectory)
        else math.nan
    )
    claims = []

    text = (
        f"PCM (paper score) at ≈{pct(share)} of chunks (B={mid}) ends within {PCM_WITHIN_POINTS:g} points "
        "of GRPO (mean of paired seeds; ending above GRPO also counts)."
    )
    if full and pcm:
        d = paired_difference(pcm, full)
        held = d.mean >= -PCM_WITHIN_POINTS / 100 if d.values else None
        claims.append(
            Claim(
                text,
                held,
                f"PCM − GRPO = {points(d.mean)} points (sd {num(100 * d.sd, '{:.1f}')}, min–max "
                f"{points(d.lo)} to {points(d.hi)}, {len(d.values)} paired seeds; PCM {pct(pcm.final_mean)} "
                f"vs GRPO {pct(full.final_mean)})",
                f"{-100 * d.mean - PCM_WITHIN_POINTS:.1f} points",
            )
        )
    else:
        claims.append(Claim(text, None, f"needs `full` and `pcm_b{mid}`"))

    text = f"PCM B={mid} reaches GRPO's final level ≥ {SPEEDUP_TARGET:g}× sooner in training wall-clock."
    if full and pcm and full.to_grpo_level and pcm.to_grpo_level:
        g, p = full.to_grpo_level, pcm.to_grpo_level
        level = f"GRPO's final level {pct(g.level)}"
        if not g.reached or not g.seconds or not g.seconds.values:
            claims.append(Claim(text, None, f"GRPO's own mean curve has no eval at {level} after step 0"))
        elif not p.reached or not p.seconds or not p.seconds.values:
            claims.append(
                Claim(
                    text,
                    False,
                    f"PCM's mean curve never reached {level} (best {pct(p.best)}; {p.seeds_reaching}/"
                    f"{len(pcm.runs)} seeds reached it on their own); GRPO took "
                    f"{time_range(g.seconds)}" + step_ratio(full, pcm),
                    f"{100 * (g.level - p.best):.1f} points of success (never reached)",
                )
            )
        else:
            ratio = g.seconds.mean / p.seconds.mean if p.seconds.mean > 0 else math.inf
            claims.append(
                Claim(
                    text,
                    ratio >= SPEEDUP_TARGET,
                    f"{level}: PCM at step {p.step} after {time_range(p.seconds)}, GRPO at step {g.step} "
                    f"after {time_range(g.seconds)}: {ratio:.2f}×" + step_ratio(full, pcm),
                    f"{SPEEDUP_TARGET - ratio:.2f}× (speed-up {ratio:.2f}× of the {SPEEDUP_TARGET:g}× asked)",
                )
            )
    else:
        claims.append(Claim(text, None, f"needs `full` and `pcm_b{mid}`"))

    text = f"Uniform masking ends ≥ {UNIFORM_GAP_POINTS:g} points below PCM (B={mid}, mean of paired seeds)."
    uniform = by_name.get(f"uniform_b{mid}")
    if pcm and uniform:
        d = paired_difference(pcm, uniform)
        held = d.mean >= UNIFORM_GAP_POINTS / 100 if d.values else None
        claims.append(
            Claim(
                text,
                held,
                f"PCM − uniform = {points(d.mean)} points (sd {num(100 * d.sd, '{:.1f}')}, min–max "
                f"{points(d.lo)} to {points(d.hi)}, {len(d.values)} paired seeds; PCM {pct(pcm.final_mean)} "
                f"vs uniform {pct(uniform.final_mean)})",
                f"{UNIFORM_GAP_POINTS - 100 * d.mean:.1f} points",
            )
        )
    else:
        claims.append(Claim(text, None, f"needs `pcm_b{mid}` and `uniform_b{mid}`"))

    text = f"The debiased score's Spearman with the measured V_c is ≥ {DEBIASED_RHO_TARGET:g}."
    if proxy and proxy["points"]:
        rho, _, n = proxy_rho(proxy_points_of(proxy), "debiased")
        claims.append(
            Claim(
                text,
                None if isnan(rho) else bool(rho >= DEBIASED_RHO_TARGET),
                f"Spearman {num(rho)} over {n} proxy points (the paper's C_c: "
                f"{num(proxy_rho(proxy_points_of(proxy), 'paper')[0])})",
                f"{DEBIASED_RHO_TARGET - rho:.2f}" if not isnan(rho) else None,
            )
        )
    else:
        claims.append(Claim(text, None, "no proxy-check points"))
    return claims


def claims_summary(claims: list[Claim]) -> str:
    checked = [c for c in claims if c.held is not None]
    held = [c for c in checked if c.held]
    if not checked:
        return "None could be checked."
    unchecked = len(claims) - len(checked)
    return f"{len(held)} of {len(checked)} held" + (f" ({unchecked} not checked)." if unchecked else ".")


# --- the page ---------------------------------------------------------------------------------------


def time_split(result: MethodResult | None) -> str:
    """GRPO's step time split, to set beside the paper's (77.9% gradient, 21.3% rollout)."""
    if result is None:
        return ""
    parts = {
        "rollout": step_mean(result.runs, M.TIME_ROLLOUT),
        "scoring + selection": step_mean(result.runs, M.TIME_SELECT),
        "actor update": step_mean(result.runs, M.TIME_UPDATE),
        "other": step_mean(result.runs, M.TIME_OTHER),
    }
    total = sum(parts.values())
    split = ", ".join(f"{name} {pct(value / total)}" for name, value in parts.items())
    return (
        f"GRPO's training step (mean over seeds) splits into {split} (the paper: 77.9% gradient, "
        "21.3% rollout, ~1% other)."
    )


def mean_chunks_per_trajectory(results: list[MethodResult]) -> float:
    """Over every rollout of every run: the denominator the budgets are a share of."""
    chunks = sum(r.get(M.ROLLOUT_CHUNKS, 0.0) for m in results for run in m.runs for r in run.rows)
    trajectories = sum(
        r.get(M.ROLLOUT_TRAJECTORIES, 0.0) for m in results for run in m.runs for r in run.rows
    )
    return chunks / trajectories if trajectories else float("nan")


def git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def code_state() -> tuple[str, bool]:
    """(short HEAD commit, whether tracked files other than the report's own outputs changed)."""
    own = (f":!{RESULTS_MD.relative_to(ROOT)}", f":!{FIGURES.relative_to(ROOT)}")
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", *own)
    return git("rev-parse", "--short", "HEAD"), bool(changed)


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = "no GPU"
    try:
        import torch

        if torch.cuda.is_available():
            gpu = f"GPU {torch.cuda.get_device_name(0)}"
    except Exception:  # the report must build without torch's CUDA bits
        pass
    return f"{os.cpu_count()} CPU cores ({model}), {gpu}"


def header_lines(plan: Plan, quick: bool, preset_size: tuple[int, int] | None = None) -> list[str]:
    head, head_dirty = code_state()
    last = plan.sessions[-1] if plan.sessions else {}
    commit = last.get("commit", head)
    dirty = last.get("dirty", head_dirty)
    total = sum(s.get("seconds", 0.0) for s in plan.sessions)
    lines = []
    if quick:
        lines += [
            "> **QUICK SMOKE OUTPUT — a miniature run (`--quick`), not results.** Numbers below",
            "> come from a tiny policy trained for a few steps and mean nothing.",
            "",
        ]
    if not quick and preset_size and (plan.steps, plan.seeds) != preset_size:
        steps, seeds = preset_size
        lines += [
            f"> **A reduced run:** {plan.seeds} seed(s) x {plan.steps} steps per method instead of the "
            f"`{plan.size}` size's {seeds} x {steps} (`--seeds {plan.seeds} --steps {plan.steps}`). "
            "Read every comparison below with that in mind; `python bench/reproduce.py` runs the full size.",
            "",
        ]
    when = last.get("finished", "—")
    rebuilt = f" (page rebuilt at `{head}`)" if head and commit and head != commit else ""
    commits = [f"`{c}`" for c in dict.fromkeys(x.get("commit") for x in plan.sessions) if c]
    if len(commits) > 1:  # sessions ran different commits: name each, with what happened in it
        commit_line = (
            "- **Commits:** "
            + "; ".join(
                f"session {i}: `{x.get('commit')}`" + (f" ({x['note']})" if x.get("note") else "")
                for i, x in enumerate(plan.sessions, start=1)
            )
            + rebuilt
            + "."
        )
    else:
        commit_line = (
            f"- **Commit:** `{commit}`" + (" with uncommitted changes" if dirty else "") + rebuilt + "."
        )
    lines += [
        f"- **Date:** {when} (end of the last benchmark session).",
        commit_line,
        f"- **Machine:** {machine()}.",
        f"- **Benchmark wall-clock:** {duration(total)} over {len(plan.sessions)} session(s), "
        f"{plan.workers} runs in parallel, one torch thread each.",
    ]
    return lines


def settings_lines(
    settings: dict[str, dict[str, Any]], runs: int, base: RunConfig, plan: Plan, start: float
) -> list[str]:
    """The settings every method shares and the table of the keys that differ between methods."""
    g, s = base.grpo, base.sft
    keys = sorted({k for values in settings.values() for k in values}, key=ALLOWED_DIFFERENCES.index)
    pretrain = getattr(s, "pretrain_demos_per_task", 0)
    start_text = (
        f"two-stage SFT (pre-trained on {pretrain} demos of every other suite task, then fine-tuned on "
        f"{s.demos_per_task} demos of each target task)"
        if pretrain
        else f"SFT on {s.demos_per_task} demos per task"
    )
    lines = [
        f"Every method is preset `{plan.preset}` (size `{plan.size}`) with only the keys below changed: "
        f"{plan.steps} steps of {g.groups_per_step} groups × {g.group_size} rollouts, chunk length "
        f"{g.chunk_len}, lr {g.lr:g}, {g.mini_batches} mini-batches, loss aggregation `{g.loss_agg}`, "
        f"rollout temperature {g.temperature:g}. The saved configs of all {runs} runs were compared key "
        "by key: apart from the run name and `train.seed`, only "
        + ", ".join(f"`{k}`" for k in ALLOWED_DIFFERENCES)
        + " may differ (the report refuses to build otherwise), and these differ:",
        "",
    ]
    if keys:
        lines += ["| method | " + " | ".join(f"`{k}`" for k in keys) + " |", "|---" * (len(keys) + 1) + "|"]
        for method, values in settings.items():
            cells = []
            for k in keys:
                text = f"{values.get(k)}"
                if k == "pcm.budget" and values.get("pcm.selector", "") == "full":
                    text += " (unused)"
                cells.append(text)
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
    else:
        lines.append("(no key differs: a single method)")
    lines += [
        "",
        "- **Seeds are paired:** seed k of every method uses `train.seed` = k, and the trainer draws "
        "the task/init-state schedule, rollout sampling, chunk selection and mini-batch order from "
        "separate per-step streams (`pcm_engine/seeding.py`), so every method rolls out the same tasks "
        "from the same init states at every step. Differences between methods are taken per seed.",
        f"- One start for all runs: {start_text}, seed {plan.sft_seed}; eval success at step 0: "
        f"{pct(start)}.",
        f"- Eval every {base.eval.every} steps on "
        f"{base.eval.episodes_per_task * len(base.env.tasks or [0])} held-out episodes "
        f"({base.eval.episodes_per_task} per task, temperature {base.eval.temperature:g}).",
    ]
    return lines


def signed(x: float) -> str:
    return f"{x:+.1f}"


def unsigned(x: float) -> str:
    return f"{x:.1f}"


def results_table(results: list[MethodResult], full: MethodResult | None) -> list[str]:
    lines = [
        "| method | kept fraction | final eval success | Δ vs GRPO, paired (points) | mean step s "
        "| mean update s | update speed-up | activation MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        delta = paired_difference(r, full) if full and r is not full else None
        update_speed = full.mean_update_s / r.mean_update_s if full and r.mean_update_s > 0 else None
        mb = Spread([v / 2**20 for v in r.activation_bytes.values])
        lines.append(
            f"| {r.method.label} | {mean_sd(r.kept_fraction, lambda x: f'{x:.3f}')} | "
            f"{mean_sd(Spread(r.final), pct)} | "
            f"{mean_sd(Spread([100 * v for v in delta.values]), signed, unsigned) if delta else '—'} | "
            f"{mean_sd(r.step_s, lambda x: f'{x:.2f}')} | {mean_sd(r.update_s, lambda x: f'{x:.2f}')} | "
            f"{num(update_speed, '{:.2f}×')} | {mean_sd(mb, lambda x: f'{x:.1f}')} |"
        )
    return lines


def level_table(results: list[MethodResult], full: MethodResult | None, threshold: float) -> list[str]:
    """Time to GRPO's final level (and to the threshold) per method, with the speed-up over GRPO."""
    g = full.to_grpo_level if full else None
    lines = [
        "| method | step reaching GRPO's level | training time to it, mean (min–max) over seeds "
        "| speed-up vs GRPO | seeds reaching it alone | steps to thr. | time to thr. | speed-up to thr. |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        t = r.to_grpo_level
        if t is None:
            continue
        if t.reached:
            when, took = str(t.step), time_range(t.seconds)
        else:
            short = 100 * (t.level - t.best) if not isnan(t.best) else math.nan
            when, took = "not reached", f"— (best {pct(t.best)}, {num(short, '{:.1f}')} points short)"
        speed = (
            g.seconds.mean / t.seconds.mean
            if g and g.seconds and g.seconds.values and t.seconds and t.seconds.values and t.seconds.mean > 0
            else None
        )
        thr_speed = (
            full.seconds_to_threshold / r.seconds_to_threshold
            if full and full.seconds_to_threshold and r.seconds_to_threshold
            else None
        )
        lines.append(
            f"| {r.method.label} | {when} | {took} | {num(speed, '{:.2f}×')} | "
            f"{t.seeds_reaching}/{len(r.runs)} | "
            f"{num(r.steps_to_threshold, '{}')} ({r.seeds_reaching}/{len(r.runs)} seeds) | "
            f"{duration(r.seconds_to_threshold)} | {num(thr_speed, '{:.2f}×')} |"
        )
    return lines


def curve_table(results: list[MethodResult]) -> list[str]:
    steps = sorted({int(s) for r in results for s in r.eval_steps})
    lines = ["| method | " + " | ".join(str(s) for s in steps) + " |", "|---" * (len(steps) + 1) + "|"]
    for r in results:
        cells = {}
        for s, m, sd in zip(r.eval_steps.tolist(), r.eval_mean.tolist(), r.eval_sd.tolist(), strict=True):
            cells[s] = f"{100 * m:.1f}" + ("" if isnan(sd) else f" ±{100 * sd:.1f}")
        lines.append(f"| {r.method.label} | " + " | ".join(cells.get(s, "—") for s in steps) + " |")
    return lines


def allocation_table(results: list[MethodResult]) -> list[str]:
    def cell(s: Spread) -> str:
        if not s.values:
            return "—"
        return f"{s.mean:.2f}" + ("" if isnan(s.sd) else f" ±{s.sd:.2f}")

    lines = [
        "| method | " + " | ".join(PHASES) + " | p_c at the end (" + ", ".join(PHASES) + ") |",
        "|---" * (len(PHASES) + 2) + "|",
    ]
    full = next((r for r in results if r.method.name == "full"), None)
    if full:
        available = phase_allocation(full.runs, M.available_metric)
        row = " | ".join(cell(available[c]) for c in PHASES)
        lines.append(f"| every chunk (GRPO's batch) | {row} | — |")
    for r in results:
        if r.method.budget is None:
            continue
        kept, p = phase_allocation(r.runs, M.kept_metric), final_keep_weights(r.runs)
        lines.append(
            f"| {r.method.label} | "
            + " | ".join(cell(kept[c]) for c in PHASES)
            + " | "
            + ", ".join(num(p[c].mean) for c in PHASES)
            + " |"
        )
    return lines


def write_report(
    paths: ReportPaths,
    plan: Plan,
    results: list[MethodResult],
    threshold: float,
    start: float,
    proxy: dict | None,
    figures: dict[str, str],
    base: RunConfig,
    settings: dict[str, dict[str, Any]],
    runs: int,
    preset_size: tuple[int, int] | None = None,
) -> list[Claim]:
    by_name = {r.method.name: r for r in results}
    full = by_name.get("full")
    episodes = base.eval.episodes_per_task * len(base.env.tasks or [0])
    chunks = mean_chunks_per_trajectory(results)
    ordering = paper_claims(by_name, plan.budgets, episodes)
    targets = target_claims(by_name, plan.budgets, proxy, chunks)
    agree, compared, problems = pairing_check(results)
    pairing = (
        f"Pairing check: at step 1 (every run still holds the shared start and reads the same streams) "
        f"the train rollouts (success rate, chunks, episode steps) were identical across methods for "
        f"{agree} of {compared} seed(s)" + (". Differences: " + "; ".join(problems) if problems else ".")
        if compared
        else "Pairing check: fewer than two methods per seed, nothing to compare."
    )
    budgets_text = ", ".join(f"{b} ({pct(b / chunks) if not isnan(chunks) else '—'})" for b in plan.budgets)
    level = full.final_mean if full else math.nan
    lines = [
        "# Reproduction: GRPO vs PCM on the tabletop suite",
        "",
        *header_lines(plan, plan.size == "quick", preset_size),
        "",
        "Rebuild this page from the raw results with `python bench/reproduce.py --report-only`; "
        f"run it with `python bench/reproduce.py --size {plan.size}` (resumable). Every number is a mean "
        "over seeds with its spread (± sd over seeds, or min–max where marked) unless it says otherwise.",
        "",
        "## Setup: identical settings, paired seeds",
        "",
        *settings_lines(settings, runs, base, plan, start),
        f"- Budgets: B = {budgets_text} chunks per trajectory (share of the {num(chunks, '{:.1f}')} "
        "chunks a trajectory had on average); the realised kept fraction (`pcm/kept_fraction`, over "
        "steps with an update) is in the table below.",
        f"- **GRPO's final level:** {pct(level)} (GRPO's mean final eval success); for each method the "
        "first eval step at which its seed-mean eval curve reaches it, and the training wall-clock "
        "(`time/step_s` minus `time/eval_s`, summed to that step) of each seed by then.",
        f"- Threshold: **{pct(threshold)}** eval success"
        + (
            f" ({THRESHOLD_FRACTION:.0%} of the way from the start to GRPO's final success, fixed "
            "by rule before comparing methods)"
            if plan.threshold is None
            else " (given with --threshold)"
        )
        + ", read the same way.",
        f"- {pairing}",
        "",
        "## Results",
        "",
        *results_table(results, full),
        "",
        "Time to GRPO's final level (speed-up = GRPO's mean time / the method's) and to the threshold:",
        "",
        *level_table(results, full, threshold),
        "",
        "Eval success (%, mean ± sd over seeds) at each eval step:",
        "",
        *curve_table(results),
        "",
        time_split(full),
        "",
        f"![eval vs step]({figures['eval_step']})",
        f"![eval vs wall-clock]({figures['eval_time']})",
        "",
        f"![cumulative update time]({figures['update']})",
        f"![activation bytes]({figures['activation']})",
        "",
        "## Where the paper's ordering held",
        "",
        "Rule: two final successes within two standard errors of their difference (seed spread, "
        "floored by one eval's binomial noise) count as equal. " + claims_summary(ordering),
        "",
        *[c.line() for c in ordering],
        "",
        "## The issue's targets",
        "",
        "Fixed before the runs; each with its statistic, and where missed, by how much. "
        + claims_summary(targets),
        "",
        *[c.line() for c in targets],
        "",
        *drift_section(results),
        "## Realised allocation and keep weights",
        "",
        "Chunks per updated trajectory by phase over the last third of training (mean ± sd over "
        "seeds), and `p_c` at the last step (mean over seeds). The paper: active_grip ≈ 7–8 and "
        "pre_grasp ≈ 3–5 of 12 kept chunks, approach and release_ramp falling, tail near the floor.",
        "",
        *allocation_table(results),
        "",
        f"![allocation]({figures['allocation']})",
        f"![keep weights]({figures['keep']})",
        "",
        "## Proxy check: do the scores rank phases like their gradient variance?",
        "",
        *proxy_section(proxy, figures),
        "",
    ]
    paths.results_md.parent.mkdir(parents=True, exist_ok=True)
    paths.results_md.write_text("\n".join(lines))
    return ordering + targets


def saved_base(configs: dict[tuple[str, int], dict], fallback: RunConfig | None) -> RunConfig:
    """A config the runs actually used (they share everything the Setup section quotes); the
    current preset's when none loads (saved by an older schema)."""
    for data in configs.values():
        try:
            return RunConfig.from_dict(data)
        except Exception:
            break
    if fallback is None:
        raise SystemExit("no run config could be loaded and the preset does not load either")
    return fallback


def quarter_mean(run: RunData, key: str, last: bool) -> float | None:
    """Mean of a per-step metric over the first (or last) quarter of a run's training steps."""
    values = [r[key] for r in run.rows if key in r and M.TIME_STEP in r]
    if not values:
        return None
    n = max(1, len(values) // 4)
    return float(np.mean(values[-n:] if last else values[:n]))


def drift_section(results: list[MethodResult]) -> list[str]:
    """Evidence for reading the final numbers: each method's actor gradient norm and its train
    rollout success early and late (from every run's own metrics, mean ± sd over seeds)."""
    lines = [
        "## What the runs show besides their final success",
        "",
        "Per method: the mean actor gradient norm (`train/grad_norm`, before clipping) and the train "
        "rollout success (`rollout/success_rate`) over the first and the last quarter of training "
        "(mean ± sd over seeds). A method whose train success falls while GRPO's holds is drifting "
        "away from its start, whatever its final eval reads.",
        "",
        "| method | gradient norm | train success, first quarter | last quarter | change (points) |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        norm = seed_spread(r.runs, M.TRAIN_GRAD_NORM, updated_only=True)
        early = Spread(
            [v for v in (quarter_mean(run, M.ROLLOUT_SUCCESS, False) for run in r.runs) if v is not None]
        )
        late = Spread(
            [v for v in (quarter_mean(run, M.ROLLOUT_SUCCESS, True) for run in r.runs) if v is not None]
        )
        change = Spread([100 * (b - a) for a, b in zip(early.values, late.values, strict=True)])
        lines.append(
            f"| {r.method.label} | {num(norm.mean)} ± {num(norm.sd)} | {pct(early.mean)} ± {pct(early.sd)} "
            f"| {pct(late.mean)} ± {pct(late.sd)} | {change.mean:+.1f} ± {num(change.sd, '{:.1f}')} |"
        )
    return [*lines, ""]


def build_report(
    plan: Plan,
    base: RunConfig | None,
    methods: list[Method],
    out: Path,
    preset_size: tuple[int, int] | None = None,
    paths: ReportPaths = DOCS,
) -> dict:
    """Tables, figures and results.md (under `paths`) from OUT's raw results; returns the summary.
    Raises SettingsMismatch if two runs differ in a setting other than ALLOWED_DIFFERENCES."""
    configs = load_run_configs(out, methods, plan.seeds)
    settings = check_settings(configs)
    base = saved_base(configs, base)
    results = [summarise_method(m, load_runs(out, m, plan.seeds)) for m in methods]
    results = [r for r in results if r.runs]
    for r in results:
        r.color = method_color(r.method, plan.budgets)
    start = sft_start_success(results)
    threshold = plan.threshold if plan.threshold is not None else auto_threshold(results, start)
    full = next((r for r in results if r.method.name == "full"), None)
    level = full.final_mean if full and full.final else None
    for r in results:
        apply_threshold(r, threshold)
        if level is not None:
            r.to_grpo_level = time_to_level(r, level)
    proxy_path = out / "proxy.json"
    proxy = json.loads(proxy_path.read_text()) if proxy_path.exists() else None
    figures = make_figures(paths, results, threshold, level, proxy)
    claims = write_report(
        paths, plan, results, threshold, start, proxy, figures, base, settings, len(configs), preset_size
    )
    proxy_summary = None
    if proxy and proxy["points"]:
        points_ = proxy_points_of(proxy)
        proxy_summary = {
            "paper_spearman": proxy_rho(points_, "paper")[0],
            "debiased_spearman": proxy_rho(points_, "debiased")[0],
            "points": len(points_),
        }
    return {
        "threshold": threshold,
        "grpo_final_level": level,
        "sft_start_success": start,
        "proxy": proxy_summary,
        "claims_held": f"{sum(1 for c in claims if c.held)}/{sum(1 for c in claims if c.held is not None)}",
        "methods": {r.method.name: method_summary(r, full) for r in results},
    }


def method_summary(r: MethodResult, full: MethodResult | None) -> dict:
    t, g = r.to_grpo_level, full.to_grpo_level if full else None
    seconds = t.seconds.mean if t and t.seconds and t.seconds.values else None
    grpo_seconds = g.seconds.mean if g and g.seconds and g.seconds.values else None
    return {
        "final_eval_success": r.final_mean,
        "final_sd": r.final_sd,
        "delta_vs_grpo_paired": paired_difference(r, full).mean if full and r is not full else None,
        "seconds_to_grpo_level": seconds,
        "speedup_to_grpo_level": grpo_seconds / seconds if seconds and grpo_seconds else None,
        "steps_to_threshold": r.steps_to_threshold,
        "seconds_to_threshold": r.seconds_to_threshold,
        "mean_update_s": r.mean_update_s,
        "mean_kept_fraction": r.mean_kept_fraction,
    }


__all__ = [
    "DOCS",
    "ROOT",
    "ReportPaths",
    "build_report",
    "code_state",
    "git",
]

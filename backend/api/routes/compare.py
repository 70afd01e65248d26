"""Several runs side by side: their series, what each reached and cost (computed here, by
`pcm_engine.analysis` on the full series, never by the page on the downsampled one), the ratios of
those costs to plain GRPO, and the config keys that differ."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from backend.access import get_visible_run
from backend.deps import CurrentUser, SessionDep, SettingsDep
from backend.errors import FieldErrors, FieldProblem
from backend.schemas import INT64_MAX, CompareOut, RunPublic
from backend.store import series
from pcm_engine import analysis
from pcm_engine import metrics as M

router = APIRouter(tags=["compare"])
MAX_RUNS = 20
SuccessMetric = Literal[M.EVAL_SUCCESS, M.ROLLOUT_SUCCESS]

# The query parameters of every view that computes costs (compare, a sweep's arms).
MaxPointsQuery = Annotated[int | None, Query(ge=2, le=100_000)]
SuccessQuery = Annotated[SuccessMetric, Query(description="The success metric that `level` is measured on.")]
LevelQuery = Annotated[float, Query(ge=0, le=1, description="The success level the costs give the time to.")]


def parse_ids(ids: str) -> list[int]:
    try:
        parsed = [int(part) for part in ids.split(",") if part.strip()]
    except ValueError:
        parsed = []
    if not parsed or len(parsed) > MAX_RUNS or not all(1 <= i <= INT64_MAX for i in parsed):
        raise FieldErrors(
            [
                FieldProblem(
                    ("query", "ids"), f"give 1 to {MAX_RUNS} run ids separated by commas, e.g. ids=3,7"
                )
            ]
        )
    return list(dict.fromkeys(parsed))


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"pcm": {"budget": 2}}` -> `{"pcm.budget": 2}`; lists stay whole values."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def config_diff(configs: dict[int, dict[str, Any]]) -> dict[str, dict[int, Any]]:
    """Per dotted key, each run's value — only for keys whose values are not all equal."""
    flat = {run_id: flatten(config) for run_id, config in configs.items()}
    keys = sorted({key for values in flat.values() for key in values})
    diff = {}
    for key in keys:
        values = {run_id: values.get(key) for run_id, values in flat.items()}
        if len({repr(v) for v in values.values()}) > 1:
            diff[key] = values
    return diff


def wall_clock_at(seconds: dict[int, float], run_series: dict[str, series.Points]) -> series.Points:
    """Training seconds at every step that `run_series` draws and that has them."""
    steps = sorted({step for points in run_series.values() for step, _ in points} & seconds.keys())
    return [(step, seconds[step]) for step in steps]


@router.get("/compare", response_model=CompareOut)
def compare(
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
    ids: Annotated[str, Query(description="Run ids separated by commas.", examples=["1,2"])],
    names: Annotated[str | None, Query(description="Metric names separated by commas; default: all.")] = None,
    max_points: MaxPointsQuery = None,
    success: SuccessQuery = M.EVAL_SUCCESS,
    level: LevelQuery = 0.5,
) -> CompareOut:
    runs = [get_visible_run(session, user, run_id) for run_id in parse_ids(ids)]
    wanted = series.split_names(names)
    limit = max_points or settings.max_series_points
    drawn = {run.id: series.read_metrics(session, run.id, wanted, None, limit).series for run in runs}
    rows = {run.id: series.read_rows(session, run.id, (*analysis.COST_METRICS, success)) for run in runs}
    costs = {run_id: analysis.run_costs(run_rows, success, level) for run_id, run_rows in rows.items()}
    baseline = next((run.id for run in runs if run.selector == analysis.BASELINE_SELECTOR), None)
    return CompareOut(
        runs=[RunPublic.model_validate(run) for run in runs],
        series=drawn,
        wall_clock={
            run_id: wall_clock_at(analysis.training_seconds(run_rows), drawn[run_id])
            for run_id, run_rows in rows.items()
        },
        costs=costs,
        ratios={
            run_id: analysis.cost_ratios(run_costs, costs[baseline]) if baseline is not None else {}
            for run_id, run_costs in costs.items()
        },
        baseline_id=baseline,
        config_diff=config_diff({run.id: run.config for run in runs}),
    )

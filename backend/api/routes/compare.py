"""Several runs side by side: their summaries, series and the config keys that differ."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from backend import series
from backend.access import get_visible_run
from backend.deps import CurrentUser, SessionDep, SettingsDep
from backend.errors import FieldErrors, FieldProblem
from backend.schemas import INT64_MAX, CompareOut, RunPublic

router = APIRouter(tags=["compare"])
MAX_RUNS = 20


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


@router.get("/compare", response_model=CompareOut)
def compare(
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
    ids: Annotated[str, Query(description="Run ids separated by commas.", examples=["1,2"])],
    names: Annotated[str | None, Query(description="Metric names separated by commas; default: all.")] = None,
    max_points: Annotated[int | None, Query(ge=2, le=100_000)] = None,
) -> CompareOut:
    runs = [get_visible_run(session, user, run_id) for run_id in parse_ids(ids)]
    wanted = series.split_names(names)
    limit = max_points or settings.max_series_points
    return CompareOut(
        runs=[RunPublic.model_validate(run) for run in runs],
        series={run.id: series.read_metrics(session, run.id, wanted, None, limit).series for run in runs},
        config_diff=config_diff({run.id: run.config for run in runs}),
    )

"""Sweeps: one run per grid point x seed, made through the launch path of a single run
(`backend.store.launch`: config validation, resource limits, server paths refused), plus the
reads that group a sweep's runs into arms.

A grid is `{"pcm.budget": [1, 2], "pcm.selector": ["full", "pcm"]}`; its points are every
combination of one value per key, in the grid's key order. Every run of a point gets its seed as
`train.seed`, so the same seed in two arms means the same SFT start and the same rollout streams.
Everything is validated before anything is created: one bad point refuses the whole sweep.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.store import launch, lifecycle, series, sweep_stats
from backend.store.errors import ConfigProblems, Problem
from backend.store.models import FINAL_STATUSES, Lab, Run, Sweep, User
from backend.store.settings import Settings
from pcm_engine import analysis
from pcm_engine import metrics as M
from pcm_engine.config import RunConfig

MAX_RUNS = 64
"""The most runs one sweep may hold (grid points x seeds, seeds added later included)."""
SEED_KEY = "train.seed"
Point = dict[str, Any]


def expand_grid(grid: dict[str, list[Any]]) -> list[Point]:
    """Every combination of one value per key: `{"a": [1, 2], "b": [3]}` -> `[{a: 1, b: 3},
    {a: 2, b: 3}]`; an empty grid is one point with nothing changed."""
    keys = list(grid)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*grid.values())]


def point_label(point: Point) -> str:
    return ", ".join(f"{key}={value}" for key, value in point.items()) or "base"


def config_value(config: dict[str, Any], dotted: str) -> tuple[bool, Any]:
    """(found, value) of a dotted key in a nested config dict."""
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def check_shape(grid: dict[str, Any], seeds: Sequence[int], existing_runs: int = 0) -> None:
    """The grid's values are non-empty lists without repeats, `train.seed` is left to `seeds`, and
    points x seeds (plus the runs a sweep has already) stay within `MAX_RUNS`."""
    problems = []
    for key, values in grid.items():
        if key == SEED_KEY:
            problems.append(Problem(("grid", key), "seeds are given as 'seeds', not as a grid key", key))
        elif not isinstance(values, list) or not values:
            problems.append(Problem(("grid", key), f"{key}: give a non-empty list of values", key))
        elif len({repr(v) for v in values}) != len(values):
            problems.append(Problem(("grid", key), f"{key}: a value is listed twice", key))
    if problems:
        raise ConfigProblems(problems)
    points = len(expand_grid(grid))
    total = existing_runs + points * len(seeds)
    if total > MAX_RUNS:
        already = f" + {existing_runs} runs already in the sweep" if existing_runs else ""
        message = (
            f"{points} grid points x {len(seeds)} seeds = {points * len(seeds)} runs{already}: "
            f"a sweep holds at most {MAX_RUNS} runs"
        )
        raise ConfigProblems([Problem(("grid",), message, "grid")])


def check_keys(grid: dict[str, Any], config: RunConfig) -> None:
    """Every grid key is a field of the config (a leaf: `pcm.budget`, not `pcm`)."""
    whole = config.to_dict()
    problems = []
    for key in grid:
        found, value = config_value(whole, key)
        if not found or isinstance(value, dict):
            what = "a section, not a field" if found else "not a config field"
            problems.append(Problem(("grid", key), f"'{key}' is {what} (see GET /api/config-schema)", key))
    if problems:
        raise ConfigProblems(problems)


@dataclass(frozen=True)
class Planned:
    point: Point
    seed: int
    config: RunConfig


@dataclass(frozen=True)
class Recipe:
    """What a sweep's runs are made from: a preset's or caller's config, overrides for every run,
    the grid and the run names' prefix."""

    base: dict[str, Any]
    source: launch.Source
    overrides: dict[str, Any]
    grid: dict[str, list[Any]]
    name: str
    start_policy: str | None = None  # the folder of the policy every run starts from (server-found)

    def plan(self, seeds: Sequence[int], settings: Settings) -> list[Planned]:
        """A validated config for every point x seed, or ConfigProblems naming every field at
        fault (a grid key's problem is located at `grid.<key>`)."""
        launch.refuse_server_paths(None, self.overrides)
        check_keys(self.grid, self._build(self.overrides, self.name))
        planned, problems = [], []
        for point in expand_grid(self.grid):
            for seed in seeds:
                try:
                    planned.append(Planned(point, seed, self.config(point, seed, settings)))
                except ConfigProblems as err:
                    problems += [self._locate(p, point) for p in err.problems]
        if problems:
            raise ConfigProblems(list({(p.where, p.message): p for p in problems}.values()))
        return planned

    def config(self, point: Point, seed: int, settings: Settings) -> RunConfig:
        overrides = {**self.overrides, **point, SEED_KEY: seed}
        launch.refuse_server_paths(None, point)
        name = f"{self.name} [{point_label(point)}] seed {seed}"[:200]
        config = self._build(overrides, name)
        launch.check_resources(config, overrides, self.source, settings)
        return config

    def _build(self, overrides: dict[str, Any], name: str) -> RunConfig:
        return launch.build_config(
            self.base, overrides, name, source=self.source, start_policy=self.start_policy
        )

    def _locate(self, problem: Problem, point: Point) -> Problem:
        """A problem the launch path put on an override that is a grid key moves to the grid."""
        key = problem.where[1] if problem.where[:1] == ("overrides",) and len(problem.where) > 1 else None
        if key in point:
            return Problem(("grid", key), f"{key}={point[key]!r}: {problem.message}", key)
        return problem


def recipe_of(sweep: Sweep) -> Recipe:
    source: launch.Source = "preset" if sweep.preset else "config"
    return Recipe(sweep.base, source, sweep.overrides, sweep.grid, sweep.name, sweep.start_policy)


def create(
    session: Session,
    settings: Settings,
    user: User,
    recipe: Recipe,
    seeds: list[int],
    *,
    lab: Lab,
    visibility: str,
    preset: str | None,
    start_from: dict[str, Any] | None = None,
) -> tuple[Sweep, list[Run]]:
    """Validate every run, then insert the sweep and its runs in one commit, then send the runs.
    `start_from` is the policy reference the recipe's `start_policy` was found from (shown to
    the sweep's readers; the folder is not)."""
    check_shape(recipe.grid, seeds)
    planned = recipe.plan(seeds, settings)
    sweep = Sweep(
        name=recipe.name,
        owner_id=user.id,
        lab_id=lab.id,
        visibility=visibility,
        preset=preset,
        base=recipe.base,
        overrides=recipe.overrides,
        grid=recipe.grid,
        seeds=list(seeds),
        start_from=start_from,
        start_policy=recipe.start_policy,
    )
    session.add(sweep)
    session.flush()
    return sweep, _launch(session, settings, user, sweep, planned, lab)


def add_seeds(
    session: Session, settings: Settings, user: User, sweep: Sweep, seeds: list[int], lab: Lab
) -> list[Run]:
    """Runs for `seeds` (none already in the sweep) in every arm, from the sweep's recipe."""
    repeated = sorted(set(seeds) & set(sweep.seeds))
    if repeated:
        raise ConfigProblems([Problem(("seeds",), f"the sweep already has seeds {repeated}", "seeds")])
    check_shape(sweep.grid, seeds, existing_runs=len(sweep_runs(session, sweep.id)))
    planned = recipe_of(sweep).plan(seeds, settings)
    sweep.seeds = [*sweep.seeds, *seeds]
    return _launch(session, settings, user, sweep, planned, lab)


def _launch(
    session: Session, settings: Settings, user: User, sweep: Sweep, planned: list[Planned], lab: Lab
) -> list[Run]:
    runs = [
        launch.insert_run(
            session,
            user,
            plan.config,
            lab=lab,
            visibility=sweep.visibility,
            preset=sweep.preset,
            sweep_id=sweep.id,
        )
        for plan in planned
    ]
    session.commit()
    for run in runs:
        launch.send(session, settings, run)
    return runs


def cancel(session: Session, sweep: Sweep) -> list[int]:
    """Ask every unfinished run of the sweep to stop; the ids of those asked."""
    asked = [
        run.id
        for run in sweep_runs(session, sweep.id)
        if run.status not in FINAL_STATUSES and lifecycle.request_cancel(session, run.id) is not None
    ]
    session.commit()
    return asked


def sweep_runs(session: Session, sweep_id: int) -> list[Run]:
    return list(session.scalars(select(Run).where(Run.sweep_id == sweep_id).order_by(Run.id)))


@dataclass
class Arm:
    """The runs of one grid point, one per seed."""

    values: Point
    runs: list[Run]

    @property
    def selector(self) -> str | None:
        selectors = {run.selector for run in self.runs}
        return selectors.pop() if len(selectors) == 1 else None


def arms(sweep: Sweep, runs: list[Run]) -> list[Arm]:
    """The sweep's runs grouped by grid point (read from each run's stored config), in grid order."""
    by_point = {repr(point): Arm(point, []) for point in expand_grid(sweep.grid)}
    for run in runs:
        point = {key: config_value(run.config, key)[1] for key in sweep.grid}
        by_point.setdefault(repr(point), Arm(point, [])).runs.append(run)
    return list(by_point.values())


def run_seed(run: Run) -> int:
    return int(config_value(run.config, SEED_KEY)[1] or 0)


def baseline_arm(arm: Arm, candidates: list[Arm], baseline_selector: str) -> Arm | None:
    """The arm `arm`'s costs are divided by: of the arms whose runs use `baseline_selector`, the
    one sharing the most grid values with `arm` (for selector x budget: the GRPO arm of the same
    budget), or None when the sweep has no such arm."""
    plain = [other for other in candidates if other.selector == baseline_selector and other.runs]
    if not plain:
        return None
    return max(plain, key=lambda other: sum(other.values.get(k) == v for k, v in arm.values.items()))


KEY_METRICS = (
    M.EVAL_SUCCESS,
    M.ROLLOUT_SUCCESS,
    M.PCM_KEPT_FRACTION,
    M.TIME_UPDATE,
    M.TIME_STEP,
    M.TRAIN_POLICY_LOSS,
)
"""The series a sweep page draws by default."""


def summarise(
    session: Session,
    sweep: Sweep,
    runs: list[Run],
    names: Sequence[str],
    success: str,
    level: float,
    max_points: int,
) -> list[dict[str, Any]]:
    """Per arm: its values, runs and seeds, each of `names` and the training seconds as mean and
    95% interval over seeds per step (downsampled to `max_points`), its costs over seeds, and its
    cost ratios to the plain-GRPO arm, seed by seed (`backend.store.sweep_stats`)."""
    grouped = arms(sweep, runs)
    wanted = tuple(dict.fromkeys((*names, *analysis.COST_METRICS, success)))
    rows = {run.id: series.read_rows(session, run.id, wanted) for run in runs}
    costs = {run.id: analysis.run_costs(rows[run.id], success, level) for run in runs}
    out = []
    for arm in grouped:
        base = baseline_arm(arm, grouped, analysis.BASELINE_SELECTOR)
        by_seed = {run_seed(run): costs[run.id] for run in arm.runs}
        out.append(
            {
                "values": arm.values,
                "runs": [run.id for run in arm.runs],
                "seeds": [run_seed(run) for run in arm.runs],
                "selector": arm.selector,
                "series": {
                    name: series.downsample(
                        sweep_stats.aggregate_series([_points(rows[run.id], name) for run in arm.runs]),
                        max_points,
                    )
                    for name in names
                },
                "wall_clock": series.downsample(
                    sweep_stats.aggregate_series(
                        [sorted(analysis.training_seconds(rows[run.id]).items()) for run in arm.runs]
                    ),
                    max_points,
                ),
                "costs": sweep_stats.aggregate_costs([costs[run.id] for run in arm.runs]),
                "baseline": None if base is None else grouped.index(base),
                "ratios": {}
                if base is None
                else sweep_stats.paired_ratios(by_seed, {run_seed(run): costs[run.id] for run in base.runs}),
            }
        )
    return out


def _points(rows: list[dict], name: str) -> list[tuple[int, float]]:
    return [(row["step"], row[name]) for row in rows if name in row]

"""Sweep aggregation and grid handling on hand-made numbers (no database, no HTTP)."""

from __future__ import annotations

import math

import pytest

from backend.store import sweep_stats, sweeps
from backend.store.errors import ConfigProblems
from pcm_engine.analysis import RunCosts
from pcm_engine.config import RunConfig

# Student's t, two-sided 95%, from printed tables
T_TABLE = {1: 12.7062, 2: 4.3027, 3: 3.1824, 4: 2.7764, 9: 2.2622, 30: 2.0423, 120: 1.9799}


@pytest.mark.parametrize(("df", "expected"), T_TABLE.items())
def test_t_critical_matches_the_table(df: int, expected: float) -> None:
    assert sweep_stats.t_critical(df) == pytest.approx(expected, abs=1e-4)


def test_mean_interval_of_three_seeds() -> None:
    # mean 2, sample sd 1, n 3: half-width 4.3027 / sqrt(3)
    mean, lo, hi = sweep_stats.mean_interval([1.0, 2.0, 3.0])
    half = 4.302653 / math.sqrt(3)
    assert (mean, lo, hi) == pytest.approx((2.0, 2.0 - half, 2.0 + half), abs=1e-5)


def test_one_seed_has_no_width() -> None:
    assert sweep_stats.mean_interval([0.25]) == (0.25, 0.25, 0.25)


def test_aggregate_series_uses_the_seeds_present_at_each_step() -> None:
    seed0 = [[0, 0.0], [1, 0.5], [2, 1.0]]
    seed1 = [[0, 1.0], [1, 0.5]]  # still running: no step 2 yet
    bands = sweep_stats.aggregate_series([seed0, seed1])
    half = 12.7062 * math.sqrt(0.5) / math.sqrt(2)  # values 0 and 1: sd sqrt(0.5)
    assert [b[0] for b in bands] == [0, 1, 2]
    assert bands[0] == pytest.approx([0, 0.5, 0.5 - half, 0.5 + half], abs=1e-3)
    assert bands[1] == [1, 0.5, 0.5, 0.5]  # equal values: zero width
    assert bands[2] == [2, 1.0, 1.0, 1.0]  # one seed so far


def costs(update: float | None, success: float | None = None) -> RunCosts:
    return RunCosts(
        steps=2,
        training_seconds=10.0,
        success_final=success,
        success_best=success,
        level_step=None,
        level_seconds=None,
        step_mean_s=5.0,
        update_mean_s=update,
        update_total_s=None if update is None else 2 * update,
        activation_mean_bytes=None,
        kept_fraction_mean=None,
    )


def test_aggregate_costs_skips_missing_values() -> None:
    out = sweep_stats.aggregate_costs([costs(1.0, 0.5), costs(3.0, None)])
    assert out["update_mean_s"][0] == 2.0 and out["update_mean_s"][3] == 2
    assert out["success_final"] == [0.5, 0.5, 0.5, 1]
    assert "level_seconds" not in out


def test_paired_ratios_divide_seed_by_seed() -> None:
    arm = {0: costs(1.0), 1: costs(2.0), 7: costs(9.0)}  # seed 7 has no baseline run: left out
    grpo = {0: costs(4.0), 1: costs(4.0)}
    ratios = sweep_stats.paired_ratios(arm, grpo)
    mean, lo, hi, n = ratios["update_mean_s"]
    assert (mean, n) == (0.375, 2)  # (1/4 + 2/4) / 2
    assert lo < mean < hi
    assert ratios["step_mean_s"] == [1.0, 1.0, 1.0, 2]


def test_expand_grid_in_key_order() -> None:
    points = sweeps.expand_grid({"pcm.selector": ["full", "pcm"], "pcm.budget": [1, 2]})
    assert points == [
        {"pcm.selector": "full", "pcm.budget": 1},
        {"pcm.selector": "full", "pcm.budget": 2},
        {"pcm.selector": "pcm", "pcm.budget": 1},
        {"pcm.selector": "pcm", "pcm.budget": 2},
    ]
    assert sweeps.expand_grid({}) == [{}]


def problem_fields(err: pytest.ExceptionInfo[ConfigProblems]) -> list[str]:
    return [p.dotted() for p in err.value.problems]


def test_grid_keys_must_be_config_fields() -> None:
    config = RunConfig()
    sweeps.check_keys({"pcm.budget": [1], "env.tasks": [[0]]}, config)
    with pytest.raises(ConfigProblems) as err:
        sweeps.check_keys({"pcm.budgett": [1], "pcm": [1], "pcm.budget": [2]}, config)
    assert problem_fields(err) == ["pcm.budgett", "pcm"]
    assert "not a config field" in str(err.value) and "a section" in str(err.value)


def test_grid_shape_and_the_cap() -> None:
    with pytest.raises(ConfigProblems) as err:
        sweeps.check_shape({"pcm.budget": [], "train.seed": [1], "grpo.lr": [1, 1]}, [0])
    assert problem_fields(err) == ["pcm.budget", "train.seed", "grpo.lr"]
    sweeps.check_shape({"pcm.budget": list(range(1, 9))}, list(range(8)))  # 64: the cap itself
    with pytest.raises(ConfigProblems, match=r"3 grid points x 22 seeds = 66 runs"):
        sweeps.check_shape({"pcm.budget": [1, 2, 3]}, list(range(22)))
    with pytest.raises(ConfigProblems, match=r"\+ 60 runs already in the sweep"):
        sweeps.check_shape({"pcm.budget": [1, 2]}, [5, 6, 7], existing_runs=60)

"""pcm_engine.analysis: rank correlation, eval-curve reductions, a run's costs and their ratios."""

import math

import pytest

from pcm_engine import metrics as M
from pcm_engine.analysis import (
    RunCosts,
    cost_ratios,
    eval_curve,
    first_crossing,
    ranks,
    run_costs,
    spearman,
    success_curve,
)


def test_ranks_average_ties():
    assert ranks([10, 30, 20, 30]).tolist() == [1.0, 3.5, 2.0, 3.5]


@pytest.mark.parametrize(
    ("x", "y", "expected"),
    [
        ([1, 2, 3, 4], [10, 20, 30, 40], 1.0),
        ([1, 2, 3, 4], [4, 3, 2, 1], -1.0),
        ([1, 2, 3, 4, 5], [1, 4, 9, 16, 25], 1.0),  # monotone, not linear
        ([1, 2, 3, 4, 5], [2, 1, 4, 3, 5], 0.8),  # 1 - 6 * 4 / (5 * 24)
    ],
)
def test_spearman_known_sequences(x, y, expected):
    assert spearman(x, y) == pytest.approx(expected)


def test_spearman_undefined_cases():
    assert math.isnan(spearman([1.0], [2.0]))
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError):
        spearman([1, 2], [1, 2, 3])


def test_eval_curve_excludes_eval_time_and_finds_threshold():
    rows = [
        {"step": 0, M.EVAL_SUCCESS: 0.2},
        {"step": 1, M.TIME_STEP: 2.0},
        {"step": 2, M.TIME_STEP: 5.0, M.TIME_EVAL: 1.0, M.EVAL_SUCCESS: 0.5},
        {"step": 3, M.TIME_STEP: 2.0},
        {"step": 4, M.TIME_STEP: 3.0, M.TIME_EVAL: 1.0, M.EVAL_SUCCESS: 0.7},
    ]
    curve = eval_curve(rows)
    assert curve.steps.tolist() == [0, 2, 4]
    assert curve.success.tolist() == [0.2, 0.5, 0.7]
    assert curve.seconds.tolist() == [0.0, 6.0, 10.0]
    assert first_crossing(curve.success, 0.5) == 1
    assert first_crossing(curve.success, 0.9) is None


# Five steps, eval before training and at steps 2 and 4; 1 s of each evaluating step is eval time.
ROWS = [
    {"step": 0, M.EVAL_SUCCESS: 0.2},
    {"step": 1, M.TIME_STEP: 2.0, M.TIME_UPDATE: 1.0, M.ROLLOUT_SUCCESS: 0.1, M.MEM_ACTIVATION: 100.0},
    {
        "step": 2,
        M.TIME_STEP: 5.0,
        M.TIME_EVAL: 1.0,
        M.TIME_UPDATE: 1.0,
        M.ROLLOUT_SUCCESS: 0.4,
        M.EVAL_SUCCESS: 0.5,
        M.MEM_ACTIVATION: 300.0,
        M.PCM_KEPT_FRACTION: 0.5,
    },
    {"step": 3, M.TIME_STEP: 2.0, M.TIME_UPDATE: 2.0, M.ROLLOUT_SUCCESS: 0.6},
    {
        "step": 4,
        M.TIME_STEP: 3.0,
        M.TIME_EVAL: 1.0,
        M.TIME_UPDATE: 2.0,
        M.ROLLOUT_SUCCESS: 0.3,
        M.EVAL_SUCCESS: 0.4,
        M.PCM_KEPT_FRACTION: 0.25,
    },
]


def test_run_costs_of_a_hand_made_series():
    costs = run_costs(ROWS, M.EVAL_SUCCESS, 0.5)
    assert costs == RunCosts(
        steps=4,
        training_seconds=10.0,  # 2 + (5 - 1) + 2 + (3 - 1): evaluation excluded
        success_final=0.4,
        success_best=0.5,
        level_step=2,
        level_seconds=6.0,
        step_mean_s=2.5,
        update_mean_s=1.5,
        update_total_s=6.0,
        activation_mean_bytes=200.0,
        kept_fraction_mean=0.375,
    )


def test_time_to_a_level_on_rollout_success_and_a_level_never_reached():
    on_train = run_costs(ROWS, M.ROLLOUT_SUCCESS, 0.55)
    assert (on_train.level_step, on_train.level_seconds) == (3, 8.0)
    assert (on_train.success_final, on_train.success_best) == (0.3, 0.6)
    missed = run_costs(ROWS, M.EVAL_SUCCESS, 0.9)
    assert missed.level_step is None and missed.level_seconds is None
    assert success_curve(ROWS, M.ROLLOUT_SUCCESS).seconds.tolist() == [2.0, 6.0, 8.0, 10.0]


def test_run_costs_of_a_run_that_logged_nothing_yet():
    empty = run_costs([], M.EVAL_SUCCESS, 0.5)
    assert empty.steps == 0 and empty.training_seconds == 0.0
    assert empty.success_final is None and empty.update_mean_s is None and empty.step_mean_s is None


def test_cost_ratios_divide_by_the_baseline_where_both_have_a_value():
    baseline = run_costs(ROWS, M.EVAL_SUCCESS, 0.5)
    half = [
        {**row, **{k: row[k] / 2 for k in (M.TIME_STEP, M.TIME_EVAL, M.TIME_UPDATE) if k in row}}
        for row in ROWS
    ]
    ratios = cost_ratios(run_costs(half, M.EVAL_SUCCESS, 0.5), baseline)
    assert ratios == pytest.approx(
        {
            "training_seconds": 0.5,
            "level_seconds": 0.5,
            "step_mean_s": 0.5,
            "update_mean_s": 0.5,
            "update_total_s": 0.5,
            "activation_mean_bytes": 1.0,
        }
    )
    assert "level_seconds" not in cost_ratios(run_costs(ROWS, M.EVAL_SUCCESS, 0.9), baseline)

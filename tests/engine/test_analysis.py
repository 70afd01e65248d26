"""pcm_engine.analysis: rank correlation, per-phase gradient variance, eval-curve reductions."""

import math
import tempfile

import numpy as np
import pytest

from pcm_engine import metrics as M
from pcm_engine.analysis import (
    eval_curve,
    first_crossing,
    gradient_parameters,
    per_phase_gradient_variance,
    ranks,
    shuffle_within_groups,
    shuffled_outcome_scores,
    spearman,
)
from pcm_engine.metrics import FanOutSink
from pcm_engine.phases import PHASES
from pcm_engine.trainer import Trainer


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


def test_shuffle_within_groups_keeps_every_groups_outcomes():
    success = np.array([1, 1, 0, 0, 0, 1, 0, 0], dtype=bool)
    groups = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    rng = np.random.default_rng(0)
    draws = [shuffle_within_groups(success, groups, rng) for _ in range(50)]
    for draw in draws:
        assert draw[:4].sum() == 2 and draw[4:].sum() == 1
    assert len({tuple(d) for d in draws}) > 1  # it does shuffle
    assert success.tolist() == [1, 1, 0, 0, 0, 1, 0, 0]  # input left alone


def _two_phase_batch():
    """2 groups x 4 trajectories (2 successes each), 2 chunks per trajectory of 3-D actions:
    an active_grip chunk that is +1 in successes and -1 in failures, and an approach chunk that
    is the same in every trajectory."""
    success = np.array([1, 1, 0, 0, 1, 0, 1, 0], dtype=bool)
    groups = np.repeat([0, 1], 4)
    actions, phases, traj = [], [], []
    for t, won in enumerate(success):
        actions += [np.full(3, 1.0 if won else -1.0), np.full(3, 0.25)]
        phases += ["active_grip", "approach"]
        traj += [t, t]
    return np.array(actions), phases, np.array(traj), success, groups


def test_a_real_divergence_stands_above_the_shuffle_null():
    rng = np.random.default_rng(0)
    actions, phases, traj, success, groups = _two_phase_batch()
    result = {r.phase: r for r in shuffled_outcome_scores(actions, phases, traj, success, groups, 200, rng)}
    grip = result["active_grip"]
    assert grip.score == pytest.approx(2 * math.sqrt(3))  # ||(+1) - (-1)|| over 3 dims
    assert grip.null_mean < 0.6 * grip.score
    # a shuffle ties the real score only when it reproduces each group's split or its mirror
    # image (1 in 3 per group, so about 1 in 9 draws)
    assert 0.05 < grip.p_value < 0.2
    same = result["approach"]
    assert same.score == 0.0 and same.null_mean == 0.0 and same.p_value == 1.0


def test_pure_noise_scores_like_its_null_and_more_for_a_rarer_phase():
    """No divergence anywhere: C_c is still positive, larger for the phase with fewer chunks,
    and the shuffle null matches it -- the bias the null exposes."""
    rng = np.random.default_rng(1)
    trajectories, per_traj = 64, 10
    success = np.tile([True, False], trajectories // 2)
    groups = np.repeat(np.arange(trajectories // 8), 8)
    phases = (["active_grip"] * (per_traj - 1) + ["release_ramp"]) * trajectories
    traj = np.repeat(np.arange(trajectories), per_traj)
    actions = rng.normal(size=(trajectories * per_traj, 16))
    result = {r.phase: r for r in shuffled_outcome_scores(actions, phases, traj, success, groups, 100, rng)}
    common, rare = result["active_grip"], result["release_ramp"]
    assert rare.score > 2 * common.score > 0
    for r in (common, rare):
        assert r.score == pytest.approx(r.null_mean, rel=0.25)
        assert r.p_value > 0.05


def test_shuffled_outcome_scores_needs_a_shuffle():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="shuffles"):
        shuffled_outcome_scores(*_two_phase_batch(), 0, rng)


def test_per_phase_gradient_variance_on_tiny_policy(tiny, mixed):
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(tiny(**{"grpo.groups_per_step": 4}), run_dir, FanOutSink(), resume=False)
        mixed(trainer)
        batch = trainer.rollout()
        selection = trainer.select(batch)
        before = {name: p.requires_grad for name, p in trainer.policy.named_parameters()}
        result = per_phase_gradient_variance(trainer, batch, selection, 4, np.random.default_rng(0))

    phases = np.array([label for traj in selection.labels for label in traj])
    eligible = phases[selection.available_rows]
    present = {c for c in np.unique(eligible) if (eligible == c).sum() >= 2}
    assert set(result) == present and present <= set(PHASES) and result
    for stats in result.values():
        assert math.isfinite(stats.variance) and stats.variance >= 0
        assert math.isfinite(stats.mean_norm) and stats.mean_norm > 0
        assert 2 <= stats.samples <= 4
    assert before == {name: p.requires_grad for name, p in trainer.policy.named_parameters()}
    assert all(p.grad is None for p in trainer.policy.parameters())


def test_gradient_parameters_are_head_and_last_layer(tiny):
    with tempfile.TemporaryDirectory() as run_dir:
        policy = Trainer(tiny(), run_dir, FanOutSink(), resume=False).policy
    chosen = {id(p) for p in gradient_parameters(policy)}
    names = {n for n, p in policy.named_parameters() if id(p) in chosen}
    assert {"head.weight", "head.bias", "head_norm.weight"} <= names
    assert all(n.startswith(("head", "language_model.layers.0.")) for n in names)
    assert sum(p.numel() for p in policy.parameters() if id(p) in chosen) < sum(
        p.numel() for p in policy.parameters()
    )


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

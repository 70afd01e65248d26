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

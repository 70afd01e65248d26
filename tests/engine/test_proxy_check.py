"""pcm_engine.proxy_check: per-phase gradient variance on the tiny policy."""

import math
import tempfile

import numpy as np

from pcm_engine.metrics import FanOutSink
from pcm_engine.phases import PHASES
from pcm_engine.proxy_check import gradient_parameters, per_phase_gradient_variance
from pcm_engine.trainer import Trainer


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

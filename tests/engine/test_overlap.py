"""Rollouts that overlap the update (`train.overlap_rollouts`, `pcm_engine.overlap`): with the
weights held still the overlapped loop is the sequential one exactly; with learning, each batch
comes from the weights of one update before and says so."""

import threading

import numpy as np
import pytest
import torch

from pcm_engine import metrics as M
from pcm_engine.trainer import Trainer
from tests.engine.test_trainer import ListSink, params

TIMING = {M.TIME_ROLLOUT_HIDDEN, M.TIME_ROLLOUT_OVERLAP, M.TRAIN_POLICY_LAG}


def _run(tiny, mixed, path, *, zero_lr=False, **overrides):
    sink = ListSink()
    trainer = Trainer(tiny(**overrides), path, sink, resume=False)
    if zero_lr:  # the config refuses lr 0; the optimizer takes it (AdamW's decay scales with lr)
        for group in trainer.optimizer.param_groups:
            group["lr"] = 0.0
    mixed(trainer)
    trainer.train()
    return trainer, sink


def _comparable(metrics: dict) -> dict:
    """A step's metrics without those that measure time, memory or the overlap itself."""
    return {k: v for k, v in metrics.items() if not k.startswith(("time/", "mem/")) and k not in TIMING}


@pytest.mark.slow
@pytest.mark.parametrize("selector", ["full", "pcm"])
def test_with_a_zero_learning_rate_the_overlapped_loop_is_the_sequential_one(tiny, mixed, tmp_path, selector):
    settings = dict(zero_lr=True, train__steps=4, eval__every=2, pcm__selector=selector, pcm__budget=2)
    sequential, seq_sink = _run(tiny, mixed, tmp_path / "seq", **settings)
    overlapped, ovl_sink = _run(tiny, mixed, tmp_path / "ovl", train__overlap_rollouts=True, **settings)

    assert [s for s, _ in ovl_sink.metrics] == [s for s, _ in seq_sink.metrics] == [0, 1, 2, 3, 4]
    for (_, seq), (_, ovl) in zip(seq_sink.metrics, ovl_sink.metrics, strict=True):
        assert _comparable(ovl) == _comparable(seq)
    assert ovl_sink.chunks == seq_sink.chunks
    for name, value in params(sequential).items():
        torch.testing.assert_close(params(overlapped)[name], value, rtol=0, atol=0)
    lags = [m[M.TRAIN_POLICY_LAG] for s, m in ovl_sink.metrics if s > 0]
    assert lags == [0.0, 1.0, 1.0, 1.0]  # the first step has nothing rolled out ahead
    assert all(m[M.TRAIN_POLICY_LAG] == 0.0 for s, m in seq_sink.metrics if s > 0)
    assert overlapped._prefetcher is None  # train() stops the rollout thread


def test_each_overlapped_batch_comes_from_the_weights_before_the_previous_update(tiny, mixed, tmp_path):
    trainer = Trainer(tiny(train__overlap_rollouts=True, train__steps=3), tmp_path / "ovl", ListSink())
    mixed(trainer)
    seen = {}
    select = trainer.select
    trainer.select = lambda batch, **kw: (
        seen.setdefault(trainer.step_count + 1, batch) and select(batch, **kw)
    )
    before_first_update = params(trainer)
    trainer.step()
    after_first_update = params(trainer)
    trainer.step()
    trainer.close()
    assert any(not torch.equal(after_first_update[k], v) for k, v in before_first_update.items())

    # step 2's batch, rolled out sequentially by the weights from before step 1's update
    probe = Trainer(tiny(train__steps=3), tmp_path / "probe", ListSink(), resume=False)
    probe.policy.load_state_dict(before_first_update)
    mixed(probe)
    expected = probe.rollout(step=2)
    np.testing.assert_array_equal(seen[2].tokens, expected.tokens)
    np.testing.assert_array_equal(seen[2].old_log_probs, expected.old_log_probs)


def test_the_last_step_rolls_nothing_out_ahead(tiny, mixed, tmp_path):
    trainer = Trainer(tiny(train__overlap_rollouts=True, train__steps=2), tmp_path, ListSink())
    mixed(trainer)
    steps = []
    rollout = trainer.rollout
    trainer.rollout = lambda **kw: steps.append(kw.get("step")) or rollout(**kw)
    trainer.train()
    assert steps == [None, 2]  # step 1 sequentially, step 2 ahead of time, nothing for step 3


def test_overlap_metrics_split_the_rollout_into_hidden_and_waited_time(tiny, mixed, tmp_path):
    _, sink = _run(tiny, mixed, tmp_path, train__overlap_rollouts=True, train__steps=3)
    for step, out in sink.metrics[1:]:
        assert 0.0 <= out[M.TIME_ROLLOUT_OVERLAP] <= 1.0
        assert out[M.TIME_ROLLOUT_HIDDEN] >= 0.0
        assert out[M.TIME_STEP] >= out[M.TIME_ROLLOUT] + out[M.TIME_SELECT] + out[M.TIME_UPDATE] - 1e-9
        if step == 1:
            assert out[M.TIME_ROLLOUT_HIDDEN] == out[M.TIME_ROLLOUT_OVERLAP] == 0.0


def test_a_failed_background_rollout_fails_the_step_that_needs_it(tiny, mixed, tmp_path):
    trainer = Trainer(tiny(train__overlap_rollouts=True, train__steps=3), tmp_path, ListSink())
    mixed(trainer)
    rollout = trainer.rollout

    def broken(**kw):
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("simulator died")
        return rollout(**kw)

    trainer.rollout = broken
    trainer.step()  # rolls out step 1 here, starts step 2 in the background
    with pytest.raises(RuntimeError, match="simulator died"):
        trainer.step()
    trainer.close()

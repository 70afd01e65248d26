"""Episodes on demand: the trainer's `should_record_media` hook, asked once per step, makes any step
record its episodes (eval.record_episodes per task, or 2 when that is 0); a hook that never asks
changes nothing."""

from __future__ import annotations

import imageio.v3 as iio

from pcm_engine import metrics as M
from pcm_engine.media import ON_DEMAND_PER_TASK, episodes_per_task
from pcm_engine.trainer import Trainer


class RecordingSink:
    """Keeps each step's metrics and media."""

    def __init__(self):
        self.metrics, self.media = {}, {}

    def log_metrics(self, step, metrics):
        self.metrics[step] = dict(metrics)

    def log_chunks(self, step, records):
        pass

    def log_media(self, step, items):
        self.media[step] = list(items)

    def close(self):
        pass


class AskAt:
    """A `should_record_media` that answers True at the given calls (1 = the first step's)."""

    def __init__(self, *calls: int):
        self.calls, self.asked = set(calls), 0

    def __call__(self) -> bool:
        self.asked += 1
        return self.asked in self.calls


def test_episodes_per_task_on_demand_falls_back_to_two():
    assert episodes_per_task(3, eval_step=True, requested=False) == 3
    assert episodes_per_task(3, eval_step=False, requested=False) == 0
    assert episodes_per_task(3, eval_step=False, requested=True) == 3
    assert episodes_per_task(0, eval_step=True, requested=False) == 0
    assert episodes_per_task(0, eval_step=False, requested=True) == ON_DEMAND_PER_TASK == 2


def test_a_requested_non_eval_step_records_two_episodes_per_task(tiny, mixed, tmp_path):
    config = tiny(eval__every=0, eval__record_episodes=0, train__steps=3)
    sink, ask = RecordingSink(), AskAt(2)
    trainer = Trainer(config, tmp_path, sink, resume=False)
    mixed(trainer)  # every task has a success and a failure to pick
    trainer.train(should_record_media=ask)

    assert ask.asked == 3  # once per step
    assert list(sink.media) == [2]  # the asked step only; the last (eval) step records 0
    items = sink.media[2]
    tasks = sorted({item.task for item in items})
    assert tasks and set(tasks) <= set(config.env.tasks)
    for task in tasks:  # two of each task's (a group or more) trajectories: a success and a failure
        assert sorted(item.success for item in items if item.task == task) == [False, True]
    for item in items:
        assert item.step == 2 and (tmp_path / item.path).is_file()
        assert iio.imread(tmp_path / item.path, index=None).ndim == 4
    assert M.TIME_EVAL in sink.metrics[2] and M.TIME_EVAL not in sink.metrics[1]
    assert M.EVAL_SUCCESS not in sink.metrics[2]  # recorded, not evaluated


def test_a_request_records_eval_record_episodes_when_it_is_set(tiny, mixed, tmp_path):
    sink = RecordingSink()
    trainer = Trainer(
        tiny(eval__every=0, eval__record_episodes=1, train__steps=2), tmp_path, sink, resume=False
    )
    mixed(trainer)
    trainer.train(should_record_media=AskAt(1))
    assert sorted(sink.media) == [1, 2]  # asked at step 1; step 2 is the final eval
    assert len(sink.media[1]) == len({item.task for item in sink.media[1]})  # one per task


def test_a_hook_that_never_asks_changes_nothing(tiny, tmp_path):
    sink, ask = RecordingSink(), AskAt()
    trainer = Trainer(
        tiny(eval__every=0, eval__record_episodes=2, train__steps=2), tmp_path, sink, resume=False
    )
    trainer.train(should_record_media=ask)
    assert ask.asked == 2
    assert list(sink.media) == [2]  # the final eval step only, as without a hook
    assert M.TIME_EVAL not in sink.metrics[1]
    assert not (tmp_path / "media" / "step_000001").exists()

"""The SFT start's identity and progress: its cache key is exactly what changes the start (env,
policy, SFT recipe with `sft.seed`, chunk length), the start is reproducible from `sft.seed`, and
its making is reported stage by stage through a StartProgress."""

import json

import pytest
import torch

from pcm_engine.policies import VLAPolicy
from pcm_engine.sft import START_INFO, StartProgress, remaining_seconds, resolve_start, sft_start_key, stages


@pytest.mark.parametrize(
    "overrides",
    [
        {"eval__episodes_per_task": 5},
        {"eval__every": 3},
        {"train__seed": 7},
        {"pcm__budget": 2},
        {"pcm__selector": "uniform"},
        {"grpo__lr": 5e-4},
        {"policy__init": "sft"},
        {"policy__pretrained": "somewhere/policy"},
    ],
)
def test_settings_that_do_not_change_the_start_share_its_key(tiny, overrides):
    assert sft_start_key(tiny(**overrides)) == sft_start_key(tiny())


@pytest.mark.parametrize(
    "overrides",
    [
        {"sft__seed": 1},
        {"sft__epochs": 3},
        {"sft__lr": 5e-4},
        {"sft__demos_per_task": 3},
        {"env__image_size": 48},
        {"env__tasks": [0, 2]},
        {"policy__hidden_size": 64},
        {"grpo__chunk_len": 8},
    ],
)
def test_settings_that_change_the_start_change_its_key(tiny, overrides):
    assert sft_start_key(tiny(**overrides)) != sft_start_key(tiny())


def one_stage(tiny, **overrides):
    return tiny(policy__init="sft", sft__pretrain_demos_per_task=0, sft__epochs=1, **overrides)


def weights(config) -> dict[str, torch.Tensor]:
    return VLAPolicy.from_pretrained(config.policy.pretrained).state_dict()


def test_the_start_is_reproducible_from_sft_seed_whatever_the_rl_seed(tiny, tmp_path):
    a = weights(resolve_start(one_stage(tiny, train__seed=0), tmp_path / "a"))
    b = weights(resolve_start(one_stage(tiny, train__seed=5), tmp_path / "b"))
    c = weights(resolve_start(one_stage(tiny, sft__seed=1), tmp_path / "c"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)  # another RL seed: the very same start
    assert not all(torch.equal(a[k], c[k]) for k in a)  # another sft.seed: another start


class Recorder(StartProgress):
    def __init__(self):
        self.calls = []

    def reused(self, stage, key, info):
        self.calls.append(("reused", stage.index, key, info))

    def training(self, stage, key):
        self.calls.append(("training", stage.index, key))

    def demos_collected(self, stage, chunks):
        self.calls.append(("demos", stage.index, chunks))

    def epoch(self, stage, epoch, loss, seconds):
        assert seconds >= 0 and loss > 0
        self.calls.append(("epoch", stage.index, epoch))

    def trained(self, stage, key, info):
        self.calls.append(("trained", stage.index, key, info))


def test_a_two_stage_start_reports_each_stage_then_its_reuse(tiny, tmp_path):
    config = tiny(policy__init="sft", sft__pretrain_demos_per_task=1, sft__pretrain_epochs=1, sft__epochs=2)
    first, final = stages(config)
    assert (first.index, first.count, first.epochs, final.index, final.epochs) == (1, 2, 1, 2, 2)
    assert final.demos == 2 * len(config.env.tasks)  # sft.demos_per_task per target task

    made = Recorder()
    resolve_start(config, tmp_path, progress=made)
    key, key_one = sft_start_key(config), made.calls[1][2]
    kinds = [call[:2] for call in made.calls]
    assert kinds == [
        ("training", 2),  # the fine-tune asks for its pre-trained stage, which trains first
        ("training", 1),
        ("demos", 1),
        ("epoch", 1),
        ("trained", 1),
        ("demos", 2),
        ("epoch", 2),
        ("epoch", 2),
        ("trained", 2),
    ]
    info = made.calls[-1][3]
    assert info["key"] == key and key_one != key and info["trained_at"] and info["seconds"] > 0
    assert 0 <= info["metrics"]["eval/success_rate"] <= 1 and "eval/task_success/0" in info["metrics"]
    assert json.loads((tmp_path / key / START_INFO).read_text()) == info

    again = Recorder()
    resolve_start(config, tmp_path, progress=again)
    assert again.calls == [("reused", 2, key, info)]


def test_the_time_left_counts_later_stages_by_their_demos(tiny):
    config = tiny(policy__init="sft", sft__pretrain_demos_per_task=1, sft__pretrain_epochs=4, sft__epochs=3)
    first, final = stages(config)
    # 1 of 4 pre-training epochs done at 2 s each; the fine-tune's epochs cost in proportion to its demos
    expected = 3 * 2.0 + 3 * final.demos * (2.0 / first.demos)
    assert remaining_seconds(config, first, 1, 2.0) == pytest.approx(expected)
    assert remaining_seconds(config, final, 3, 2.0) == 0

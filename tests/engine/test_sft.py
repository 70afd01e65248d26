"""The SFT start: the two-stage recipe (pre-train on the suite's other tasks, fine-tune on the
targets), each stage cached on its own."""

import json

import pytest

from pcm_engine.config import RunConfig
from pcm_engine.envs.tabletop.tasks import TASKS
from pcm_engine.policies import VLAPolicy
from pcm_engine.sft import pretrain_config, resolve_start, sft_start_key


def two_stage(tiny, **overrides):
    return tiny(
        policy__init="sft",
        sft__pretrain_demos_per_task=1,
        sft__pretrain_epochs=1,
        sft__pretrain_lr=1e-3,
        **overrides,
    )


def test_pretraining_stage_uses_every_other_task_from_random_weights(tiny):
    config = two_stage(tiny, env__tasks=[0, 4])
    stage = pretrain_config(config)
    assert stage.env.tasks == [t for t in range(len(TASKS)) if t not in (0, 4)]
    assert (stage.sft.demos_per_task, stage.sft.epochs, stage.sft.lr) == (1, 1, 1e-3)
    assert stage.sft.pretrain_demos_per_task == 0 and stage.policy.init == "random"
    assert pretrain_config(tiny(sft__pretrain_demos_per_task=0)) is None  # 0: one stage


def test_pretraining_needs_a_task_outside_the_targets(tiny):
    config = two_stage(tiny, env__tasks=list(range(len(TASKS))))
    with pytest.raises(ValueError, match="sft.pretrain_demos_per_task"):
        pretrain_config(config)


def test_two_stage_start_is_cached_per_stage_and_fine_tunes_the_pretrained_policy(tiny, tmp_path):
    started = []
    config = two_stage(tiny)
    resolved = resolve_start(config, tmp_path, on_start=started.append)
    stage_one = tmp_path / sft_start_key(pretrain_config(config))
    stage_two = tmp_path / sft_start_key(config)
    assert started == [stage_two, stage_one]  # the fine-tune asks for its pre-trained policy
    assert resolved.policy.pretrained == str(stage_two / "policy")
    VLAPolicy.from_pretrained(stage_two / "policy")  # loadable
    # the fine-tuning stage started from the pre-trained policy, on the target tasks only
    saved = RunConfig.load(stage_two / "config.yaml")
    assert saved.policy.pretrained == str(stage_one / "policy")
    assert saved.env.tasks == config.env.tasks
    assert RunConfig.load(stage_one / "config.yaml").env.tasks == pretrain_config(config).env.tasks
    assert any("sft/loss" in json.loads(line) for line in (stage_one / "metrics.jsonl").open())

    # another fine-tuning recipe reuses the pre-trained stage; the same one reuses both
    started.clear()
    resolve_start(two_stage(tiny, sft__epochs=1), tmp_path, on_start=started.append)
    assert started == [tmp_path / sft_start_key(two_stage(tiny, sft__epochs=1))]
    started.clear()
    resolve_start(config, tmp_path, on_start=started.append)
    assert started == []

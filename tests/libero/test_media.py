"""Episode media on the real LIBERO simulator: an eval step of a tiny policy records its rollouts as
GIFs of the camera images, with sidecars that match the step's chunk records. Skipped, with the
reason, when LIBERO is not installed (scripts/install_libero.sh)."""

from __future__ import annotations

import json

import imageio.v3 as iio
import pytest

from pcm_engine.config import RunConfig
from tests.libero.test_libero_env import CHUNK, ENV, MISSING, checkpoint, env  # noqa: F401 (fixtures)
from tests.tiny import RecordingSink

pytestmark = [
    pytest.mark.libero,
    pytest.mark.slow,
    pytest.mark.skipif(MISSING is not None, reason=f"LIBERO is not installed: {MISSING}"),
]


def test_an_eval_step_records_libero_episodes(env, checkpoint, tmp_path, monkeypatch):  # noqa: F811
    import pcm_engine.trainer as trainer_module

    config = RunConfig.from_dict(
        {"env": ENV.model_dump()},
        {
            "policy.pretrained": str(checkpoint),
            "policy.lora": {"enabled": True, "r": 4},
            "grpo.chunk_len": CHUNK,
            "grpo.group_size": 2,
            "grpo.groups_per_step": 1,
            "pcm.selector": "pcm",
            "pcm.budget": 2,
            "eval.every": 1,
            "eval.episodes_per_task": 1,
            "eval.record_episodes": 2,
            "train.steps": 1,
            "train.device": "cpu",
        },
    )
    monkeypatch.setattr(trainer_module, "make_env", lambda _: env)  # one simulator for all tests
    sink = RecordingSink()
    trainer = trainer_module.Trainer(config, tmp_path, sink, resume=False)
    real_rollout = trainer.rollout

    def mixed_rollout(**kwargs):  # an untrained policy never succeeds: make the group mixed
        batch = real_rollout(**kwargs)
        batch.success[:] = [True, False]
        return batch

    trainer.rollout = mixed_rollout
    trainer.step()

    items = sink.media[1]
    assert sorted(item.success for item in items) == [False, True] and {item.task for item in items} == {0}
    for item in items:
        frames = iio.imread(tmp_path / item.path, index=None)
        assert frames.ndim == 4 and frames.shape[1:] == (ENV.image_size, ENV.image_size, 3)
        assert 1 <= frames.shape[0] <= len(item.chunks) == 4  # 16 steps / 4 per chunk
        sidecar = json.loads((tmp_path / item.sidecar).read_text())
        mine = [(r.chunk, r.phase, r.kept) for r in sink.chunks[1] if r.trajectory == item.trajectory]
        assert [(c["chunk"], c["phase"], c["kept"]) for c in sidecar["chunks"]] == mine
        assert sum(c["kept"] for c in sidecar["chunks"]) == 2  # pcm.budget

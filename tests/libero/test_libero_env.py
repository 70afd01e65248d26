"""The real LIBERO simulator on the CPU: the VecEnv protocol, shared simulators reproducing dedicated
ones, the gripper convention, `pcm env-check`, and one GRPO and one PCM update on a real task from a
tiny checkpoint loaded by path. Skipped, with the reason, when the `libero` extra or its assets are
not installed (scripts/install_libero.sh installs both)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from pcm_engine import metrics as M
from pcm_engine.config import LiberoConfig, PolicyConfig, RunConfig
from pcm_engine.envs.libero_setup import INSTALL_HINT, LiberoSetupError, find_assets, libero_root


def _missing() -> str | None:
    try:
        libero_root()
        find_assets()
    except LiberoSetupError as err:
        return str(err)
    for module in ("robosuite", "mujoco", "bddl"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed: {INSTALL_HINT}"
    return None


MISSING = _missing()
pytestmark = [
    pytest.mark.libero,
    pytest.mark.slow,
    pytest.mark.skipif(MISSING is not None, reason=f"LIBERO is not installed: {MISSING}"),
]

CHUNK = 4
ENV = LiberoConfig(tasks=[0], max_steps=16, image_size=64, num_workers=1, cached_sims=1)


@pytest.fixture(scope="module")
def env():
    from pcm_engine.envs.libero import LiberoEnv

    with LiberoEnv(ENV) as libero_env:
        yield libero_env


def _run(env, init_states: list[int], actions: np.ndarray) -> list:
    """Reset len(init_states) episodes of task 0 and feed every one the same chunks."""
    env.reset([0] * len(init_states), init_states, "train")
    results = []
    for chunk in actions:
        results.append(env.step_chunk(np.repeat(chunk[None], len(init_states), axis=0)))
    return results


def test_protocol_shapes_time_limit_and_split(env):
    assert env.num_tasks == 1 and "bowl" in env.instruction(0)
    assert env.num_init_states("train") == env.num_init_states("eval") == 50
    obs = env.reset([0, 0], [0, 1], "train")
    assert obs.images.shape == (2, 64, 64, 3) and obs.images.dtype == np.uint8
    assert obs.images.std() > 10  # a rendered scene, not a blank frame
    assert obs.proprio.shape == (2, 5) and obs.proprio.dtype == np.float32
    assert not np.array_equal(obs.proprio[0], obs.proprio[1])  # two different init states
    steps = 0
    for _ in range(ENV.max_steps // CHUNK + 2):
        result = env.step_chunk(np.zeros((2, CHUNK, 7), dtype=np.float32))
        steps += result.steps
    np.testing.assert_array_equal(steps, [16, 16])  # then the time limit; later chunks are no-ops
    assert result.done.all() and not result.success.any()


def test_eval_split_is_the_last_init_states():
    from pcm_engine.envs.libero import LiberoEnv

    held_out = LiberoEnv(LiberoConfig(tasks=[0], train_init_states=40, eval_init_states=10))
    assert held_out.num_init_states("train") == 40 and held_out.num_init_states("eval") == 10
    assert held_out.init_state_index("train", 39) == 39 and held_out.init_state_index("eval", 0) == 40


def test_episodes_sharing_a_simulator_match_one_run_alone(env):
    """Row 1 starts on a simulator that just ran another init state, row 2 is a copy of row 1's
    start, and all three take turns on one simulator (snapshots swapped between chunks): rows 1
    and 2 must give exactly what the episode gives with the simulator to itself."""
    actions = np.random.default_rng(0).uniform(-1, 1, (3, CHUNK, 7)).astype(np.float32)
    shared = _run(env, [5, 0, 0], actions)
    alone = _run(env, [0], actions)
    for a, b in zip(shared, alone, strict=True):
        for row in (1, 2):
            np.testing.assert_array_equal(a.obs.proprio[row], b.obs.proprio[0])
            np.testing.assert_array_equal(a.obs.images[row], b.obs.images[0])
    assert not np.array_equal(shared[-1].obs.proprio[0], shared[-1].obs.proprio[1])


def test_gripper_above_zero_closes_the_fingers(env):
    def finger_gap(gripper: float) -> float:
        chunk = np.zeros((2, CHUNK, 7), dtype=np.float32)
        chunk[..., 6] = gripper
        result = _run(env, [0], chunk)[-1]
        return float(result.obs.proprio[0, 3] - result.obs.proprio[0, 4])  # left - right finger

    start = float(np.subtract(*env.reset([0], [0], "train").proprio[0, 3:5]))
    assert finger_gap(0.3) < start - 0.01  # ours > 0 = close
    assert finger_gap(-0.3) == pytest.approx(start, abs=0.005)  # open stays open


def test_env_check_prints_one_json_line():
    command = [sys.executable, "-m", "pcm_engine.cli", "env-check", "libero_object", "--task", "2"]
    command += ["--max-steps", "8", "--image-size", "32"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["suite"] == "libero_object" and result["task"] == 2 and result["steps"] == 8
    assert result["instruction"] and result["success"] == 0.0 and result["seconds_per_step"] > 0


class _Sink:
    def __init__(self):
        self.metrics = []

    def log_metrics(self, step, metrics):
        self.metrics.append(metrics)

    def log_chunks(self, step, records):
        pass

    def close(self):
        pass


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny Qwen2 + SigLIP policy with LoRA at LIBERO's dims, saved to a temp dir."""
    from pcm_engine.policies import VLAPolicy

    config = PolicyConfig(
        language_model="qwen2",
        hidden_size=32,
        num_layers=1,
        num_heads=2,
        vision_hidden_size=32,
        vision_layers=1,
        vision_heads=2,
        patch_size=16,
        lora={"enabled": True, "r": 4},
    )
    policy = VLAPolicy(config, chunk_len=CHUNK, action_dim=7, proprio_dim=5, image_size=64)
    directory = tmp_path_factory.mktemp("checkpoint")
    policy.save_pretrained(directory)
    return directory


@pytest.mark.parametrize("selector", ["full", "pcm"])
def test_one_grpo_and_one_pcm_update_on_a_real_task(env, checkpoint, selector, tmp_path, monkeypatch):
    import pcm_engine.trainer as trainer_module

    config = RunConfig.from_dict(
        {"env": ENV.model_dump()},
        {
            "policy.pretrained": str(checkpoint),
            "policy.lora": {"enabled": True, "r": 4},
            "grpo.chunk_len": CHUNK,
            "grpo.group_size": 2,
            "grpo.groups_per_step": 1,
            "grpo.lr": 1e-3,
            "pcm.selector": selector,
            "pcm.budget": 2,
            "eval.every": 0,
            "train.steps": 10,  # so that step() does not evaluate
            "train.device": "cpu",
        },
    )
    monkeypatch.setattr(trainer_module, "make_env", lambda _: env)  # one simulator for all tests
    trainer = trainer_module.Trainer(config, tmp_path, _Sink(), resume=False)
    real_rollout = trainer.rollout

    def mixed_rollout():  # an untrained policy never succeeds: make the group mixed
        batch = real_rollout()
        assert batch.num_trajectories == 2 and batch.episode_steps.tolist() == [16, 16]
        batch.success[:] = [True, False]
        return batch

    trainer.rollout = mixed_rollout
    before = {n: p.detach().clone() for n, p in trainer.policy.named_parameters() if p.requires_grad}
    metrics = trainer.step()
    assert metrics[M.TRAIN_UPDATED] == 1.0 and np.isfinite(metrics[M.TRAIN_POLICY_LOSS])
    assert metrics[M.ROLLOUT_CHUNKS] == 8  # 2 trajectories x 16 steps / 4 per chunk
    assert metrics[M.PCM_KEPT_CHUNKS] == (8 if selector == "full" else 4)  # budget 2 per trajectory
    after = dict(trainer.policy.named_parameters())
    assert any(not torch.equal(before[n], after[n]) for n in before)

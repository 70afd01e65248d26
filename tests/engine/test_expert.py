"""The scripted expert's competence, its noise knobs, and demo collection."""

from __future__ import annotations

import numpy as np
import pytest

from pcm_engine.config import TabletopConfig
from pcm_engine.envs.expert import MIN_SQUEEZE, DemoSet, ScriptedExpert, collect_demos
from pcm_engine.envs.tabletop import TabletopEnv

CFG = TabletopConfig()


def run(env: TabletopEnv, expert: ScriptedExpert, per_task: int, split: str = "train") -> np.ndarray:
    """Success [num_tasks, per_task] of one batched episode per (task, init state)."""
    tasks = np.repeat(np.arange(env.num_tasks), per_task)
    env.reset(tasks, np.tile(np.arange(per_task), env.num_tasks), split)
    while not env.done.all():
        env.step(expert.act(env))
    return env.success.reshape(env.num_tasks, per_task)


@pytest.mark.parametrize("split", ["train", "eval"])
def test_zero_noise_expert_solves_every_task(split):
    env = TabletopEnv(CFG)
    success = run(env, ScriptedExpert(), per_task=25, split=split)
    assert success.mean(axis=1).min() >= 0.98, success.mean(axis=1)
    steps = env.elapsed[env.success]
    assert 40 <= np.median(steps) <= 75 and steps.max() < CFG.max_steps


@pytest.mark.parametrize(
    "knobs, at_most",
    [
        ({"grasp_offset": 2.5 * CFG.grasp_tolerance}, 0.25),
        ({"place_offset": 2.5 * CFG.place_tolerance}, 0.25),
        ({"noise": 1.0}, 0.5),
    ],
)
def test_noise_knobs_reduce_success(knobs, at_most):
    env = TabletopEnv(CFG)
    assert run(env, ScriptedExpert(**knobs, seed=1), per_task=10).mean() <= at_most


def test_uneven_squeeze_slips_blocks_only_under_a_grip_force():
    firm = TabletopEnv(TabletopConfig(grip_force=0.5))
    assert run(firm, ScriptedExpert(grip_noise=0.5, seed=1), per_task=10).mean() <= 0.5
    assert run(firm, ScriptedExpert(seed=1), per_task=10).mean() >= 0.98
    assert run(TabletopEnv(CFG), ScriptedExpert(grip_noise=0.5, seed=1), per_task=10).mean() >= 0.98


def test_uneven_squeeze_stays_a_closed_command():
    env = TabletopEnv(CFG)
    env.reset([0, 6], [0, 1], "train")
    expert = ScriptedExpert(grip_noise=1.0, seed=0)
    closed = []
    while not env.done.all():
        action = expert.act(env)
        closed.extend(action[action[:, 6] > -1, 6])
        env.step(action)
    closed = np.array(closed)
    assert closed.min() >= MIN_SQUEEZE and closed.max() <= 1.0 and closed.std() > 0.1


def test_small_noise_keeps_expert_competent_but_slower():
    env = TabletopEnv(CFG)
    clean = run(env, ScriptedExpert(), per_task=6)
    clean_steps = env.elapsed.mean()
    noisy = run(env, ScriptedExpert(noise=0.2, seed=3), per_task=6)
    assert noisy.mean() >= 0.9 and clean.all()
    assert env.elapsed.mean() > clean_steps


def test_expert_is_deterministic_given_seed():
    env = TabletopEnv(CFG)
    a = run(env, ScriptedExpert(noise=0.3, grasp_offset=0.03, seed=7), per_task=3)
    steps_a = env.elapsed.copy()
    b = run(env, ScriptedExpert(noise=0.3, grasp_offset=0.03, seed=7), per_task=3)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(steps_a, env.elapsed)


def test_expert_actions_are_valid():
    env = TabletopEnv(CFG)
    env.reset([0, 6, 15], [0, 1, 2], "train")
    expert = ScriptedExpert(noise=0.5, seed=0)
    while not env.done.all():
        action = expert.act(env)
        assert action.shape == (3, 7)
        assert np.abs(action).max() <= 1.0
        np.testing.assert_array_equal(action[:, 3:6], 0.0)
        assert set(np.unique(action[:, 6])) <= {-1.0, 1.0}
        env.step(action)


def test_collect_demos_records_chunks_of_expert_actions():
    env = TabletopEnv(CFG)
    chunk = 8
    tasks, inits = [0, 6, 9, 15], [0, 1, 2, 3]
    demos = collect_demos(env, tasks, inits, chunk, ScriptedExpert())
    assert isinstance(demos, DemoSet)
    m = len(demos)
    assert demos.images.shape == (m, 64, 64, 3) and demos.images.dtype == np.uint8
    assert demos.proprio.shape == (m, 4) and demos.proprio.dtype == np.float32
    assert demos.actions.shape == (m, chunk, 7) and demos.actions.dtype == np.float32
    assert len(demos.instructions) == m and demos.episode.shape == (m,)
    assert demos.episode_success.all() and demos.episode_success.shape == (4,)
    for e in range(4):
        rows = np.flatnonzero(demos.episode == e)
        # one row per started chunk of the episode; elapsed steps = full chunks + the last one
        assert len(rows) == -(-env.elapsed[e] // chunk)
        assert {demos.instructions[r] for r in rows} == {env.instruction(tasks[e])}
    # Replaying the recorded actions reproduces the episodes and their chunk-boundary proprio.
    env.reset(tasks, inits, "train")
    for e in range(4):
        first = np.flatnonzero(demos.episode == e)[0]
        np.testing.assert_allclose(demos.proprio[first, :3], env.gripper_pos[e], atol=1e-6)
    order = [np.flatnonzero(demos.episode == e) for e in range(4)]
    for k in range(max(len(o) for o in order)):
        actions = np.stack([demos.actions[o[min(k, len(o) - 1)]] for o in order])
        out = env.step_chunk(actions)
    assert out.success.all()
    # A final short chunk is padded by repeating its last executed action.
    for e in range(4):
        executed = env.elapsed[e] % chunk
        if executed:
            last = demos.actions[order[e][-1]]
            np.testing.assert_array_equal(
                last[executed:], np.broadcast_to(last[executed - 1], last[executed:].shape)
            )


def test_collect_demos_only_successful_drops_failed_episodes():
    env = TabletopEnv(CFG)
    expert = ScriptedExpert(place_offset=0.1, seed=2)
    tasks, inits = [0] * 8, list(range(8))
    full = collect_demos(env, tasks, inits, 8, expert, split="eval")
    expert = ScriptedExpert(place_offset=0.1, seed=2)
    kept = collect_demos(env, tasks, inits, 8, expert, split="eval", only_successful=True)
    assert 0 < full.episode_success.sum() < 8
    np.testing.assert_array_equal(full.episode_success, kept.episode_success)
    assert kept.episode_success[kept.episode].all()
    assert len(kept) == int(full.episode_success[full.episode].sum()) < len(full)
    assert len(kept.instructions) == len(kept)

"""The tabletop world: mechanics, determinism, rendering and the VecEnv contract."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pcm_engine.config import TabletopConfig
from pcm_engine.envs import make_env
from pcm_engine.envs.expert import ScriptedExpert
from pcm_engine.envs.tabletop import TabletopEnv
from pcm_engine.envs.tabletop.dynamics import RELEASE_OPENING
from pcm_engine.envs.tabletop.tasks import BLOCK_COLOURS, BLOCK_NAMES, TASKS

CFG = TabletopConfig()
OPEN, CLOSE = -1.0, 1.0


def goto(env: TabletopEnv, xyz: np.ndarray, gripper: float, max_steps: int = 80) -> None:
    """Drive every env's gripper to `xyz` [B, 3] with a constant gripper command."""
    for _ in range(max_steps):
        delta = np.asarray(xyz) - env.gripper_pos
        if np.abs(delta).max() < 1e-9:
            return
        action = np.zeros((env.num_envs, 7))
        action[:, :3] = np.clip(delta / env.config.move_scale, -1, 1)
        action[:, 6] = gripper
        env.step(action)
    raise AssertionError("gripper did not reach its goal")


def hold(env: TabletopEnv, gripper: float, steps: int | None = None) -> None:
    """Command the gripper for `steps` steps (default: long enough for the fingers to finish)."""
    action = np.zeros((env.num_envs, 7))
    action[:, 6] = gripper
    for _ in range(env.config.gripper_steps if steps is None else steps):
        env.step(action)


def target_block_xy(env: TabletopEnv) -> np.ndarray:
    return env.block_pos[np.arange(env.num_envs), env.target_block].copy()


def at(xy: np.ndarray, z: float) -> np.ndarray:
    return np.concatenate([xy, np.full((len(xy), 1), z)], axis=1)


def test_suite_shape_and_instructions():
    env = TabletopEnv(CFG)
    assert env.num_tasks == len(TASKS) >= 12
    instructions = [env.instruction(t) for t in range(env.num_tasks)]
    assert len(set(instructions)) == len(instructions)
    assert max(len(s) for s in instructions) <= 52
    assert any(s.startswith("stack") for s in instructions)
    assert env.action_dim == 7 and env.proprio_dim == 4 and env.max_steps == 96


def test_restricted_suite_renumbers_tasks():
    env = TabletopEnv(TabletopConfig(tasks=[6, 2]))
    assert env.num_tasks == 2
    assert env.instruction(0) == TASKS[6].instruction and env.instruction(1) == TASKS[2].instruction
    full = TabletopEnv(CFG)
    env.reset([0], [3], "train")
    full.reset([6], [3], "train")
    np.testing.assert_array_equal(env.block_pos, full.block_pos)  # scenes keyed by suite id
    with pytest.raises(ValueError, match="tasks"):
        TabletopEnv(TabletopConfig(tasks=[0, len(TASKS)]))


def test_make_env_builds_tabletop():
    assert isinstance(make_env(CFG), TabletopEnv)


def test_shapes_and_dtypes():
    env = TabletopEnv(TabletopConfig(image_size=48))
    obs = env.reset([0, 5, 9], [0, 1, 2], "eval")
    assert obs.images.shape == (3, 48, 48, 3) and obs.images.dtype == np.uint8
    assert obs.proprio.shape == (3, 4) and obs.proprio.dtype == np.float32
    assert obs.instructions == [env.instruction(t) for t in (0, 5, 9)]
    out = env.step_chunk(np.zeros((3, 4, 7), dtype=np.float32))
    assert out.obs.images.shape == (3, 48, 48, 3)
    assert out.success.dtype == bool and out.done.dtype == bool and out.steps.shape == (3,)
    np.testing.assert_array_equal(out.steps, [4, 4, 4])


def test_proprio_is_gripper_state_only():
    env = TabletopEnv(CFG)
    obs = env.reset([0, 0], [0, 1], "train")
    np.testing.assert_allclose(obs.proprio[:, :3], env.gripper_pos, atol=1e-6)
    np.testing.assert_array_equal(obs.proprio[:, 3], [1.0, 1.0])  # open
    # Moving a block (by carrying it) changes nothing in proprio beyond the gripper itself.
    goto(env, at(target_block_xy(env), 0.02), OPEN)
    hold(env, CLOSE)
    assert (env.held_block >= 0).all()
    goto(env, at(np.zeros((2, 2)), 0.3), CLOSE)
    proprio = env.observe().proprio
    np.testing.assert_allclose(proprio, [[0, 0, 0.3, 0], [0, 0, 0.3, 0]], atol=1e-6)


def test_same_index_same_scene_and_splits_disjoint():
    env = TabletopEnv(CFG)
    a = env.reset([3] * 20, range(20), "train").images
    train = env.block_pos.copy()
    b = env.reset([3] * 20, range(20), "train").images
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(train, env.block_pos)
    env.reset([3] * 20, range(20), "eval")
    evals = env.block_pos.copy()
    flat_train = {tuple(np.round(x, 6).ravel()) for x in train}
    assert not flat_train & {tuple(np.round(x, 6).ravel()) for x in evals}
    assert len(flat_train) == 20  # distinct scenes within a split too


def test_spatial_referents_resolved_from_init_state():
    env = TabletopEnv(CFG)
    ids = {TASKS[t].instruction: t for t in range(len(TASKS))}
    n = 10
    for instruction, axis, pick in [
        ("put the leftmost block on the black plate", 0, np.argmin),
        ("put the rightmost block on the white plate", 0, np.argmax),
        ("put the back block on the black plate", 1, np.argmax),
        ("put the front block on the white plate", 1, np.argmin),
    ]:
        env.reset([ids[instruction]] * n, range(n), "train")
        present = env.block_pos[:, :3, axis]
        np.testing.assert_array_equal(env.target_block, pick(present, axis=1))
    env.reset([ids["stack the leftmost block on the rightmost block"]] * n, range(n), "eval")
    np.testing.assert_array_equal(
        env.target_pos, env.block_pos[np.arange(n), env.block_pos[:, :3, 0].argmax(1)]
    )


def test_grasp_needs_horizontal_alignment():
    env = TabletopEnv(CFG)
    env.reset([0] * 4, range(4), "train")
    tol = CFG.grasp_tolerance
    offsets = np.array([[0.0, 0.0], [0.8 * tol, 0.0], [1.2 * tol, 0.0], [0.0, -1.5 * tol]])
    goto(env, at(target_block_xy(env) + offsets, 0.02), OPEN)
    hold(env, CLOSE)
    np.testing.assert_array_equal(env.held_block == env.target_block, [True, True, False, False])
    assert env.gripper_closed.all()
    # A held block is centred under the gripper and follows it.
    goto(env, at(np.full((4, 2), 0.5), 0.3), CLOSE)
    np.testing.assert_allclose(target_block_xy(env)[:2], 0.5)


def test_grasp_needs_low_gripper_and_an_open_to_close_transition():
    env = TabletopEnv(CFG)
    env.reset([1, 1], [0, 0], "train")
    goto(env, at(target_block_xy(env), CFG.grasp_height + 0.02), OPEN)
    hold(env, CLOSE)
    assert (env.held_block == -1).all()  # too high
    goto(env, at(target_block_xy(env), 0.02), CLOSE)
    assert (env.held_block == -1).all()  # still closed: no new grasp on the way down
    hold(env, OPEN)
    hold(env, CLOSE)
    assert (env.held_block == env.target_block).all()


def test_release_above_release_height_topples_and_never_succeeds():
    env = TabletopEnv(CFG)
    env.reset([0, 0], [5, 5], "train")
    goto(env, at(target_block_xy(env), 0.02), OPEN)
    hold(env, CLOSE)
    heights = [CFG.release_height + 0.05, CFG.release_height - 0.05]
    goto(env, at(env.target_pos, 0.0) + np.array([[0, 0, heights[0]], [0, 0, heights[1]]]), CLOSE)
    for _ in range(math.ceil(RELEASE_OPENING * CFG.gripper_steps)):  # fingers open far enough
        success, done = env.step(np.array([[0, 0, 0, 0, 0, 0, OPEN]] * 2))
    np.testing.assert_array_equal(env.block_toppled[np.arange(2), env.target_block], [True, False])
    np.testing.assert_array_equal(success, [False, True])
    np.testing.assert_array_equal(done, [False, True])
    # The toppled block can't be grasped again, so even the expert cannot recover.
    expert = ScriptedExpert()
    while not env.done.all():
        env.step(expert.act(env))
    np.testing.assert_array_equal(env.success, [False, True])
    assert env.elapsed[0] == CFG.max_steps


def test_random_actions_almost_never_succeed():
    env = TabletopEnv(CFG)
    n = 160
    env.reset(np.arange(n) % len(TASKS), np.arange(n) // len(TASKS), "train")
    rng = np.random.default_rng(0)
    while not env.done.all():
        env.step(rng.uniform(-1, 1, (n, 7)))
    assert env.success.mean() <= 0.02
    assert (env.elapsed[~env.success] == CFG.max_steps).all()


def test_step_chunk_stops_at_success_and_reports_steps():
    env = TabletopEnv(CFG)
    expert = ScriptedExpert()
    env.reset([4], [2], "train")
    actions = []
    while not env.done.all():
        actions.append(expert.act(env)[0])
        env.step(actions[-1][None])
    assert env.success[0]
    n = len(actions)
    chunk = np.array(actions + [actions[-1]] * 7)[None]
    env.reset([4], [2], "train")
    out = env.step_chunk(chunk[:, : n - 1])
    assert not out.done[0] and out.steps[0] == n - 1
    out = env.step_chunk(chunk[:, n - 1 :])
    assert out.success[0] and out.done[0] and out.steps[0] == 1
    assert env.elapsed[0] == n
    # A finished env ignores further actions.
    grip = env.gripper_pos.copy()
    out = env.step_chunk(np.ones((1, 5, 7)))
    assert out.steps[0] == 0 and out.success[0]
    np.testing.assert_array_equal(env.gripper_pos, grip)


def test_finished_envs_ignore_their_rows_while_others_run():
    env = TabletopEnv(CFG)
    expert = ScriptedExpert()
    env.reset([4, 4], [2, 2], "train")
    while not env.done[0]:
        action = expert.act(env)
        action[1] = 0.0  # env 1 idles (gripper command 0 = open)
        env.step(action)
    n = int(env.elapsed[0])
    grip = env.gripper_pos.copy()
    up = np.zeros((2, 8, 7))
    up[:, :, 2] = 1.0
    out = env.step_chunk(up)
    np.testing.assert_array_equal(out.steps, [0, 8])
    np.testing.assert_array_equal(env.gripper_pos[0], grip[0])
    assert env.gripper_pos[1, 2] > grip[1, 2]
    np.testing.assert_array_equal(env.elapsed, [n, n + 8])
    out = env.step_chunk(np.zeros((2, CFG.max_steps, 7)))
    np.testing.assert_array_equal(out.steps, [0, CFG.max_steps - n - 8])  # stops at max_steps
    np.testing.assert_array_equal(out.success, [True, False])
    assert out.done.all()


def test_actions_clipped_and_workspace_bounded():
    env = TabletopEnv(CFG)
    env.reset([0], [0], "train")
    start = env.gripper_pos.copy()
    env.step(np.array([[5.0, -5.0, 0, 1, 1, 1, OPEN]]))  # rotation dims are ignored
    np.testing.assert_allclose(env.gripper_pos - start, [[CFG.move_scale, -CFG.move_scale, 0]])
    goto(env, np.array([[1.0, -1.0, 1.0]]), OPEN)
    env.step(np.array([[1.0, -1.0, 1.0, 0, 0, 0, OPEN]]))
    np.testing.assert_allclose(env.gripper_pos, [[1.0, -1.0, 1.0]])


def test_render_shows_target_block_colour_at_its_pixel():
    env = TabletopEnv(CFG)
    n = 12
    obs = env.reset(np.arange(n) % len(TASKS), np.arange(n), "eval")
    xy = target_block_xy(env)
    size = CFG.image_size
    col = np.clip(((xy[:, 0] + 1) / 2 * size).astype(int), 0, size - 1)
    row = np.clip(((1 - xy[:, 1]) / 2 * size).astype(int), 0, size - 1)
    colour = env.block_colour[np.arange(n), env.target_block]
    expected = np.array([BLOCK_COLOURS[BLOCK_NAMES[c]] for c in colour])
    np.testing.assert_array_equal(obs.images[np.arange(n), row, col], expected)
    # The gripper is drawn (a magenta ring around its start position).
    assert (obs.images == np.array([230, 0, 230], dtype=np.uint8)).all(-1).any(axis=(1, 2)).all()


def test_held_block_is_drawn_larger_when_lifted():
    env = TabletopEnv(CFG)
    env.reset([0], [0], "train")
    colour = np.array(BLOCK_COLOURS["red"], dtype=np.uint8)

    def red_pixels() -> int:
        return int((env.observe().images[0] == colour).all(-1).sum())

    resting = red_pixels()
    goto(env, at(target_block_xy(env), 0.02), OPEN)
    hold(env, CLOSE)
    low = red_pixels()
    goto(env, at(target_block_xy(env), 0.9), CLOSE)
    assert red_pixels() > 2 * max(low, resting)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda env: env.reset([0], [0], "test"), "split"),
        (lambda env: env.reset([len(TASKS)], [0], "train"), "tasks"),
        (lambda env: env.reset([-1], [0], "train"), "tasks"),
        (lambda env: env.reset([0], [CFG.eval_init_states], "eval"), "init_states"),
        (lambda env: env.reset([0, 1], [0], "train"), "init_states"),
        (lambda env: env.instruction(99), "tasks"),
        (lambda env: env.num_init_states("val"), "split"),
    ],
)
def test_invalid_arguments_raise_value_error_naming_them(call, match):
    with pytest.raises(ValueError, match=match):
        call(TabletopEnv(CFG))


def test_bad_action_shape_and_step_before_reset():
    env = TabletopEnv(CFG)
    with pytest.raises(RuntimeError, match="reset"):
        env.observe()
    env.reset([0, 1], [0, 0], "train")
    with pytest.raises(ValueError, match="actions"):
        env.step_chunk(np.zeros((2, 7)))
    with pytest.raises(ValueError, match="actions"):
        env.step(np.zeros((3, 7)))


def test_fingers_take_gripper_steps_to_close_and_a_one_step_flicker_does_nothing():
    env = TabletopEnv(CFG)
    env.reset([0], [0], "train")
    goto(env, at(target_block_xy(env), 0.02), OPEN)
    hold(env, CLOSE, steps=1)  # one step of "close": fingers a third of the way
    assert env.held_block[0] == -1
    np.testing.assert_allclose(env.observe().proprio[0, 3], 1 - 1 / CFG.gripper_steps)
    hold(env, OPEN, steps=1)
    hold(env, CLOSE, steps=CFG.gripper_steps - 1)
    assert env.held_block[0] == -1  # the flicker reopened the fingers: not closed yet
    hold(env, CLOSE, steps=1)
    assert env.held_block[0] == env.target_block[0]
    hold(env, OPEN, steps=1)  # a one-step open flicker while holding drops nothing
    hold(env, CLOSE, steps=1)
    assert env.held_block[0] == env.target_block[0]


def test_instant_gripper_when_gripper_steps_is_one():
    env = TabletopEnv(TabletopConfig(gripper_steps=1))
    env.reset([0], [0], "train")
    goto(env, at(target_block_xy(env), 0.02), OPEN)
    hold(env, CLOSE, steps=1)
    assert env.held_block[0] == env.target_block[0]
    hold(env, OPEN, steps=1)
    assert env.held_block[0] == -1


def test_a_weak_grip_lets_a_held_block_slip_and_drop():
    cfg = TabletopConfig(grip_force=0.5)
    env = TabletopEnv(cfg)
    env.reset([0] * 3, [5] * 3, "train")
    goto(env, at(target_block_xy(env), 0.02), OPEN)
    hold(env, CLOSE)
    assert (env.held_block == env.target_block).all()
    # Carry high, then squeeze with 0.6 (holds), 0.3 (slips) and 0.3 after lowering (slips upright).
    heights = np.array([0.3, 0.3, cfg.release_height - 0.05])
    goto(env, at(np.zeros((3, 2)), 0.0) + np.c_[np.zeros((3, 2)), heights], CLOSE)
    assert (env.held_block == env.target_block).all()
    action = np.zeros((3, 7))
    action[:, 6] = [0.6, 0.3, 0.3]
    env.step(action)
    np.testing.assert_array_equal(env.held_block == env.target_block, [True, False, False])
    np.testing.assert_array_equal(env.block_toppled[np.arange(3), env.target_block], [False, True, False])
    assert env.gripper_closed.all()  # the fingers stay shut on nothing: a re-grasp must reopen
    np.testing.assert_allclose(target_block_xy(env)[1:], 0.0)  # it dropped where it was


def test_grip_force_zero_holds_with_any_closed_command():
    env = TabletopEnv(CFG)
    env.reset([0], [5], "train")
    goto(env, at(target_block_xy(env), 0.02), OPEN)
    hold(env, CLOSE)
    goto(env, at(np.zeros((1, 2)), 0.3), 0.01)
    assert (env.held_block == env.target_block).all()

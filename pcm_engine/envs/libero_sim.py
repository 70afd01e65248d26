"""The simulator side of the LIBERO env; runs in a worker process (or in-process with 0 workers).

One MuJoCo simulator per task serves every episode of that task the worker hosts. Between chunks
an episode's state is snapshotted and restored: MuJoCo's full integration state (`mj_getState`
with mjSTATE_INTEGRATION: time, qpos, qvel, warm start, controls, ...) plus the robosuite fields
that carry over from one control step to the next (the OSC controller's cached kinematics and the
gripper's accumulated command). That reproduces a dedicated simulator bit for bit
(tests/libero/test_libero_env.py checks it) while G rollouts of a task share one ~1 GB simulator.

Episodes start with a soft reset (the compiled model is kept: ~0.03 s instead of ~2 s) followed by
`set_init_state`; the soft reset leaves the gripper's accumulated command of the previous episode
behind, so it is zeroed here, which makes the episode identical to one in a fresh simulator.

LIBERO's init states hold joint positions only. Fixtures (cabinets, stoves, ...) are re-placed at
random on every reset, in the *model* (body_pos/body_quat), from numpy's global RNG. Here that RNG
is seeded from (task, init state index) for the reset, so an episode's fixtures are a function of
its init state (reproducible, whatever else ran before), and the body poses are part of the
snapshot, so episodes sharing a simulator each keep their own.
"""

from __future__ import annotations

import copy
import os
import traceback
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from pcm_engine.envs.libero_setup import INSTALL_HINT, LiberoSetupError, prepare_libero

SETTLE_ACTION = np.array([0, 0, 0, 0, 0, 0, -1], dtype=np.float64)  # OpenVLA's "dummy" action
PROPRIO_DIMS = {"eef_pos_gripper": 5, "eef_pose_gripper": 8}
HORIZON = 100_000  # robosuite's own time limit stays out of the way; LiberoEnv counts steps


def to_libero_actions(actions: np.ndarray) -> np.ndarray:
    """Our actions [..., 7] in [-1, 1] -> LIBERO's (OSC_POSE deltas + gripper).

    The six arm dimensions pass through (clipped to [-1, 1], the controller's input range). The
    gripper follows our convention, `gripper > 0` = close, and LIBERO's raw convention is the
    same sign: -1 opens, +1 closes. robosuite's Panda gripper only uses the sign (it moves the
    fingers a fixed amount per step) and treats 0 as "hold", so it is binarised: > 0 -> +1 (close),
    <= 0 -> -1 (open). (OpenVLA flips the sign only because its training data stores 1 = open.)
    """
    out = np.clip(np.asarray(actions, dtype=np.float64), -1.0, 1.0)
    out[..., 6] = np.where(out[..., 6] > 0, 1.0, -1.0)
    return out


@dataclass(frozen=True)
class SimSettings:
    image_size: int = 128
    camera: str = "agentview"
    render: bool = True
    proprio: str = "eef_pos_gripper"
    settle_steps: int = 10
    cached_sims: int = 4
    mujoco_gl: str = "egl"
    assets_dir: str | None = None


@dataclass
class _Snapshot:
    mujoco_state: np.ndarray
    body_pos: np.ndarray  # the model's body placements: LIBERO moves fixtures there on reset
    body_quat: np.ndarray
    controllers: list[tuple[dict[str, np.ndarray], bool]]
    gripper_actions: list[np.ndarray]
    timestep: int
    cur_time: float


@dataclass
class _Episode:
    bddl_file: str
    snapshot: _Snapshot


class LiberoSims:
    """The simulators of one worker and the episodes they host (rows 0..n-1 of the last reset)."""

    def __init__(self, settings: SimSettings):
        self.settings = settings
        prepare_libero(settings.assets_dir)
        try:
            import mujoco
            from libero.libero.envs.env_wrapper import ControlEnv
            from robosuite.utils import transform_utils
        except ImportError as err:
            raise LiberoSetupError(
                f"the LIBERO simulator cannot be imported ({err}): {INSTALL_HINT}"
            ) from err
        self._mujoco = mujoco
        self._env_cls = ControlEnv
        self._transforms = transform_utils
        self._state_spec = mujoco.mjtState.mjSTATE_INTEGRATION
        self.sims: OrderedDict[str, Any] = OrderedDict()  # bddl file -> env, least recent first
        self.holder: dict[str, int] = {}  # bddl file -> the episode row its simulator holds now
        self.episodes: list[_Episode] = []

    # --- the commands a worker answers ---------------------------------------------------------

    def reset(self, jobs: list[tuple[str, int, np.ndarray]]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Start one episode per (bddl file, init state index, init state); -> (image, proprio).

        A GRPO group starts G episodes from one init state: that start is simulated once and
        copied (it is deterministic, fixtures included)."""
        self._keep_only({bddl for bddl, _, _ in jobs})
        self.episodes, self.holder = [], {}
        out, started = [], {}
        for row, (bddl, index, state) in enumerate(jobs):
            if (bddl, index) in started:
                snapshot, observation = started[bddl, index]
                self.episodes.append(_Episode(bddl, copy.deepcopy(snapshot)))
                out.append(observation)
                continue
            env = self._sim(bddl)
            outer_rng = np.random.get_state()  # LIBERO samples fixture poses from the global RNG
            np.random.seed(zlib.crc32(f"{os.path.basename(bddl)}:{index}".encode()))
            try:
                env.reset()
            finally:
                np.random.set_state(outer_rng)
            for robot in env.robots:  # a soft reset keeps the last episode's gripper command
                robot.gripper.current_action = np.zeros(robot.gripper.dof)
            env.set_init_state(state)
            for _ in range(self.settings.settle_steps):
                env.step(SETTLE_ACTION)
            self.episodes.append(_Episode(bddl, self._snapshot(env)))
            self.holder[bddl] = row
            out.append(self._observe(env))
            started[bddl, index] = (self.episodes[-1].snapshot, out[-1])
        return out

    def step(
        self, rows: list[int], actions: np.ndarray, limits: list[int]
    ) -> list[tuple[np.ndarray, np.ndarray, bool, int]]:
        """Run `actions[i]` ([L, 7], LIBERO convention) in episode rows[i] for at most limits[i]
        steps, stopping at success; -> (image, proprio, success, steps) of each."""
        out = []
        for row, chunk, limit in zip(rows, actions, limits, strict=True):
            episode = self.episodes[row]
            env = self._activate(row)
            steps, success = 0, False
            for action in chunk[: max(0, int(limit))]:
                _, _, done, _ = env.step(action)
                steps += 1
                if done:  # LIBERO's `done` is its goal predicate: the task succeeded
                    success = True
                    break
            episode.snapshot = self._snapshot(env)
            out.append((*self._observe(env), success, steps))
        return out

    def close(self) -> None:
        while self.sims:
            _, env = self.sims.popitem()
            env.close()
        self.holder.clear()

    # --- simulators ----------------------------------------------------------------------------

    def _sim(self, bddl: str):
        if bddl not in self.sims:
            s = self.settings
            env = self._env_cls(
                bddl_file_name=bddl,
                use_camera_obs=False,  # we render once per chunk, not on every step
                has_offscreen_renderer=s.render,
                camera_names=[s.camera],
                camera_heights=s.image_size,
                camera_widths=s.image_size,
                hard_reset=False,
                horizon=HORIZON,
                ignore_done=True,
            )
            env.seed(0)
            self.sims[bddl] = env
        self.sims.move_to_end(bddl)
        return self.sims[bddl]

    def _keep_only(self, needed: set[str]) -> None:
        """Close the least recently used idle simulators beyond `cached_sims` (before building new
        ones, so memory never holds both)."""
        idle = [bddl for bddl in self.sims if bddl not in needed]
        for bddl in idle[: max(0, len(idle) - self.settings.cached_sims)]:
            self.sims.pop(bddl).close()

    def _activate(self, row: int):
        """The simulator of episode `row`, holding that episode's state."""
        bddl = self.episodes[row].bddl_file
        env = self.sims[bddl]
        if self.holder.get(bddl) != row:
            self._restore(env, self.episodes[row].snapshot)
            self.holder[bddl] = row
        return env

    def _snapshot(self, env) -> _Snapshot:
        mj = self._mujoco
        model, data = env.sim.model._model, env.sim.data._data
        state = np.empty(mj.mj_stateSize(model, self._state_spec))
        mj.mj_getState(model, data, state, self._state_spec)
        controllers = [
            (
                {k: v.copy() for k, v in vars(r.controller).items() if isinstance(v, np.ndarray)},
                r.controller.new_update,
            )
            for r in env.robots
        ]
        grippers = [np.array(r.gripper.current_action, copy=True) for r in env.robots]
        body_pos, body_quat = model.body_pos.copy(), model.body_quat.copy()
        return _Snapshot(
            state, body_pos, body_quat, controllers, grippers, env.env.timestep, env.env.cur_time
        )

    def _restore(self, env, snap: _Snapshot) -> None:
        mj = self._mujoco
        model, data = env.sim.model._model, env.sim.data._data
        model.body_pos[:], model.body_quat[:] = snap.body_pos, snap.body_quat
        mj.mj_setState(model, data, snap.mujoco_state, self._state_spec)
        mj.mj_forward(model, data)
        for robot, (arrays, new_update), gripper in zip(
            env.robots, snap.controllers, snap.gripper_actions, strict=True
        ):
            for name, value in arrays.items():
                setattr(robot.controller, name, value.copy())
            robot.controller.new_update = new_update
            robot.gripper.current_action = gripper.copy()
        env.env.timestep, env.env.cur_time = snap.timestep, snap.cur_time
        env.env._post_process()  # LIBERO's object states (e.g. a stove's flame) follow the joints

    # --- observations --------------------------------------------------------------------------

    def _observe(self, env) -> tuple[np.ndarray, np.ndarray]:
        """(image [S, S, 3] uint8, proprio [P] float32) of the simulator's current state."""
        s = self.settings
        env.sim.forward()  # derived positions of the state itself, not of the last substep's start
        if s.render:
            raw = env.sim.render(camera_name=s.camera, width=s.image_size, height=s.image_size)
            image = np.ascontiguousarray(raw[::-1, ::-1])  # OpenGL rows are bottom-up: rotate 180°
        else:
            image = np.zeros((s.image_size, s.image_size, 3), dtype=np.uint8)
        robot = env.robots[0]
        data = env.sim.data
        parts = [data.site_xpos[robot.eef_site_id]]
        if s.proprio == "eef_pose_gripper":
            quat = self._transforms.convert_quat(data.get_body_xquat(robot.robot_model.eef_name), to="xyzw")
            parts.append(self._transforms.quat2axisangle(quat))
        parts.append(data.qpos[robot._ref_gripper_joint_pos_indexes])
        return image, np.concatenate(parts).astype(np.float32)


def worker_main(conn, settings: dict[str, Any]) -> None:
    """A simulator process: answers ("reset" | "step", args) with ("ok", result) or an error,
    until ("close", ()) or its parent goes away."""
    os.dup2(2, 1)  # LIBERO and robosuite print on stdout; the parent's stdout is its own
    os.environ["MUJOCO_GL"] = settings["mujoco_gl"]
    os.environ["PYOPENGL_PLATFORM"] = settings["mujoco_gl"]
    try:
        sims = LiberoSims(SimSettings(**settings))
    except LiberoSetupError as err:
        conn.send(("setup_error", str(err)))
        return
    except BaseException:
        conn.send(("error", traceback.format_exc()))
        return
    conn.send(("ok", None))
    try:
        while True:
            try:
                command, args = conn.recv()
            except (EOFError, OSError):
                break
            if command == "close":
                break
            try:
                conn.send(("ok", getattr(sims, command)(*args)))
            except Exception:
                conn.send(("error", traceback.format_exc()))
    finally:
        sims.close()

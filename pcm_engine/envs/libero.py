"""LIBERO behind the VecEnv protocol: real MuJoCo manipulation tasks (needs the `libero` extra).

- Suites libero_spatial / object / goal / 10, ten tasks each, each with 50 fixed init states.
  `env.tasks` restricts the suite (task id i is suite task `tasks[i]`); the train split is the first
  `train_init_states` of the 50, the eval split the last `eval_init_states` (50 + 50: both use all
  of them, as OpenVLA's evaluation does).
- An episode: reset to the init state, `settle_steps` no-op steps (not counted), then at most
  `max_steps` policy steps (default: OpenVLA's per-suite limits); success is LIBERO's own goal
  check and ends the episode.
- Actions: 7-D `[dx, dy, dz, droll, dpitch, dyaw, gripper]` in [-1, 1], gripper > 0 = close; see
  `to_libero_actions` for the mapping to LIBERO's -1 open / +1 close.
- Observations (rendered once per chunk): the `camera` image, `image_size` square, rotated 180° as
  in OpenVLA; proprio = end-effector position (+ axis-angle) + the two finger joint positions.
- Parallelism: `num_workers` simulator processes (spawn context). Episodes are sorted by task and
  split evenly, so a worker hosts few tasks and one simulator serves all its episodes of a task
  (see libero_sim.py). `num_workers: 0` steps everything in this process.
"""

from __future__ import annotations

import multiprocessing
import os
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from pcm_engine.config import LiberoConfig
from pcm_engine.envs.base import ChunkStep, Observation, Split
from pcm_engine.envs.libero_setup import SUITE_MAX_STEPS, LiberoSetupError, load_suite
from pcm_engine.envs.libero_sim import PROPRIO_DIMS, LiberoSims, SimSettings, to_libero_actions, worker_main

ACTION_DIM = 7
WORKER_JOIN_S = 20.0


class LiberoEnv:
    """VecEnv over LIBERO simulators. Use as a context manager (or call `close`) to stop the
    worker processes early; otherwise they stop when this object is collected or at exit."""

    action_dim = ACTION_DIM
    score_dims = tuple(range(ACTION_DIM))  # the arm's 6-DoF delta pose and the gripper: all act

    def __init__(self, config: LiberoConfig | None = None):
        self.config = cfg = config or LiberoConfig()
        catalogue = load_suite(cfg.suite, cfg.assets_dir)
        self.suite_tasks = list(cfg.tasks) if cfg.tasks is not None else list(range(len(catalogue)))
        self.task_info = [catalogue[t] for t in self.suite_tasks]
        self.init_states_per_task = min(len(t.init_states) for t in self.task_info)
        self.max_steps = cfg.max_steps or SUITE_MAX_STEPS[cfg.suite]
        self.image_size = cfg.image_size
        self.proprio_dim = PROPRIO_DIMS[cfg.proprio]
        self._settings = SimSettings(
            image_size=cfg.image_size,
            camera=cfg.camera,
            render=cfg.render,
            proprio=cfg.proprio,
            settle_steps=cfg.settle_steps,
            cached_sims=cfg.cached_sims,
            mujoco_gl=cfg.mujoco_gl,
            assets_dir=cfg.assets_dir,
        )
        self._workers: _Workers | None = None
        self._placement: list[tuple[int, int]] = []  # env row -> (worker, row inside the worker)
        self._images = np.zeros((0, self.image_size, self.image_size, 3), dtype=np.uint8)
        self._proprio = np.zeros((0, self.proprio_dim), dtype=np.float32)
        self._instructions: list[str] = []
        self._success = np.zeros(0, dtype=bool)
        self._elapsed = np.zeros(0, dtype=np.int64)

    # --- VecEnv --------------------------------------------------------------------------------

    @property
    def num_tasks(self) -> int:
        return len(self.task_info)

    def instruction(self, task: int) -> str:
        return self.task_info[task].instruction

    def num_init_states(self, split: Split) -> int:
        wanted = self.config.train_init_states if split == "train" else self.config.eval_init_states
        return min(wanted, self.init_states_per_task)

    def init_state_index(self, split: Split, index: int) -> int:
        """Index among a task's 50 init states of entry `index` of `split`."""
        if split not in ("train", "eval"):
            raise ValueError(f"split must be 'train' or 'eval', got '{split}'")
        if not 0 <= index < self.num_init_states(split):
            raise ValueError(f"{split} init state {index} out of range 0..{self.num_init_states(split) - 1}")
        return index if split == "train" else self.init_states_per_task - self.num_init_states(split) + index

    def reset(self, tasks: Sequence[int], init_states: Sequence[int], split: Split) -> Observation:
        tasks, init_states = list(tasks), list(init_states)
        if len(tasks) != len(init_states) or not tasks:
            raise ValueError("reset needs one init state per task, and at least one episode")
        if any(not 0 <= t < self.num_tasks for t in tasks):
            raise ValueError(f"task ids must be in 0..{self.num_tasks - 1}, got {tasks}")
        jobs = []
        for task, init in zip(tasks, init_states, strict=True):
            info, index = self.task_info[task], self.init_state_index(split, init)
            jobs.append((info.bddl_file, index, info.init_states[index]))
        workers = self._start()
        # Sort by task and split evenly: each worker hosts as few tasks (simulators) as possible.
        order = np.argsort(np.asarray(tasks), kind="stable")
        parts = np.array_split(order, workers.size)
        self._placement = [(0, 0)] * len(tasks)
        calls = {}
        for w, rows in enumerate(parts):
            calls[w] = ("reset", ([jobs[r] for r in rows],))
            for j, r in enumerate(rows):
                self._placement[r] = (w, j)
        results = workers.call(calls)
        n = len(tasks)
        self._images = np.zeros((n, self.image_size, self.image_size, 3), dtype=np.uint8)
        self._proprio = np.zeros((n, self.proprio_dim), dtype=np.float32)
        for w, rows in enumerate(parts):
            for r, (image, proprio) in zip(rows, results[w], strict=True):
                self._images[r], self._proprio[r] = image, proprio
        self._instructions = [self.instruction(t) for t in tasks]
        self._success = np.zeros(n, dtype=bool)
        self._elapsed = np.zeros(n, dtype=np.int64)
        return self._observation()

    def step_chunk(self, actions: np.ndarray) -> ChunkStep:
        n = len(self._success)
        if n == 0:
            raise RuntimeError("call reset() before step_chunk()")
        actions = np.asarray(actions)
        if actions.ndim != 3 or actions.shape[0] != n or actions.shape[2] != ACTION_DIM:
            raise ValueError(f"actions must be [{n}, L, {ACTION_DIM}], got {actions.shape}")
        libero_actions = to_libero_actions(actions)
        live = np.flatnonzero(~self.done)
        by_worker: dict[int, list[int]] = {}
        for r in live:
            by_worker.setdefault(self._placement[r][0], []).append(int(r))
        calls = {
            w: (
                "step",
                (
                    [self._placement[r][1] for r in rows],
                    libero_actions[rows],
                    [int(self.max_steps - self._elapsed[r]) for r in rows],
                ),
            )
            for w, rows in by_worker.items()
        }
        results = self._start().call(calls)
        steps = np.zeros(n, dtype=np.int64)
        for w, rows in by_worker.items():
            for r, (image, proprio, success, taken) in zip(rows, results[w], strict=True):
                self._images[r], self._proprio[r] = image, proprio
                self._success[r] |= success
                steps[r] = taken
        self._elapsed += steps
        return ChunkStep(obs=self._observation(), success=self._success.copy(), done=self.done, steps=steps)

    # --- state ---------------------------------------------------------------------------------

    @property
    def done(self) -> np.ndarray:
        return self._success | (self._elapsed >= self.max_steps)

    @property
    def elapsed(self) -> np.ndarray:
        return self._elapsed.copy()

    def _observation(self) -> Observation:
        return Observation(
            images=self._images.copy(), proprio=self._proprio.copy(), instructions=list(self._instructions)
        )

    # --- workers -------------------------------------------------------------------------------

    def _start(self) -> _Workers:
        if self._workers is None:
            if self.config.num_workers == 0:
                self._workers = _InProcess(self._settings)
            else:
                self._workers = _Processes(self._settings, self.config.num_workers)
        return self._workers

    def close(self) -> None:
        if self._workers is not None:
            self._workers.close()
            self._workers = None

    def __enter__(self) -> LiberoEnv:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Workers:
    size: int

    def call(self, calls: dict[int, tuple[str, tuple]]) -> dict[int, Any]:
        """Run {worker: (command, args)} (in parallel where there are processes) -> {worker: result}."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _InProcess(_Workers):
    size = 1

    def __init__(self, settings: SimSettings):
        # robosuite picks its OpenGL backend when it is first imported.
        os.environ.setdefault("MUJOCO_GL", settings.mujoco_gl)
        os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
        self.sims = LiberoSims(settings)

    def call(self, calls):
        return {w: getattr(self.sims, command)(*args) for w, (command, args) in calls.items()}

    def close(self):
        self.sims.close()


class _Processes(_Workers):
    """`size` simulator processes (spawn: no CUDA or torch state is inherited)."""

    def __init__(self, settings: SimSettings, size: int):
        self.size = size
        context = multiprocessing.get_context("spawn")
        self.conns, self.procs = [], []
        for _ in range(size):
            parent, child = context.Pipe()
            proc = context.Process(
                target=worker_main, args=(child, vars(settings).copy()), daemon=True, name="libero-sim"
            )
            proc.start()
            child.close()  # so that a dead worker reads as EOF here
            self.conns.append(parent)
            self.procs.append(proc)
        self._finalizer = weakref.finalize(self, _shutdown, self.conns, self.procs)
        self._receive(range(size))  # every worker imported LIBERO and answered

    def call(self, calls):
        for w, message in calls.items():
            self.conns[w].send(message)
        return self._receive(calls)

    def _receive(self, workers) -> dict[int, Any]:
        results, failures, setup_error = {}, [], None
        for w in workers:
            try:
                status, payload = self.conns[w].recv()
            except (EOFError, OSError):
                self.procs[w].join(timeout=5)
                failures.append(
                    f"worker {w} exited (code {self.procs[w].exitcode}) without answering; its "
                    "output is above (out of memory? a simulator needs about 1 GB)"
                )
                continue
            if status == "ok":
                results[w] = payload
            elif status == "setup_error":
                setup_error = payload
            else:
                failures.append(f"worker {w}:\n{payload}")
        if setup_error is not None:
            self.close()
            raise LiberoSetupError(setup_error)
        if failures:
            raise RuntimeError("LIBERO simulator failed: " + "\n".join(failures))
        return results

    def close(self):
        self._finalizer()


def _shutdown(conns, procs) -> None:
    for conn in conns:
        try:
            conn.send(("close", ()))
        except (OSError, ValueError):
            pass
    for proc in procs:
        proc.join(timeout=WORKER_JOIN_S)
        if proc.is_alive():
            proc.terminate()
            proc.join(timeout=5)
    for conn in conns:
        conn.close()

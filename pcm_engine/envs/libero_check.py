"""`pcm env-check`: run a LIBERO task with random actions, to check an install and time the simulator."""

from __future__ import annotations

import time

import numpy as np

from pcm_engine.config import LiberoConfig

CHUNK_LEN = 8


def run_env_check(
    suite: str,
    task: int,
    *,
    episodes: int = 1,
    max_steps: int | None = None,
    workers: int = 1,
    image_size: int = 128,
    render: bool = True,
    seed: int = 0,
    save_image: str | None = None,
) -> dict:
    """Run `episodes` episodes of one task side by side (train init states 0..episodes-1) with
    actions drawn uniformly from [-1, 1]; -> timings and outcome.

    `seconds_per_step` is stepping wall-clock time over all env steps taken (every episode's),
    with one render per chunk of 8 steps, as in training; build and reset time are `reset_s`."""
    from pcm_engine.envs.libero import LiberoEnv

    config = LiberoConfig(
        suite=suite,
        tasks=[task],
        max_steps=max_steps,
        num_workers=workers,
        image_size=image_size,
        render=render,
    )
    rng = np.random.default_rng(seed)
    with LiberoEnv(config) as env:
        start = time.perf_counter()
        obs = env.reset([0] * episodes, list(range(episodes)), "train")
        reset_s = time.perf_counter() - start
        if save_image:
            _save_png(obs.images[0], save_image)
        stepping, total_steps, success = 0.0, 0, np.zeros(episodes, dtype=bool)
        while not env.done.all():
            actions = rng.uniform(-1, 1, (episodes, CHUNK_LEN, env.action_dim)).astype(np.float32)
            start = time.perf_counter()
            result = env.step_chunk(actions)
            stepping += time.perf_counter() - start
            total_steps += int(result.steps.sum())
            success = result.success
        instruction = env.instruction(0)
    return {
        "suite": suite,
        "task": task,
        "instruction": instruction,
        "episodes": episodes,
        "workers": workers,
        "steps": total_steps,
        "success": float(success.mean()),
        "seconds_per_step": stepping / max(total_steps, 1),
        "reset_s": reset_s,
    }


def _save_png(image: np.ndarray, path: str) -> None:
    from PIL import Image  # Pillow comes with the libero extra (robosuite needs it)

    Image.fromarray(image).save(path)

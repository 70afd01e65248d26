"""A run launched with `train.tensorboard: true` is mirrored by its worker to TensorBoard event files
in the run folder, holding the very values the dashboard serves."""

from __future__ import annotations

import pytest

from pcm_engine.tensorboard_sink import TENSORBOARD_DIR
from tests.engine.test_tensorboard_sink import read_scalars

pytestmark = pytest.mark.slow


def test_the_worker_mirrors_a_run_to_tensorboard(embedded_stack):
    embedded_stack.start_api()
    embedded_stack.start_worker("w1")
    with embedded_stack.client() as client:
        run = embedded_stack.create_run(client, "tb", **{"train.tensorboard": True, "train.steps": 2})
        embedded_stack.wait_status(client, run["id"], ("succeeded",))
        series = client.get(f"/api/runs/{run['id']}/metrics").json()["series"]
    scalars = read_scalars(embedded_stack.settings.runs_dir / str(run["id"]) / TENSORBOARD_DIR)
    assert series and set(series) <= set(scalars)
    for name, points in series.items():
        for step, value in points:
            assert scalars[name][step] == pytest.approx(value, rel=1e-6, abs=1e-30), (name, step)

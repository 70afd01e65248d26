"""`train.tensorboard: true` mirrors every metric of a run to TensorBoard event files in the run
folder, which TensorBoard's own reader reads back with the values the run logged."""

import pytest

from pcm_engine.metrics import read_metrics
from pcm_engine.tensorboard_sink import TENSORBOARD_DIR
from tests.engine.conftest import tiny_config

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def read_scalars(log_dir) -> dict[str, dict[int, float]]:
    acc = event_accumulator.EventAccumulator(str(log_dir), size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    return {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}


def test_pcm_train_mirrors_every_metric_to_tensorboard(tmp_path):
    from pcm_engine.cli import run_training

    config = tiny_config(**{"train.tensorboard": True, "train.steps": 2, "eval.every": 1})
    run_training(config, tmp_path / "run")
    rows = read_metrics(tmp_path / "run")
    scalars = read_scalars(tmp_path / "run" / TENSORBOARD_DIR)
    logged = {(row["step"], name): value for row in rows for name, value in row.items() if name != "step"}
    assert {name for _, name in logged} == set(scalars)
    for (step, name), value in logged.items():
        assert scalars[name][step] == pytest.approx(value, rel=1e-6, abs=1e-30)  # float32 in the file


def test_no_event_files_unless_asked(tmp_path):
    from pcm_engine.cli import run_training

    run_training(tiny_config(**{"train.steps": 1}), tmp_path / "run")
    assert not (tmp_path / "run" / TENSORBOARD_DIR).exists()

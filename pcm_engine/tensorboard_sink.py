"""Mirror a run's metrics to TensorBoard event files (`<run dir>/tensorboard/`), so that a lab's
TensorBoard habits keep working: `tensorboard --logdir <run dir>` needs no server of ours.

Turned on by `train.tensorboard: true`; the CLI (`pcm train`) and the worker both wrap their own
sink with `mirror_sinks`. Chunk masks are not metrics and are not mirrored."""

from __future__ import annotations

from pathlib import Path

from pcm_engine.config import RunConfig
from pcm_engine.metrics import ChunkRecord, FanOutSink, MetricSink

TENSORBOARD_DIR = "tensorboard"


class TensorBoardSink:
    """Every metric of every step as a TensorBoard scalar (tag = the metric name, e.g.
    `eval/success_rate`), through `torch.utils.tensorboard.SummaryWriter`."""

    def __init__(self, run_dir: str | Path):
        # imported here: the `tensorboard` package is needed only by runs that ask for the mirror
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = Path(run_dir) / TENSORBOARD_DIR
        self._writer = SummaryWriter(log_dir=str(self.log_dir))

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        for name, value in metrics.items():
            self._writer.add_scalar(name, float(value), global_step=step)
        self._writer.flush()  # a live `tensorboard --logdir` sees each step as it lands

    def log_chunks(self, step: int, records: list[ChunkRecord]) -> None:
        pass

    def close(self) -> None:
        self._writer.close()


def mirror_sinks(sink: MetricSink, config: RunConfig, run_dir: str | Path) -> MetricSink:
    """`sink`, teed into the mirrors `config` asks for (today: TensorBoard)."""
    if not config.train.tensorboard:
        return sink
    return FanOutSink(sink, TensorBoardSink(run_dir))

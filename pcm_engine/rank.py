"""One rank of a distributed `pcm train` (started by `torch.distributed.run`, see
`pcm_engine.launch`): `python -m pcm_engine.rank --run-dir DIR` trains DIR's config.yaml as its
rank; rank 0 writes metrics.jsonl and shows the progress bar."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pcm_engine.config import RunConfig
from pcm_engine.distributed import join_process_group, launched_context, leave_process_group, rank_device
from pcm_engine.metrics import MetricSink, NullSink

if TYPE_CHECKING:
    from pcm_engine.trainer import Trainer


def run_rank(
    config: RunConfig,
    run_dir: Path,
    main_sink: MetricSink,
    main_hooks: Callable[[Trainer], dict] | None = None,
) -> Trainer:
    """Join the run's process group, train this rank's share, leave; returns the trainer (its
    `stopped_early`, `step_count`). `main_sink` receives what rank 0 reports (the other ranks
    report nothing); `main_hooks(trainer)`, asked on rank 0 once the trainer is made (resumed),
    gives `Trainer.train`'s hooks — rank 0's stop answer is broadcast to every rank."""
    from pcm_engine.trainer import Trainer

    context = launched_context()
    if context is None:
        raise RuntimeError("not started by torch.distributed.run (no RANK/WORLD_SIZE/LOCAL_RANK)")
    device = rank_device(config.train.device, context)
    join_process_group(context, config.dist.backend, device, config.dist.timeout_s)
    sink = main_sink if context.is_main else NullSink()
    finished = False
    try:
        trainer = Trainer(config, run_dir, sink, dist=context)
        hooks = main_hooks(trainer) if context.is_main and main_hooks is not None else {}
        trainer.train(**hooks)
        finished = True
        return trainer
    finally:
        leave_process_group(finished=finished)


def main(argv: list[str] | None = None) -> None:
    from pcm_engine.cli import ProgressSink
    from pcm_engine.metrics import FanOutSink, JsonlSink
    from pcm_engine.tensorboard_sink import mirror_sinks

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run-dir", required=True)
    args = parser.parse_args(argv)
    run_dir = Path(args.run_dir)
    config = RunConfig.load(run_dir / "config.yaml")
    context = launched_context()
    sink: MetricSink = NullSink()
    if context is not None and context.is_main:
        sink = mirror_sinks(
            FanOutSink(JsonlSink(run_dir), ProgressSink(total=config.train.steps, desc=config.name)),
            config,
            run_dir,
        )
    try:
        run_rank(config, run_dir, sink)
    finally:
        sink.close()


if __name__ == "__main__":
    main()

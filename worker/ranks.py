"""One rank of a distributed run started by a worker (worker/distributed.py):

    python -m torch.distributed.run ... --module worker.ranks --run-id N --worker NAME

Every rank trains run_dir/config.yaml (which the worker wrote) as its rank. Rank 0 does what the
worker's in-process training does — metrics into the database, checkpoints registered, the run's
cancel / taken-away / media requests read from its row — and also stops when the worker asks
(run_dir/ranks_stop); it writes run_dir/ranks_outcome.json when training returns. The settings
(database, data dir) come from the environment the worker passed on."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from backend.store.settings import get_settings
from worker.distributed import RanksOutcome, requested_stop
from worker.heartbeat import Attachment
from worker.runner import RunExecution, StopCheck, StopReason


@dataclass
class RankStopCheck(StopCheck):
    """Rank 0's `should_stop`: the worker's StopCheck, where the worker's shutdown and its lost
    heartbeat arrive as a request in `run_dir` (they happen in the worker's process, not here)."""

    run_dir: Path | None = None

    def local_reason(self) -> StopReason | None:
        return requested_stop(self.run_dir)


class MainRank:
    """Rank 0's part: the database sink, the trainer's hooks, the outcome file."""

    def __init__(self, execution: RunExecution, config):
        self.execution = execution
        self.sink = execution.sink(config)
        self.stop = RankStopCheck(
            execution.url,
            execution.run_id,
            execution.worker_name,
            Attachment(execution.run_id),
            run_dir=execution.run_dir,
        )

    def hooks(self, trainer) -> dict:
        self.execution.announce_resume(trainer)
        return {
            "should_stop": self.stop,
            "should_record_media": self.stop.media_requested,
            "on_checkpoint": self.execution.on_checkpoint,
        }

    def report(self, trainer) -> None:
        reason = self.stop.reason.value if trainer.stopped_early and self.stop.reason else None
        RanksOutcome(trainer.stopped_early, reason, trainer.step_count, trainer.resume_from).save(
            self.execution.run_dir
        )


def train_rank(execution: RunExecution) -> None:
    """Train this rank's share (`pcm_engine.rank.run_rank`); rank 0 reports into the database
    and writes how training ended."""
    from pcm_engine.config import RunConfig
    from pcm_engine.distributed import launched_context
    from pcm_engine.metrics import NullSink
    from pcm_engine.rank import run_rank

    config = RunConfig.load(execution.run_dir / "config.yaml")
    context = launched_context()
    if context is None:
        raise SystemExit("worker.ranks: not started by torch.distributed.run (no RANK/WORLD_SIZE/LOCAL_RANK)")
    main = MainRank(execution, config) if context.is_main else None
    sink = main.sink if main else NullSink()
    try:
        trainer = run_rank(config, execution.run_dir, sink, main.hooks if main else None)
    finally:
        sink.close()  # every logged step is committed before the worker reads the outcome
    if main:
        main.report(trainer)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run-id", type=int, required=True)
    parser.add_argument("--worker", required=True, help="the name of the worker that owns the run")
    args = parser.parse_args(argv)
    train_rank(RunExecution(args.run_id, args.worker, get_settings()))


if __name__ == "__main__":
    main()

"""What the `train_run` task does with one run: claim it, train it with `pcm_engine.Trainer`
into the database, and record how it ended.

    too wide?     -> dist.world_size over this worker's rank slots: left queued, offered again
                     later for a bigger worker (worker/distributed.py)
    claimed?  no  -> return (a duplicate delivery, or the run was cancelled meanwhile)
    prepare       -> environment, run_dir, config, SFT start (cached, shared)
    train         -> DatabaseSink; checkpoints become Artifact rows; should_stop and
                     should_record_media (episodes asked for on the run page) are asked per step;
                     a distributed run trains in ranks that this process starts and supervises
                     (worker/distributed.py, worker/ranks.py), with the same outcomes
    outcome       -> succeeded | cancelled | queued again (SIGTERM, sent back to the broker)
                     | failed (exception) | nothing (the run was taken away: stale or requeued)

The engine is imported inside the functions, so importing this module never loads torch.
"""

from __future__ import annotations

import enum
import logging
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Row, select, update

from backend.store import lifecycle, media_requests, nodes, wakeup
from backend.store.broker import send_train_run
from backend.store.db import session_scope
from backend.store.history import HISTORY_KEY
from backend.store.models import Run
from backend.store.settings import Settings, get_settings
from worker.heartbeat import Attachment, ensure_heartbeat

log = logging.getLogger(__name__)

SHUTDOWN = threading.Event()
"""Set when the worker is asked to shut down (SIGTERM / Ctrl-C): the run checkpoints at the end
of its step and goes back to the queue for another worker."""


class StopReason(enum.Enum):
    CANCEL = "cancel"
    SHUTDOWN = "shutdown"
    LOST = "lost"


class Interrupted(Exception):
    """Raised from SFT epoch callbacks to abandon the preparation of a run that must stop."""

    def __init__(self, reason: StopReason):
        super().__init__(reason.value)
        self.reason = reason


@dataclass
class StopCheck:
    """The trainer's `should_stop`, asked once per step after its metrics are written: one read
    of the run's row tells whether a cancel was requested or the run was taken away (marked
    stale, requeued); the heartbeat thread's refusal and a worker shutdown need no read at all.

    Its `media_requested` is the trainer's `should_record_media`, asked earlier in the same step
    (after the update, before the evaluation): it reads the row too, to see whether someone asked
    for the step's episodes (backend/store/media_requests.py). The stop check reads again rather
    than reuse that row, since a cancel or a takeover during the evaluation must stop the run at
    the end of this step, not the next."""

    url: str
    run_id: int
    worker_name: str
    attachment: Attachment
    reason: StopReason | None = None

    def __call__(self) -> bool:
        if self.reason is None:
            self.reason = self.local_reason()
            if self.reason is None:
                self.reason = self._reason(self._read_row())
        return self.reason is not None

    def local_reason(self) -> StopReason | None:
        """A reason to stop that this process knows without reading the run's row: a worker
        shutdown, or the heartbeat's refusal."""
        if SHUTDOWN.is_set():
            return StopReason.SHUTDOWN
        if self.attachment.lost.is_set():
            return StopReason.LOST
        return None

    def media_requested(self) -> bool:
        """True, and the request taken, if this step's episodes were asked for."""
        row = self._read_row()
        if self._reason(row) is not None or row.media_requested_at is None:
            return False
        with session_scope(self.url) as session:
            return media_requests.take(session, self.run_id, self.worker_name)

    def _read_row(self) -> Row | None:
        with session_scope(self.url) as session:
            return session.execute(
                select(Run.status, Run.worker, Run.cancel_requested, Run.media_requested_at).where(
                    Run.id == self.run_id
                )
            ).one_or_none()

    def _reason(self, row: Row | None) -> StopReason | None:
        if row is None or row.status != "running" or row.worker != self.worker_name:
            return StopReason.LOST
        return StopReason.CANCEL if row.cancel_requested else None

    def raise_if_stopping(self, *_args: object) -> None:
        if self():
            raise Interrupted(self.reason)


def one_line_error(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}"[:1000] if first else type(exc).__name__


class RanksFailed(RuntimeError):
    """A distributed run's ranks ended with an error; `log_tail` is the end of their log
    (stored as the run's traceback)."""

    def __init__(self, message: str, log_tail: str):
        super().__init__(message)
        self.log_tail = log_tail


class RunExecution:
    """One attempt at one run, by one worker."""

    def __init__(self, run_id: int, worker_name: str, settings: Settings):
        self.run_id = run_id
        self.worker_name = worker_name
        self.settings = settings
        self.url = settings.resolved_database_url
        self.run_dir = (settings.runs_dir / str(run_id)).resolve()

    def event(self, message: str, start: dict | None = None, **extra: object) -> None:
        """A progress message on the run's stream (the status stays `running`); `start` also
        replaces the run's `start` (worker/start_progress.py)."""
        with session_scope(self.url) as session:
            if start is not None:
                session.execute(
                    update(Run)
                    .where(Run.id == self.run_id)
                    .values(start=start)
                    .execution_options(synchronize_session=False)
                )
            lifecycle.record_event(
                session, self.run_id, "status", {"status": "running", "message": message, **extra}
            )
        wakeup.publish(self.settings, self.run_id)

    def finish(self, status: str, **values: object) -> bool:
        with session_scope(self.url) as session:
            done = lifecycle.finish_run(session, self.run_id, self.worker_name, status, **values)
        wakeup.publish(self.settings, self.run_id)
        if not done:
            log.warning("run %s: not marked %s, it is no longer this worker's", self.run_id, status)
        return done

    def prepare(self, stop: StopCheck):
        """Record the environment and run_dir; the config to train, with its SFT start resolved."""
        with session_scope(self.url) as session:
            stored = session.scalar(select(Run.config).where(Run.id == self.run_id))
        policy = stored.get("policy", {})
        needs_start = policy.get("init") == "sft" and not policy.get("pretrained")
        if needs_start:
            # said before the engine loads (seconds on a busy machine): the start is this run's stage now
            self.event("preparing the SFT start", start={"state": "preparing"})
        from pcm_engine.config import RunConfig
        from pcm_engine.sft import resolve_start
        from worker.environment import capture_environment
        from worker.start_progress import RunStartProgress

        config = RunConfig.from_dict(stored)
        with session_scope(self.url) as session:
            session.execute(
                update(Run)
                .where(Run.id == self.run_id)
                .values(environment=capture_environment(config.train.device), run_dir=str(self.run_dir))
                .execution_options(synchronize_session=False)
            )
        if not needs_start:
            return config
        progress = RunStartProgress(self.settings, self.run_id, config, stop.raise_if_stopping)
        return resolve_start(config, self.settings.sft_cache_dir, progress=progress)

    def on_checkpoint(self, path: Path, step: int) -> None:
        self.record_checkpoint(path, step)
        self.event(f"checkpoint at step {step}", step=step, **{HISTORY_KEY: "checkpoint"})

    def record_checkpoint(self, path: Path, step: int) -> None:
        from worker.artifacts import prune_missing, register_artifact

        with session_scope(self.url) as session:
            register_artifact(session, self.run_id, "checkpoint", step, path)
            prune_missing(session, self.run_id)

    def announce_resume(self, trainer) -> None:
        """Record the checkpoint a `Trainer` resumed from, if any: the newest complete one on
        disk, which a killed worker may have written without getting to record it."""
        if trainer.resume_from:
            self.record_checkpoint(trainer.resumed_checkpoint, trainer.resume_from)
            self.event(
                f"resumed from the checkpoint of step {trainer.resume_from}",
                step=trainer.resume_from,
                **{HISTORY_KEY: "resumed"},
            )

    def sink(self, config):
        """The trainer's (rank 0's) MetricSink: the database, plus the configured mirrors."""
        from pcm_engine.tensorboard_sink import mirror_sinks
        from worker.db_sink import DatabaseSink

        return mirror_sinks(DatabaseSink(self.settings, self.run_id), config, self.run_dir)

    def train(self, stop: StopCheck) -> str:
        """Train to the end or until `stop`; returns the outcome status."""
        config = self.prepare(stop)  # first: it tells the run's page what it waits for before torch loads
        if config.dist.world_size > 1:
            from worker.distributed import train_ranks

            return train_ranks(self, config, stop)
        from pcm_engine.trainer import Trainer

        sink = self.sink(config)
        try:
            trainer = Trainer(config, self.run_dir, sink)
            self.announce_resume(trainer)
            trainer.train(
                should_stop=stop, should_record_media=stop.media_requested, on_checkpoint=self.on_checkpoint
            )
        finally:
            sink.close()  # every logged step is committed before the status changes
        return self.conclude(trainer.stopped_early, stop.reason, trainer.step_count)

    def conclude(self, stopped_early: bool, reason: StopReason | None, step_count: int) -> str:
        """The outcome of a training that returned: stopped early for `reason`, or done after
        `step_count` steps (its exported policy registered, the run succeeded)."""
        from worker.artifacts import register_artifact

        if stopped_early:
            return self.stopped(reason)
        with session_scope(self.url) as session:
            register_artifact(session, self.run_id, "policy", step_count, self.run_dir / "policy")
        self.finish("succeeded", steps_done=step_count)
        return "succeeded"

    def stopped(self, reason: StopReason | None) -> str:
        """The outcome of a run stopped early (`steps_done` stays the last step the sink wrote)."""
        if reason is StopReason.CANCEL:
            self.finish("cancelled")
            return "cancelled"
        if reason is StopReason.SHUTDOWN:
            return self.requeue()
        log.warning("run %s: stopped, the run was taken away from this worker", self.run_id)
        return "lost"

    def requeue(self) -> str:
        """Back to the queue (resumed by whichever worker takes it next, from the checkpoint)."""
        if self.finish("queued"):
            send_train_run(self.run_id, self.settings)
        return "queued"

    def defer(self) -> str:
        """A message taken while this worker shuts down: leave the run for another worker."""
        with session_scope(self.url) as session:
            queued = session.scalar(select(Run.status).where(Run.id == self.run_id)) == "queued"
        if queued:
            send_train_run(self.run_id, self.settings)
        return "deferred"

    def execute(self) -> str:
        if SHUTDOWN.is_set():
            return self.defer()
        from worker.distributed import GATHERING, leave_for_later, run_shape, too_big

        world_size, nodes_count = run_shape(self)
        if (reason := too_big(self, world_size // nodes_count)) is not None:
            return leave_for_later(self, reason)
        with session_scope(self.url) as session:
            claimed = lifecycle.claim_run(session, self.run_id, self.worker_name)
            gathered = not claimed or nodes_count == 1 or nodes.gather(session, self.run_id, nodes_count)
            if not gathered:
                session.rollback()  # the claim too: the run stays queued
        if not gathered:
            return leave_for_later(self, GATHERING)
        if not claimed:
            log.info("run %s: not queued (already claimed, cancelled or gone); nothing to do", self.run_id)
            return "skipped"
        heartbeat = ensure_heartbeat(self.settings, self.worker_name)
        attachment = heartbeat.attach(self.run_id)
        stop = StopCheck(self.url, self.run_id, self.worker_name, attachment)
        try:
            return self.train(stop)
        except Interrupted as interrupted:
            return self.stopped(interrupted.reason)
        except Exception as exc:
            log.exception("run %s failed", self.run_id)
            details = exc.log_tail if isinstance(exc, RanksFailed) else traceback.format_exc()
            self.finish("failed", error=one_line_error(exc), traceback=details)
            return "failed"
        finally:
            heartbeat.detach()


def execute_run(run_id: int, worker_name: str, settings: Settings | None = None) -> str:
    """Train run `run_id` as worker `worker_name`; returns the outcome (see the module docstring)."""
    return RunExecution(run_id, worker_name, settings or get_settings()).execute()

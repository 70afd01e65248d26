"""What the `train_run` task does with one run: claim it, train it with `pcm_engine.Trainer`
into the database, and record how it ended.

    claimed?  no  -> return (a duplicate delivery, or the run was cancelled meanwhile)
    prepare       -> environment, run_dir, config, SFT start (cached, shared)
    train         -> DatabaseSink; checkpoints become Artifact rows; should_stop is asked per step
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

from sqlalchemy import select, update

from backend.store import lifecycle, wakeup
from backend.store.broker import send_train_run
from backend.store.db import session_scope
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
    """The trainer's `should_stop`, asked once per step: one read of the run's row tells whether
    a cancel was requested or the run was taken away (marked stale, requeued); the heartbeat
    thread's refusal and a worker shutdown need no read at all."""

    url: str
    run_id: int
    worker_name: str
    attachment: Attachment
    reason: StopReason | None = None

    def __call__(self) -> bool:
        if self.reason is None:
            if SHUTDOWN.is_set():
                self.reason = StopReason.SHUTDOWN
            elif self.attachment.lost.is_set():
                self.reason = StopReason.LOST
            else:
                self.reason = self._read_reason()
        return self.reason is not None

    def _read_reason(self) -> StopReason | None:
        with session_scope(self.url) as session:
            row = session.execute(
                select(Run.status, Run.worker, Run.cancel_requested).where(Run.id == self.run_id)
            ).one_or_none()
        if row is None or row.status != "running" or row.worker != self.worker_name:
            return StopReason.LOST
        return StopReason.CANCEL if row.cancel_requested else None

    def raise_if_stopping(self, *_args: object) -> None:
        if self():
            raise Interrupted(self.reason)


def one_line_error(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}"[:1000] if first else type(exc).__name__


class RunExecution:
    """One attempt at one run, by one worker."""

    def __init__(self, run_id: int, worker_name: str, settings: Settings):
        self.run_id = run_id
        self.worker_name = worker_name
        self.settings = settings
        self.url = settings.resolved_database_url
        self.run_dir = (settings.runs_dir / str(run_id)).resolve()

    def event(self, message: str, **extra: object) -> None:
        """A progress message on the run's stream (the status stays `running`)."""
        with session_scope(self.url) as session:
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
        from pcm_engine.config import RunConfig
        from pcm_engine.sft import resolve_start
        from worker.environment import capture_environment

        with session_scope(self.url) as session:
            run = session.get(Run, self.run_id)
            config = RunConfig.from_dict(run.config)
            session.execute(
                update(Run)
                .where(Run.id == self.run_id)
                .values(environment=capture_environment(config.train.device), run_dir=str(self.run_dir))
                .execution_options(synchronize_session=False)
            )
        return resolve_start(
            config,
            self.settings.sft_cache_dir,
            on_start=lambda folder: self.event("preparing SFT start", folder=str(folder)),
            on_epoch=stop.raise_if_stopping,
        )

    def on_checkpoint(self, path: Path, step: int) -> None:
        from worker.artifacts import prune_missing, register_artifact

        with session_scope(self.url) as session:
            register_artifact(session, self.run_id, "checkpoint", step, path)
            prune_missing(session, self.run_id)

    def train(self, stop: StopCheck) -> str:
        """Train to the end or until `stop`; returns the outcome status."""
        from pcm_engine.trainer import Trainer
        from worker.artifacts import register_artifact
        from worker.db_sink import DatabaseSink

        config = self.prepare(stop)
        sink = DatabaseSink(self.settings, self.run_id)
        try:
            trainer = Trainer(config, self.run_dir, sink)
            if trainer.resume_from:
                # the newest complete checkpoint on disk, which a killed worker may have written
                # without getting to record it
                self.on_checkpoint(trainer.resumed_checkpoint, trainer.resume_from)
                self.event(
                    f"resumed from the checkpoint of step {trainer.resume_from}", step=trainer.resume_from
                )
            trainer.train(should_stop=stop, on_checkpoint=self.on_checkpoint)
        finally:
            sink.close()  # every logged step is committed before the status changes
        if trainer.stopped_early:
            return self.stopped(stop.reason)
        with session_scope(self.url) as session:
            register_artifact(session, self.run_id, "policy", trainer.step_count, self.run_dir / "policy")
        self.finish("succeeded", steps_done=trainer.step_count)
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
        with session_scope(self.url) as session:
            claimed = lifecycle.claim_run(session, self.run_id, self.worker_name)
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
            self.finish("failed", error=one_line_error(exc), traceback=traceback.format_exc())
            return "failed"
        finally:
            heartbeat.detach()


def execute_run(run_id: int, worker_name: str, settings: Settings | None = None) -> str:
    """Train run `run_id` as worker `worker_name`; returns the outcome (see the module docstring)."""
    return RunExecution(run_id, worker_name, settings or get_settings()).execute()

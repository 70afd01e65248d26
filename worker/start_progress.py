"""`RunStartProgress`: how the making of a run's SFT start reaches the dashboard.

The engine reports through `pcm_engine.sft.StartProgress`; this writes each report to the run:

- `runs.start` (JSON): the start's hash and state (`waiting` | `training` | `ready`), `reused`,
  the stage and epoch in progress, the last loss, `eta_s`, and once ready `trained_at`,
  `seconds`, `success` and `task_success` (the start's eval) -- the run's lineage afterwards;
- a `sft/loss` metric row per epoch (steps 1, 2, ... across the stages, pre-training first),
  with a `metrics` event, so `GET /api/runs/{id}/metrics?names=sft/loss` and the live charts
  hold the loss while the start trains (steps_done and the summary are left alone);
- a `status` event per report: a progress note (`message`), or a history note (`history`:
  start_training / start_reused / start_trained, see backend/store/history.py).

After each epoch it asks `check_stop`, which raises to abandon the start of a run that must stop.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import update

from backend.store import wakeup
from backend.store.db import session_scope
from backend.store.history import HISTORY_KEY
from backend.store.lifecycle import record_event
from backend.store.models import Metric, Run
from backend.store.settings import Settings
from pcm_engine import metrics as M
from pcm_engine.config import RunConfig
from pcm_engine.sft import Stage, StartProgress, remaining_seconds, stages
from worker.upsert import upsert

TASK_PREFIX = M.eval_task_metric(0).rsplit("/", 1)[0] + "/"


def start_summary(key: str, info: dict[str, Any], *, reused: bool) -> dict[str, Any]:
    """`runs.start` of a ready start, from its `start_info`."""
    metrics = info.get("metrics") or {}
    return {
        "hash": key,
        "state": "ready",
        "reused": reused,
        "trained_at": info.get("trained_at"),
        "seconds": info.get("seconds"),
        "success": metrics.get(M.EVAL_SUCCESS),
        "sft_loss": metrics.get(M.SFT_LOSS),
        "task_success": {
            name.removeprefix(TASK_PREFIX): value
            for name, value in metrics.items()
            if name.startswith(TASK_PREFIX)
        },
    }


def describe_ready(summary: dict[str, Any]) -> str:
    """ "start <hash> (trained <date>, success X%)"."""
    parts = []
    if summary.get("trained_at"):
        parts.append(f"trained {datetime.fromisoformat(summary['trained_at']):%Y-%m-%d %H:%M} UTC")
    if summary.get("success") is not None:
        parts.append(f"success {summary['success']:.0%}")
    return f"start {summary['hash']}" + (f" ({', '.join(parts)})" if parts else "")


def minutes(seconds: float) -> str:
    return f"~{max(1, round(seconds / 60))} min" if seconds >= 30 else "<1 min"


class RunStartProgress(StartProgress):
    """Writes the progress of `config`'s start to run `run_id` (see the module docstring)."""

    def __init__(self, settings: Settings, run_id: int, config: RunConfig, check_stop: Callable[[], None]):
        self.settings = settings
        self.url = settings.resolved_database_url
        self.run_id = run_id
        self.config = config
        self.check_stop = check_stop
        plan = stages(config)
        self.final = plan[-1].index
        self.first_step = {s.index: sum(p.epochs for p in plan if p.index < s.index) for s in plan}
        self.start: dict[str, Any] = {}
        self.epoch_seconds: list[float] = []

    # --- the engine's reports -----------------------------------------------------------------

    def reused(self, stage: Stage, key: str, info: dict) -> None:
        if stage.index != self.final:
            self._write(f"reusing the pre-trained stage {key} (stage 1 of {stage.count})")
            return
        self.start = start_summary(key, info, reused=True)
        self._write(f"reusing {describe_ready(self.start)}", history="start_reused")

    def waiting(self, stage: Stage, key: str) -> None:
        self.start = {**self.start, "hash": self.start.get("hash", key), "state": "waiting"}
        self._write(
            f"waiting for start {key} (stage {stage.index} of {stage.count}): another run is training it"
        )

    def training(self, stage: Stage, key: str) -> None:
        if stage.index == self.final:
            total = sum(s.epochs for s in stages(self.config))
            self.start = {"hash": key, "state": "training", "reused": False, "stages": stage.count}
            message = f"training start {key}: {stage.count} stage(s), {total} epochs"
            self._write(message, history="start_training")
        else:
            self._write(f"training the pre-trained stage {key} (stage {stage.index} of {stage.count})")
        self.epoch_seconds = []
        self.start.update(stage=stage.index, stages=stage.count, epoch=0, epochs=stage.epochs, eta_s=None)
        self.stage_began = time.time()

    def demos_collected(self, stage: Stage, chunks: int) -> None:
        self.start.update(stage=stage.index, epochs=stage.epochs, demo_chunks=chunks)
        self._write(f"stage {stage.index} of {stage.count}: {chunks} demo chunks collected, fitting")

    def epoch(self, stage: Stage, epoch: int, loss: float, seconds: float) -> None:
        self.epoch_seconds.append(seconds)
        pace = sum(self.epoch_seconds) / len(self.epoch_seconds)
        eta = remaining_seconds(self.config, stage, epoch, pace)
        self.start.update(stage=stage.index, epoch=epoch, epochs=stage.epochs, loss=loss, eta_s=round(eta, 1))
        step = self.first_step[stage.index] + epoch
        self._loss(step, loss)
        message = (
            f"training start {self.start.get('hash')}: stage {stage.index} of {stage.count}, "
            f"epoch {epoch} of {stage.epochs}, {minutes(eta)} left"
        )
        self._write(message)
        self.check_stop()

    def trained(self, stage: Stage, key: str, info: dict) -> None:
        if stage.index != self.final:
            self._write(f"pre-trained stage {key} ready")
            return
        self.start = start_summary(key, info, reused=False)
        took = f" in {minutes(info['seconds'])}" if info.get("seconds") else ""
        self._write(f"{describe_ready(self.start)} trained{took}", history="start_trained")

    # --- writing ------------------------------------------------------------------------------

    def _write(self, message: str, history: str | None = None) -> None:
        """Store `runs.start` and a status event (a history note when `history` is given)."""
        payload: dict[str, Any] = {"status": "running", "message": message, "start": self.start.get("hash")}
        if history:
            payload[HISTORY_KEY] = history
        with session_scope(self.url) as session:
            session.execute(
                update(Run)
                .where(Run.id == self.run_id)
                .values(start=dict(self.start))
                .execution_options(synchronize_session=False)
            )
            record_event(session, self.run_id, "status", payload)
        wakeup.publish(self.settings, self.run_id)

    def _loss(self, step: int, loss: float) -> None:
        if not math.isfinite(loss):
            return
        row = {
            "run_id": self.run_id,
            "name": M.SFT_LOSS,
            "step": step,
            "value": float(loss),
            "wall_time": time.time(),
        }
        with session_scope(self.url) as session:
            upsert(session, Metric, [row], keys=("run_id", "name", "step"))
            record_event(
                session, self.run_id, "metrics", {"step": step, "metrics": {M.SFT_LOSS: loss}}, step=step
            )

"""The worker's heartbeat thread: every `heartbeat_s` it refreshes its `workers` row and, while
it trains a run, that run's `heartbeat_at` (or, holding a seat of another worker's multi-node
run, that seat's). A run whose heartbeat stops (the worker died) turns `stale`; a heartbeat
that finds the run (or the seat's attempt) no longer this worker's tells the trainer to stop."""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass, field

from sqlalchemy import delete

from backend.store import lifecycle, nodes
from backend.store.db import session_scope
from backend.store.models import WorkerRecord, utcnow
from backend.store.settings import Settings
from worker.upsert import upsert

log = logging.getLogger(__name__)


@dataclass
class Attachment:
    """The run the worker is training (`seat`: the attempt and node rank it holds of another
    worker's multi-node run); `lost` is set once its heartbeat is refused."""

    run_id: int
    seat: tuple[int, int] | None = None
    lost: threading.Event = field(default_factory=threading.Event)

    def beat(self, session, worker: str) -> bool:
        if self.seat is None:
            return lifecycle.heartbeat(session, self.run_id, worker)
        return nodes.seat_heartbeat(session, self.run_id, *self.seat, worker)


class WorkerHeartbeat(threading.Thread):
    def __init__(self, settings: Settings, name: str, devices: str = "cpu"):
        super().__init__(name=f"heartbeat-{name}", daemon=True)
        self.settings = settings
        self.worker_name = name
        self.devices = devices
        self.started_at = utcnow()
        self._attachment: Attachment | None = None
        self._lock = threading.Lock()
        self._stop_event = threading.Event()

    # --- called by the training thread ------------------------------------------------------------

    def attach(self, run_id: int, seat: tuple[int, int] | None = None) -> Attachment:
        with self._lock:
            self._attachment = Attachment(run_id, seat)
            attachment = self._attachment
        self.try_beat()  # the workers row shows the run at once
        return attachment

    def detach(self) -> None:
        with self._lock:
            self._attachment = None
        self.try_beat()

    def stop(self, *, forget: bool = True) -> None:
        """End the thread; `forget` deletes the workers row (a cleanly stopped worker is gone)."""
        self._stop_event.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout=self.settings.heartbeat_s + 5)
        if forget:
            with session_scope(self.settings.resolved_database_url) as session:
                session.execute(delete(WorkerRecord).where(WorkerRecord.name == self.worker_name))

    # --- the thread -------------------------------------------------------------------------------

    def run(self) -> None:
        while not self._stop_event.wait(self.settings.heartbeat_s):
            self.try_beat()

    def try_beat(self) -> None:
        """`beat`, logging a failure: a database hiccup must not end the heartbeat (or a run)."""
        try:
            self.beat()
        except Exception:
            log.exception("heartbeat of worker %s failed", self.worker_name)

    def beat(self) -> None:
        with self._lock:
            attachment = self._attachment
        with session_scope(self.settings.resolved_database_url) as session:
            if attachment is not None and not attachment.lost.is_set():
                if not attachment.beat(session, self.worker_name):
                    attachment.lost.set()
                    if self._attachment is attachment:  # not a run that just ended
                        log.warning("run %s is no longer this worker's; stopping it", attachment.run_id)
            now = utcnow()
            row = {
                "name": self.worker_name,
                "hostname": socket.gethostname(),
                "pid": os.getpid(),
                "devices": self.devices[:256],
                "started_at": self.started_at,
                "heartbeat_at": now,
                "current_run_id": attachment.run_id if attachment else None,
            }
            upsert(session, WorkerRecord, [row], keys=("name",))


_current: WorkerHeartbeat | None = None
_current_lock = threading.Lock()


def ensure_heartbeat(settings: Settings, name: str) -> WorkerHeartbeat:
    """This process's heartbeat thread for worker `name`, started on first use."""
    global _current
    with _current_lock:
        if _current is None or _current.worker_name != name or not _current.is_alive():
            from worker.environment import rank_slots, worker_devices

            _current = WorkerHeartbeat(settings, name, devices=worker_devices(rank_slots()))
            _current.beat()
            _current.start()
        return _current


def stop_heartbeat() -> None:
    global _current
    with _current_lock:
        if _current is not None:
            _current.stop()
            _current = None

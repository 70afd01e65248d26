"""Real service processes for tests: `pcm api`, `pcm worker` and `pcm up` as subprocesses on a
free port with a throw-away data dir, each logging to a file (printed on close, so a failing test
shows them). Used by tests/worker and the browser tests in tests/e2e.

    with ServiceStack(tmp_path) as stack:          # embedded profile: SQLite + file-system broker
        stack.start_api()
        stack.start_worker("w1")
        run = stack.client().post("/api/runs", json={"preset": "tabletop_pcm", ...}).json()

`ServiceStack(tmp_path, database_url=postgres_url, broker_url="redis://...", queue=queue_name)`
is the lab profile. Nothing here mocks anything: the processes are the ones users run.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tests.tiny import TINY

REPO = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check: Callable[[], T], timeout: float, what: str, interval: float = 0.1) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def tiny_run_request(name: str = "tiny", **overrides: Any) -> dict[str, Any]:
    """A POST /api/runs body: the tabletop preset shrunk to a run that trains ~1 s per step."""
    merged = {**TINY, "policy.init": "random", "train.torch_threads": 1, **overrides}
    return {"preset": "tabletop_pcm", "name": name, "overrides": merged}


class ServiceStack:
    """API and worker processes sharing one set of `PCM_*` settings."""

    def __init__(
        self,
        root: Path,
        *,
        database_url: str | None = None,
        broker_url: str | None = None,
        queue: str = "runs",
        env: dict[str, str] | None = None,
        start_timeout: float = 90.0,
    ):
        self.root = Path(root)
        self.data_dir = self.root / "data"
        self.logs_dir = self.root / "logs"
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.start_timeout = start_timeout
        self.env = {
            "PCM_DATA_DIR": str(self.data_dir),
            "PCM_HOST": "127.0.0.1",
            "PCM_PORT": str(self.port),
            "PCM_QUEUE": queue,
            "PCM_HEARTBEAT_S": "0.5",
            "PCM_BROKER_POLL_S": "0.2",
            "PCM_SSE_POLL_S": "0.2",
            **({"PCM_DATABASE_URL": database_url} if database_url else {}),
            **({"PCM_BROKER_URL": broker_url} if broker_url else {}),
            **(env or {}),
        }
        self.processes: dict[str, subprocess.Popen] = {}
        self._logs: dict[str, Any] = {}

    # --- settings and clients ---------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def settings(self):
        """The same Settings the processes read (for direct database access and sending tasks)."""
        from backend.store.settings import Settings

        fields = {k.removeprefix("PCM_").lower(): v for k, v in self.env.items() if k.startswith("PCM_")}
        return Settings(_env_file=None, **fields)

    def client(self, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=timeout)

    def session(self):
        """A committing database session on the stack's database (a context manager)."""
        from backend.store.db import session_scope

        return session_scope(self.settings.resolved_database_url)

    # --- processes --------------------------------------------------------------------------------

    def _environ(self) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("PCM_")}
        threads = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
        return {**inherited, **threads, **self.env}

    def spawn(self, name: str, *pcm_args: str) -> subprocess.Popen:
        """Start `pcm <pcm_args>` as process `name`, its output in logs/<name>.log."""
        if name in self.processes and self.processes[name].poll() is None:
            raise RuntimeError(f"process {name} is already running")
        log = open(self.logs_dir / f"{name}.log", "ab")
        self._logs[name] = log
        process = subprocess.Popen(
            [sys.executable, "-m", "pcm_lab.cli", *pcm_args],
            cwd=self.root,
            env=self._environ(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a signal meant for pytest never reaches the services
        )
        self.processes[name] = process
        return process

    def wait_healthy(self, process: subprocess.Popen | None = None) -> dict:
        def healthy() -> dict | None:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"process exited with {process.returncode} before serving\n{self.logs()}")
            try:
                response = httpx.get(f"{self.base_url}/api/health", timeout=2)
            except httpx.TransportError:
                return None
            return response.json() if response.status_code == 200 else None

        return wait_for(healthy, self.start_timeout, f"{self.base_url}/api/health", interval=0.2)

    def start_api(self) -> subprocess.Popen:
        process = self.spawn("api", "api")
        self.wait_healthy(process)
        return process

    def start_up(self, workers: int = 1) -> subprocess.Popen:
        """`pcm up`: the API and `workers` workers under one supervising process."""
        process = self.spawn("up", "up", "--workers", str(workers))
        self.wait_healthy(process)
        wait_for(lambda: len(self.worker_records()) >= workers, self.start_timeout, f"{workers} worker(s)")
        return process

    def start_worker(self, name: str = "w1") -> subprocess.Popen:
        """One worker named `<name>@<host>`, returned once it has registered (its first
        heartbeat, written when it is ready to take a task)."""
        return self.start_workers(name)[0]

    def start_workers(self, *names: str) -> list[subprocess.Popen]:
        """Several workers, started side by side."""
        processes = [self.spawn(name, "worker", "--name", f"{name}@%h") for name in names]

        def registered() -> bool:
            for name, process in zip(names, processes, strict=True):
                if process.poll() is not None:
                    raise RuntimeError(f"worker {name} exited with {process.returncode}\n{self.logs()}")
            found = {r.name.split("@")[0] for r in self.worker_records()}
            return found >= set(names)

        wait_for(registered, self.start_timeout, f"workers {', '.join(names)} to register", interval=0.2)
        return processes

    def signal(self, name: str, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        """Send `sig` to process `name` and wait for it to exit; returns its exit code."""
        process = self.processes[name]
        if process.poll() is None:
            process.send_signal(sig)
        return process.wait(timeout=timeout)

    def close(self, grace_s: float = 3.0) -> None:
        """SIGTERM everything, SIGKILL what is still running after `grace_s` (a test's leftovers
        need no clean shutdown); `pcm up` gets longer, so that it can stop its own children."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for name, process in self.processes.items():
            timeout = max(0.0, deadline - time.monotonic()) + (30.0 if name == "up" else 0.0)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in self._logs.values():
            log.close()
        print(self.logs())  # pytest shows it only when a test fails

    def __enter__(self) -> ServiceStack:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def logs(self, tail: int = 6000) -> str:
        parts = []
        for path in sorted(self.logs_dir.glob("*.log")):
            parts.append(f"----- {path.name} -----\n{path.read_text(errors='replace')[-tail:]}")
        return "\n".join(parts)

    # --- what the tests look at -------------------------------------------------------------------

    def worker_records(self) -> list:
        from sqlalchemy import select
        from sqlalchemy.exc import OperationalError, ProgrammingError

        from backend.store.models import WorkerRecord

        try:
            with self.session() as session:
                return list(session.scalars(select(WorkerRecord)))
        except (OperationalError, ProgrammingError):  # the tables are not created yet
            return []

    def create_run(self, client: httpx.Client, name: str = "tiny", **overrides: Any) -> dict:
        response = client.post("/api/runs", json=tiny_run_request(name, **overrides))
        assert response.status_code == 201, response.text
        return response.json()

    def wait_status(
        self, client: httpx.Client, run_id: int, statuses: tuple[str, ...], timeout: float = 120.0
    ) -> dict:
        def reached() -> dict | None:
            run = client.get(f"/api/runs/{run_id}").json()
            return run if run["status"] in statuses else None

        return wait_for(reached, timeout, f"run {run_id} to become {'|'.join(statuses)}", interval=0.05)


def read_events(client: httpx.Client, run_id: int, timeout: float = 120.0) -> Iterator[dict]:
    """The run's server-sent events (parsed `data`, with `event` and `id`) until the stream ends."""
    with client.stream("GET", f"/api/runs/{run_id}/events", timeout=timeout) as response:
        assert response.status_code == 200, response.read()
        fields: dict[str, str] = {}
        for line in response.iter_lines():
            if line:
                key, _, value = line.partition(":")
                fields[key] = value.removeprefix(" ")
                continue
            if "data" in fields:
                yield {**json.loads(fields["data"]), "event": fields.get("event"), "sse_id": fields.get("id")}
            fields = {}

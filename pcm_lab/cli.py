"""`pcm` console entry, above every layer: the engine's commands (sft, train, eval, demo, presets;
pcm_engine/cli.py) plus the service's, which start the API (backend) and the workers (worker):

    pcm up                      the embedded profile: API + worker(s) + SQLite, one command
    pcm api                     the API alone (uvicorn)
    pcm worker                  one Celery worker (one run at a time, --pool solo)
    pcm user add NAME --password P [--admin] [--lab LAB --role member]

Service packages are imported inside the commands, so `pcm train` works where only the engine is
installed. Options given here override the `PCM_*` environment variables (and reach children).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pcm_engine import cli as engine_cli

SERVICE_ENV = {"host": "PCM_HOST", "port": "PCM_PORT", "data_dir": "PCM_DATA_DIR", "queue": "PCM_QUEUE"}


def _settings(args: argparse.Namespace):
    """Settings with the command-line options applied; they are also put into this process's
    environment, so the app factory and child processes read the same values."""
    from backend.store.settings import get_settings

    for option, variable in SERVICE_ENV.items():
        value = getattr(args, option, None)
        if value is not None:
            os.environ[variable] = str(Path(value).resolve()) if option == "data_dir" else str(value)
    get_settings.cache_clear()
    return get_settings()


def _migrate(settings) -> None:
    from backend.store.db import migrate

    migrate(settings.resolved_database_url)


def _url(settings) -> str:
    host = settings.host if settings.host not in ("0.0.0.0", "::") else os.uname().nodename
    return f"http://{host}:{settings.port}/"


# --- pcm api / pcm worker ------------------------------------------------------------------------


def cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    settings = _settings(args)
    settings.check_safe_to_serve()  # before binding; the app migrates the database as it starts
    uvicorn.run(
        "backend.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        timeout_graceful_shutdown=5,  # open event streams must not hold a shutdown up
        log_level="info",
    )
    return 0


def worker_argv(settings, name: str) -> list[str]:
    """Arguments of one Celery worker: one run at a time, trained in the worker's own process."""
    return [
        "worker",
        "--pool",
        "solo",
        "--concurrency",
        "1",
        "-Q",
        settings.queue,
        "-n",
        name,
        "--loglevel",
        "INFO",
        "--without-gossip",  # peers are found through the database, not broker broadcasts
        "--without-mingle",
    ]


def cmd_worker(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.gpus is not None:
        _offer_rank_slots(args.gpus)
    from worker.app import app

    app.worker_main(worker_argv(settings, args.name or f"worker-{os.getpid()}@%h"))
    return 0


def _offer_rank_slots(gpus: int) -> None:
    """`pcm worker --gpus N`: the worker starts distributed runs (or nodes of multi-node runs) of
    up to N ranks (one per GPU); larger ones wait for a bigger worker. On a machine with CUDA, N
    can't exceed its GPUs."""
    from worker.environment import SLOTS_VARIABLE, visible_cuda_devices

    if gpus < 1:
        raise SystemExit("pcm worker: --gpus must be at least 1")
    visible = visible_cuda_devices()
    if visible and gpus > visible:
        raise SystemExit(f"pcm worker: --gpus {gpus}, but this machine has {visible} CUDA device(s)")
    os.environ[SLOTS_VARIABLE] = str(gpus)


# --- pcm up ----------------------------------------------------------------------------------------


class Supervisor:
    """Child processes that live and die together: a signal to the parent is forwarded to each
    child as SIGTERM (the worker then checkpoints its run and puts it back in the queue); a
    second signal kills them; if one child exits on its own, the others are stopped."""

    def __init__(self, commands: dict[str, list[str]]):
        self.commands = commands
        self.children: dict[str, subprocess.Popen] = {}
        self.stopping = False
        self.failed = False

    def start(self) -> None:
        for name, command in self.commands.items():
            # own process group: a terminal's Ctrl-C reaches only this parent, which forwards it once
            self.children[name] = subprocess.Popen(command, process_group=0)

    def stop(self) -> None:
        self.stopping = True
        self._send(signal.SIGTERM)

    def _send(self, sig: int) -> None:
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(sig)

    def _on_signal(self, signum: int, _frame) -> None:
        if self.stopping:
            print("pcm up: killing the services", file=sys.stderr)
            self._send(signal.SIGKILL)
        else:
            print(f"pcm up: {signal.Signals(signum).name}, stopping (again to kill)", file=sys.stderr)
            self.stop()

    def wait(self) -> int:
        """Block until every child has exited; 0 after a requested stop, 1 if a child died."""
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        while True:
            ended = [name for name, child in self.children.items() if child.poll() is not None]
            if ended and not self.stopping:
                code = self.children[ended[0]].returncode
                print(f"pcm up: {ended[0]} exited with code {code}; stopping the rest", file=sys.stderr)
                self.failed = True
                self.stop()
            if len(ended) == len(self.children):
                return 1 if self.failed else 0
            time.sleep(0.2)


def cmd_up(args: argparse.Namespace) -> int:
    from backend.store.redact import masked

    settings = _settings(args)
    settings.check_safe_to_serve()
    _migrate(settings)  # once, before the children start, so they never race to create tables
    me = [sys.executable, "-m", "pcm_lab.cli"]
    commands = {"api": [*me, "api"]}
    for i in range(1, args.workers + 1):
        commands[f"worker{i}"] = [*me, "worker", "--name", f"worker{i}-{os.getpid()}@%h"]
    supervisor = Supervisor(commands)
    supervisor.start()
    profile = "embedded" if settings.embedded else "broker " + masked(settings.resolved_broker_url)
    print(
        f"PCM Lab: dashboard at {_url(settings)} ({profile}; data in {settings.data_dir}; "
        f"{args.workers} worker(s)). Ctrl-C stops.",
        flush=True,
    )
    return supervisor.wait()


# --- pcm user add ----------------------------------------------------------------------------------


def cmd_user_add(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from backend.store.credentials import set_password
    from backend.store.db import session_scope
    from backend.store.models import ROLES, Lab, Membership, User

    if args.role not in ROLES:
        print(f"error: --role must be one of {', '.join(ROLES)}", file=sys.stderr)
        return 2
    settings = _settings(args)
    _migrate(settings)
    with session_scope(settings.resolved_database_url) as session:
        user = session.scalar(select(User).where(User.username == args.name))
        created = user is None
        if user is None:
            user = User(username=args.name)
            session.add(user)
        set_password(session, user, args.password)  # a reset revokes the user's tokens
        user.is_admin = user.is_admin or args.admin
        session.flush()
        result = {"user": user.username, "id": user.id, "created": created, "admin": user.is_admin}
        if args.lab:
            lab = session.scalar(select(Lab).where(Lab.name == args.lab))
            if lab is None:
                lab = Lab(name=args.lab)
                session.add(lab)
                session.flush()
            membership = session.get(Membership, (user.id, lab.id))
            if membership is None:
                session.add(Membership(user_id=user.id, lab_id=lab.id, role=args.role))
            else:
                membership.role = args.role
            result.update(lab=lab.name, role=args.role)
    print(json.dumps(result))
    return 0


# --- the parser ------------------------------------------------------------------------------------


def _subcommands(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    """The engine parser's sub-command table (argparse has no public accessor for it)."""
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def _serve_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", help="bind address (default PCM_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default PCM_PORT or 8000)")
    _data_arg(p)


def _data_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir", help="runs, SQLite file and broker spool (default PCM_DATA_DIR or ./pcm-data)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = engine_cli.build_parser()
    sub = _subcommands(parser)

    p = sub.add_parser("up", help="the whole service on this machine: API + worker(s) + SQLite")
    _serve_args(p)
    p.add_argument("--workers", type=int, default=1, help="worker processes, one run each (default 1)")
    p.set_defaults(service=cmd_up)

    p = sub.add_parser("api", help="the web API and dashboard (uvicorn)")
    _serve_args(p)
    p.set_defaults(service=cmd_api)

    p = sub.add_parser("worker", help="one training worker (Celery, one run at a time)")
    p.add_argument("--name", help="worker name, unique per worker (Celery's -n; %%h = host name)")
    p.add_argument("--queue", help="queue to consume (default PCM_QUEUE or runs)")
    p.add_argument(
        "--gpus",
        type=int,
        help="ranks of a distributed run this worker starts, one per device: a whole run's "
        "dist.world_size, or one node's world_size / dist.nodes of a run over several machines "
        "(then set PCM_ADVERTISE_HOST and share PCM_DATA_DIR) (default: the visible CUDA devices, "
        "or 1 without CUDA; on a CPU-only machine, CPU ranks)",
    )
    _data_arg(p)
    p.set_defaults(service=cmd_worker)

    p = sub.add_parser("user", help="manage users")
    user_sub = p.add_subparsers(dest="user_command", required=True)
    add = user_sub.add_parser("add", help="create a user (or reset their password)")
    add.add_argument("name")
    add.add_argument("--password", required=True)
    add.add_argument("--admin", action="store_true", help="make the user an administrator")
    add.add_argument("--lab", help="add the user to this lab (created if missing)")
    add.add_argument("--role", default="member", help="owner | member | viewer in --lab (default member)")
    _data_arg(add)
    add.set_defaults(service=cmd_user_add)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    service = getattr(args, "service", None)
    if service is None:
        return engine_cli.main(argv)  # the engine's commands print their JSON result themselves
    return service(args)


if __name__ == "__main__":
    sys.exit(main())

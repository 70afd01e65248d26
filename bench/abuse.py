"""The API under abuse (benchmark, not a test; issue 15): how slow does `GET /api/health` get for
everyone else while someone floods the logins or the launch route?

Starts the real API process (`pcm api`: uvicorn) on a free loopback port with `PCM_AUTH=required`,
in the embedded profile (SQLite + file-system broker) or the lab profile (PostgreSQL + Redis), signs
in a lab member, then probes `/api/health` one request at a time through three phases:

  idle         nothing else happening
  login_flood  `--flood-clients` concurrent clients posting wrong passwords for the member's
               username (scrypt per guess, unless the server backs off or bounds its hashing)
  body_burst   `--body-clients` concurrent clients, signed in as the member, posting bodies of
               exactly the server's body-size limit to the run-launch route (POST /api/runs): one
               JSON object whose `overrides` hold as many distinct unknown keys as fit (the costliest
               shape to validate), or `--body-shape padding` (one long string: pure transfer)

and reports p50/p99 of the probe per phase (target: p99 <= 100 ms on loopback while under abuse),
with what the abusers got back (status counts). The attackers run in a separate process, so their
own work does not slow the probe's timing in this one.

The limits are read from the server's settings (`Settings.max_body_bytes`, the same `PCM_*`
environment the process reads); a server without that setting is sent the issue's default, 1 MiB.
The bench finishes whatever the server does: every request has a timeout and each phase a deadline.

    python bench/abuse.py                                  # lab profile, 10 s a phase
    python bench/abuse.py --profile embedded --seconds 5 --flood-clients 20

Prints a table, then as its last line one JSON object with every number.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import REDIS_URL, create_postgres_database, drop_postgres_database  # noqa: E402
from tests.services import ServiceStack  # noqa: E402

TARGET_P99_MS = 100.0
DEFAULT_BODY_LIMIT = 1 << 20  # issue 15's default, for a server that has no body-size setting yet
ADMIN_PASSWORD = "bench-admin-password"
MEMBER, MEMBER_PASSWORD = "bench-member", "bench-member-password"
PHASES = ("idle", "login_flood", "body_burst")


# --- what the abusers send ---------------------------------------------------------------------------


def body_limit(settings: Any) -> tuple[int, str]:
    """The server's request-body limit and where it came from."""
    limit = getattr(settings, "max_body_bytes", None)
    if limit is None:
        return DEFAULT_BODY_LIMIT, "default (the server has no max_body_bytes setting)"
    return int(limit), "settings.max_body_bytes"


def launch_body(size: int, shape: str) -> bytes:
    """A POST /api/runs body of exactly `size` bytes (`size` >= 200). `keys`: overrides with as many
    distinct unknown dotted keys as fit; `padding`: one unknown override holding a long string."""
    head, tail = b'{"preset":"tabletop_pcm","name":"abuse","overrides":{', b"}}"
    pad_key = b'"abuse.pad":""'  # the last entry takes up whatever is left, to hit `size` exactly
    room = size - len(head) - len(tail) - len(pad_key)
    if room < 0:
        raise ValueError(f"a launch body needs at least {size - room} bytes")
    entries: list[bytes] = []
    if shape == "keys":
        used, index = 0, 0
        while True:
            entry = b'"abuse.k%d":0,' % index
            if used + len(entry) > room:
                break
            entries.append(entry)
            used, index = used + len(entry), index + 1
    filler = b"x" * (room - sum(map(len, entries)))
    body = head + b"".join(entries) + b'"abuse.pad":"' + filler + b'"' + tail
    assert len(body) == size, (len(body), size)
    return body


async def _abuse(
    base_url: str, clients: int, seconds: float, timeout: float, request: dict[str, Any]
) -> dict[str, Any]:
    statuses: Counter[str] = Counter()
    answer_s: list[float] = []
    deadline = time.monotonic() + seconds

    async def one_client() -> None:
        async with httpx.AsyncClient(base_url=base_url, timeout=timeout) as client:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                try:
                    response = await client.request(**request)
                    statuses[str(response.status_code)] += 1
                except httpx.HTTPError as exc:
                    statuses[type(exc).__name__] += 1
                answer_s.append(time.perf_counter() - started)

    tasks = [asyncio.create_task(one_client()) for _ in range(clients)]
    await asyncio.wait(tasks, timeout=seconds + timeout + 5)
    for task in tasks:
        task.cancel()
    return {
        "clients": clients,
        "requests": sum(statuses.values()),
        "statuses": dict(sorted(statuses.items())),
        "answer_p50_ms": 1000 * statistics.median(answer_s) if answer_s else None,
    }


def abuse_process(base_url: str, clients: int, seconds: float, timeout: float, request: dict, out) -> None:
    """The attackers (in their own process): `clients` connections sending `request` in a loop."""
    out.put(asyncio.run(_abuse(base_url, clients, seconds, timeout, request)))


# --- the probe -------------------------------------------------------------------------------------


def percentiles(latencies_s: list[float]) -> dict[str, float | None]:
    if not latencies_s:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}
    ordered = sorted(latencies_s)
    at = lambda q: 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p50_ms": at(0.50), "p99_ms": at(0.99), "max_ms": 1000 * ordered[-1]}


def probe_health(base_url: str, seconds: float, timeout: float, pause_s: float = 0.005) -> dict[str, Any]:
    """GET /api/health one after another for `seconds`; a request that times out counts with the
    timeout as its latency (a lower bound) and in `failures`."""
    latencies: list[float] = []
    failures = 0
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=base_url, timeout=timeout) as client:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                ok = client.get("/api/health").status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - started)
            failures += not ok
            time.sleep(pause_s)
    return {"probes": len(latencies), "failures": failures, **percentiles(latencies)}


def run_phase(base_url: str, args: argparse.Namespace, clients: int, request: dict | None) -> dict:
    """Probe for `args.seconds` while `clients` attackers send `request` (none: idle)."""
    if request is None:
        return {"health": probe_health(base_url, args.seconds, args.timeout)}
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    attackers = context.Process(
        target=abuse_process, args=(base_url, clients, args.seconds, args.timeout, request, results)
    )
    attackers.start()
    time.sleep(args.ramp_s)  # let the attackers connect before the probe starts timing
    health = probe_health(base_url, args.seconds - args.ramp_s, args.timeout)
    abuse = results.get(timeout=args.seconds + args.timeout + 30)
    attackers.join(timeout=10)
    return {"health": health, "abuse": abuse}


def settle(base_url: str, timeout: float = 30.0, fast_s: float = TARGET_P99_MS / 2000) -> None:
    """Wait (at most `timeout`) until /api/health answers within half the target again, so one
    phase's leftovers (requests still being worked on) do not slow the next."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=base_url, timeout=timeout) as client:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                client.get("/api/health")
            except httpx.HTTPError:
                continue
            if time.perf_counter() - started < fast_s:
                return
            time.sleep(0.2)


# --- the server ------------------------------------------------------------------------------------


def sign_in_member(client: httpx.Client) -> str:
    """The admin creates a member of a new lab; returns the member's token."""

    def login(username: str, password: str) -> str:
        response = client.post("/api/auth/login", json={"username": username, "password": password})
        response.raise_for_status()
        return response.json()["token"]

    admin = {"Authorization": f"Bearer {login('admin', ADMIN_PASSWORD)}"}
    client.post(
        "/api/users", json={"username": MEMBER, "password": MEMBER_PASSWORD}, headers=admin
    ).raise_for_status()
    lab = client.post("/api/labs", json={"name": "bench-lab"}, headers=admin)
    lab.raise_for_status()
    client.post(
        f"/api/labs/{lab.json()['id']}/members", json={"username": MEMBER, "role": "member"}, headers=admin
    ).raise_for_status()
    return login(MEMBER, MEMBER_PASSWORD)


def bench(args: argparse.Namespace) -> dict[str, Any]:
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        database, kwargs = None, {}
        if args.profile == "lab":
            url, database = create_postgres_database()
            kwargs = {"database_url": url, "broker_url": REDIS_URL, "queue": "bench-abuse"}
        env = {"PCM_AUTH": "required", "PCM_ADMIN_PASSWORD": ADMIN_PASSWORD}
        try:
            with ServiceStack(Path(tmp), env=env, **kwargs) as stack:
                stack.start_api()
                limit, limit_source = body_limit(stack.settings)
                size = args.body_bytes or limit
                with stack.client() as client:
                    member = {"Authorization": f"Bearer {sign_in_member(client)}"}
                flood = {
                    "method": "POST",
                    "url": "/api/auth/login",
                    "json": {"username": MEMBER, "password": "not-the-password"},
                }
                burst = {
                    "method": "POST",
                    "url": "/api/runs",
                    "content": launch_body(size, args.body_shape),
                    "headers": {**member, "Content-Type": "application/json"},
                }
                phases = {}
                for phase, clients, request in (
                    ("idle", 0, None),
                    ("login_flood", args.flood_clients, flood),
                    ("body_burst", args.body_clients, burst),
                ):
                    settle(stack.base_url)
                    phases[phase] = run_phase(stack.base_url, args, clients, request)
        finally:
            if database:
                drop_postgres_database(database)
    worst = max((p["health"]["p99_ms"] or float("inf")) for name, p in phases.items() if name != "idle")
    return {
        "profile": args.profile,
        "auth": "required",
        "seconds_per_phase": args.seconds,
        "body": {
            "bytes": size,
            "shape": args.body_shape,
            "server_limit": limit,
            "limit_source": limit_source,
        },
        "phases": phases,
        "target_p99_ms": TARGET_P99_MS,
        "meets_target": worst <= TARGET_P99_MS,
        "load_average": {
            "before": list(load_before),
            "after": list(os.getloadavg()),
            "cores": os.cpu_count(),
        },
    }


def print_table(report: dict[str, Any]) -> None:
    def ms(value: float | None) -> str:
        return f"{value:8.1f}" if value is not None else f"{'-':>8}"

    body = report["body"]
    print(
        f"\nPCM Lab API under abuse ({report['profile']} profile, tokens required, "
        f"{report['seconds_per_phase']:g} s a phase; bodies of {body['bytes']} B, {body['shape']}; "
        f"server limit {body['server_limit']} B from {body['limit_source']})"
    )
    print(
        f"{'phase':>12} | {'probes':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} | abusers: clients, answers"
    )
    for name, phase in report["phases"].items():
        health, abuse = phase["health"], phase.get("abuse")
        answers = "-"
        if abuse:
            counts = ", ".join(f"{status}: {count}" for status, count in abuse["statuses"].items())
            answers = f"{abuse['clients']}, {abuse['requests']} ({counts})"
        print(
            f"{name:>12} | {health['probes']:6d} {ms(health['p50_ms'])} {ms(health['p99_ms'])} "
            f"{ms(health['max_ms'])} | {answers}"
        )
    load = report["load_average"]
    verdict = "meets" if report["meets_target"] else "MISSES"
    print(
        f"p99 under abuse {verdict} the target of {report['target_p99_ms']:.0f} ms; load average "
        f"{load['before'][0]:.2f} before, {load['after'][0]:.2f} after ({load['cores']} cores)"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profile", choices=["embedded", "lab"], default="lab")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    parser.add_argument("--ramp-s", type=float, default=0.5, help="attackers' head start in a phase")
    parser.add_argument("--flood-clients", type=int, default=40, help="concurrent wrong-password clients")
    parser.add_argument("--body-clients", type=int, default=8, help="concurrent maximal-body clients")
    parser.add_argument("--body-shape", choices=["keys", "padding"], default="keys")
    parser.add_argument(
        "--body-bytes", type=int, default=None, help="body size; default: the server's body-size limit"
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="per-request timeout (probe and abusers)")
    args = parser.parse_args(argv)
    if not 0 <= args.ramp_s < args.seconds:
        parser.error("--ramp-s must be shorter than --seconds")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    report = bench(parse_args(argv))
    print_table(report)
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()

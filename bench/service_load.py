"""Orchestrator benchmark (not a test): API latency under concurrent readers, metric ingest rate,
and how long a metric takes from the worker's sink to an SSE client.

For each profile (embedded: SQLite + file-system broker; lab: PostgreSQL + Redis) it starts the
real API process on loopback (`pcm api`), creates a run, then measures in one go:

  ingest    DatabaseSink.log_metrics for `--steps` steps of every per-step metric (the worker's
            own write path: upsert + progress + event + wake-up per step) -> rows/s
  readers   `--readers` threads hammering GET /api/runs, /api/runs/{id}, /api/runs/{id}/metrics
            for `--seconds` -> p50 / p99 latency and requests/s
  sse       a client streaming /api/runs/{id}/events while the sink logs one step at a time
            -> p50 / p99 latency from log_metrics() to the event's arrival

    python bench/service_load.py                      # both profiles
    python bench/service_load.py --profile embedded --readers 4 --seconds 5

Prints a table, then as its last line one JSON object with every number.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pcm_engine import metrics as M  # noqa: E402
from pcm_engine.phases import PHASES  # noqa: E402
from tests.conftest import REDIS_URL, create_postgres_database, drop_postgres_database  # noqa: E402
from tests.services import ServiceStack  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def step_metrics(step: int) -> dict[str, float]:
    """A realistic step: every per-step metric plus the phase scores."""
    out = {name: float(step % 7) / 7 for name in M.PER_STEP_METRICS}
    out.update({M.score_metric(c): 0.1 * i for i, c in enumerate(PHASES)})
    return out


def measure_ingest(stack: ServiceStack, run_id: int, steps: int) -> dict[str, float]:
    from worker.db_sink import DatabaseSink

    sink = DatabaseSink(stack.settings, run_id)
    start = time.perf_counter()
    rows = 0
    for step in range(1, steps + 1):
        metrics = step_metrics(step)
        sink.log_metrics(step, metrics)
        rows += len(metrics)
    seconds = time.perf_counter() - start
    sink.close()
    return {"rows": rows, "rows_per_s": rows / seconds, "steps_per_s": steps / seconds}


def measure_readers(stack: ServiceStack, run_id: int, readers: int, seconds: float) -> dict[str, float]:
    paths = [
        "/api/runs?limit=50",
        f"/api/runs/{run_id}",
        f"/api/runs/{run_id}/metrics?names={M.ROLLOUT_SUCCESS},{M.PCM_KEPT_FRACTION},{M.TIME_UPDATE}",
    ]
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def reader(offset: int) -> None:
        local: list[float] = []
        with stack.client() as client:
            i = offset
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                response = client.get(paths[i % len(paths)])
                local.append(time.perf_counter() - t0)
                if response.status_code != 200:
                    errors[0] += 1
                i += 1
        with lock:
            latencies.extend(local)

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(readers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {
        "requests": len(latencies),
        "requests_per_s": len(latencies) / seconds,
        "p50_ms": 1000 * percentile(latencies, 0.50),
        "p99_ms": 1000 * percentile(latencies, 0.99),
        "errors": errors[0],
    }


def measure_sse(stack: ServiceStack, run_id: int, first_step: int, samples: int) -> dict[str, float]:
    """Log one step at a time and time its arrival at a streaming client."""
    from worker.db_sink import DatabaseSink

    sent: dict[int, float] = {}
    arrived: dict[int, float] = {}
    ready = threading.Event()

    def listen() -> None:
        with httpx.Client(base_url=stack.base_url, timeout=60) as client:
            with client.stream("GET", f"/api/runs/{run_id}/events") as response:
                ready.set()
                for line in response.iter_lines():
                    if line.startswith("data:"):
                        step = json.loads(line[5:]).get("step")
                        if step in sent and step not in arrived:
                            arrived[step] = time.perf_counter()
                            if len(arrived) == samples:
                                return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    ready.wait(30)
    time.sleep(0.5)
    sink = DatabaseSink(stack.settings, run_id)
    for k in range(samples):
        step = first_step + k
        sent[step] = time.perf_counter()
        sink.log_metrics(step, {M.ROLLOUT_SUCCESS: 0.5})
        deadline = time.perf_counter() + 10
        while step not in arrived and time.perf_counter() < deadline:
            time.sleep(0.002)
        time.sleep(0.05)
    sink.close()
    latencies = [arrived[s] - sent[s] for s in sent if s in arrived]
    return {
        "samples": len(latencies),
        "p50_ms": 1000 * percentile(latencies, 0.50),
        "p99_ms": 1000 * percentile(latencies, 0.99),
        "lost": samples - len(latencies),
    }


def bench_profile(profile: str, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        database = None
        kwargs: dict = {}
        if profile == "lab":
            url, database = create_postgres_database()
            kwargs = {"database_url": url, "broker_url": REDIS_URL, "queue": "bench-service-load"}
        try:
            with ServiceStack(Path(tmp), **kwargs) as stack:
                stack.start_api()
                with stack.client() as client:
                    run = stack.create_run(client, "bench")  # stays queued: no worker here
                ingest = measure_ingest(stack, run["id"], args.steps)
                readers = measure_readers(stack, run["id"], args.readers, args.seconds)
                sse = measure_sse(stack, run["id"], args.steps + 1, args.sse_samples)
        finally:
            if database:
                drop_postgres_database(database)
    return {"ingest": ingest, "readers": readers, "sse": sse}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profile", choices=["embedded", "lab", "both"], default="both")
    parser.add_argument("--steps", type=int, default=200, help="steps ingested (x ~45 metrics)")
    parser.add_argument("--readers", type=int, default=8, help="concurrent API readers")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of the reader phase")
    parser.add_argument("--sse-samples", type=int, default=30)
    args = parser.parse_args()
    profiles = ["embedded", "lab"] if args.profile == "both" else [args.profile]
    results = {p: bench_profile(p, args) for p in profiles}

    print(
        f"\n{'profile':>9} | {'ingest rows/s':>13} | {'readers':>7} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7}"
        f" | {'SSE p50 ms':>10} {'SSE p99 ms':>10}"
    )
    for p, r in results.items():
        rd, ss = r["readers"], r["sse"]
        print(
            f"{p:>9} | {r['ingest']['rows_per_s']:13.0f} | {args.readers:7d} {rd['requests_per_s']:7.1f}"
            f" {rd['p50_ms']:7.1f} {rd['p99_ms']:7.1f} | {ss['p50_ms']:10.1f} {ss['p99_ms']:10.1f}"
        )
    print(json.dumps({"readers": args.readers, **results}))


if __name__ == "__main__":
    main()

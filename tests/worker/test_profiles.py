"""The end-to-end path through real processes: POST /api/runs -> queued -> running -> metrics in
the database -> delivered over SSE -> succeeded, on both deployment profiles."""

from __future__ import annotations

import os
import signal

import httpx
import pytest

from tests.services import wait_for
from tests.worker.checks import assert_trained, train_over_http

pytestmark = pytest.mark.slow
STEPS = 4
RUN = {"train.steps": STEPS, "eval.every": 2, "train.checkpoint_every": 2}


def test_pcm_up_embedded_profile_trains_a_run_and_stops_on_sigterm(embedded_stack):
    embedded_stack.start_up(workers=1)
    health = httpx.get(f"{embedded_stack.base_url}/api/health").json()
    assert (health["database"], health["broker"], health["single_user"]) == ("sqlite", "filesystem", True)

    run, events, to_running = train_over_http(embedded_stack, **RUN)
    print(f"embedded profile: POST -> running in {to_running:.2f} s")
    assert to_running < 4.0  # an idle worker polls the file-system broker every broker_poll_s
    assert_trained(embedded_stack, run, events, STEPS)

    assert embedded_stack.signal("up", signal.SIGTERM) == 0
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{embedded_stack.base_url}/api/health", timeout=2)
    assert embedded_stack.worker_records() == []  # a cleanly stopped worker unregisters


def test_pcm_up_stops_everything_when_a_child_dies(embedded_stack):
    up = embedded_stack.start_up(workers=1)
    (worker,) = embedded_stack.worker_records()
    os.kill(worker.pid, signal.SIGKILL)
    assert up.wait(timeout=30) == 1
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{embedded_stack.base_url}/api/health", timeout=2)


def test_lab_profile_postgres_and_redis(lab_stack):
    lab_stack.start_api()
    lab_stack.start_worker("w1")
    health = httpx.get(f"{lab_stack.base_url}/api/health").json()
    assert (health["database"], health["broker"]) == ("postgresql", "redis")

    run, events, to_running = train_over_http(lab_stack, **RUN)
    print(f"lab profile: POST -> running in {to_running:.2f} s")
    assert to_running < 4.0
    assert_trained(lab_stack, run, events, STEPS)
    assert run["worker"].startswith("w1@")
    wait_for(lambda: lab_stack.worker_records()[0].current_run_id is None, 10, "the worker to be idle")

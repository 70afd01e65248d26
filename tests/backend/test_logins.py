"""Logins (issue 15, item 4): a backoff per username and per address after failed attempts, the
same work for unknown usernames as for known ones, and a bound on concurrent password hashing
so that a login flood cannot starve the API."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time

import httpx
import pytest

from backend.logins import Backoff, LoginGuard
from backend.store import credentials
from tests.backend.conftest import ADMIN_PASSWORD, Api


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(make_client, clock: Clock) -> Api:
    client = make_client(auth="required")
    client.app.state.login_guard = LoginGuard(client.settings, clock=clock)
    return client


def attempt(client: Api, password: str, username: str = "admin") -> httpx.Response:
    return client.post("/api/auth/login", json={"username": username, "password": password})


def test_sixty_wrong_passwords_then_the_right_one_waits_for_the_backoff(app: Api, clock: Clock) -> None:
    """60 wrong passwords, then the right one, used to log in."""
    answers = [attempt(app, f"guess-{i}").status_code for i in range(60)]
    free = app.settings.login_free_failures_per_user
    assert answers[: free + 1] == [401] * (free + 1)  # the last of these starts the first wait
    assert set(answers[free + 1 :]) == {429}

    refused = attempt(app, ADMIN_PASSWORD)
    assert refused.status_code == 429
    wait = int(refused.headers["Retry-After"])
    assert wait >= app.settings.login_backoff_s
    clock.now += wait - 0.5
    assert attempt(app, ADMIN_PASSWORD).status_code == 429  # not yet
    clock.now += 1.0
    assert attempt(app, ADMIN_PASSWORD).status_code == 200


def test_each_failure_past_the_free_ones_doubles_the_wait_up_to_a_cap(clock: Clock) -> None:
    backoff = Backoff(free=2, first_s=1.0, max_s=8.0, clock=clock)
    waits = []
    for _ in range(8):
        backoff.failed("alice")
        waits.append(backoff.wait_s("alice"))
    assert waits == [0, 0, 1, 2, 4, 8, 8, 8]
    assert backoff.wait_s("bob") == 0
    clock.now += 8 + 8  # the last wait, then as long again: forgotten
    backoff.failed("alice")
    assert backoff.wait_s("alice") == 0


def test_failures_from_one_address_lock_it_for_every_username(make_client, clock: Clock) -> None:
    """Spraying usernames from one address: per-user counts alone never lock anything."""
    app = make_client(auth="required", login_free_failures_per_address=8)
    app.app.state.login_guard = LoginGuard(app.settings, clock=clock)
    for i in range(8):
        assert attempt(app, "guess", username=f"user-{i}").status_code == 401
    assert attempt(app, "guess", username="user-8").status_code == 401  # the 9th starts the wait
    assert attempt(app, ADMIN_PASSWORD).status_code == 429
    clock.now += app.settings.login_backoff_s
    assert attempt(app, ADMIN_PASSWORD).status_code == 200


def test_an_unknown_username_costs_the_hash_a_known_one_costs(app: Api, monkeypatch) -> None:
    """Unknown usernames used to answer in 8.8 ms, known ones in 58.5 ms: the timing told which
    usernames exist. Now both hash a password once."""
    credentials._dummy_hash()  # made once per process: make it before counting
    calls: list[int] = []
    scrypt = hashlib.scrypt

    def counting_scrypt(*args, **kwargs):
        calls.append(1)
        return scrypt(*args, **kwargs)

    monkeypatch.setattr(hashlib, "scrypt", counting_scrypt)
    for username in ("admin", "nobody-by-this-name"):
        calls.clear()
        assert attempt(app, "a wrong password", username=username).status_code == 401
        assert len(calls) == 1, username


def test_a_login_flood_neither_starves_the_api_nor_hashes_beyond_its_bound(make_client, monkeypatch) -> None:
    """A 40-way login flood used to hash 40 passwords at once on the API's shared thread pool,
    and /api/health slowed from 5 ms to 657 ms. Now at most `password_hash_threads` hash, a few
    wait, the rest are told to come back (503), and the pool other routes use stays free."""
    app = make_client(auth="required", password_hash_threads=1, password_hash_queue=2)
    busy, peak, lock = [0], [0], threading.Lock()

    def slow_verify(password: str, stored: str | None) -> bool:  # a hash that takes 0.3 s
        with lock:
            busy[0] += 1
            peak[0] = max(peak[0], busy[0])
        time.sleep(0.3)
        with lock:
            busy[0] -= 1
        return False

    monkeypatch.setattr(credentials, "verify_password", slow_verify)

    async def flood() -> tuple[list[httpx.Response], float]:
        transport = httpx.ASGITransport(app=app.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            bodies = [{"username": f"u{i}", "password": "x"} for i in range(40)]
            logins = [asyncio.create_task(client.post("/api/auth/login", json=body)) for body in bodies]
            await asyncio.sleep(0.1)  # the flood is under way
            started = time.perf_counter()
            assert (await client.get("/api/health")).status_code == 200
            health_s = time.perf_counter() - started
            return await asyncio.gather(*logins), health_s

    answers, health_s = asyncio.run(flood())
    codes = [answer.status_code for answer in answers]
    assert peak[0] == 1
    assert codes.count(401) == 3 and codes.count(503) == 37, codes  # 1 hashing + 2 waiting
    assert all(int(a.headers["Retry-After"]) >= 1 for a in answers if a.status_code == 503)
    assert health_s < 0.25, f"/api/health took {health_s:.3f} s during the flood"

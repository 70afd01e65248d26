"""What stands between a password guesser and the password hash: a backoff per username and per
address after failed logins, and a bound on how many passwords are hashed at once.

scrypt costs ~16 MiB and tens of milliseconds of one core per check, on purpose. Unbounded, a
flood of logins would take every core and every thread of the API's pool, and `/api/health`
(or any other request) would wait behind it. So checks run on at most `password_hash_threads`
threads of their own (never on the event loop, never on the pool other routes use), at most
`password_hash_queue` more wait for one, and the rest are refused at once (503 + Retry-After).

The counts live in this process's memory: the lab profile runs one API process. Several would
each allow their own share of guesses (documented in docs/architecture.md).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import anyio

from backend.store.settings import Settings

T = TypeVar("T")
# Past this many remembered keys (usernames + addresses), the least recently failed are dropped.
MAX_KEYS = 100_000


class LoginRefused(Exception):
    """Try again in `retry_after` seconds: too many failures (429) or too many logins at once (503)."""

    def __init__(self, retry_after: float, busy: bool = False):
        super().__init__("too many logins at once" if busy else "too many failed logins")
        self.retry_after = max(1, math.ceil(retry_after))
        self.busy = busy


@dataclass
class _Failures:
    count: int
    locked_until: float  # monotonic seconds; in the past when not locked


class Backoff:
    """Failed attempts per key. The first `free` failures cost nothing; each one after that locks
    the key for `first_s`, doubling per failure up to `max_s`. Attempts while locked are refused
    without being checked (so they neither count nor cost a hash). A key's failures are
    forgotten `max_s` after its last lock ended."""

    def __init__(self, free: int, first_s: float, max_s: float, clock: Callable[[], float]):
        self.free, self.first_s, self.max_s, self.clock = free, first_s, max_s, clock
        self._keys: OrderedDict[str, _Failures] = OrderedDict()

    def wait_s(self, key: str) -> float:
        failures = self._current(key)
        return 0.0 if failures is None else max(0.0, failures.locked_until - self.clock())

    def failed(self, key: str) -> None:
        now = self.clock()
        failures = self._current(key) or _Failures(0, now)
        failures.count += 1
        beyond = failures.count - self.free
        delay = min(self.first_s * 2 ** (beyond - 1), self.max_s) if beyond > 0 else 0.0
        failures.locked_until = now + delay
        self._keys[key] = failures
        self._keys.move_to_end(key)
        while len(self._keys) > MAX_KEYS:
            self._keys.popitem(last=False)

    def succeeded(self, key: str) -> None:
        self._keys.pop(key, None)

    def _current(self, key: str) -> _Failures | None:
        failures = self._keys.get(key)
        if failures is not None and self.clock() >= failures.locked_until + self.max_s:
            del self._keys[key]
            return None
        return failures


class LoginGuard:
    """One per app: `await guard.check(username, address, verify)` runs `verify` (which hashes)
    unless the username or the address must wait, counts its outcome, and returns it."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic):
        backoff = dict(first_s=settings.login_backoff_s, max_s=settings.login_backoff_max_s, clock=clock)
        self.users = Backoff(settings.login_free_failures_per_user, **backoff)
        self.addresses = Backoff(settings.login_free_failures_per_address, **backoff)
        self._lock = threading.Lock()  # the checks finish on hashing threads
        self._hashing = anyio.CapacityLimiter(settings.password_hash_threads)
        self._max_waiting = settings.password_hash_threads + settings.password_hash_queue
        self._waiting = 0  # touched on the event loop only

    async def check(self, username: str, address: str, verify: Callable[[], T | None]) -> T | None:
        """`verify()`'s answer (None: wrong credentials). Raises LoginRefused instead of calling it
        when the username or address is locked, or when too many checks already wait."""
        self._refuse_if_locked(username, address)
        if self._waiting >= self._max_waiting:
            raise LoginRefused(1.0, busy=True)
        self._waiting += 1
        try:
            return await anyio.to_thread.run_sync(
                self._attempt, username, address, verify, limiter=self._hashing
            )
        finally:
            self._waiting -= 1

    def _attempt(self, username: str, address: str, verify: Callable[[], T | None]) -> T | None:
        # Again: a lock may have come while this attempt waited for a thread.
        self._refuse_if_locked(username, address)
        result = verify()
        with self._lock:
            if result is None:
                self.users.failed(username)
                self.addresses.failed(address)
            else:
                self.users.succeeded(username)  # an address's failures fade with time only
        return result

    def _refuse_if_locked(self, username: str, address: str) -> None:
        with self._lock:
            wait = max(self.users.wait_s(username), self.addresses.wait_s(address))
        if wait > 0:
            raise LoginRefused(wait)

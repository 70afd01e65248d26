"""Wake-ups for the live stream. Workers call `publish` after writing events; the SSE endpoint
waits on them through a `Listener`. Lab profile: a Redis pub/sub channel per run. Embedded
profile: no broker to publish on, so a wait just sleeps `sse_poll_s` and the stream re-reads the
database."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from functools import lru_cache

from backend.store.redact import redact
from backend.store.settings import Settings

log = logging.getLogger(__name__)

CHANNEL = "pcm:run:{run_id}"


def _redis_url(settings: Settings) -> str | None:
    url = settings.resolved_broker_url
    return url if url.startswith(("redis://", "rediss://")) else None


@lru_cache(maxsize=4)
def _client(url: str):
    """One client (and connection pool) per process: workers publish after every step."""
    import redis

    return redis.Redis.from_url(url)


def publish(settings: Settings, run_id: int) -> None:
    url = _redis_url(settings)
    if url is None:
        return
    import redis

    try:
        _client(url).publish(CHANNEL.format(run_id=run_id), b"1")
    except redis.RedisError:
        pass  # the stream falls back to polling; a lost wake-up only delays it by sse_poll_s


class Listener:
    """One live stream's wake-ups: `await wait()` returns on a wake-up for the run or after the
    polling period. In the lab profile it holds a single Redis subscription for the whole
    stream (opened on first use, closed by `close()`), rather than one per wait.

    Wake-ups are only hints (the stream reads events from the database by id), so when Redis
    fails the listener drops its subscription and waits out the polling period instead; the
    next wait subscribes again. The stream polls through an outage and loses or repeats nothing.
    """

    def __init__(self, settings: Settings, run_id: int):
        self.settings = settings
        self.run_id = run_id
        self._url = _redis_url(settings)
        self._client = None
        self._pubsub = None
        self._failing = False

    async def wait(self) -> None:
        timeout = self.settings.sse_poll_s
        if self._url is None:
            await asyncio.sleep(timeout)
            return
        import redis

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            await self._wait_for_message(deadline)
        except (redis.RedisError, OSError) as exc:
            self._note_failure(exc)
            await self._drop_subscription()
            await asyncio.sleep(max(0.0, deadline - loop.time()))
        else:
            if self._failing:
                log.info("run %s live stream: Redis wake-ups are back", self.run_id)
                self._failing = False

    async def _wait_for_message(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        if self._pubsub is None:
            await self._subscribe()
        while (left := deadline - loop.time()) > 0:
            message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=left)
            if message is not None:
                return

    async def _subscribe(self) -> None:
        import redis.asyncio as aioredis

        # Bounded connects and commands: a Redis that hangs must not hold the stream past a poll.
        limit = max(self.settings.sse_poll_s, 1.0)
        self._client = aioredis.Redis.from_url(self._url, socket_connect_timeout=limit, socket_timeout=limit)
        self._pubsub = self._client.pubsub()
        await self._pubsub.subscribe(CHANNEL.format(run_id=self.run_id))

    def _note_failure(self, exc: Exception) -> None:
        if not self._failing:
            log.warning(
                "run %s live stream: Redis wake-ups failed (%s); polling every %s s until they are back",
                self.run_id,
                redact(str(exc), self._url),
                self.settings.sse_poll_s,
            )
            self._failing = True

    async def _drop_subscription(self) -> None:
        pubsub, client = self._pubsub, self._client
        self._pubsub = self._client = None
        with contextlib.suppress(Exception):  # the connection is already broken
            if pubsub is not None:
                await pubsub.aclose()
            if client is not None:
                await client.aclose()

    async def close(self) -> None:
        await self._drop_subscription()

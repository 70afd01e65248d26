"""Wake-ups for the live stream. Workers call `publish` after writing events; the SSE endpoint
waits on them through a `Listener`. Lab profile: a Redis pub/sub channel per run. Embedded
profile: no broker to publish on, so a wait just sleeps `sse_poll_s` and the stream re-reads the
database."""

from __future__ import annotations

import asyncio
from functools import lru_cache

from backend.settings import Settings

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
    stream (opened on first use, closed by `close()`), rather than one per wait."""

    def __init__(self, settings: Settings, run_id: int):
        self.settings = settings
        self.run_id = run_id
        self._url = _redis_url(settings)
        self._client = None
        self._pubsub = None

    async def wait(self) -> None:
        timeout = self.settings.sse_poll_s
        if self._url is None:
            await asyncio.sleep(timeout)
            return
        if self._pubsub is None:
            import redis.asyncio as aioredis

            self._client = aioredis.Redis.from_url(self._url)
            self._pubsub = self._client.pubsub()
            await self._pubsub.subscribe(CHANNEL.format(run_id=self.run_id))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (left := deadline - loop.time()) > 0:
            message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=left)
            if message is not None:
                return

    async def close(self) -> None:
        if self._pubsub is not None:
            await self._pubsub.aclose()
            await self._client.aclose()

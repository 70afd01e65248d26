"""Wake-ups for the live stream. Workers call `publish` after writing events; the SSE endpoint
`wait`s on them. Lab profile: a Redis pub/sub channel per run. Embedded profile: no broker to
publish on, so `wait` just sleeps `sse_poll_s` and the stream re-reads the database."""

from __future__ import annotations

import asyncio

from backend.settings import Settings

CHANNEL = "pcm:run:{run_id}"


def _redis_url(settings: Settings) -> str | None:
    url = settings.resolved_broker_url
    return url if url.startswith(("redis://", "rediss://")) else None


def publish(settings: Settings, run_id: int) -> None:
    url = _redis_url(settings)
    if url is None:
        return
    import redis

    try:
        redis.Redis.from_url(url).publish(CHANNEL.format(run_id=run_id), b"1")
    except redis.RedisError:
        pass  # the stream falls back to polling; a lost wake-up only delays it by sse_poll_s


async def wait(settings: Settings, run_id: int, timeout: float | None = None) -> None:
    """Return when the run may have new events (a wake-up, or after the polling period)."""
    timeout = timeout or settings.sse_poll_s
    url = _redis_url(settings)
    if url is None:
        await asyncio.sleep(timeout)
        return
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    pubsub = client.pubsub()
    try:
        await pubsub.subscribe(CHANNEL.format(run_id=run_id))
        deadline = asyncio.get_running_loop().time() + timeout
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=left)
            if message is not None:
                return
    finally:
        await pubsub.aclose()
        await client.aclose()

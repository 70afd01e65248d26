"""A background task of the API: every heartbeat period, running runs whose worker stopped
sending heart-beats become `stale` (and their live streams are woken to show it)."""

from __future__ import annotations

import asyncio
import logging

from backend.store import lifecycle, wakeup
from backend.store.db import session_scope
from backend.store.settings import Settings

log = logging.getLogger(__name__)


def sweep(settings: Settings) -> list[int]:
    """One pass; returns the ids of the runs it marked stale."""
    with session_scope(settings.resolved_database_url) as session:
        run_ids = lifecycle.mark_stale(session, settings.stale_after_s)
    for run_id in run_ids:
        log.warning("run %s is stale: no heartbeat for %.0f s", run_id, settings.stale_after_s)
        wakeup.publish(settings, run_id)
    return run_ids


async def sweep_forever(settings: Settings) -> None:
    """Until cancelled. A failed pass (database briefly down) is logged and retried next period."""
    while True:
        try:
            await asyncio.to_thread(sweep, settings)
        except Exception:
            log.exception("stale-run sweep failed; retrying in %.1f s", settings.heartbeat_s)
        await asyncio.sleep(settings.heartbeat_s)

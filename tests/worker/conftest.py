"""Fixtures of the worker tests: real service stacks (tests/services.py) on the embedded profile
(SQLite + file-system broker) and on the lab profile (PostgreSQL + Redis)."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import REDIS_URL
from tests.services import ServiceStack


@pytest.fixture
def embedded_stack(tmp_path):
    """API + workers on SQLite and the file-system broker; start the processes you need."""
    with ServiceStack(tmp_path) as stack:
        yield stack


@pytest.fixture
def lab_stack(tmp_path, postgres_url, queue_name):
    """The same on a fresh PostgreSQL database and Redis, with a queue no other test uses."""
    queue = f"{queue_name}-{uuid.uuid4().hex[:6]}"
    with ServiceStack(tmp_path, database_url=postgres_url, broker_url=REDIS_URL, queue=queue) as stack:
        yield stack
    import redis

    redis.Redis.from_url(REDIS_URL).delete(queue)

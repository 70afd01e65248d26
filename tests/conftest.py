"""Fixtures shared by the service tests: throw-away databases on the real PostgreSQL and
SQLite, and settings pointing at them.

PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) must be running; `.ci/run` starts them.
Each test session gets its own PostgreSQL database and Celery queue name, so concurrent test
runs on one machine never see each other's rows or messages.
"""

from __future__ import annotations

import os
import uuid

import pytest

POSTGRES_ADMIN_URL = os.environ.get(
    "PCM_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("PCM_TEST_REDIS", "redis://127.0.0.1:6379/0")


def create_postgres_database() -> tuple[str, str]:
    """A new empty database; returns (its URL, its name)."""
    from sqlalchemy import create_engine, text

    name = f"pcm_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}", name


def drop_postgres_database(name: str) -> None:
    from sqlalchemy import create_engine, text

    from backend.store.db import get_engine

    get_engine.cache_clear()  # WITH (FORCE) below closes whatever connections were left
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def postgres_url():
    url, name = create_postgres_database()
    yield url
    drop_postgres_database(name)


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'pcm.db'}"


@pytest.fixture(scope="session")
def queue_name() -> str:
    return f"runs-test-{uuid.uuid4().hex[:8]}"

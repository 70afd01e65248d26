"""API test fixtures: the app on a throw-away SQLite file and on a throw-away PostgreSQL database,
with the serverless file-system broker under the test's tmp dir (so launching a run really writes a
task message, which the tests can find)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from backend.app import create_app
from backend.store.db import session_scope
from backend.store.settings import Settings

ADMIN_PASSWORD = "admin-password"


# PostgreSQL is the slow half (a database created and migrated per test): `-m "not slow"` skips it
@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.slow)])
def database_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(f"{request.param}_url")


class Api(TestClient):
    """A TestClient that also knows its settings and opens database sessions."""

    settings: Settings

    def db(self) -> AbstractContextManager[Session]:
        return session_scope(self.settings.resolved_database_url)

    def broker_messages(self) -> list[Path]:
        return sorted((self.settings.broker_dir / "in").glob("*.msg"))


@pytest.fixture
def make_client(database_url: str, tmp_path: Path, queue_name: str) -> Iterator[Callable[..., Api]]:
    """`make_client(auth="required", ...)`: a started app (lifespan run) with these settings."""
    clients: list[Api] = []

    def make(**overrides: Any) -> Api:
        values: dict[str, Any] = dict(
            database_url=database_url,
            broker_url=None,
            data_dir=tmp_path / "data",
            queue=queue_name,
            auth="single_user",
            admin_password=ADMIN_PASSWORD,
            sse_poll_s=0.05,
        )
        values.update(overrides)
        settings = Settings(**values)
        client = Api(create_app(settings))
        client.settings = settings
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., Api]) -> Api:
    """Single-user mode: every request acts as the admin."""
    return make_client()


def launch(client: TestClient, name: str = "run", **body: Any) -> dict[str, Any]:
    """POST /api/runs from the tabletop_pcm preset; asserts 201 and returns the run."""
    body.setdefault("preset", "tabletop_pcm")
    response = client.post("/api/runs", json={"name": name, **body})
    assert response.status_code == 201, response.text
    return response.json()

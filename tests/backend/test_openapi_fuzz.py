"""Property test of the whole REST API from its own OpenAPI schema (schemathesis): no generated
input may cause a server error, and documented responses must match their schemas. Bounded to a
few examples per operation so it stays fast; runs on SQLite and on PostgreSQL (which is stricter:
NUL characters, integer ranges)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance

from backend.app import create_app
from backend.settings import Settings
from tests.backend.conftest import Api, launch
from tests.conftest import create_postgres_database, drop_postgres_database

# Streams never end while a run is live, and downloads need files on disk: tested elsewhere.
NOT_FUZZED = (r"/events$", r"^/api/artifacts/.+/download$")


def load_schema() -> schemathesis.BaseSchema:
    """The schema is the app's own; building the app touches no database."""
    schema = schemathesis.openapi.from_dict(create_app(Settings(data_dir=Path("unused"))).openapi())
    for pattern in NOT_FUZZED:
        schema = schema.exclude(path_regex=pattern)
    return schema


schema = load_schema()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def fuzz_client(request, tmp_path_factory, queue_name: str) -> Iterator[Api]:
    """One app per backend for all the operations (a fresh database per operation would cost more
    than the fuzzing)."""
    data_dir = tmp_path_factory.mktemp("fuzz")
    pg_name = None
    if request.param == "postgres":
        url, pg_name = create_postgres_database()
    else:
        url = f"sqlite:///{data_dir / 'pcm.db'}"
    settings_ = Settings(
        database_url=url, broker_url=None, data_dir=data_dir, queue=queue_name, auth="single_user"
    )
    with Api(create_app(settings_)) as client:
        client.settings = settings_
        for name in ("fuzz-a", "fuzz-b"):  # something for the id-taking operations to find
            launch(client, name)
        yield client
    if pg_name:
        drop_postgres_database(pg_name)


def send(client: Api, case: schemathesis.Case):
    """Send a generated case through the TestClient (requests-style keyword names to httpx's)."""
    kwargs = case.as_transport_kwargs(base_url=str(client.base_url))
    body = kwargs.pop("data", None)
    return client.request(
        kwargs.pop("method"),
        kwargs.pop("url"),
        params=kwargs.pop("params", None),
        headers=kwargs.pop("headers", None),
        cookies=kwargs.pop("cookies", None) or None,
        json=kwargs.pop("json", None),
        content=body if isinstance(body, bytes | str) else None,
        data=body if isinstance(body, dict) else None,
    )


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_responses_match_the_schema(case: schemathesis.Case, fuzz_client: Api) -> None:
    response = send(fuzz_client, case)
    case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])

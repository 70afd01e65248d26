"""Property test of the whole REST API from its own OpenAPI schema (schemathesis): no generated
input may cause a server error, and documented responses must match their schemas. Bounded to a
few examples per operation so it stays fast; runs on SQLite and on PostgreSQL (which is stricter:
NUL characters, integer ranges) in single-user mode (every request is the admin's), and once more
with tokens required, signed in as a plain lab member (the permission checks, 401/403/404 paths
and the member's own token routes get fuzzed too)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance

from backend.app import create_app
from backend.store.settings import Settings
from tests.backend.conftest import ADMIN_PASSWORD, Api, launch
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
pytestmark = pytest.mark.slow  # property-based: 15 generated requests per operation


MEMBER, MEMBER_PASSWORD, MEMBER_LAB = "fuzz-member", "fuzz-member-password", "fuzz-lab"


class SignedInMember:
    """Keeps the fuzzing client signed in as a plain member of one lab. Generated cases may log
    that member out, revoke their token or make them leave the lab: before each case this logs in
    again and puts them back, so every case runs with the same rights."""

    def __init__(self, client: Api):
        self.client = client
        self.admin = {"Authorization": f"Bearer {self.login('admin', ADMIN_PASSWORD)}"}
        created = client.post(
            "/api/users", json={"username": MEMBER, "password": MEMBER_PASSWORD}, headers=self.admin
        )
        assert created.status_code == 201, created.text
        lab = client.post("/api/labs", json={"name": MEMBER_LAB}, headers=self.admin)
        assert lab.status_code == 201, lab.text
        self.lab_id = lab.json()["id"]
        hidden = {
            "preset": "tabletop_pcm",
            "name": "admin-only",
            "lab_id": self.lab_id,
            "visibility": "private",
        }
        assert client.post("/api/runs", json=hidden, headers=self.admin).status_code == 201  # a 404 to find
        self.restore()

    def login(self, username: str, password: str) -> str:
        response = self.client.post("/api/auth/login", json={"username": username, "password": password})
        assert response.status_code == 200, response.text
        return response.json()["token"]

    def restore(self) -> None:
        me = self.client.get("/api/auth/me")
        if me.status_code == 401:
            self.client.headers["Authorization"] = f"Bearer {self.login(MEMBER, MEMBER_PASSWORD)}"
            me = self.client.get("/api/auth/me")
        assert me.status_code == 200, me.text
        if self.lab_id not in {lab["lab_id"] for lab in me.json()["labs"]}:
            added = self.client.post(
                f"/api/labs/{self.lab_id}/members",
                json={"username": MEMBER, "role": "member"},
                headers=self.admin,
            )
            assert added.status_code == 200, added.text


@dataclass
class FuzzTarget:
    client: Api
    member: SignedInMember | None  # None: single-user mode, every request acts as the admin

    def before_each_case(self) -> None:
        if self.member is not None:
            self.member.restore()


@pytest.fixture(scope="module", params=["sqlite", "postgres", "sqlite-member"])
def fuzz_target(request, tmp_path_factory, queue_name: str) -> Iterator[FuzzTarget]:
    """One app per variant for all the operations (a fresh database per operation would cost more
    than the fuzzing)."""
    backend, _, signed_in_as = request.param.partition("-")
    data_dir = tmp_path_factory.mktemp("fuzz")
    pg_name = None
    if backend == "postgres":
        url, pg_name = create_postgres_database()
    else:
        url = f"sqlite:///{data_dir / 'pcm.db'}"
    settings_ = Settings(
        database_url=url,
        broker_url=None,
        data_dir=data_dir,
        queue=queue_name,
        auth="required" if signed_in_as else "single_user",
        admin_password=ADMIN_PASSWORD,
    )
    with Api(create_app(settings_)) as client:
        client.settings = settings_
        member = SignedInMember(client) if signed_in_as == "member" else None
        for name in ("fuzz-a", "fuzz-b"):  # something for the id-taking operations to find
            launch(client, name)
        yield FuzzTarget(client, member)
    if pg_name:
        drop_postgres_database(pg_name)


def send(client: Api, case: schemathesis.Case):
    """Send a generated case through the TestClient (requests-style keyword names to httpx's). A
    generated Authorization header is dropped: the client's own (the signed-in member's) counts."""
    kwargs = case.as_transport_kwargs(base_url=str(client.base_url))
    body = kwargs.pop("data", None)
    headers = {k: v for k, v in (kwargs.pop("headers", None) or {}).items() if k.lower() != "authorization"}
    return client.request(
        kwargs.pop("method"),
        kwargs.pop("url"),
        params=kwargs.pop("params", None),
        headers=headers or None,
        cookies=kwargs.pop("cookies", None) or None,
        json=kwargs.pop("json", None),
        content=body if isinstance(body, bytes | str) else None,
        data=body if isinstance(body, dict) else None,
    )


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_responses_match_the_schema(
    case: schemathesis.Case, fuzz_target: FuzzTarget
) -> None:
    fuzz_target.before_each_case()
    response = send(fuzz_target.client, case)
    case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])

"""Who may do what to which id: every API route that takes an id, tried by every kind of caller.

Two labs, A and B, each seeded the same way (through the API, plus the store for what only a worker
writes): an owner, a member and a viewer, an author (a member who launched the runs), a finished
run with metrics, chunk records, an artifact file on disk and a share link. Each case sends one
request at a resource of the *target* lab as one caller:

    owner, member, viewer   the target lab's roles (backend.store.models.ROLES); none of them
                            launched the run, so only the role decides
    outsider                the owner of the *other* lab (the strongest caller who is not in it)
    anonymous               no credentials
    share_guest             the share-link token of the target lab's run, sent as a bearer token

and expects one status code. What is not allowed is a 404 where the resource is hidden from the
caller (existence does not leak across labs), a 403 where the caller may see it but not do this,
and a 401 without a login (a share token is no login). The HTML pages and /api/share/{token} hold
no data of their own and answer everyone.

`test_every_route_with_a_path_parameter_is_in_the_matrix` enumerates the app's routes: a new route
with a path parameter fails it until a case here says who may use it.

Cells whose fix is being built (issue 15) are `xfail(strict=True)`: flip them when the fix lands.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from backend.app import create_app
from backend.store import credentials, lifecycle
from backend.store.models import ROLES, Artifact, ChunkMask, Membership, Metric, RunMedia, User
from backend.store.settings import Settings
from pcm_engine.metrics import ROLLOUT_SUCCESS
from tests.backend.conftest import ADMIN_PASSWORD, Api
from tests.conftest import create_postgres_database, drop_postgres_database

CALLERS = (*ROLES, "outsider", "anonymous", "share_guest")
LAB_NAMES = ("A", "B")
ARTIFACT_BYTES = b"trained policy weights of this lab"
MEDIA_BYTES = b"GIF89a an episode of this lab"
PRESET = "tabletop_pcm"


# --- the world: two labs, seeded alike --------------------------------------------------------------


@dataclass
class LabSide:
    """One lab and what it holds. `tokens` maps a role (and "author") to a bearer token."""

    name: str
    lab_id: int
    tokens: dict[str, str]
    run_id: int = 0
    artifact_id: int = 0
    media_id: int = 0
    share_token: str = ""


@dataclass
class World:
    client: Api
    admin: dict[str, str]
    labs: dict[str, LabSide]
    elsewhere_lab_id: int  # a third lab where every signed-in caller may launch
    serial: Iterator[int] = field(default_factory=lambda: iter(range(1, 1_000_000)))

    def other(self, side: LabSide) -> LabSide:
        (other,) = (lab for lab in self.labs.values() if lab is not side)
        return other

    def headers(self, caller: str, side: LabSide) -> dict[str, str]:
        """The credentials `caller` sends when the request targets `side`."""
        if caller == "anonymous":
            return {}
        if caller == "share_guest":
            return bearer(side.share_token)
        if caller == "outsider":
            return bearer(self.other(side).tokens["owner"])
        return bearer(side.tokens[caller])

    def as_author(self, side: LabSide) -> dict[str, str]:
        return bearer(side.tokens["author"])

    def unique(self, stem: str) -> str:
        return f"{stem}-{next(self.serial)}"

    def user_id(self, username: str) -> int:
        with self.client.db() as session:
            return session.scalar(select(User.id).where(User.username == username))

    # fresh targets for the cases that change or remove what they touch

    def fresh_run(self, side: LabSide, *, cancelled: bool) -> int:
        run = self.client.post(
            "/api/runs",
            json={"preset": PRESET, "name": self.unique("fresh"), "lab_id": side.lab_id},
            headers=self.as_author(side),
        )
        assert run.status_code == 201, run.text
        run_id = run.json()["id"]
        if cancelled:
            cancel = self.client.post(f"/api/runs/{run_id}/cancel", headers=self.as_author(side))
            assert cancel.status_code == 200, cancel.text
        return run_id

    def fresh_share_link(self, side: LabSide) -> int:
        shared = self.client.post(f"/api/runs/{side.run_id}/share", headers=self.as_author(side))
        assert shared.status_code == 201, shared.text
        return shared.json()["id"]

    def fresh_sweep(self, side: LabSide) -> int:
        """A one-run sweep of the lab, launched by its author."""
        body = {"preset": PRESET, "name": self.unique("sweep"), "seeds": [0], "lab_id": side.lab_id}
        sweep = self.client.post("/api/sweeps", json=body, headers=self.as_author(side))
        assert sweep.status_code == 201, sweep.text
        return sweep.json()["id"]

    def fresh_sweep_share(self, side: LabSide) -> tuple[int, dict[str, Any]]:
        """A fresh sweep of the lab and a share link to it: (sweep id, the link as created)."""
        sweep_id = self.fresh_sweep(side)
        shared = self.client.post(f"/api/sweeps/{sweep_id}/share", headers=self.as_author(side))
        assert shared.status_code == 201, shared.text
        return sweep_id, shared.json()

    def fresh_user(self, lab_role: str | None = None, side: LabSide | None = None) -> tuple[int, str]:
        """A user without a password (made in the store: nobody logs in as them), optionally with
        `lab_role` in `side`'s lab."""
        username = self.unique("extra")
        with self.client.db() as session:
            user = User(username=username, password_hash=None)
            session.add(user)
            session.flush()
            if lab_role is not None and side is not None:
                session.add(Membership(user_id=user.id, lab_id=side.lab_id, role=lab_role))
            return user.id, username

    def fresh_token_of(self, username: str) -> int:
        with self.client.db() as session:
            user = session.scalar(select(User).where(User.username == username))
            token, _secret = credentials.create_api_token(session, user, self.unique("script"))
            return token.id


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def login(client: Api, username: str, password: str) -> str:
    response = client.post("/api/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return response.json()["token"]


def create_user(client: Api, admin: dict[str, str], username: str) -> str:
    """A user made by the admin through the API; returns a login token."""
    created = client.post(
        "/api/users", json={"username": username, "password": f"{username}-pw-1"}, headers=admin
    )
    assert created.status_code == 201, created.text
    return login(client, username, f"{username}-pw-1")


def create_lab(client: Api, admin: dict[str, str], name: str, members: dict[str, str]) -> int:
    lab = client.post("/api/labs", json={"name": name}, headers=admin)
    assert lab.status_code == 201, lab.text
    for username, role in members.items():
        added = client.post(
            f"/api/labs/{lab.json()['id']}/members", json={"username": username, "role": role}, headers=admin
        )
        assert added.status_code == 200, added.text
    return lab.json()["id"]


def seed_run(client: Api, side: LabSide) -> None:
    """The lab's run: launched by its author, with what a worker would have written (metrics,
    chunk records, an artifact file), shared, and cancelled (final, so its event stream ends)."""
    author = bearer(side.tokens["author"])
    launched = client.post(
        "/api/runs",
        json={"preset": PRESET, "name": f"lab-{side.name}-run", "lab_id": side.lab_id},
        headers=author,
    )
    assert launched.status_code == 201, launched.text
    side.run_id = launched.json()["id"]
    policy_file = client.settings.runs_dir / str(side.run_id) / "policy" / "policy.bin"
    policy_file.parent.mkdir(parents=True, exist_ok=True)
    policy_file.write_bytes(ARTIFACT_BYTES)
    with client.db() as session:
        session.add_all(
            Metric(run_id=side.run_id, name=ROLLOUT_SUCCESS, step=step, value=0.5, wall_time=float(step))
            for step in range(3)
        )
        session.add(
            ChunkMask(
                run_id=side.run_id,
                step=2,
                trajectory=0,
                chunk=0,
                phase="grasp",
                kept=True,
                success=True,
                group=0,
            )
        )
        artifact = Artifact(
            run_id=side.run_id,
            kind="policy",
            step=2,
            path="policy/policy.bin",
            size_bytes=len(ARTIFACT_BYTES),
            sha256=hashlib.sha256(ARTIFACT_BYTES).hexdigest(),
        )
        session.add(artifact)
        media_file = client.settings.runs_dir / str(side.run_id) / "media" / "step_000002" / "task0.gif"
        media_file.parent.mkdir(parents=True, exist_ok=True)
        media_file.write_bytes(MEDIA_BYTES)
        media = RunMedia(
            run_id=side.run_id,
            step=2,
            task=0,
            trajectory=0,
            success=True,
            instruction="pick",
            path="media/step_000002/task0.gif",
            content_type="image/gif",
            frame_ms=250,
            chunks=[{"chunk": 0, "phase": "grasp", "kept": True}],
        )
        session.add(media)
        session.flush()
        side.artifact_id = artifact.id
        side.media_id = media.id
    shared = client.post(f"/api/runs/{side.run_id}/share", headers=author)
    assert shared.status_code == 201, shared.text
    side.share_token = shared.json()["token"]
    cancelled = client.post(f"/api/runs/{side.run_id}/cancel", headers=author)
    assert cancelled.status_code == 200, cancelled.text


def build_world(client: Api) -> World:
    admin = bearer(login(client, "admin", ADMIN_PASSWORD))
    people = {name: {role: f"{name.lower()}-{role}" for role in (*ROLES, "author")} for name in LAB_NAMES}
    tokens = {
        name: {role: create_user(client, admin, username) for role, username in by_role.items()}
        for name, by_role in people.items()
    }
    labs = {}
    for name, by_role in people.items():
        roles = {username: ("member" if role == "author" else role) for role, username in by_role.items()}
        labs[name] = LabSide(name, create_lab(client, admin, f"lab-{name}", roles), tokens[name])
    everyone = {username: "member" for by_role in people.values() for username in by_role.values()}
    elsewhere = create_lab(client, admin, "elsewhere", everyone)
    for side in labs.values():
        seed_run(client, side)
    return World(client, admin, labs, elsewhere)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.slow)])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, queue_name: str
) -> Iterator[World]:
    """One app for the whole matrix (a database per case would cost far more than the cases)."""
    data_dir = tmp_path_factory.mktemp("matrix")
    pg_name = None
    if request.param == "postgres":
        url, pg_name = create_postgres_database()
    else:
        url = f"sqlite:///{data_dir / 'pcm.db'}"
    settings = Settings(
        database_url=url,
        broker_url=None,
        data_dir=data_dir,
        queue=queue_name,
        auth="required",
        admin_password=ADMIN_PASSWORD,
        sse_poll_s=0.05,
    )
    with Api(create_app(settings)) as client:
        client.settings = settings
        yield build_world(client)
    if pg_name:
        drop_postgres_database(pg_name)


# --- the matrix ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """What a case sends: path parameters, query and JSON body."""

    path_params: dict[str, Any]
    params: dict[str, Any] | None = None
    json: Any = None


@dataclass(frozen=True)
class Case:
    """One route (or one way of calling it), the request to send at a lab, and the status each
    caller must get. `xfail` names the cells whose fix is not in yet (caller -> issue item)."""

    name: str
    method: str
    path: str
    expect: dict[str, int]
    prepare: Callable[[World, LabSide], Request]
    check_allowed: Callable[[httpx.Response, LabSide], None] | None = None
    xfail: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        assert set(self.expect) == set(CALLERS), f"{self.name}: give an expectation for every caller"


def expect(
    owner: int, member: int, viewer: int, *, outsider: int = 404, anonymous: int = 401, share_guest: int = 401
) -> dict[str, int]:
    return dict(
        owner=owner,
        member=member,
        viewer=viewer,
        outsider=outsider,
        anonymous=anonymous,
        share_guest=share_guest,
    )


LAB_READ = expect(200, 200, 200)  # any role of the run's lab; hidden from other labs
SHARED_READ = expect(200, 200, 200, share_guest=200)  # ... and the run's share link
PUBLIC = dict.fromkeys(CALLERS, 200)  # pages and share-link lookups: the secret is the credential


def change(ok: int) -> dict[str, int]:
    """Cancel, requeue, clone, share: an owner or member of the lab; a viewer sees but may not."""
    return expect(ok, ok, 403)


def owners_only(ok: int) -> dict[str, int]:
    """Deleting a run or managing members: an owner of the lab."""
    return expect(ok, 403, 403)


def on_seeded_run(world: World, side: LabSide) -> Request:
    return Request({"run_id": side.run_id})


def check_metrics(response: httpx.Response, side: LabSide) -> None:
    assert response.json()["series"][ROLLOUT_SUCCESS] == [[0, 0.5], [1, 0.5], [2, 0.5]]


def check_artifact_download(response: httpx.Response, side: LabSide) -> None:
    assert response.content == ARTIFACT_BYTES


def check_media_file(response: httpx.Response, side: LabSide) -> None:
    assert response.content == MEDIA_BYTES


def check_event_stream(response: httpx.Response, side: LabSide) -> None:
    assert "event: status" in response.text


def on_fresh_running_run(world: World, side: LabSide) -> Request:
    """A fresh run of the lab, claimed by a worker (what only a worker writes, through the store)."""
    run_id = world.fresh_run(side, cancelled=False)
    with world.client.db() as session:
        assert lifecycle.claim_run(session, run_id, "matrix-worker")
    return Request({"run_id": run_id})


def on_fresh_sweep_link(world: World, side: LabSide) -> Request:
    sweep_id, link = world.fresh_sweep_share(side)
    return Request({"sweep_id": sweep_id, "link_id": link["id"]})


def check_run(response: httpx.Response, side: LabSide) -> None:
    assert response.json()["id"] == side.run_id


CASES = (
    # reads of the lab's run
    Case("run", "GET", "/api/runs/{run_id}", LAB_READ, on_seeded_run, check_run),
    Case("metrics", "GET", "/api/runs/{run_id}/metrics", SHARED_READ, on_seeded_run, check_metrics),
    Case("metric-names", "GET", "/api/runs/{run_id}/metric-names", SHARED_READ, on_seeded_run),
    Case("chunks", "GET", "/api/runs/{run_id}/chunks", SHARED_READ, on_seeded_run),
    Case("events", "GET", "/api/runs/{run_id}/events", SHARED_READ, on_seeded_run, check_event_stream),
    Case("media", "GET", "/api/runs/{run_id}/media", SHARED_READ, on_seeded_run),
    Case(
        "media-file",
        "GET",
        "/api/runs/{run_id}/media/{media_id}/file",
        SHARED_READ,
        lambda world, side: Request({"run_id": side.run_id, "media_id": side.media_id}),
        check_media_file,
    ),
    Case("artifacts", "GET", "/api/runs/{run_id}/artifacts", LAB_READ, on_seeded_run),
    Case(
        "artifact-download",
        "GET",
        "/api/artifacts/{artifact_id}/download",
        LAB_READ,
        lambda world, side: Request({"artifact_id": side.artifact_id}),
        check_artifact_download,
    ),
    Case("share-links", "GET", "/api/runs/{run_id}/share", LAB_READ, on_seeded_run),
    # tickets (what a browser's live stream and download links carry instead of a token): one is
    # given to whoever may do what it is for, a share link's guest included for the stream
    Case(
        "events-ticket",
        "POST",
        "/api/tickets",
        expect(201, 201, 201, share_guest=201),
        lambda world, side: Request({}, json={"purpose": "events", "run_id": side.run_id}),
    ),
    Case(
        "download-ticket",
        "POST",
        "/api/tickets",
        expect(201, 201, 201),
        lambda world, side: Request({}, json={"purpose": "download", "run_id": side.run_id}),
    ),
    Case(
        "compare",
        "GET",
        "/api/compare",
        LAB_READ,
        lambda world, side: Request({}, params={"ids": str(side.run_id)}),
    ),
    # changes to the lab's runs
    Case(
        "launch-into-lab",
        "POST",
        "/api/runs",
        change(201),
        lambda world, side: Request(
            {}, json={"preset": PRESET, "name": world.unique("launch"), "lab_id": side.lab_id}
        ),
    ),
    Case(
        "cancel",
        "POST",
        "/api/runs/{run_id}/cancel",
        change(200),
        lambda world, side: Request({"run_id": world.fresh_run(side, cancelled=False)}),
    ),
    Case(
        "edit-tags-notes",
        "PATCH",
        "/api/runs/{run_id}",
        change(200),
        lambda world, side: Request({"run_id": side.run_id}, json={"tags": ["checked"], "notes": "seen"}),
    ),
    Case(
        "requeue",
        "POST",
        "/api/runs/{run_id}/requeue",
        change(200),
        lambda world, side: Request({"run_id": world.fresh_run(side, cancelled=True)}),
    ),
    Case(
        "delete",
        "DELETE",
        "/api/runs/{run_id}",
        owners_only(204),
        lambda world, side: Request({"run_id": world.fresh_run(side, cancelled=True)}),
    ),
    Case(
        "clone",
        "POST",
        "/api/runs/{run_id}/clone",
        change(201),
        lambda world, side: Request({"run_id": side.run_id}, json={}),
    ),
    Case(
        "clone-to-another-lab",
        "POST",
        "/api/runs/{run_id}/clone",
        change(201),
        lambda world, side: Request({"run_id": side.run_id}, json={"lab_id": world.elsewhere_lab_id}),
    ),
    Case(
        "clone-to-another-lab-as-public",
        "POST",
        "/api/runs/{run_id}/clone",
        change(201),
        lambda world, side: Request(
            {"run_id": side.run_id}, json={"lab_id": world.elsewhere_lab_id, "visibility": "public"}
        ),
    ),
    Case("share", "POST", "/api/runs/{run_id}/share", change(201), on_seeded_run),
    Case(
        "revoke-share-link",
        "DELETE",
        "/api/runs/{run_id}/share/{link_id}",
        change(204),
        lambda world, side: Request({"run_id": side.run_id, "link_id": world.fresh_share_link(side)}),
    ),
    Case("record-episodes", "POST", "/api/runs/{run_id}/media/requests", change(202), on_fresh_running_run),
    # sweeps: read as the lab's runs are (a run's share link opens no sweep), changed as they are
    Case(
        "sweep",
        "GET",
        "/api/sweeps/{sweep_id}",
        expect(200, 200, 200, share_guest=404),
        lambda world, side: Request({"sweep_id": world.fresh_sweep(side)}),
    ),
    Case(
        "sweep-cancel",
        "POST",
        "/api/sweeps/{sweep_id}/cancel",
        change(200),
        lambda world, side: Request({"sweep_id": world.fresh_sweep(side)}),
    ),
    Case(
        "sweep-seeds",
        "POST",
        "/api/sweeps/{sweep_id}/seeds",
        change(201),
        lambda world, side: Request({"sweep_id": world.fresh_sweep(side)}, json={"seeds": [1]}),
    ),
    Case(
        "sweep-share",
        "POST",
        "/api/sweeps/{sweep_id}/share",
        change(201),
        lambda world, side: Request({"sweep_id": world.fresh_sweep(side)}),
    ),
    Case(
        "sweep-share-links",
        "GET",
        "/api/sweeps/{sweep_id}/share",
        LAB_READ,
        lambda world, side: Request({"sweep_id": world.fresh_sweep(side)}),
    ),
    Case(
        "revoke-sweep-share-link",
        "DELETE",
        "/api/sweeps/{sweep_id}/share/{link_id}",
        change(204),
        on_fresh_sweep_link,
    ),
    Case(
        "sweep-share-link-lookup",
        "GET",
        "/api/share/sweeps/{token}",
        PUBLIC,
        lambda world, side: Request({"token": world.fresh_sweep_share(side)[1]["token"]}),
    ),
    Case(
        "sweep-page",
        "GET",
        "/sweeps/{sweep_id}",
        PUBLIC,
        lambda world, side: Request({"sweep_id": world.fresh_sweep(side)}),
    ),
    Case(
        "sweep-share-page",
        "GET",
        "/share/sweeps/{token}",
        PUBLIC,
        lambda world, side: Request({"token": world.fresh_sweep_share(side)[1]["token"]}),
    ),
    # the lab itself
    Case("lab", "GET", "/api/labs/{lab_id}", LAB_READ, lambda world, side: Request({"lab_id": side.lab_id})),
    Case(
        "add-member",
        "POST",
        "/api/labs/{lab_id}/members",
        owners_only(200),
        lambda world, side: Request(
            {"lab_id": side.lab_id}, json={"username": world.fresh_user()[1], "role": "viewer"}
        ),
    ),
    Case(
        "remove-member",
        "DELETE",
        "/api/labs/{lab_id}/members/{user_id}",
        owners_only(204),
        lambda world, side: Request({"lab_id": side.lab_id, "user_id": world.fresh_user("viewer", side)[0]}),
    ),
    # API tokens are their user's alone, whatever the lab: the target is the lab member's token
    Case(
        "revoke-token",
        "DELETE",
        "/api/tokens/{token_id}",
        expect(404, 204, 404),
        lambda world, side: Request({"token_id": world.fresh_token_of(f"{side.name.lower()}-member")}),
    ),
    # the share link's secret is the credential; the pages are shells that load data from the API
    Case(
        "share-link-lookup",
        "GET",
        "/api/share/{token}",
        PUBLIC,
        lambda world, side: Request({"token": side.share_token}),
        check_run,
    ),
    Case("run-page", "GET", "/runs/{run_id}", PUBLIC, on_seeded_run),
    Case(
        "share-page",
        "GET",
        "/share/{token}",
        PUBLIC,
        lambda world, side: Request({"token": side.share_token}),
    ),
    Case(
        "swagger-asset",
        "GET",
        "/static/vendor/swagger-ui/{name}",
        PUBLIC,
        lambda world, side: Request({"name": "swagger-ui.css"}),
    ),
)


def matrix_params() -> list[Any]:
    params = []
    for case in CASES:
        for caller in CALLERS:
            for lab_name in LAB_NAMES:
                marks = []
                if caller in case.xfail:
                    marks.append(pytest.mark.xfail(strict=True, reason=case.xfail[caller]))
                params.append(
                    pytest.param(
                        case, caller, lab_name, id=f"{case.name}-{caller}-lab{lab_name}", marks=marks
                    )
                )
    return params


@pytest.mark.parametrize(("case", "caller", "lab_name"), matrix_params())
def test_matrix(world: World, case: Case, caller: str, lab_name: str) -> None:
    side = world.labs[lab_name]
    request = case.prepare(world, side)
    response = world.client.request(
        case.method,
        case.path.format(**request.path_params),
        params=request.params,
        json=request.json,
        headers=world.headers(caller, side),
    )
    wanted = case.expect[caller]
    assert response.status_code == wanted, (
        f"{caller} {case.method} {case.path} on lab {lab_name}: {response.status_code}, "
        f"expected {wanted}: {response.text[:300]}"
    )
    if wanted < 300 and case.check_allowed is not None:
        case.check_allowed(response, side)


# --- completeness ----------------------------------------------------------------------------------


def app_routes(app: FastAPI) -> Iterator[tuple[str, str]]:
    """(method, path) of every route of the app. FastAPI >= 0.16x keeps included routers as
    nested entries of `app.routes`; `iter_route_contexts` flattens them (older versions list the
    routes themselves)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # an older FastAPI: app.routes is already flat
        routes: Any = app.routes
    else:
        routes = iter_route_contexts(app.routes)
    for route in routes:
        for method in getattr(route, "methods", None) or ():
            if method != "HEAD":
                yield method, route.path


def test_every_route_with_a_path_parameter_is_in_the_matrix() -> None:
    """A route that takes a path parameter and has no case here fails: add a Case saying who may
    use it. (Mounted static files have no methods and no ids.)"""
    app = create_app(Settings(data_dir=Path("unused")))  # building the app touches no database
    with_path_parameters = {(method, path) for method, path in app_routes(app) if "{" in path}
    covered = {(case.method, case.path) for case in CASES}
    assert with_path_parameters - covered == set(), "routes with ids that no case of the matrix tries"
    assert {(m, p) for m, p in covered if "{" in p} - with_path_parameters == set(), (
        "cases of routes that are gone"
    )


def test_an_outsider_gets_the_same_404_as_for_an_id_that_does_not_exist(world: World) -> None:
    """Existence hiding: the other lab's run answers exactly like a missing run (same status and
    the same message, but for the id)."""
    side = world.labs["A"]
    outsider = world.headers("outsider", side)
    missing_id = side.run_id + 10_000
    for suffix in ("", "/metrics", "/artifacts", "/share"):
        hidden = world.client.get(f"/api/runs/{side.run_id}{suffix}", headers=outsider)
        missing = world.client.get(f"/api/runs/{missing_id}{suffix}", headers=outsider)
        assert hidden.status_code == missing.status_code == 404, suffix
        assert hidden.text.replace(str(side.run_id), "ID") == missing.text.replace(str(missing_id), "ID"), (
            suffix
        )

"""Token hygiene (issue 15, item 3): no long-lived token in a URL — live streams and downloads
take single-use tickets — tokens expire, a password reset revokes them, an open live stream ends
when its grant is revoked, and a real server's access log holds no secret."""

from __future__ import annotations

import hashlib
import threading
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update

from backend.store.models import ApiToken, Artifact, Run, ShareLink, Ticket, utcnow
from pcm_lab import cli
from tests.backend.conftest import ADMIN_PASSWORD, Api
from tests.backend.test_security import Lab, login, make_lab
from tests.services import ServiceStack, tiny_run_request

ARTIFACT_BYTES = b"policy weights"


@pytest.fixture(name="lab")
def two_labs(make_client) -> Lab:
    return make_lab(make_client)


def add_artifact(client: Api | ServiceStack, run_id: int) -> int:
    """A one-file policy artifact of `run_id`, on disk and in the database."""
    settings = client.settings
    folder = settings.runs_dir / str(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "policy.bin").write_bytes(ARTIFACT_BYTES)
    session_scope = client.db() if isinstance(client, Api) else client.session()
    with session_scope as session:
        artifact = Artifact(
            run_id=run_id,
            kind="policy",
            step=1,
            path="policy.bin",
            size_bytes=len(ARTIFACT_BYTES),
            sha256=hashlib.sha256(ARTIFACT_BYTES).hexdigest(),
        )
        session.add(artifact)
        session.flush()
        return artifact.id


def ticket(client: httpx.Client, purpose: str, run_id: int, credential: str) -> httpx.Response:
    body = {"purpose": purpose, "run_id": run_id}
    return client.post("/api/tickets", json=body, headers={"Authorization": f"Bearer {credential}"})


def finished_run(lab: Lab, user: str = "alice", **body) -> dict:
    run = lab.launch(user, **body)
    lab.client.post(f"/api/runs/{run['id']}/cancel", headers=lab.as_(user))  # so its stream ends
    return run


# --- no token in a URL ----------------------------------------------------------------------------


def test_no_route_takes_a_token_from_the_url(lab: Lab) -> None:
    """The dashboard used to put the login token into every live-stream and download URL, and
    102 access-log lines held it. The server now ignores `?access_token=` everywhere."""
    run = finished_run(lab)
    artifact_id = add_artifact(lab.client, run["id"])
    token = {"access_token": lab.tokens["alice"]}
    for url in (
        f"/api/runs/{run['id']}/events",
        f"/api/artifacts/{artifact_id}/download",
        f"/api/runs/{run['id']}/metrics",
        "/api/auth/me",
    ):
        assert lab.client.get(url, params=token).status_code == 401, url
    share = lab.client.post(f"/api/runs/{run['id']}/share", headers=lab.as_("alice")).json()["token"]
    events = lab.client.get(f"/api/runs/{run['id']}/events", params={"access_token": share})
    assert events.status_code == 401


def test_a_stream_ticket_opens_one_stream_of_one_run_once(lab: Lab) -> None:
    client = lab.client
    run, other = finished_run(lab), finished_run(lab)
    url = f"/api/runs/{run['id']}/events"
    made = ticket(client, "events", run["id"], lab.tokens["alice"])
    assert made.status_code == 201
    secret = made.json()["ticket"]
    with client.db() as session:  # only its hash is stored
        assert hashlib.sha256(secret.encode()).hexdigest() in session.scalars(select(Ticket.token_hash)).all()

    first = client.get(url, params={"ticket": secret})
    assert first.status_code == 200 and "event: status" in first.text
    assert client.get(url, params={"ticket": secret}).status_code == 401  # used up

    for_other = ticket(client, "events", other["id"], lab.tokens["alice"]).json()["ticket"]
    assert client.get(url, params={"ticket": for_other}).status_code == 404  # another run's
    for_stream = ticket(client, "events", run["id"], lab.tokens["alice"]).json()["ticket"]
    artifact_id = add_artifact(client, run["id"])
    download = client.get(f"/api/artifacts/{artifact_id}/download", params={"ticket": for_stream})
    assert download.status_code == 401  # another purpose's

    late = ticket(client, "events", run["id"], lab.tokens["alice"]).json()["ticket"]
    with client.db() as session:
        session.execute(update(Ticket).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert client.get(url, params={"ticket": late}).status_code == 401  # expired


def test_tickets_are_made_only_for_what_the_caller_may_do(lab: Lab) -> None:
    client = lab.client
    private = finished_run(lab, visibility="private")
    assert ticket(client, "events", private["id"], lab.tokens["bob"]).status_code == 404
    assert ticket(client, "download", private["id"], lab.tokens["bob"]).status_code == 404
    assert client.post("/api/tickets", json={"purpose": "events", "run_id": private["id"]}).status_code == 401
    share = client.post(f"/api/runs/{private['id']}/share", headers=lab.as_("alice")).json()["token"]
    assert ticket(client, "events", private["id"], share).status_code == 201
    assert ticket(client, "download", private["id"], share).status_code == 401  # a share link is no login
    assert ticket(client, "events", finished_run(lab)["id"], share).status_code == 404


def test_a_download_ticket_opens_one_download_of_its_run(lab: Lab) -> None:
    client = lab.client
    run, other = finished_run(lab), finished_run(lab)
    artifact_id, other_artifact = add_artifact(client, run["id"]), add_artifact(client, other["id"])
    url = f"/api/artifacts/{artifact_id}/download"
    secret = ticket(client, "download", run["id"], lab.tokens["alice"]).json()["ticket"]
    download = client.get(url, params={"ticket": secret})
    assert download.status_code == 200 and download.content == ARTIFACT_BYTES
    assert client.get(url, params={"ticket": secret}).status_code == 401
    secret = ticket(client, "download", run["id"], lab.tokens["alice"]).json()["ticket"]
    wrong_run = client.get(f"/api/artifacts/{other_artifact}/download", params={"ticket": secret})
    assert wrong_run.status_code == 404


def test_a_ticket_dies_with_the_token_it_was_made_with(lab: Lab) -> None:
    client = lab.client
    run = finished_run(lab)
    secret = ticket(client, "events", run["id"], lab.tokens["alice"]).json()["ticket"]
    client.post("/api/auth/logout", headers=lab.as_("alice"))
    assert client.get(f"/api/runs/{run['id']}/events", params={"ticket": secret}).status_code == 401


# --- expiry and password resets -------------------------------------------------------------------


def test_tokens_expire(lab: Lab) -> None:
    """Tokens used to work forever."""
    client, alice = lab.client, lab.as_("alice")
    assert client.get("/api/auth/me", headers=alice).status_code == 200
    ttl = timedelta(hours=client.settings.token_ttl_hours)
    with client.db() as session:
        session.execute(update(ApiToken).values(created_at=utcnow() - ttl - timedelta(seconds=1)))
    expired = client.get("/api/auth/me", headers=alice)
    assert expired.status_code == 401 and "expired" in expired.json()["detail"]


def test_a_password_reset_from_the_cli_revokes_the_users_tokens(lab: Lab, monkeypatch) -> None:
    """A password reset used to keep every old token working."""
    client = lab.client
    settings = client.settings
    monkeypatch.setenv("PCM_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("PCM_DATA_DIR", str(settings.data_dir))
    assert cli.main(["user", "add", "alice", "--password", "alice-new-password"]) == 0
    assert client.get("/api/auth/me", headers=lab.as_("alice")).status_code == 401
    assert client.get("/api/auth/me", headers=lab.as_("bob")).status_code == 200  # only hers
    assert login(client, "alice", "alice-new-password")


def test_a_new_admin_password_on_start_revokes_the_admins_tokens(make_client) -> None:
    first = make_client(auth="required")
    admin = {"Authorization": f"Bearer {login(first, 'admin', ADMIN_PASSWORD)}"}
    again = make_client(auth="required", admin_password="a-new-admin-password")
    assert again.get("/api/auth/me", headers=admin).status_code == 401
    assert login(again, "admin", "a-new-admin-password")


# --- an open live stream ends with its grant ------------------------------------------------------


def stream_ends_when(client: Api, run_id: int, revoke, **request) -> bool:
    """Open the run's stream (the run is queued: it would go on for ever), call `revoke`, and
    say whether the stream ended within a few seconds. If not, the run is then cancelled, so
    the test fails instead of hanging."""
    answer: dict[str, httpx.Response] = {}
    reader = threading.Thread(
        target=lambda: answer.setdefault("r", client.get(f"/api/runs/{run_id}/events", **request)),
        daemon=True,
    )
    reader.start()
    reader.join(0.5)  # the stream is open and waiting
    revoke()
    reader.join(5.0)
    ended = not reader.is_alive()
    if not ended:
        with client.db() as session:
            session.get(Run, run_id).status = "cancelled"
        reader.join(10.0)
    assert answer["r"].status_code == 200
    return ended


def revoke_all(model: type[ApiToken] | type[ShareLink], client: Api):
    def revoke() -> None:
        with client.db() as session:
            session.execute(update(model).values(revoked_at=utcnow()))

    return revoke


def test_an_open_stream_ends_when_its_token_is_revoked(lab: Lab) -> None:
    """An open live stream used to keep delivering after its token was revoked."""
    run = lab.launch("alice")
    assert stream_ends_when(lab.client, run["id"], revoke_all(ApiToken, lab.client), headers=lab.as_("alice"))


def test_an_open_stream_opened_with_a_ticket_ends_when_its_token_is_revoked(lab: Lab) -> None:
    run = lab.launch("alice")
    secret = ticket(lab.client, "events", run["id"], lab.tokens["alice"]).json()["ticket"]
    revoke = revoke_all(ApiToken, lab.client)
    assert stream_ends_when(lab.client, run["id"], revoke, params={"ticket": secret})


def test_an_open_shared_stream_ends_when_its_link_is_revoked(lab: Lab) -> None:
    run = lab.launch("alice")
    share = lab.client.post(f"/api/runs/{run['id']}/share", headers=lab.as_("alice")).json()["token"]
    secret = ticket(lab.client, "events", run["id"], share).json()["ticket"]
    revoke = revoke_all(ShareLink, lab.client)
    assert stream_ends_when(lab.client, run["id"], revoke, params={"ticket": secret})


# --- a real server's access log -------------------------------------------------------------------


@pytest.mark.slow
def test_the_access_log_of_a_real_server_holds_no_secret(tmp_path: Path) -> None:
    """Starts `pcm api` (uvicorn, access log on) with logins required; logs in, streams, downloads
    and follows a share link as the dashboard does; then greps the log for every secret used."""
    password = "a-long-admin-password"
    env = {"PCM_AUTH": "required", "PCM_ADMIN_PASSWORD": password}
    with ServiceStack(tmp_path, env=env) as stack, stack.client() as client:
        stack.start_api()
        secrets = [password, "a-wrong-password"]
        wrong = client.post("/api/auth/login", json={"username": "admin", "password": secrets[1]})
        assert wrong.status_code == 401
        token = login(client, "admin", password)
        client.headers["Authorization"] = f"Bearer {token}"
        run_id = client.post("/api/runs", json=tiny_run_request("logged")).json()["id"]
        assert client.post(f"/api/runs/{run_id}/cancel").status_code == 200
        artifact_id = add_artifact(stack, run_id)
        share = client.post(f"/api/runs/{run_id}/share").json()["token"]
        secrets += [token, share]
        del client.headers["Authorization"]

        def issued(purpose: str, credential: str) -> str:
            secrets.append(ticket(client, purpose, run_id, credential).json()["ticket"])
            return secrets[-1]

        events = client.get(f"/api/runs/{run_id}/events", params={"ticket": issued("events", token)})
        assert "event: status" in events.text
        download_ticket = {"ticket": issued("download", token)}
        download = client.get(f"/api/artifacts/{artifact_id}/download", params=download_ticket)
        assert download.content == ARTIFACT_BYTES
        assert client.get(f"/share/{share}").status_code == 200
        assert client.get(f"/api/share/{share}").json()["id"] == run_id
        shared = client.get(f"/api/runs/{run_id}/events", params={"ticket": issued("events", share)})
        assert "event: status" in shared.text
        old_client = client.get(f"/api/runs/{run_id}/events", params={"access_token": token})
        assert old_client.status_code == 401
        stack.close()  # flush and close the log

        log = (stack.logs_dir / "api.log").read_text()
        assert f"GET /api/runs/{run_id}/events?ticket=[redacted]" in log  # the access log was on
        assert "GET /share/[redacted]" in log
        leaked = [f"secret #{i}" for i, secret in enumerate(secrets) if secret in log]
        assert not leaked, f"{leaked} of {len(secrets)} secrets are in the access log"

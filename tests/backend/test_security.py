"""Authentication and visibility with tokens required (the lab profile)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from backend.store.models import ApiToken, ChunkMask, Metric, ShareLink
from pcm_engine.metrics import ROLLOUT_SUCCESS
from tests.backend.conftest import ADMIN_PASSWORD, Api


@dataclass
class Lab:
    """Two labs: alice is a member and carol a viewer of lab A; bob is a member of lab B."""

    client: Api
    tokens: dict[str, str]
    lab_a: int
    lab_b: int

    def as_(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    def launch(self, user: str, **body) -> dict:
        body = {"name": "r", "preset": "tabletop_pcm", **body}
        response = self.client.post("/api/runs", json=body, headers=self.as_(user))
        assert response.status_code == 201, response.text
        return response.json()


def login(client: Api, username: str, password: str) -> str:
    response = client.post("/api/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return response.json()["token"]


@pytest.fixture
def lab(make_client) -> Lab:
    return make_lab(make_client)


def make_lab(make_client, **settings) -> Lab:
    """The two labs on a fresh app with logins required (and these settings)."""
    client = make_client(auth="required", **settings)
    admin = {"Authorization": f"Bearer {login(client, 'admin', ADMIN_PASSWORD)}"}
    tokens = {}
    for user in ("alice", "bob", "carol"):
        created = client.post(
            "/api/users", json={"username": user, "password": f"{user}-password"}, headers=admin
        )
        assert created.status_code == 201, created.text
        tokens[user] = login(client, user, f"{user}-password")
    lab_ids = []
    for name, members in (("A", {"alice": "member", "carol": "viewer"}), ("B", {"bob": "member"})):
        lab_id = client.post("/api/labs", json={"name": name}, headers=admin).json()["id"]
        for user, role in members.items():
            added = client.post(
                f"/api/labs/{lab_id}/members", json={"username": user, "role": role}, headers=admin
            )
            assert added.status_code == 200, added.text
        lab_ids.append(lab_id)
    return Lab(client, tokens, *lab_ids)


def test_requests_without_a_valid_token_are_401(lab: Lab) -> None:
    client = lab.client
    assert client.get("/api/runs").status_code == 401
    assert client.get("/api/runs", headers={"Authorization": "Bearer pcm_not-a-token"}).status_code == 401
    assert client.post("/api/runs", json={"name": "x", "preset": "tabletop_pcm"}).status_code == 401
    assert "WWW-Authenticate" in client.get("/api/auth/me").headers
    for public in ("/api/health", "/api/presets", "/api/config-schema", "/api/contract"):
        assert client.get(public).status_code == 200, public
    wrong = client.post("/api/auth/login", json={"username": "alice", "password": "nope"})
    assert wrong.status_code == 401


def test_runs_of_another_lab_are_404_whatever_their_visibility(lab: Lab) -> None:
    private = lab.launch("alice", visibility="private")
    in_lab = lab.launch("alice", visibility="lab")
    public = lab.launch("alice", visibility="public")
    client, bob = lab.client, lab.as_("bob")

    for run in (private, in_lab):
        assert client.get(f"/api/runs/{run['id']}", headers=bob).status_code == 404
        assert client.get(f"/api/runs/{run['id']}/metrics", headers=bob).status_code == 404
        assert client.post(f"/api/runs/{run['id']}/cancel", headers=bob).status_code == 404
    assert client.get(f"/api/runs/{public['id']}", headers=bob).status_code == 200
    assert client.post(f"/api/runs/{public['id']}/cancel", headers=bob).status_code == 403
    listed = client.get("/api/runs", headers=bob).json()
    assert [run["id"] for run in listed["data"]] == [public["id"]] and listed["count"] == 1
    assert client.get(f"/api/compare?ids={public['id']},{private['id']}", headers=bob).status_code == 404
    # a lab member (any role) sees lab runs, but not another member's private run
    carol = lab.as_("carol")
    assert client.get(f"/api/runs/{in_lab['id']}", headers=carol).status_code == 200
    assert client.get(f"/api/runs/{private['id']}", headers=carol).status_code == 404


def test_a_viewer_may_read_but_not_launch_or_change(lab: Lab) -> None:
    run = lab.launch("alice")
    client, carol = lab.client, lab.as_("carol")

    body = {"name": "x", "preset": "tabletop_pcm"}
    assert client.post("/api/runs", json={**body, "lab_id": lab.lab_a}, headers=carol).status_code == 403
    assert client.post("/api/runs", json=body, headers=carol).status_code == 403  # no lab to launch in
    assert client.post(f"/api/runs/{run['id']}/cancel", headers=carol).status_code == 403
    assert client.post(f"/api/runs/{run['id']}/clone", json={}, headers=carol).status_code == 403
    assert client.delete(f"/api/runs/{run['id']}", headers=carol).status_code == 403
    assert client.get(f"/api/runs/{run['id']}/chunks", headers=carol).status_code == 200
    assert lab.launch("alice", lab_id=lab.lab_a)["lab_id"] == lab.lab_a
    assert (
        client.post("/api/runs", json={**body, "lab_id": lab.lab_b}, headers=lab.as_("alice")).status_code
        == 404
    )


def test_tokens_are_stored_hashed_and_can_be_revoked(lab: Lab) -> None:
    client, alice = lab.client, lab.as_("alice")
    created = client.post("/api/tokens", json={"name": "ci"}, headers=alice)
    assert created.status_code == 201
    secret = created.json()["token"]
    assert secret.startswith(created.json()["prefix"])
    script = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/auth/me", headers=script).json()["username"] == "alice"

    with client.db() as session:
        rows = session.scalars(select(ApiToken)).all()
        stored = " ".join(f"{r.token_hash} {r.prefix} {r.name}" for r in rows)
        assert secret not in stored and lab.tokens["alice"] not in stored
        assert hashlib.sha256(secret.encode()).hexdigest() in stored
    assert "token" not in client.get("/api/tokens", headers=alice).json()[0]

    assert client.delete(f"/api/tokens/{created.json()['id']}", headers=alice).status_code == 204
    assert client.get("/api/auth/me", headers=script).status_code == 401
    assert client.delete(f"/api/tokens/{created.json()['id']}", headers=lab.as_("bob")).status_code == 404


def test_only_admins_create_users(lab: Lab) -> None:
    body = {"username": "mallory", "password": "mallory-password"}
    assert lab.client.post("/api/users", json=body, headers=lab.as_("alice")).status_code == 403


def test_lab_membership_management(lab: Lab) -> None:
    client, alice, bob = lab.client, lab.as_("alice"), lab.as_("bob")
    assert client.get(f"/api/labs/{lab.lab_a}", headers=bob).status_code == 404
    assert [lab_["name"] for lab_ in client.get("/api/labs", headers=alice).json()] == ["A"]
    admin = {"Authorization": f"Bearer {login(client, 'admin', ADMIN_PASSWORD)}"}
    own = client.post("/api/labs", json={"name": "alice-lab"}, headers=admin).json()
    assert own["role"] == "owner"  # the admin who created it, who hands it to alice and leaves
    client.post(f"/api/labs/{own['id']}/members", json={"username": "alice", "role": "owner"}, headers=admin)
    admin_id = client.get("/api/auth/me", headers=admin).json()["id"]
    assert client.delete(f"/api/labs/{own['id']}/members/{admin_id}", headers=admin).status_code == 204
    added = client.post(
        f"/api/labs/{own['id']}/members", json={"username": "bob", "role": "viewer"}, headers=alice
    )
    assert {m["username"]: m["role"] for m in added.json()["members"]} == {"alice": "owner", "bob": "viewer"}
    assert (
        client.post(f"/api/labs/{own['id']}/members", json={"username": "carol"}, headers=bob).status_code
        == 403
    )
    alice_id = client.get("/api/auth/me", headers=alice).json()["id"]
    assert (
        client.delete(f"/api/labs/{own['id']}/members/{alice_id}", headers=alice).status_code == 409
    )  # last owner
    assert client.post("/api/labs", json={"name": "alice-lab"}, headers=admin).status_code == 409


def test_a_share_link_is_readable_logged_out_until_revoked(lab: Lab) -> None:
    run = lab.launch("alice", visibility="private")
    client = lab.client
    assert client.post(f"/api/runs/{run['id']}/share", headers=lab.as_("bob")).status_code == 404
    shared = client.post(f"/api/runs/{run['id']}/share", headers=lab.as_("alice"))
    assert shared.status_code == 201
    token, url = shared.json()["token"], shared.json()["url"]
    assert url == f"http://testserver/share/{token}"  # PCM_PUBLIC_URL unset: the request's address
    client.post(f"/api/runs/{run['id']}/cancel", headers=lab.as_("alice"))  # final, so the stream ends

    assert client.get(f"/api/share/{token}").json()["id"] == run["id"]
    guest = {"Authorization": f"Bearer {token}"}
    assert client.get(f"/api/runs/{run['id']}/metrics", headers=guest).json()["series"] == {}
    assert client.get(f"/api/runs/{run['id']}/chunks", headers=guest).json()["records"] == []
    ticket = client.post("/api/tickets", json={"purpose": "events", "run_id": run["id"]}, headers=guest)
    events = client.get(f"/api/runs/{run['id']}/events", params={"ticket": ticket.json()["ticket"]})
    assert events.status_code == 200 and "event: status" in events.text
    with client.db() as session:
        assert token not in session.scalar(select(ShareLink.token_hash))

    link_id = shared.json()["id"]
    assert (
        client.delete(f"/api/runs/{run['id']}/share/{link_id}", headers=lab.as_("alice")).status_code == 204
    )
    assert client.get(f"/api/share/{token}").status_code == 404
    assert client.get(f"/api/runs/{run['id']}/metrics", headers=guest).status_code == 404
    assert client.get("/api/share/not-a-token").status_code == 404
    not_a_share = {"Authorization": "Bearer pcms_not-a-token"}
    assert client.get(f"/api/runs/{run['id']}/metrics", headers=not_a_share).status_code == 404


def test_a_share_token_reads_what_a_member_reads_and_nothing_else(lab: Lab) -> None:
    client, alice = lab.client, lab.as_("alice")
    shared, other = lab.launch("alice", visibility="private"), lab.launch("alice", visibility="lab")
    with client.db() as session:
        for run_id, value in ((shared["id"], 0.25), (other["id"], 0.75)):
            session.add_all(
                Metric(run_id=run_id, name=ROLLOUT_SUCCESS, step=s, value=value, wall_time=float(s))
                for s in range(3)
            )
            chunk = dict(step=2, trajectory=0, chunk=0, phase="grasp", kept=True, success=True, group=0)
            session.add(ChunkMask(run_id=run_id, **chunk))
    for run in (shared, other):
        client.post(f"/api/runs/{run['id']}/cancel", headers=alice)  # final, so the streams end
    token = client.post(f"/api/runs/{shared['id']}/share", headers=alice).json()["token"]
    guest = {"Authorization": f"Bearer {token}"}

    reads = ("metrics", "metric-names", "chunks", "events")
    for read in reads:
        url = f"/api/runs/{shared['id']}/{read}"
        as_member, as_guest = client.get(url, headers=alice), client.get(url, headers=guest)
        assert as_member.status_code == as_guest.status_code == 200, read
        assert as_guest.content == as_member.content, read
    assert client.get(f"/api/runs/{shared['id']}/metrics", headers=guest).json()["series"] == {
        ROLLOUT_SUCCESS: [[0, 0.25], [1, 0.25], [2, 0.25]]
    }

    for read in reads:  # another run, even one in the same lab: as if it did not exist
        assert client.get(f"/api/runs/{other['id']}/{read}", headers=guest).status_code == 404, read
    ticket = client.post("/api/tickets", json={"purpose": "events", "run_id": other["id"]}, headers=guest)
    assert ticket.status_code == 404
    for member_only in (  # a share token is no login: everything else needs a user
        f"/api/runs/{shared['id']}",
        f"/api/runs/{shared['id']}/artifacts",
        f"/api/runs/{shared['id']}/share",
        "/api/runs",
        f"/api/compare?ids={shared['id']}",
        "/api/auth/me",
    ):
        assert client.get(member_only, headers=guest).status_code == 401, member_only
    assert client.post(f"/api/runs/{shared['id']}/cancel", headers=guest).status_code == 401


def test_the_event_stream_takes_a_ticket_never_a_token_in_the_url(lab: Lab) -> None:
    run = lab.launch("alice")
    lab.client.post(f"/api/runs/{run['id']}/cancel", headers=lab.as_("alice"))
    url = f"/api/runs/{run['id']}/events"
    assert lab.client.get(url).status_code == 401
    assert lab.client.get(url, params={"access_token": lab.tokens["alice"]}).status_code == 401
    ticket = lab.client.post(
        "/api/tickets", json={"purpose": "events", "run_id": run["id"]}, headers=lab.as_("alice")
    ).json()["ticket"]
    assert lab.client.get(url, params={"ticket": ticket}).status_code == 200

"""Roles (issue 15, item 5; the table is in docs/architecture.md, "Who may do what")."""

from __future__ import annotations

from tests.backend import test_security
from tests.backend.test_security import Lab

lab = test_security.lab  # the two-lab fixture: alice member and carol viewer of A, bob member of B


def test_only_admins_create_labs(lab: Lab) -> None:
    """The attack: a viewer created a lab of her own and launched (and cloned) into it."""
    for user in ("carol", "alice"):
        response = lab.client.post("/api/labs", json={"name": f"{user}-lab"}, headers=lab.as_(user))
        assert response.status_code == 403 and "admin" in response.text


def give_carol_a_lab(lab: Lab) -> int:
    admin = {"Authorization": f"Bearer {test_security.login(lab.client, 'admin', 'admin-password')}"}
    lab_id = lab.client.post("/api/labs", json={"name": "C"}, headers=admin).json()["id"]
    lab.client.post(f"/api/labs/{lab_id}/members", json={"username": "carol", "role": "owner"}, headers=admin)
    return lab_id


def test_a_viewer_may_not_copy_a_lab_run_out_of_its_lab(lab: Lab) -> None:
    """The attack: a viewer of lab A cloned a lab-A run into her own lab as public, and a lab-B
    user read lab A's config."""
    run = lab.launch("alice")
    lab_c, carol = give_carol_a_lab(lab), lab.as_("carol")
    url = f"/api/runs/{run['id']}/clone"
    for body in (
        {"lab_id": lab_c},
        {"lab_id": lab_c, "visibility": "public"},
        {"lab_id": lab_c, "visibility": "private"},
    ):
        response = lab.client.post(url, json=body, headers=carol)
        assert response.status_code == 403 and "out of its lab" in response.text, body
    listed = lab.client.get("/api/runs", headers=lab.as_("bob")).json()
    assert listed["count"] == 0
    # a member may; and anyone may clone a run that is public already
    assert lab.client.post(url, json={"visibility": "public"}, headers=lab.as_("alice")).status_code == 201
    public = lab.launch("bob", lab_id=lab.lab_b, visibility="public")
    assert (
        lab.client.post(f"/api/runs/{public['id']}/clone", json={"lab_id": lab_c}, headers=carol).status_code
        == 201
    )


def test_adding_a_member_needs_an_owner_of_that_lab(lab: Lab) -> None:
    """The attack: any user could add any user (admin included) to a lab of their own."""
    for user in ("alice", "carol", "bob"):
        added = lab.client.post(
            f"/api/labs/{lab.lab_a}/members",
            json={"username": "admin", "role": "viewer"},
            headers=lab.as_(user),
        )
        assert added.status_code in (403, 404), user
    lab_c = give_carol_a_lab(lab)
    ok = lab.client.post(f"/api/labs/{lab_c}/members", json={"username": "bob"}, headers=lab.as_("carol"))
    assert ok.status_code == 200


def test_adding_an_unknown_username_answers_like_a_known_one(lab: Lab) -> None:
    lab_c, carol = give_carol_a_lab(lab), lab.as_("carol")
    url = f"/api/labs/{lab_c}/members"
    unknown = lab.client.post(url, json={"username": "nobody-here", "role": "viewer"}, headers=carol)
    known = lab.client.post(url, json={"username": "bob", "role": "viewer"}, headers=carol)
    assert unknown.status_code == known.status_code == 200
    assert "nobody-here" not in unknown.text and unknown.json().keys() == known.json().keys()


def test_leaving_a_lab_revokes_the_share_links_one_made_for_its_runs(lab: Lab) -> None:
    """The attack: a member removed from a lab kept working share links he made."""
    run = lab.launch("bob", lab_id=lab.lab_b)
    own = lab.launch("alice", lab_id=lab.lab_a)
    token = lab.client.post(f"/api/runs/{run['id']}/share", headers=lab.as_("bob")).json()["token"]
    other = lab.client.post(f"/api/runs/{own['id']}/share", headers=lab.as_("alice")).json()["token"]
    assert lab.client.get(f"/api/share/{token}").status_code == 200
    bob_id = lab.client.get("/api/auth/me", headers=lab.as_("bob")).json()["id"]
    left = lab.client.delete(f"/api/labs/{lab.lab_b}/members/{bob_id}", headers=lab.as_("bob"))
    assert left.status_code == 204
    assert lab.client.get(f"/api/share/{token}").status_code == 404
    assert lab.client.get(f"/api/share/{other}").status_code == 200  # another lab's links stay

"""A run launched over the API starts from a policy named by a run or artifact id the caller may
read, never by a server path (issue 15, item 1)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from backend.store.models import Artifact, Run
from tests.backend import test_security
from tests.backend.test_security import Lab

lab = test_security.lab  # the two-lab fixture: alice member and carol viewer of A, bob member of B

REFUSED = "a server path is not accepted over the API"


def exported_policy(lab: Lab, run_id: int) -> int:
    """Give run `run_id` an exported policy on disk, as a worker does when the run succeeds."""
    folder = lab.client.settings.runs_dir / str(run_id) / "policy"
    folder.mkdir(parents=True)
    (folder / "policy.json").write_text("{}")
    with lab.client.db() as session:
        session.get(Run, run_id).run_dir = str(folder.parent.resolve())
        artifact = Artifact(
            run_id=run_id, kind="policy", step=3, path=str(folder.resolve()), size_bytes=2, sha256="0" * 64
        )
        session.add(artifact)
        session.flush()
        return artifact.id


def stored_pretrained(lab: Lab, run_id: int) -> str | None:
    with lab.client.db() as session:
        return session.scalar(select(Run.config).where(Run.id == run_id))["policy"]["pretrained"]


def test_a_raw_pretrained_path_is_refused_the_same_whatever_it_names(lab: Lab) -> None:
    """The attack: lab A launched from `<data dir>/runs/<lab-B run>/policy` and downloaded it;
    `/etc` and `/nonexistent` answered differently."""
    b_run = lab.launch("bob", lab_id=lab.lab_b)
    exported_policy(lab, b_run["id"])
    b_folder = str(lab.client.settings.runs_dir.resolve() / str(b_run["id"]) / "policy")
    answers = []
    for path in (b_folder, "/etc", "/nonexistent"):
        for body in (
            {"overrides": {"policy.pretrained": path, "train.steps": 0}},
            {"overrides": {"policy": {"pretrained": path}}},
        ):
            response = lab.client.post(
                "/api/runs", json={"name": "x", "preset": "tabletop_pcm", **body}, headers=lab.as_("alice")
            )
            assert response.status_code == 422 and response.json()["fields"] == ["policy.pretrained"]
            assert REFUSED in response.text and path not in response.text
            answers.append(response.json())
        whole = lab.client.post(
            "/api/runs", json={"config": {"policy": {"pretrained": path}}}, headers=lab.as_("alice")
        )
        assert whole.status_code == 422 and whole.json()["fields"] == ["policy.pretrained"]
        assert path not in whole.text
    assert all(answer == answers[0] for answer in answers[::2])
    null = {"name": "x", "preset": "tabletop_pcm", "overrides": {"policy.pretrained": None}}
    assert lab.client.post("/api/runs", json=null, headers=lab.as_("alice")).status_code == 201


def test_a_run_starts_from_a_policy_it_may_read_by_run_or_artifact_id(lab: Lab) -> None:
    source = lab.launch("alice")
    artifact_id = exported_policy(lab, source["id"])
    folder = str(lab.client.settings.runs_dir.resolve() / str(source["id"]) / "policy")
    by_run = lab.launch("alice", start_from={"run": source["id"]})
    by_artifact = lab.launch("alice", start_from={"artifact": artifact_id})
    assert stored_pretrained(lab, by_run["id"]) == stored_pretrained(lab, by_artifact["id"]) == folder
    # the viewer of lab A reads it too, but launches nowhere; bob of lab B may not read it
    bob = lab.as_("bob")
    answers = [
        lab.client.post(
            "/api/runs", json={"name": "x", "preset": "tabletop_pcm", "start_from": ref}, headers=bob
        )
        for ref in ({"run": source["id"]}, {"run": 10**6}, {"artifact": artifact_id}, {"artifact": 10**6})
    ]
    assert [a.status_code for a in answers] == [422] * 4
    assert answers[0].json()["detail"][0]["msg"] == f"no run {source['id']} that you may read"
    assert answers[2].json()["detail"][0]["msg"] == f"no artifact {artifact_id} that you may read"
    assert all(folder not in a.text for a in answers)
    assert answers[0].json()["fields"] == ["start_from.run"]


def test_a_checkpoint_or_a_run_without_a_policy_is_no_start(lab: Lab) -> None:
    run = lab.launch("alice")
    refused = lab.client.post(
        "/api/runs",
        json={"name": "x", "preset": "tabletop_pcm", "start_from": {"run": run["id"]}},
        headers=lab.as_("alice"),
    )
    assert refused.status_code == 422 and "no exported policy" in refused.text
    both = {"run": run["id"], "artifact": 1}
    response = lab.client.post(
        "/api/runs",
        json={"name": "x", "preset": "tabletop_pcm", "start_from": both},
        headers=lab.as_("alice"),
    )
    assert response.status_code == 422


def test_artifact_listings_and_run_details_show_no_server_paths(lab: Lab) -> None:
    run = lab.launch("alice")
    exported_policy(lab, run["id"])
    data_dir = str(lab.client.settings.data_dir.resolve())
    listed = lab.client.get(f"/api/runs/{run['id']}/artifacts", headers=lab.as_("alice"))
    assert listed.json()[0]["name"] == "policy" and data_dir not in listed.text
    detail = lab.client.get(f"/api/runs/{run['id']}", headers=lab.as_("alice"))
    assert "run_dir" not in detail.json() and data_dir not in detail.text


@pytest.fixture
def b_policy_run(lab: Lab) -> dict:
    """A public lab-B run that started from a lab-B run's private policy."""
    private = lab.launch("bob", lab_id=lab.lab_b, visibility="private")
    exported_policy(lab, private["id"])
    return lab.launch("bob", lab_id=lab.lab_b, visibility="public", start_from={"run": private["id"]})


def test_a_clone_does_not_carry_a_policy_its_caller_may_not_read(lab: Lab, b_policy_run: dict) -> None:
    alice = lab.as_("alice")
    url = f"/api/runs/{b_policy_run['id']}/clone"
    carried = lab.client.post(url, json={"lab_id": lab.lab_a}, headers=alice)
    assert carried.status_code == 422 and carried.json()["fields"] == ["policy.pretrained"]
    assert str(lab.client.settings.data_dir.resolve()) not in carried.text
    path = {"lab_id": lab.lab_a, "overrides": {"policy.pretrained": "/etc"}}
    assert lab.client.post(url, json=path, headers=alice).status_code == 422
    fresh = {"lab_id": lab.lab_a, "overrides": {"policy.pretrained": None}}
    assert lab.client.post(url, json=fresh, headers=alice).status_code == 201
    # bob may read the policy, so his clone keeps it
    mine = lab.client.post(url, json={}, headers=lab.as_("bob"))
    assert mine.status_code == 201
    assert stored_pretrained(lab, mine.json()["id"]) == stored_pretrained(lab, b_policy_run["id"])
    assert Path(stored_pretrained(lab, mine.json()["id"])).name == "policy"


def test_every_run_of_a_sweep_starts_from_its_policy_seeds_added_later_too(lab: Lab) -> None:
    source = lab.launch("alice")
    exported_policy(lab, source["id"])
    folder = str(lab.client.settings.runs_dir.resolve() / str(source["id"]) / "policy")
    body = {
        "name": "sw",
        "preset": "tabletop_pcm",
        "grid": {"pcm.selector": ["full", "pcm"]},
        "seeds": [0],
        "start_from": {"run": source["id"]},
    }
    created = lab.client.post("/api/sweeps", json=body, headers=lab.as_("alice"))
    assert created.status_code == 201, created.text
    sweep_id = created.json()["id"]
    added = lab.client.post(f"/api/sweeps/{sweep_id}/seeds", json={"seeds": [1]}, headers=lab.as_("alice"))
    assert added.status_code == 201, added.text
    runs = created.json()["runs"] + added.json()["runs"]
    assert len(runs) == 4 and {stored_pretrained(lab, run_id) for run_id in runs} == {folder}
    shown = lab.client.get(f"/api/sweeps/{sweep_id}", headers=lab.as_("alice"))
    assert shown.json()["start_from"] == {"run": source["id"], "artifact": None}
    assert folder not in shown.text  # the reference, never the folder

    # bob (lab B) may not read alice's policy: the sweep is refused whole, naming the field
    refused = lab.client.post("/api/sweeps", json={**body, "lab_id": lab.lab_b}, headers=lab.as_("bob"))
    assert refused.status_code == 422 and refused.json()["fields"] == ["start_from.run"]
    assert folder not in refused.text

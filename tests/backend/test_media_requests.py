"""POST /api/runs/{id}/media/requests: episodes of a running run's current step on demand. Who may
cancel the run may ask (a viewer may not, another lab's member does not see it); only a running
run takes a request; its worker takes it once (backend/store/media_requests.py)."""

from __future__ import annotations

from backend.store import lifecycle, media_requests
from backend.store.models import Run
from tests.backend.conftest import Api, launch
from tests.backend.test_security import Lab, lab  # noqa: F401 (the fixture)

WORKER = "w1@test"


def claim(client: Api, run_id: int, worker: str = WORKER) -> None:
    """What a worker does when it takes the run: queued -> running."""
    with client.db() as session:
        assert lifecycle.claim_run(session, run_id, worker)


def requests_url(run_id: int) -> str:
    return f"/api/runs/{run_id}/media/requests"


def test_a_running_run_takes_a_request_that_its_worker_takes_once(client: Api) -> None:
    run = launch(client)
    claim(client, run["id"])
    assert client.get(f"/api/runs/{run['id']}").json()["media_requested_at"] is None

    asked = client.post(requests_url(run["id"]))
    assert asked.status_code == 202, asked.text
    body = asked.json()
    assert body["run_id"] == run["id"] and body["step"] == 1  # steps_done 0: the first step
    detail = client.get(f"/api/runs/{run['id']}").json()
    assert detail["media_requested_at"] is not None and detail["may_change"] is True
    assert client.post(requests_url(run["id"])).status_code == 202  # asked twice: one request

    with client.db() as session:
        assert not media_requests.take(session, run["id"], "someone-else@test")  # not their run
        assert media_requests.take(session, run["id"], WORKER)
    with client.db() as session:
        assert not media_requests.take(session, run["id"], WORKER)  # served once
        assert session.get(Run, run["id"]).media_requested_at is None


def test_a_run_that_is_not_running_is_a_409_naming_its_status(client: Api) -> None:
    queued = launch(client)
    answer = client.post(requests_url(queued["id"]))
    assert answer.status_code == 409
    assert f"run {queued['id']} is queued" in answer.json()["detail"]
    assert "only while it is running" in answer.json()["detail"]

    done = launch(client, name="done")
    claim(client, done["id"])
    with client.db() as session:
        assert lifecycle.finish_run(session, done["id"], WORKER, "succeeded")
    answer = client.post(requests_url(done["id"]))
    assert answer.status_code == 409 and f"run {done['id']} is succeeded" in answer.json()["detail"]
    with client.db() as session:
        assert session.get(Run, done["id"]).media_requested_at is None

    assert client.post(requests_url(10**6)).status_code == 404
    assert client.post(requests_url(0)).status_code == 422


def test_who_may_ask_is_who_may_cancel(lab: Lab) -> None:  # noqa: F811
    client = lab.client
    run = lab.launch("alice", visibility="lab")
    claim(client, run["id"])
    url = requests_url(run["id"])

    viewer = client.post(url, headers=lab.as_("carol"))
    assert viewer.status_code == 403 and "owner or member" in viewer.json()["detail"]
    assert client.get(f"/api/runs/{run['id']}", headers=lab.as_("carol")).json()["may_change"] is False
    assert client.post(url, headers=lab.as_("bob")).status_code == 404  # another lab: as if absent
    assert client.post(url).status_code == 401
    token = client.post(f"/api/runs/{run['id']}/share", headers=lab.as_("alice")).json()["token"]
    assert client.post(url, headers={"Authorization": f"Bearer {token}"}).status_code == 401  # no login
    with client.db() as session:
        assert session.get(Run, run["id"]).media_requested_at is None  # none of them asked

    assert client.get(f"/api/runs/{run['id']}", headers=lab.as_("alice")).json()["may_change"] is True
    member = client.post(url, headers=lab.as_("alice"))
    assert member.status_code == 202, member.text
    with client.db() as session:
        assert session.get(Run, run["id"]).media_requested_at is not None


def test_the_contract_names_the_statuses_that_take_a_request(client: Api) -> None:
    assert client.get("/api/contract").json()["statuses"]["recordable"] == ["running"]

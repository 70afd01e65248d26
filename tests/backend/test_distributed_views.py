"""What the API says of a distributed run (dist.world_size > 1): the run's `placement` (rendezvous
endpoint, which worker holds which node and ranks) for its readers but not on a share link, and on
GET /api/workers each worker's devices and the run it holds with its node and ranks — the run
named only to a caller who may see it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from backend.store.models import Run, WorkerRecord, utcnow
from tests.backend import test_security
from tests.backend.conftest import Api, launch
from tests.backend.test_security import Lab

lab = test_security.lab  # the two-lab fixture: alice member and carol viewer of A, bob member of B

PLACEMENT = {
    "endpoint": "gpu-a.lab:29500",
    "world_size": 4,
    "strategy": "fsdp",
    "attempt": 1,
    "nodes": [
        {"worker": "w-a@gpu-a", "node_rank": 0, "ranks": [0, 1], "state": "joined"},
        {"worker": "w-b@gpu-b", "node_rank": 1, "ranks": [2, 3], "state": "joined"},
    ],
}
DIST = {"dist.world_size": 4, "dist.nodes": 2, "dist.strategy": "fsdp"}


def start_on_workers(client: Api, run_id: int, placement: dict[str, Any], *workers: str) -> None:
    """What the worker writes when it starts the ranks: the run running with its placement, and
    each worker holding it (with its rank slots as devices)."""
    with client.db() as session:
        session.execute(update(Run).where(Run.id == run_id).values(status="running", placement=placement))
        session.add_all(
            WorkerRecord(
                name=name, hostname=name.split("@")[1], pid=1, devices="cuda:0,cuda:1 (2 rank slots)",
                heartbeat_at=utcnow(), current_run_id=run_id,
            )
            for name in workers
        )  # fmt: skip


def test_a_distributed_runs_readers_see_its_placement_and_a_share_link_does_not(client: Api) -> None:
    run = launch(client, "dist", overrides=DIST)
    one_process = launch(client, "single")
    start_on_workers(client, run["id"], PLACEMENT, "w-a@gpu-a", "w-b@gpu-b")

    got = client.get(f"/api/runs/{run['id']}").json()
    assert got["placement"] == PLACEMENT
    dist = got["config"]["dist"]
    assert (dist["world_size"], dist["strategy"], dist["nodes"]) == (4, "fsdp", 2)
    assert client.get(f"/api/runs/{one_process['id']}").json()["placement"] is None
    token = client.post(f"/api/runs/{run['id']}/share").json()["token"]
    shared = client.get(f"/api/share/{token}").json()
    assert shared["config"]["dist"]["world_size"] == 4  # world size and strategy, from the config
    assert "placement" not in shared  # host names and ports stay with the run's members


def test_workers_show_their_devices_and_the_ranks_of_the_run_they_hold(client: Api) -> None:
    run = launch(client, "dist", overrides=DIST)
    single = launch(client, "single")
    start_on_workers(client, run["id"], PLACEMENT, "w-a@gpu-a", "w-b@gpu-b")
    start_on_workers(client, single["id"], None, "w-c@cpu")
    with client.db() as session:
        session.add(
            WorkerRecord(name="w-d@idle", hostname="idle", pid=2, devices="cpu", heartbeat_at=utcnow())
        )

    workers = {w["name"]: w for w in client.get("/api/workers").json()}
    assert workers["w-a@gpu-a"]["devices"] == "cuda:0,cuda:1 (2 rank slots)"
    assert workers["w-a@gpu-a"]["run"] == {"id": run["id"], "name": "dist", "node_rank": 0, "ranks": [0, 1]}
    assert workers["w-b@gpu-b"]["run"] == {"id": run["id"], "name": "dist", "node_rank": 1, "ranks": [2, 3]}
    assert workers["w-c@cpu"]["run"] == {"id": single["id"], "name": "single", "node_rank": None, "ranks": []}
    assert workers["w-d@idle"]["run"] is None and workers["w-d@idle"]["current_run_id"] is None
    assert all(w["alive"] for w in workers.values())


def test_a_worker_names_its_run_only_to_those_who_may_see_it(lab: Lab) -> None:
    """Alice's lab-A run: alice and carol (a viewer of lab A) see it on the worker; bob (lab B) sees
    the worker busy, without the run's name or ranks."""
    run = lab.launch("alice", name="alice-dist", lab_id=lab.lab_a, visibility="lab", overrides=DIST)
    start_on_workers(lab.client, run["id"], PLACEMENT, "w-a@gpu-a")

    def held(user: str) -> dict[str, Any]:
        response = lab.client.get("/api/workers", headers=lab.as_(user))
        assert response.status_code == 200, response.text
        (worker,) = response.json()
        return worker

    for reader in ("alice", "carol"):
        assert held(reader)["run"] == {"id": run["id"], "name": "alice-dist", "node_rank": 0, "ranks": [0, 1]}
    outsider = held("bob")
    assert outsider["run"] is None and outsider["devices"] == "cuda:0,cuda:1 (2 rank slots)"
    assert outsider["busy"] is True and outsider["current_run_id"] is None  # not even its id
    assert "alice-dist" not in str(outsider)
    assert held("alice")["current_run_id"] == run["id"] and held("alice")["busy"] is True

    queued = lab.launch("bob", name="bob-single", lab_id=lab.lab_b, visibility="lab")
    response = lab.client.get(f"/api/runs/{queued['id']}", headers=lab.as_("bob"))
    (worker,) = response.json()["queue"]["workers"]  # bob's queued run lists the busy worker ...
    assert worker["busy"] is True and worker["current_run_id"] is None  # ... without alice's run id

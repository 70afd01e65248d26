"""A distributed run on the dashboard, in a real browser against a real API: the run page says how
many ranks and which strategy (a one-process run says "1 process"), where the ranks train (the
rendezvous endpoint, which worker holds which node and ranks) and draws the per-rank time spread;
the workers page shows each worker's devices and the run and ranks it holds.

No worker claims these runs: the test plays the workers through the database, writing what a worker
that started the ranks writes (the run running with its placement and metrics, the workers' rows).
"""

from __future__ import annotations

import pytest
from sqlalchemy import update

from backend.store.models import Metric, Run, WorkerRecord, utcnow
from pcm_engine import metrics as M
from tests.services import ServiceStack

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]

GPU_WORKER = "w-gpu@node0"
IDLE_WORKER = "w-idle@node1"
DEVICES = "cuda:0,cuda:1 (2 rank slots)"
ENDPOINT = "node0.lab:29500"
STEPS = 3
# per step: the slowest rank's seconds and how much faster the fastest rank was
SLOWEST = {M.TIME_ROLLOUT: 4.0, M.TIME_SELECT: 0.2, M.TIME_UPDATE: 2.0, M.TIME_OTHER: 0.1}
SPREAD = {M.TIME_ROLLOUT_SPREAD: 1.5, M.TIME_SELECT_SPREAD: 0.01, M.TIME_UPDATE_SPREAD: 0.25}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """The API alone (single-user): a launched run stays queued until the test starts it."""
    with ServiceStack(tmp_path_factory.mktemp("e2e-dist")) as services:
        services.start_api()
        yield services


def metric_rows(run_id: int) -> list[Metric]:
    now = utcnow().timestamp()
    return [
        Metric(run_id=run_id, name=name, step=step, value=value * step, wall_time=now + step)
        for step in range(1, STEPS + 1)
        for name, value in {**SLOWEST, **SPREAD}.items()
    ]


@pytest.fixture(scope="module")
def runs(stack):
    """A 2-rank ddp run over 2 nodes held by GPU_WORKER (node 0, rank 0; node 1 still waits for a
    worker) with STEPS steps of timings and spreads, an idle worker, and a one-process run still
    queued."""
    with stack.client() as client:
        dist = stack.create_run(
            client,
            "dist-e2e",
            **{"dist.world_size": 2, "dist.nodes": 2, "dist.strategy": "ddp", "train.steps": STEPS},
        )
        single = stack.create_run(client, "single-e2e")
    placement = {
        "endpoint": ENDPOINT,
        "world_size": 2,
        "strategy": "ddp",
        "attempt": 1,
        "nodes": [
            {"worker": GPU_WORKER, "node_rank": 0, "ranks": [0], "state": "joined"},
            {"worker": None, "node_rank": 1, "ranks": [1], "state": "open"},
        ],
    }
    now = utcnow()
    with stack.session() as session:
        session.execute(
            update(Run)
            .where(Run.id == dist["id"])
            .values(
                status="running", worker=GPU_WORKER, placement=placement, started_at=now,
                heartbeat_at=now, steps_done=STEPS,
            )
        )  # fmt: skip
        session.add_all(metric_rows(dist["id"]))
        session.add_all(
            [
                WorkerRecord(
                    name=GPU_WORKER, hostname="node0", pid=10, devices=DEVICES, heartbeat_at=now,
                    current_run_id=dist["id"],
                ),
                WorkerRecord(name=IDLE_WORKER, hostname="node1", pid=11, devices="cpu", heartbeat_at=now),
            ]
        )  # fmt: skip
    return {"dist": dist, "single": single}


def chart_traces(page, chart_id: str) -> dict[str, list[float]]:
    """{trace name: y values} of a drawn chart."""
    return page.eval_on_selector(
        f"#{chart_id}", "node => Object.fromEntries(node.data.map((t) => [t.name, Array.from(t.y || [])]))"
    )


def test_the_run_page_shows_ranks_placement_and_the_per_rank_spread(stack, runs, open_context, shoot):
    page = open_context().new_page()
    page.goto(f"{stack.base_url}/runs/{runs['dist']['id']}")
    page.wait_for_selector("#run-placement")
    assert page.text_content("#run-processes") == "2 ranks · ddp · 2 nodes"
    assert page.text_content("#run-endpoint") == ENDPOINT
    rows = page.eval_on_selector_all(
        "#run-placement tbody tr", "trs => trs.map((tr) => [...tr.cells].map((td) => td.textContent))"
    )
    assert rows == [[GPU_WORKER, "0", "rank 0", "joined"], ["waiting for a worker", "1", "rank 1", "open"]]

    page.wait_for_function(
        "() => document.getElementById('chart-rank-spread')?.data?.some((t) => (t.y || []).length)"
    )
    traces = chart_traces(page, "chart-rank-spread")
    steps = range(1, STEPS + 1)
    assert traces["rollout: slowest rank"] == [SLOWEST[M.TIME_ROLLOUT] * s for s in steps]
    assert traces["rollout: spread"] == [SPREAD[M.TIME_ROLLOUT_SPREAD] * s for s in steps]
    assert traces["update: spread"] == [SPREAD[M.TIME_UPDATE_SPREAD] * s for s in steps]
    assert set(traces) == {
        f"{t}: {kind}" for t in ("rollout", "select", "update") for kind in ("slowest rank", "spread")
    }
    time_help = page.text_content("figure:has(#chart-time) .help")
    assert time_help.endswith("(the slowest of 2 ranks)")
    spread_names = page.eval_on_selector_all("#other-metric option", "os => os.map((o) => o.value)")
    assert not set(spread_names) & set(SPREAD)  # drawn by the spread chart, not left to "every other metric"
    shoot(page, "dist-run-page")

    page.goto(f"{stack.base_url}/runs/{runs['single']['id']}")
    page.wait_for_selector("#run-processes")
    assert page.text_content("#run-processes") == "1 process"
    page.wait_for_selector("#chart-time")
    assert page.locator("#chart-rank-spread").count() == 0 and page.locator("#run-placement").count() == 0


def test_the_workers_page_shows_devices_and_the_run_and_ranks_each_holds(stack, runs, open_context, shoot):
    page = open_context().new_page()
    page.goto(f"{stack.base_url}/workers")
    page.wait_for_selector(f"#workers-table tr[data-worker='{GPU_WORKER}']")
    busy = page.locator(f"#workers-table tr[data-worker='{GPU_WORKER}']")
    run_id = runs["dist"]["id"]
    assert busy.locator(".worker-devices").text_content() == DEVICES
    assert busy.locator(".worker-run").text_content() == f"run #{run_id} dist-e2e · rank 0 (node 0)"
    assert busy.locator(".worker-run a").get_attribute("href") == f"/runs/{run_id}"
    idle = page.locator(f"#workers-table tr[data-worker='{IDLE_WORKER}']")
    assert idle.locator(".worker-devices").text_content() == "cpu"
    assert idle.locator(".worker-run").text_content() == "idle"
    assert page.get_attribute("nav a[href='/workers']", "aria-current") == "page"
    shoot(page, "workers-page")

    busy.locator(".worker-run a").click()  # the link opens the run it names
    page.wait_for_selector("#run-placement")
    assert page.text_content("#run-processes") == "2 ranks · ddp · 2 nodes"

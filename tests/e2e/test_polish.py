"""Issue 16 items 4, 7 and the chart exports, in a real browser against a real stack: the chunk
map says why chunks were dropped and which outcome each recorded trajectory had, in colours of
their own; PCM-only panels make way for a note on plain GRPO runs; step axes tick whole steps;
one colour per method on the compare page whatever the order; a missing run and a run cancelled
before it started say so; share links use the public base URL and are listed and revocable; every
chart exports its series as CSV and itself as PNG. Every test fails on any browser console error.
"""

from __future__ import annotations

import csv
import io
import re

import pytest

from tests.services import ServiceStack

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]

PUBLIC_URL = "https://pcm.lab.example"
STEPS = 3
TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """API (with PCM_PUBLIC_URL) first, no worker: a queued run stays queued until `worker`."""
    with ServiceStack(tmp_path_factory.mktemp("e2e-polish"), env={"PCM_PUBLIC_URL": PUBLIC_URL}) as services:
        services.start_api()
        yield services


@pytest.fixture(scope="module")
def pair(stack):
    """A finished GRPO run (selector full, dynamic sampling on: an untrained policy's all-fail groups
    are dropped) and a PCM run (dynamic sampling off: every group updates) of the tiny config."""
    stack.start_worker("w1")
    with stack.client() as client:
        runs = [
            stack.create_run(client, "polish-full", **{"pcm.selector": "full", "train.steps": STEPS}),
            stack.create_run(
                client,
                "polish-pcm",
                **{"pcm.selector": "pcm", "train.steps": STEPS, "grpo.dynamic_sampling": False},
            ),
        ]
        return [stack.wait_status(client, run["id"], ("succeeded",), timeout=240) for run in runs]


def contract(page) -> dict:
    return page.evaluate("() => fetch('/api/contract').then((r) => r.json())")


def tick_labels(page, chart_id: str, axis: str = "xtick") -> list[str]:
    return page.eval_on_selector_all(f"#{chart_id} .{axis} text", "ts => ts.map((t) => t.textContent)")


def test_a_run_cancelled_before_it_started_says_so(stack, open_context):
    with stack.client() as client:
        run = stack.create_run(client, "polish-never")  # no worker yet: it stays queued
        assert client.post(f"/api/runs/{run['id']}/cancel").json()["status"] == "cancelled"
    page = open_context().new_page()
    page.goto(f"{stack.base_url}/runs/{run['id']}")
    page.wait_for_function(
        "() => (document.getElementById('chart-success')?.layout?.annotations || [])"
        ".some((a) => a.text.includes('cancelled before it started'))"
    )
    texts = page.evaluate(
        """() => [...document.querySelectorAll('#charts .chart')].filter((g) => g.layout)
          .map((g) => (g.layout.annotations || []).map((a) => a.text).join(' '))"""
    )
    assert texts and all("cancelled before it started" in t for t in texts), texts
    assert "waiting for data" not in page.inner_text("#charts")
    assert tick_labels(page, "chart-success") == []  # an empty chart draws no axis from −1


def test_a_missing_run_shows_a_not_found_page(stack, open_context, console):
    console.allow("status of 404")
    page = open_context().new_page()
    page.goto(f"{stack.base_url}/runs/987654")
    page.wait_for_selector("#run-not-found")
    assert "Run not found" in page.inner_text("#main")
    assert "Training, live" not in page.inner_text("#main") and page.locator("#charts").count() == 0
    guest = open_context().new_page()
    guest.goto(f"{stack.base_url}/share/not-a-real-token")
    guest.wait_for_selector("#run-not-found")
    assert "share link" in guest.inner_text("#run-not-found")


def test_share_links_use_the_public_url_and_are_listed_and_revocable(stack, open_context, console):
    console.allow("status of 404")  # the revoked link, opened on purpose
    with stack.client() as client:
        run = stack.create_run(client, "polish-share")
        client.post(f"/api/runs/{run['id']}/cancel")
    page = open_context().new_page()
    page.goto(f"{stack.base_url}/runs/{run['id']}")
    page.wait_for_selector("#share-run")
    page.click("#share-run")
    page.wait_for_function(
        f"() => document.getElementById('share-url').value.startsWith('{PUBLIC_URL}/share/')"
    )
    first = page.input_value("#share-url")
    page.click("#share-run")  # a second link: both listed
    page.wait_for_function(f"() => document.getElementById('share-url').value !== '{first}'")
    page.wait_for_selector("#share-links tr[data-share-id] >> nth=1")
    assert page.locator("#share-links .revoke-share").count() == 2
    assert "2 active of 2" in page.inner_text("#share-links summary")

    # the first link works on the real address until it is revoked from the list
    token = first.rsplit("/", 1)[1]
    guest = open_context().new_page()
    guest.goto(f"{stack.base_url}/share/{token}")
    guest.wait_for_selector("#run-info h1")
    page.locator("#share-links tr[data-share-id] >> nth=0").locator(".revoke-share").click()
    page.wait_for_function(
        "() => document.querySelector('#share-links summary').textContent.includes('1 active of 2')"
    )
    assert "revoked" in page.inner_text("#share-links tr[data-share-id] >> nth=0")
    guest.goto(f"{stack.base_url}/share/{token}")
    guest.wait_for_selector("#run-not-found")


def test_grpo_run_page_ticks_colours_panels_and_why_chunks_were_dropped(stack, pair, open_context, shoot):
    grpo, _ = pair
    page = open_context().new_page()
    page.goto(f"{stack.base_url}/runs/{grpo['id']}")
    page.wait_for_function("() => document.getElementById('chart-success')?.data?.[0]?.x?.length > 0")
    C = contract(page)

    # whole steps only on step axes (Plotly's own ticks for 3 steps would be 0, 0.5, 1, ...)
    for chart in ("chart-success", "chart-kept-fraction", "chart-time"):
        labels = tick_labels(page, chart)
        assert labels and all(re.fullmatch(r"\d+", t) for t in labels), (chart, labels)
    # a finished run's empty chart (no group took part: no loss) does not wait for data forever
    optim = page.evaluate(
        """() => { const g = document.getElementById('chart-optim');
          return { points: g.data.reduce((n, t) => n + t.x.length, 0),
                   text: (g.layout.annotations || []).map((a) => a.text).join(' ') }; }"""
    )
    if not optim["points"]:
        assert "succeeded without logging these" in optim["text"] and "waiting" not in optim["text"]
    # memory lines in panes of their own
    memory = page.evaluate("() => document.getElementById('chart-memory').layout")
    assert memory["yaxis"]["domain"][0] > memory["yaxis2"]["domain"][1]

    # selector full: a note where the keep weights were, and the score marked for reference
    assert page.locator("#chart-keep, #chart-keep-map").count() == 0
    assert "not used by this run" in page.inner_text("#charts")
    assert "For reference only" in page.inner_text("#charts")

    # the chunk map: no −1 tick; "failed" in its own colour, not the active grip's red
    page.wait_for_function("() => Number(document.getElementById('chunk-map').dataset.records) > 0")
    assert all(re.fullmatch(r"\d+", t) for t in tick_labels(page, "chunk-map")), tick_labels(
        page, "chunk-map"
    )
    outcome = page.evaluate(
        """() => Object.fromEntries(document.getElementById('chunk-map').data
          .filter((t) => ['success', 'failure'].includes(t.meta)).map((t) => [t.meta, t.marker.color]))"""
    )
    grip = page.evaluate(
        "() => document.getElementById('chart-score').data.find((t) => t.name === 'active grip').line.color"
    )
    assert outcome == C["colors"]["outcomes"] and grip == C["colors"]["phases"]["active_grip"]
    assert outcome["failure"] != grip
    # why the dropped ones were dropped: an untrained policy's groups all fail alike, and dynamic
    # sampling leaves them out; the caption says so rather than only "0 of N back-propagated"
    caption = page.inner_text("#chunk-caption")
    records = page.evaluate(
        "() => fetch(location.pathname.replace('/runs/', '/api/runs/') + '/chunks').then((r) => r.json())"
    )
    dropped = [r for r in records["records"] if not r["kept"]]
    if dropped:
        assert "Why not back-propagated:" in caption
        groups = {}
        for r in records["records"]:
            groups.setdefault(r["group"], set()).add(r["success"])
        if any(len(o) == 1 for o in groups.values()):
            assert "dropped by dynamic sampling" in caption and re.search(r"all (failed|succeeded)", caption)
        hover = page.evaluate("() => document.getElementById('chunk-map').data[0].text.flat().join('\\n')")
        assert "dropped:" in hover
    shoot(page, "run-grpo-polish")


def test_one_colour_per_method_on_compare_in_either_order(stack, pair, open_context):
    grpo, pcm = pair
    page = open_context().new_page()
    colours = []
    for ids in (f"{grpo['id']},{pcm['id']}", f"{pcm['id']},{grpo['id']}"):  # the pair's order, and the list's
        page.goto(f"{stack.base_url}/compare?ids={ids}")
        page.wait_for_function("() => document.getElementById('compare-step')?.data?.length === 2")
        colours.append(
            page.evaluate(
                """() => Object.fromEntries(document.getElementById('compare-step').data
                  .map((t) => [t.name.match(/\\((\\w+)\\)$/)[1], t.line.color]))"""
            )
        )
        labels = tick_labels(page, "compare-step")
        assert labels and all(re.fullmatch(r"\d+", t) for t in labels), labels
    C = contract(page)
    assert (
        colours[0]
        == colours[1]
        == {"full": C["colors"]["methods"]["full"], "pcm": C["colors"]["methods"]["pcm"]}
    )


def test_every_chart_exports_csv_and_png(stack, pair, open_context):
    _, pcm = pair
    page = open_context().new_page()
    page.goto(f"{stack.base_url}/runs/{pcm['id']}")
    page.wait_for_function("() => document.getElementById('chart-success')?.data?.[0]?.x?.length > 0")
    plotted = page.eval_on_selector_all("#charts .chart", "gs => gs.filter((g) => g.data).map((g) => g.id)")
    bars = page.eval_on_selector_all(
        ".chart + .chart-export", "bars => bars.map((b) => b.previousElementSibling.id)"
    )
    assert set(plotted) <= set(bars) and "chunk-map" in bars and "chart-keep" in bars

    # (while here, with losses logged) no SI prefixes on losses, titles clear of tick labels
    optim = page.evaluate("() => document.getElementById('chart-optim').layout")
    for axis in ("yaxis", "yaxis2", "yaxis3", "yaxis4"):
        assert optim[axis]["exponentformat"] == "e" and optim[axis]["automargin"] is True, optim[axis]
    labels = [t for k in ("ytick", "y2tick", "y3tick", "y4tick") for t in tick_labels(page, "chart-optim", k)]
    assert labels and not any(re.search(r"\d[munpfμ]$", t) for t in labels), labels

    with page.expect_download() as download:
        page.click("#chart-success + .chart-export .export-csv")
    assert download.value.suggested_filename == "chart-success.csv"
    rows = list(csv.reader(io.StringIO(open(download.value.path()).read())))
    assert rows[0] == ["series", "x", "y"]
    train = [row for row in rows[1:] if row[0] == "train (rollouts)"]
    assert [int(row[1]) for row in train] == list(range(1, STEPS + 1))
    with page.expect_download() as download:
        page.click("#chart-keep-map + .chart-export .export-csv")  # a heat map: one row per cell
    assert open(download.value.path()).readline().strip() == "series,x,y,z"

    with page.expect_download() as download:
        page.click("#chart-success + .chart-export .export-png")
    assert download.value.suggested_filename == "chart-success.png"
    assert open(download.value.path(), "rb").read(8) == b"\x89PNG\r\n\x1a\n"

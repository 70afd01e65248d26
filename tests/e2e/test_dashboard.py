"""The dashboard in a real browser against a real stack (API + Celery worker subprocesses).

A researcher's path through it: launch a GRPO-vs-PCM pair from the form, watch a run's charts
grow over Server-Sent Events without a reload, read the chunk heat map, compare the pair, share a
run with someone who is not logged in, cancel a run; plus the form's server-side errors, the runs
table's URL-kept view, and the login / lab / token pages with authentication required. Every test
fails on any browser console error.
"""

from __future__ import annotations

import re
import shutil

import pytest

from tests.e2e.conftest import ADMIN_PASSWORD, FAST_RUN, override_lines

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]

PAIR_STEPS = 30
PRESET = "tabletop_pcm"
LIVE_TIMEOUT_MS = 120_000

# Points of every trace of a Plotly figure (the run page draws into <div id=...>).
POINTS_JS = """(id) => {
  const g = document.getElementById(id);
  return g && g.data ? g.data.reduce((n, t) => n + (t.x ? t.x.length : 0), 0) : 0;
}"""


def points(page, chart_id: str) -> int:
    return page.evaluate(POINTS_JS, chart_id)


# Predicates for wait_for_function are written as functions ("() => ..."): Playwright polls a bare
# expression through eval, which the pages' Content-Security-Policy forbids.
def wait_points(page, chart_id: str, more_than: int, timeout: int = LIVE_TIMEOUT_MS) -> int:
    page.wait_for_function(f"() => ({POINTS_JS})('{chart_id}') > {more_than}", timeout=timeout)
    return points(page, chart_id)


def wait_status(page, *statuses: str, timeout: int = LIVE_TIMEOUT_MS) -> None:
    selector = ", ".join(f'#run-info .status[data-status="{s}"]' for s in statuses)
    page.wait_for_selector(selector, timeout=timeout)


def open_launch_form(page, base_url: str) -> None:
    page.goto(base_url + "/?launch=1")  # ?launch=1 opens the (otherwise collapsed) launch panel
    page.wait_for_selector("#launch-form #f-name")
    assert page.input_value("#launch-preset") == PRESET  # the default: PCM on the built-in suite
    assert page.input_value("#f-pcm-selector") == '"pcm"'


def launch_pair_from_form(page, base_url: str, name: str) -> list[int]:
    """Fill the launch form (a real field, and the rest as extra overrides) and click the pair
    button; returns the two run ids from the compare page it lands on."""
    open_launch_form(page, base_url)
    page.fill("#f-name", name)
    page.click('details[data-section="train"] > summary')
    page.fill("#f-train-steps", str(PAIR_STEPS))
    page.click("#launch-form details:has(#launch-overrides) > summary")
    extra = {k: v for k, v in FAST_RUN.items() if k != "train.steps"}
    extra.update({"eval.every": 10, "pcm.budget": 2})
    page.fill("#launch-overrides", override_lines(extra))
    page.click("#launch-pair")
    page.wait_for_url(re.compile(r"/compare\?ids=\d+,\d+"))
    return [int(i) for i in re.search(r"ids=(\d+),(\d+)", page.url).groups()]


def finished_pair(stack, name: str) -> list[dict]:
    """A GRPO and a PCM run of the tiny config, launched over the API and trained to the end."""
    with stack.client() as client:
        runs = [
            stack.create_run(
                client, f"{name}-{selector}", **{"pcm.selector": selector, "grpo.dynamic_sampling": False}
            )
            for selector in ("full", "pcm")
        ]
        return [stack.wait_status(client, run["id"], ("succeeded",)) for run in runs]


def test_pair_live_run_page_chunk_map_compare_and_share(stack, open_context, shoot):
    page = open_context().new_page()
    grpo_id, pcm_id = launch_pair_from_form(page, stack.base_url, "e2e")

    # the PCM run trains second, so its page is open before its first step: every point arrives live
    streams: list[str] = []
    page.on("request", lambda request: streams.append(request.url) if "/events" in request.url else None)
    page.goto(f"{stack.base_url}/runs/{pcm_id}")
    page.wait_for_selector("#chart-success .main-svg")
    page.evaluate(
        """() => {
      window.__e2eSamePage = true;            // gone if the page reloads
      window.__e2eExtends = 0;
      const extend = Plotly.extendTraces;
      Plotly.extendTraces = (...args) => { window.__e2eExtends += 1; return extend(...args); };
    }"""
    )
    before = points(page, "chart-success")
    during = wait_points(page, "chart-success", before + 2)
    assert during > before
    wait_points(page, "chart-kept", 0)
    page.wait_for_function(
        "() => Number(document.getElementById('chunk-map').dataset.records) > 0", timeout=LIVE_TIMEOUT_MS
    )
    wait_status(page, "succeeded")
    after = wait_points(page, "chart-success", PAIR_STEPS - 1)  # the last batch drawn too
    assert page.evaluate("window.__e2eSamePage === true"), "the run page reloaded"
    assert page.evaluate("window.__e2eExtends") > 0, "charts were not extended in place"
    assert after >= PAIR_STEPS  # one train-success point per step, plus eval points
    # the stream started after the events the page had already read, not at the run's first one
    assert streams and re.search(r"[?&]last_event_id=[1-9]", streams[0]), streams

    # the chunk map: phase-coloured cells, back-propagated marks, one row per recorded trajectory
    # (it follows the last step's records a moment after the charts on a busy machine)
    page.wait_for_function(f"() => document.getElementById('chunk-map').dataset.step === '{PAIR_STEPS}'")
    chunk = page.evaluate(
        """() => {
      const g = document.getElementById('chunk-map');
      const heat = g.data[0];
      return {type: heat.type, rows: heat.z.length, kept: g.data[1].x.length, step: g.dataset.step};
    }"""
    )
    assert chunk["type"] == "heatmap" and chunk["rows"] > 0 and chunk["kept"] > 0
    assert chunk["step"] == str(PAIR_STEPS)
    first_step = page.eval_on_selector("#chunk-step", "s => s.options[s.options.length - 1].value")
    page.select_option("#chunk-step", first_step)
    page.wait_for_function(f"() => document.getElementById('chunk-map').dataset.step === '{first_step}'")
    assert "back-propagated" in page.inner_text("#chunk-caption")

    # one colour per phase everywhere: score, keep weight and kept-chunk charts, and the chunk map
    colours = page.evaluate(
        """() => ['chart-score', 'chart-keep', 'chart-kept', 'chunk-map'].map((id) => Object.fromEntries(
          document.getElementById(id).data
            .filter((t) => t.type === 'scatter' && (t.line?.color || t.marker?.color))
            .map((t) => [t.name, id === 'chunk-map' ? t.marker.color : t.line.color])))"""
    )
    phases = {name: c for name, c in colours[0].items() if not name.endswith(" (shuffled)")}
    assert len(phases) == 5 and len(set(phases.values())) == 5
    # beside each score, its outcome-shuffle null: same colour, dotted, in the phase's legend group
    nulls = page.evaluate(
        """() => document.getElementById('chart-score').data.filter((t) => t.name.endsWith(' (shuffled)'))
          .map((t) => [t.name.replace(' (shuffled)', ''), t.line.color, t.line.dash, t.legendgroup])"""
    )
    assert {name: colour for name, colour, _, _ in nulls} == phases
    assert {dash for _, _, dash, _ in nulls} == {"dot"} and all(group for *_, group in nulls)
    for other in colours[1:]:
        assert {name: other[name] for name in phases} == phases

    # failure-free run: no error box; artifacts listed with download links; config shown
    assert page.locator("#run-failure .failure").count() == 0
    page.wait_for_selector("#artifacts-block a[download]")
    page.click("#config-block > summary")
    assert '"selector": "pcm"' in page.inner_text("#config-block pre")
    page.select_option("#chunk-step", "")
    page.wait_for_function(f"() => document.getElementById('chunk-map').dataset.step === '{PAIR_STEPS}'")
    shoot(page, "run")

    # share link, then a fresh logged-out context sees the run read-only
    page.click("#share-run")
    page.wait_for_function("() => document.getElementById('share-url').value.includes('/share/')")
    share_url = page.input_value("#share-url")
    guest = open_context().new_page()
    guest.goto(share_url)
    guest.wait_for_selector("#run-info h1")
    assert "e2e-pcm" in guest.inner_text("#run-info h1")
    wait_points(guest, "chart-success", PAIR_STEPS - 1)
    guest.wait_for_function("() => Number(document.getElementById('chunk-map').dataset.records) > 0")
    assert guest.locator("#cancel-run, #share-run").count() == 0
    assert guest.locator("#run-actions").is_hidden()
    assert guest.inner_text("#topbar").split() == ["PCM", "Lab", "read-only", "shared", "view"]
    shoot(guest, "share")

    # the comparison the pair button led to, now that both are done: the config diff names the one
    # key that differs (and the names), two curves, the "what PCM bought" table with GRPO as baseline
    page.goto(f"{stack.base_url}/compare?ids={grpo_id},{pcm_id}")
    page.wait_for_selector('#diff-table tr[data-key="pcm.selector"]')
    row = page.inner_text('#diff-table tr[data-key="pcm.selector"]')
    assert '"full"' in row and '"pcm"' in row
    diff_keys = page.eval_on_selector_all("#diff-table tbody tr", "rows => rows.map(r => r.dataset.key)")
    assert set(diff_keys) == {"name", "pcm.selector"}
    page.wait_for_selector("#bought-table tbody tr >> nth=1")
    assert page.eval_on_selector("#compare-step", "g => g.data.length") == 2
    wait_points(page, "compare-step", 2 * PAIR_STEPS - 1)
    assert "baseline" in page.inner_text(f'#bought-table tr[data-run-id="{grpo_id}"]')
    assert "×" in page.inner_text(f'#bought-table tr[data-run-id="{pcm_id}"] td[data-col="update"]')
    page.fill("#compare-level", "0")  # every run reaches 0%: the table fills in its times
    pcm_row = page.locator(f'#bought-table tr[data-run-id="{pcm_id}"]')
    pcm_row.locator("td", has_text="not reached").wait_for(state="detached")
    shoot(page, "compare")


def test_cancel_a_running_run(stack, open_context):
    with stack.client() as client:
        run = stack.create_run(client, "e2e-cancel", **{"train.steps": 5000, "grpo.dynamic_sampling": False})
    page = open_context().new_page()
    page.goto(f"{stack.base_url}/runs/{run['id']}")
    wait_status(page, "running")
    wait_points(page, "chart-time", 0)
    page.click("#cancel-run")
    page.click("#cancel-confirm-yes")  # cancel asks once
    wait_status(page, "cancelled")
    assert page.locator("#requeue-run").is_visible()
    assert page.locator("#cancel-run").is_hidden()
    page.wait_for_selector("#live-state.live-finished")


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="needs a machine without CUDA to fail")
def test_failed_run_shows_its_traceback_and_a_clone_fixes_it(stack, open_context):
    with stack.client() as client:  # valid for the API, refused by the worker: no CUDA device here
        run = stack.create_run(client, "e2e-broken", **{"train.device": "cuda"})
    page = open_context().new_page()
    page.goto(f"{stack.base_url}/runs/{run['id']}")
    wait_status(page, "failed")
    page.wait_for_selector("#run-failure .failure .traceback")
    assert "Traceback" in page.inner_text("#run-failure .traceback")
    assert page.locator("#requeue-run").is_visible()

    page.click("#clone-run")  # the launch form, filled from the failed run
    page.wait_for_selector("#launch-form #launch-clone-of")
    page.fill("#f-name", "e2e-fixed")
    page.fill("#f-train-steps", "1")
    page.click('details[data-section="train"] > summary')
    page.select_option("#f-train-device", '"cpu"')
    page.click("#launch-submit")
    page.wait_for_url(re.compile(r"/runs/\d+$"))
    assert not page.url.endswith(f"/runs/{run['id']}")
    wait_status(page, "succeeded")
    assert "e2e-fixed" in page.inner_text("#run-info h1")


def test_a_run_launched_from_the_form_can_start_from_another_runs_policy(stack, open_context, console):
    console.allow("status of 422")  # the first try names a run nobody may read, on purpose
    with stack.client() as client:
        source = stack.create_run(client, "e2e-source")
        stack.wait_status(client, source["id"], ("succeeded",))
    page = open_context().new_page()
    open_launch_form(page, stack.base_url)
    page.fill("#f-name", "e2e-started")
    page.click("#launch-form details:has(#launch-overrides) > summary")
    page.fill("#launch-overrides", override_lines({**FAST_RUN, "train.steps": 1}))
    page.fill("#launch-start-run", "999999")
    page.click("#launch-submit")
    page.wait_for_function("() => document.getElementById('launch-start-err').textContent.length > 0")
    assert "999999" in page.inner_text("#launch-start-err") and "/runs/" not in page.url

    page.fill("#launch-start-run", str(source["id"]))
    page.click("#launch-submit")
    page.wait_for_url(re.compile(r"/runs/\d+$"))
    started = int(page.url.rsplit("/", 1)[1])
    wait_status(page, "succeeded")
    with stack.client() as client:
        config = client.get(f"/api/runs/{started}").json()["config"]
    assert config["policy"]["pretrained"].endswith(f"{source['id']}/policy")


def test_launch_form_puts_server_errors_next_to_the_field(stack, open_context, console):
    console.allow("status of 422")  # the rejected POST, on purpose
    page = open_context().new_page()
    open_launch_form(page, stack.base_url)
    assert page.locator('details[data-section="pcm"]').get_attribute("open") is None
    page.click("#launch-form details:has(#launch-overrides) > summary")
    page.fill("#launch-overrides", "grpo.mini_batches=1000")  # a form field's key, typed in the box
    page.click("#launch-submit")
    page.wait_for_function("() => document.getElementById('launch-overrides-err').textContent.length > 0")
    assert "line 1, grpo.mini_batches: " in page.inner_text("#launch-overrides-err")  # beside its line
    assert page.inner_text("#f-grpo-mini-batches-err") == ""
    assert page.input_value("#f-grpo-mini-batches") == "1000"  # the field shows the box's value
    assert "/runs/" not in page.url and "/compare" not in page.url  # nothing launched

    # env is a union (tabletop | libero): the variant picker swaps the section's fields
    page.click('details[data-section="env"] > summary')
    assert page.is_visible("#f-env-tabletop-max-steps") and page.is_hidden("#f-env-libero-suite")
    page.select_option("#f-env-name", '"libero"')
    assert page.is_hidden("#f-env-tabletop-max-steps") and page.is_visible("#f-env-libero-suite")
    page.select_option("#launch-preset", PRESET)  # back to the preset's values
    assert page.input_value("#f-env-name") == '"tabletop"'

    # out-of-bounds input caught in the browser, shown the same way
    page.click('details[data-section="grpo"] > summary')
    page.fill("#f-grpo-group-size", "1")
    page.fill("#launch-overrides", "")
    page.click("#launch-submit")
    page.wait_for_function("() => document.getElementById('f-grpo-group-size-err').textContent.length > 0")
    assert page.evaluate("document.activeElement.id") == "f-grpo-group-size"


def test_runs_table_filters_live_in_the_url(stack, open_context, shoot):
    finished_pair(stack, "e2e-table")
    page = open_context().new_page()
    page.goto(stack.base_url + "/?selector=full")
    page.wait_for_selector("#runs-table tbody tr")
    assert page.input_value("#filter-selector") == "full"
    selectors = page.eval_on_selector_all(
        '#runs-table td[data-col="selector"]', "cells => cells.map(c => c.innerText)"
    )
    assert selectors and set(selectors) == {"full"}
    page.select_option("#filter-status", "succeeded")
    page.wait_for_function("() => location.search.includes('status=succeeded')")
    page.select_option("#filter-selector", "")
    page.wait_for_function("() => !location.search.includes('selector=')")
    page.wait_for_selector('#runs-table td[data-col="selector"]:has-text("pcm")')
    boxes = page.locator("#runs-table .run-select")
    boxes.nth(0).check()
    boxes.nth(1).check()
    assert page.inner_text("#compare-selected") == "Compare selected (2)"
    shoot(page, "runs")
    page.click("#compare-selected")
    page.wait_for_url(re.compile(r"/compare\?ids=\d+,\d+"))


def test_login_lab_tokens_and_a_logged_out_share_link(stack, auth_stack, open_context):
    run_id = finished_pair(stack, "e2e-auth")[1]["id"]
    base = auth_stack.base_url
    page = open_context().new_page()
    urls: list[str] = []  # every request the pages make
    page.on("request", lambda request: urls.append(request.url))
    page.goto(base + "/")
    page.wait_for_url(re.compile(r"/login\?next=%2F$"))  # no token: straight to the login page
    page.fill("#login-username", "admin")
    page.fill("#login-password", ADMIN_PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_url(base + "/")
    page.wait_for_selector("#runs-table tbody tr")
    assert "admin" in page.inner_text("#topbar")

    # lab page: members, and a token shown once then revoked
    page.goto(base + "/labs")
    page.wait_for_selector("#labs section[data-lab-id]")
    assert "admin" in page.inner_text("#labs")
    page.fill("#token-name", "e2e script")
    page.click("#token-form button[type=submit]")
    page.wait_for_selector("#token-secret-value")
    assert page.input_value("#token-secret-value").startswith("pcm_")
    row = page.locator("#tokens-table tr", has_text="e2e script")
    row.get_by_role("button", name="revoke token e2e script").click()
    page.wait_for_function("() => !document.getElementById('tokens-table').innerText.includes('e2e script')")

    # a live run's stream, logged in: it opens with a ticket (a run far too long to end by itself
    # first, cancelled once its page is streaming)
    token = page.evaluate("localStorage.getItem('pcm.token')")
    with auth_stack.client() as client:
        client.headers["Authorization"] = f"Bearer {token}"
        live = auth_stack.create_run(client, "e2e-auth-live", **{"train.steps": 1000})
        with page.expect_request(
            lambda request: "/events?" in request.url and "ticket=" in request.url, timeout=LIVE_TIMEOUT_MS
        ):
            page.goto(f"{base}/runs/{live['id']}")
        assert client.post(f"/api/runs/{live['id']}/cancel").status_code == 200
    wait_status(page, "cancelled")

    # a download: the link swaps in a ticket when clicked
    page.goto(f"{base}/runs/{run_id}")
    with page.expect_download() as download:
        page.click("#artifacts-block a[download]")
    assert download.value.failure() is None and "ticket=" in download.value.url

    # share a finished run from its page; a fresh context with no token opens the link
    page.click("#share-run")
    page.wait_for_function("() => document.getElementById('share-url').value.includes('/share/')")
    share_url = page.input_value("#share-url")
    share_token = share_url.rsplit("/", 1)[1]
    guest = open_context().new_page()
    guest.on("request", lambda request: urls.append(request.url))
    guest.goto(share_url)
    wait_points(guest, "chart-success", 0)
    assert guest.locator("#run-actions").is_hidden()
    # no token in any URL; the share token only in the two addresses that are the link itself
    assert not [u for u in urls if token in u or "access_token" in u]
    assert not [u for u in urls if share_token in u and not re.search(r"/(api/)?share/pcms_", u)]

    # the same guest is sent to the login page by a private URL
    guest.goto(f"{base}/runs/{run_id}")
    guest.wait_for_url(re.compile(r"/login\?next="))


def test_api_reference_renders_with_no_internet(stack, open_context):
    """/docs draws Swagger UI from this server's own assets: every request off the server fails."""
    context = open_context()
    offsite: list[str] = []

    def only_this_server(route):
        if route.request.url.startswith(stack.base_url):
            route.continue_()
        else:
            offsite.append(route.request.url)
            route.abort()

    context.route("**/*", only_this_server)
    page = context.new_page()
    page.goto(stack.base_url + "/")
    page.click('nav a:has-text("API")')
    page.wait_for_url(stack.base_url + "/docs")
    page.wait_for_selector(".swagger-ui .info .title:has-text('PCM Lab')")
    page.wait_for_selector(".opblock-summary-path[data-path='/api/runs']")
    assert offsite == []

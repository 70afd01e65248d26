"""The dashboard's defences in a real browser: security headers on every kind of response, no
Content-Security-Policy violation on the main pages (so the pages run no inline script), run
names that carry HTML rendering as text in Plotly legends, hovers and titles, and a run that no
worker claims shown as waiting for one."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from backend.store.models import Run, RunEvent, utcnow
from tests.e2e.conftest import FAST_RUN

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]

LINK_NAME = '<a href="https://example.invalid/">x</a>'
IMG_NAME = '<img src=x onerror="window.__pwned = 1">'
SECURITY_HEADERS = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}

# Every CSP violation of a page, collected from its first script on.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  const where = `${e.sourceFile}:${e.lineNumber}`;
  window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} (${where})`);
});
"""


def assert_security_headers(headers) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert headers.get(name) == value, (name, dict(headers))
    csp = headers.get("content-security-policy", "")
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives.get("frame-ancestors") == "'none'", csp
    assert "'unsafe-inline'" not in directives.get("script-src", "'unsafe-inline'"), csp
    assert "'unsafe-eval'" not in csp, csp


@pytest.fixture(scope="module")
def hostile_runs(stack):
    """Two finished tiny runs whose names are HTML: a link and an image with an onerror handler."""
    with stack.client() as client:
        runs = [stack.create_run(client, name, **FAST_RUN) for name in (LINK_NAME, IMG_NAME)]
        return [stack.wait_status(client, run["id"], ("succeeded",)) for run in runs]


def test_headers_on_a_page_a_static_file_an_api_answer_and_an_error(stack):
    with stack.client() as client:
        paths = ("/", "/static/js/boot.js", "/static/vendor/plotly.min.js", "/api/health", "/api/runs/9999")
        for path in paths:
            assert_security_headers(client.get(path).headers)


def test_main_pages_and_api_reference_run_without_csp_violations(stack, hostile_runs, open_context):
    context = open_context()
    context.add_init_script(RECORD_VIOLATIONS)
    page = context.new_page()
    ids = ",".join(str(run["id"]) for run in hostile_runs)
    pages = {
        "/": "#runs-table tbody tr",
        f"/runs/{hostile_runs[0]['id']}": "#charts .js-plotly-plot .legend",
        f"/compare?ids={ids}": "#compare-step .legend",
        "/labs": "#new-lab-form",
        "/workers": "#workers-table tbody tr",
        "/docs": ".opblock-summary-path[data-path='/api/runs']",
    }
    for path, ready in pages.items():
        response = page.goto(stack.base_url + path)
        assert_security_headers(response.headers)
        page.wait_for_selector(ready)
        page.wait_for_load_state("networkidle")
        assert page.evaluate("window.__cspViolations") == [], path


def test_html_in_run_names_renders_as_text_in_charts(stack, hostile_runs, open_context):
    page = open_context().new_page()
    ids = ",".join(str(run["id"]) for run in hostile_runs)
    page.goto(f"{stack.base_url}/compare?ids={ids}")
    legend = page.locator("#compare-step .legend")
    legend.wait_for()
    assert legend.locator("a").count() == 0  # no live link
    assert LINK_NAME in legend.text_content()
    assert IMG_NAME in legend.text_content()

    page.evaluate("() => Plotly.Fx.hover('compare-step', { xval: 2 })")  # the unified hover label at step 2
    hover = page.locator("#compare-step .hoverlayer")
    hover.get_by_text("<img", exact=False).first.wait_for()
    assert hover.locator("a").count() == 0
    assert page.locator("#compare-step svg image[href='x'], #compare-step img").count() == 0

    page.goto(f"{stack.base_url}/runs/{hostile_runs[1]['id']}")
    page.wait_for_selector("#charts .js-plotly-plot .legend")
    page.wait_for_load_state("networkidle")
    # the only image on the page is the episode player's (a data: URL it sets itself), never the name's
    assert page.locator("#main img:not(#media-player)").count() == 0
    assert page.locator("#main img[src='x']").count() == 0
    assert page.evaluate("window.__pwned") is None


def test_a_run_no_worker_claims_says_it_waits_for_a_worker(stack, open_context):
    with stack.client() as client:
        run = stack.create_run(client, "unclaimed", **FAST_RUN)
        stack.wait_status(client, run["id"], ("succeeded",))
    an_hour_ago = utcnow() - timedelta(hours=1)
    with stack.session() as session:  # back in the queue an hour ago, its message lost
        session.execute(update(Run).where(Run.id == run["id"]).values(status="queued"))
        session.add(RunEvent(run_id=run["id"], kind="status", payload={"status": "queued"}))
        session.flush()
        session.execute(update(RunEvent).where(RunEvent.run_id == run["id"]).values(created_at=an_hour_ago))

    page = open_context().new_page()
    page.goto(f"{stack.base_url}/runs/{run['id']}")
    assert "waiting for a worker since" in page.locator("#run-info .waiting-note").text_content()
    assert page.locator("#requeue-run").is_visible()
    page.goto(stack.base_url + "/")
    row = page.locator(f"#runs-table tr[data-run-id='{run['id']}']")
    assert "waiting for a worker since" in row.locator(".waiting-note").text_content()

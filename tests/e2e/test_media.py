"""Watching the rollouts in a real browser: a short real run through a real worker records episodes
at its eval steps; the run page plays one beside its chunk strip (kept chunks marked), for a
member and for a share link's guest; per-task success curves on the run and compare pages."""

from __future__ import annotations

import imageio.v3 as iio
import pytest

from tests.e2e.conftest import FAST_RUN
from tests.e2e.test_dashboard import wait_points

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]

MEDIA_RUN = {**FAST_RUN, "train.steps": 2, "eval.every": 1, "eval.record_episodes": 2}


def wait_playing(page) -> None:
    """The player shows a decoded image and the strip's marker moves along the chunks."""
    page.wait_for_function(
        "() => { const img = document.getElementById('media-player');"
        " return img && img.dataset.mediaId && img.complete && img.naturalWidth > 0; }",
        timeout=60_000,
    )
    page.wait_for_function(
        "() => document.querySelectorAll('#media-strip .media-chunk.current').length === 1", timeout=10_000
    )


def test_an_episode_plays_beside_its_chunk_strip(stack, open_context, shoot):
    with stack.client() as client:
        response = client.post(
            "/api/runs", json={"name": "e2e-media", "preset": "tabletop_pcm", "overrides": MEDIA_RUN}
        )
        assert response.status_code == 201, response.text
        run = response.json()
        stack.wait_status(client, run["id"], ("succeeded",), timeout=240)
        media = client.get(f"/api/runs/{run['id']}/media").json()
        assert {m["step"] for m in media} == {1, 2}
        first = media[0]
        gif = client.get(first["url"])
        assert gif.status_code == 200 and gif.headers["content-type"] == "image/gif"
        assert iio.imread(gif.content, index=None, extension=".gif").ndim == 4
        share = client.post(f"/api/runs/{run['id']}/share").json()

    page = open_context().new_page()
    page.goto(f"{stack.base_url}/runs/{run['id']}")
    wait_playing(page)
    latest = [m for m in media if m["step"] == 2]
    shown = next(m for m in latest if m["id"] == int(page.get_attribute("#media-player", "data-media-id")))
    cells = page.locator("#media-strip .media-chunk")
    assert cells.count() == len(shown["chunks"])
    kept = [c["chunk"] for c in shown["chunks"] if c["kept"]]
    assert kept, "the run back-propagates chunks of every trajectory (dynamic sampling off)"
    assert [
        int(x)
        for x in page.locator('#media-strip .media-chunk[data-kept="true"]').evaluate_all(
            "(cells) => cells.map((c) => c.dataset.chunk)"
        )
    ] == kept
    assert page.locator('#media-strip .media-chunk[data-kept="true"]').first.inner_text() == "✓"
    outcome = page.locator("#media-strip .media-outcome")
    assert outcome.get_attribute("data-success") == str(shown["success"]).lower()
    if len(shown["chunks"]) > 1:  # the marker follows the GIF from chunk to chunk
        start = page.get_attribute("#media-strip", "data-current")
        page.wait_for_function(
            f"() => document.getElementById('media-strip').dataset.current !== '{start}'", timeout=10_000
        )
    shoot(page, "media-run-page")

    # an earlier step, another task and episode: picked from the controls
    page.select_option("#media-step", "1")
    page.wait_for_function(
        "(ids) => ids.includes(Number(document.getElementById('media-player').dataset.mediaId))",
        arg=[m["id"] for m in media if m["step"] == 1],
    )
    wait_points(page, "chart-task-success", 0)

    # a share link's guest (no login) watches the same episode
    guest = open_context().new_page()
    guest.goto(share["url"] if "://" in share["url"] else stack.base_url + share["url"])
    wait_playing(guest)

    # per-task curves on the compare page too
    page.goto(f"{stack.base_url}/compare?ids={run['id']}")
    page.wait_for_function("() => Number(document.getElementById('compare-tasks').dataset.tasks) > 0")
    assert page.evaluate("() => document.getElementById('compare-tasks').data.length") >= 1

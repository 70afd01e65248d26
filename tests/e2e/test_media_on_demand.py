"""Episodes on demand in a real browser: a running run that records no episodes by itself (no eval
steps, eval.record_episodes 0); "Record the next step" on its page asks for them, the page says
"recording step N…", and the episodes of that (non-eval) step play once the worker's `media` event
arrives. A share link's guest never sees the button; nobody does once the run ends."""

from __future__ import annotations

import re

import pytest

from tests.e2e.test_dashboard import wait_status
from tests.e2e.test_media import wait_playing

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]

QUIET_RUN = {"train.steps": 5000, "grpo.dynamic_sampling": False, "eval.every": 0, "eval.record_episodes": 0}


def test_record_the_next_step_plays_its_episodes(stack, open_context, shoot):
    with stack.client() as client:
        run = stack.create_run(client, "e2e-media-on-demand", **QUIET_RUN)
    page = open_context().new_page()
    page.goto(f"{stack.base_url}/runs/{run['id']}")
    wait_status(page, "running")
    button = page.locator("#media-request")
    button.wait_for(state="visible")
    assert button.inner_text() == "Record the next step"
    page.wait_for_selector('#media-panel[data-count="0"]')  # listed: nothing recorded by itself

    with page.expect_response(lambda r: r.url.endswith("/media/requests")) as answer:
        button.click()
    assert answer.value.status == 202
    asked = answer.value.json()["step"]
    # "recording step N…" until the episodes are listed (at a step a second long, it may be over already)
    page.wait_for_function(
        "(asked) => { const text = document.getElementById('media-request-status').textContent;"
        " return text === `recording step ${asked}…` || /^step \\d+ recorded$/.test(text); }",
        arg=asked,
    )

    wait_playing(page)
    page.wait_for_function(
        "() => /^step \\d+ recorded$/.test(document.getElementById('media-request-status').textContent)"
    )
    recorded = int(re.search(r"\d+", page.inner_text("#media-request-status")).group())
    assert asked <= recorded <= asked + 1  # the step asked for (the next, if asked as it ended)
    shoot(page, "media-on-demand")

    with stack.client() as client:
        media = client.get(f"/api/runs/{run['id']}/media").json()
        assert {m["step"] for m in media} == {recorded}  # no eval step recorded anything
        per_task = {task: sum(m["task"] == task for m in media) for task in {m["task"] for m in media}}
        assert set(per_task.values()) == {2}  # eval.record_episodes is 0: two per task
        shown = int(page.get_attribute("#media-player", "data-media-id"))
        assert shown in {m["id"] for m in media}
        share = client.post(f"/api/runs/{run['id']}/share").json()

    # a share link's guest watches the episodes but may not ask for more
    guest = open_context().new_page()
    guest.goto(share["url"] if "://" in share["url"] else stack.base_url + share["url"])
    wait_playing(guest)
    assert guest.locator("#media-request").is_hidden()

    with stack.client() as client:
        assert client.post(f"/api/runs/{run['id']}/cancel").status_code == 200
        stack.wait_status(client, run["id"], ("cancelled",))
    wait_status(page, "cancelled")
    button.wait_for(state="hidden")

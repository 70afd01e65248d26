"""Forms that help, in a real browser against a real stack: an override typo named beside its line
with the nearest valid key, overrides shown in the fields they set, the short form (common fields
first, sections collapsed), Clone opening the launch form filled from the run, Cancel asking once,
and tags, notes and config-value search on the runs list."""

from __future__ import annotations

import re

import pytest

from tests.e2e.test_dashboard import open_launch_form, wait_status

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]

LONG = {"train.steps": 5000, "grpo.dynamic_sampling": False}  # a run that stays active until cancelled


def text_of(page, selector: str) -> str:
    return page.inner_text(selector).strip()


def test_an_override_typo_is_named_beside_its_line(stack, open_context, console, shoot):
    console.allow("status of 422")  # the refused POST, on purpose
    page = open_context().new_page()
    open_launch_form(page, stack.base_url)
    # short: the common fields first, every section collapsed
    assert page.locator("#common-fields #f-pcm-budget").count() == 1
    assert page.locator("#common-fields #f-train-steps").count() == 1
    assert page.locator("details.section-toggle[data-section][open]").count() == 0
    assert page.eval_on_selector("#launch-form", "f => f.getBoundingClientRect().height") < 1400
    # the preset's values are the values; the schema's default is in the help only
    assert page.input_value("#f-train-steps") == "150"
    assert "schema default" in text_of(page, "#f-train-steps-help")

    with stack.client() as client:
        before = client.get("/api/runs").json()["count"]
    page.click("#launch-form details:has(#launch-overrides) > summary")
    page.fill("#launch-overrides", "train.steps=3\npcm.budgt=2")
    page.click("#launch-submit")
    page.wait_for_selector('#launch-overrides-err .override-problem[data-key="pcm.budgt"]')
    assert text_of(page, "#launch-overrides-err") == (
        "line 2, pcm.budgt: unknown key pcm.budgt — did you mean pcm.budget?"
    )
    assert page.get_attribute("#launch-overrides", "aria-invalid") == "true"
    assert text_of(page, "#f-pcm-budget-err") == ""  # not on the form field the key resembles
    # the field a box line sets shows that value, marked
    assert page.input_value("#f-train-steps") == "3"
    assert "set by the overrides box" in text_of(page, '.field[data-path="train.steps"]')
    shoot(page, "launch-override-typo")

    # a box key that is valid but out of bounds: beside its line too, not on the field
    page.fill("#launch-overrides", "pcm.budget=0")
    page.click("#launch-submit")
    page.wait_for_selector('#launch-overrides-err .override-problem[data-key="pcm.budget"]')
    assert "line 1, pcm.budget: Input should be greater than or equal to 1" in text_of(
        page, "#launch-overrides-err"
    )
    assert page.input_value("#f-pcm-budget") == "0" and page.input_value("#f-train-steps") == "150"
    with stack.client() as client:
        assert client.get("/api/runs").json()["count"] == before  # nothing launched


def test_clone_opens_the_launch_form_filled_from_the_run(stack, open_context, shoot):
    with stack.client() as client:
        source = stack.create_run(client, "e2e-clone-src", **{"pcm.budget": 3, "grpo.temperature": 0.7})
    page = open_context().new_page()
    page.goto(f"{stack.base_url}/runs/{source['id']}")
    page.click("#clone-run")
    page.wait_for_url(re.compile(rf"/\?clone={source['id']}$"))
    page.wait_for_selector("#launch-form #launch-clone-of")
    assert page.is_visible("#launch-form")
    assert page.input_value("#f-name") == "e2e-clone-src (clone)"
    assert page.input_value("#f-pcm-budget") == "3"  # the run's values, not the preset's (4)
    assert page.input_value("#f-env-tabletop-image-size") == "32"  # in a collapsed section
    assert page.input_value("#f-grpo-temperature") == "0.7"
    assert text_of(page, "#launch-submit") == "Launch clone"
    shoot(page, "clone-form")

    page.fill("#f-pcm-budget", "2")
    page.click("#launch-submit")
    page.wait_for_url(re.compile(r"/runs/\d+$"))
    clone_id = int(page.url.rsplit("/", 1)[1])
    assert clone_id != source["id"]
    with stack.client() as client:
        clone = client.get(f"/api/runs/{clone_id}").json()
    assert clone["name"] == "e2e-clone-src (clone)"
    assert clone["config"]["pcm"]["budget"] == 2
    assert clone["config"]["grpo"]["temperature"] == 0.7
    assert clone["config"]["env"] == source["config"]["env"]
    assert clone["cloned_from_id"] == source["id"]  # the clone keeps a link to its source


def test_cancel_asks_once(stack, open_context, shoot):
    with stack.client() as client:
        run = stack.create_run(client, "e2e-cancel-asks", **LONG)
    page = open_context().new_page()
    page.goto(f"{stack.base_url}/runs/{run['id']}")
    page.wait_for_selector("#cancel-run")
    assert page.is_hidden("#cancel-confirm")
    page.click("#cancel-run")
    assert page.is_visible("#cancel-confirm") and "Cancel this run?" in text_of(page, "#cancel-confirm")
    shoot(page, "cancel-confirm")
    page.click("#cancel-confirm-no")  # changed my mind: nothing sent
    assert page.is_hidden("#cancel-confirm")
    with stack.client() as client:
        assert client.get(f"/api/runs/{run['id']}").json()["cancel_requested"] is False
    page.click("#cancel-run")
    page.click("#cancel-confirm-yes")
    wait_status(page, "cancelled")
    assert page.locator("#cancel-run").is_hidden()


def test_tags_notes_and_config_search(stack, open_context, console):
    console.allow("status of 422")  # the misspelt config filter, on purpose
    with stack.client() as client:
        tagged = stack.create_run(client, "e2e-search-b3", **{"pcm.budget": 3})
        stack.create_run(client, "e2e-search-b2", **{"pcm.budget": 2})
    page = open_context().new_page()
    page.goto(f"{stack.base_url}/runs/{tagged['id']}")
    page.click("#run-notes-panel > summary")
    page.fill("#run-tags", "e2e-ablation, budget3")
    page.fill("#run-notes", "Gripper slips at lift")
    page.click("#run-notes-save")
    page.wait_for_function("() => document.getElementById('run-notes-status').textContent === 'saved'")
    assert "e2e-ablation" in text_of(page, "#run-tag-list")

    page.goto(stack.base_url + "/")
    page.fill("#filter-config", "pcm.budget=3 pcm.selector=pcm")
    page.wait_for_function("() => location.search.includes('config=')")
    page.wait_for_function(  # the filtered answer has replaced the unfiltered one
        "() => { const names = [...document.querySelectorAll('#runs-table td[data-col=name] a')]"
        ".map(a => a.innerText);"
        " return names.includes('e2e-search-b3') && !names.includes('e2e-search-b2'); }"
    )
    with stack.client() as client:
        matching = client.get("/api/runs", params={"config": ["pcm.budget=3", "pcm.selector=pcm"]}).json()
    names = page.eval_on_selector_all('#runs-table td[data-col="name"] a', "as => as.map(a => a.innerText)")
    assert sorted(names) == sorted(run["name"] for run in matching["data"])
    page.fill("#filter-config", "")
    page.fill("#filter-tag", "e2e-ablation")
    page.fill("#filter-q", "slips AT")
    page.wait_for_function("() => location.search.includes('tag=e2e-ablation')")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#runs-table td[data-col=name] a')].map(a => a.innerText)"
        ".join() === 'e2e-search-b3'"
    )
    page.fill("#filter-config", "pcm.budgt=3")
    page.wait_for_selector("#runs-message:has-text('did you mean pcm.budget?')")

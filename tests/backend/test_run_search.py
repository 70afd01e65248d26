"""Finding runs: the config filter (`?config=pcm.budget=2`), tags and notes (PATCH), and text
search over names and notes — on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from backend.schemas import MAX_NOTES_LENGTH, MAX_TAGS
from tests.backend.conftest import Api, launch
from tests.backend.test_security import Lab
from tests.backend.test_security import lab as lab  # the two-lab fixture


def names(client: Api, **params) -> list[str]:
    response = client.get("/api/runs", params={"sort": "name", **params})
    assert response.status_code == 200, response.text
    return [run["name"] for run in response.json()["data"]]


@pytest.fixture
def three_runs(client: Api) -> Api:
    launch(client, "a-b2-pcm", overrides={"pcm.budget": 2})
    launch(client, "b-b2-full", overrides={"pcm.budget": 2, "pcm.selector": "full"})
    launch(client, "c-b3-pcm", overrides={"pcm.budget": 3, "grpo.lr": 0.0005})
    return client


def test_the_config_filter_keeps_runs_holding_that_value(three_runs: Api) -> None:
    client = three_runs
    assert names(client, config="pcm.budget=2") == ["a-b2-pcm", "b-b2-full"]
    assert names(client, config="pcm.selector=pcm") == ["a-b2-pcm", "c-b3-pcm"]  # a string
    assert names(client, config=["pcm.budget=2", "pcm.selector=pcm"]) == ["a-b2-pcm"]  # AND
    assert names(client, config="grpo.lr=5e-4") == ["c-b3-pcm"]  # read as the field's type (float)
    assert names(client, config="pcm.budget=7") == []  # a value no run holds
    assert names(client, config="policy.pretrained=null") == ["a-b2-pcm", "b-b2-full", "c-b3-pcm"]
    count = client.get("/api/runs", params={"config": "pcm.budget=2", "limit": 1}).json()["count"]
    assert count == 2


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        ("pcm.budgt=2", "pcm.budgt", "did you mean pcm.budget?"),
        ("pcm=2", "pcm", "is a section"),
        ("pcm.budget=abc", "pcm.budget", "valid integer"),
        ("pcm.selector=bogus", "pcm.selector", "'pcm'"),
        ("pcm.budget", "pcm.budget", "dotted.key=value"),
    ],
)
def test_a_bad_config_filter_is_a_422_naming_its_key(client: Api, text: str, field: str, words: str) -> None:
    response = client.get("/api/runs", params={"config": text})
    assert response.status_code == 422
    assert response.json()["fields"] == [field]
    assert response.json()["detail"][0]["loc"] == ["query", "config"]
    assert words in response.json()["detail"][0]["msg"]


def test_tags_and_notes_are_set_by_patch_and_searched(client: Api) -> None:
    run = launch(client, "budget-sweep-1")
    other = launch(client, "other")
    url = f"/api/runs/{run['id']}"
    patched = client.patch(url, json={"tags": ["ablation", "b2", "ablation"], "notes": "Grip FAILS at lift"})
    assert patched.status_code == 200, patched.text
    assert patched.json()["tags"] == ["ablation", "b2"] and patched.json()["notes"] == "Grip FAILS at lift"
    # a field left out stays
    assert client.patch(url, json={"notes": "grip fails at lift"}).json()["tags"] == ["ablation", "b2"]
    assert client.get(url).json()["notes"] == "grip fails at lift"

    assert names(client, tag="b2") == ["budget-sweep-1"]
    assert names(client, tag="b") == []  # a whole tag, not a part of one
    assert names(client, q="FAILS AT") == ["budget-sweep-1"]  # notes, any case
    assert names(client, q="oth") == ["other"]  # names still
    assert names(client, tag="ablation", q="lift", config="pcm.selector=pcm") == ["budget-sweep-1"]
    listed = client.get("/api/runs", params={"tag": "ablation"}).json()["data"][0]
    assert listed["tags"] == ["ablation", "b2"]
    assert client.get(f"/api/runs/{other['id']}").json()["tags"] == []


@pytest.mark.parametrize(
    "body",
    [
        {"tags": ["has space"]},
        {"tags": ["a,b"]},
        {"tags": [""]},
        {"tags": ["x" * 41]},
        {"tags": [f"t{i}" for i in range(MAX_TAGS + 1)]},
        {"notes": "n" * (MAX_NOTES_LENGTH + 1)},
        {"owner_id": 2},
    ],
)
def test_patch_refuses_oversized_or_malformed_tags_and_notes(client: Api, body: dict) -> None:
    run = launch(client)
    response = client.patch(f"/api/runs/{run['id']}", json=body)
    assert response.status_code == 422, body
    assert response.json()["fields"][0].split(".")[0] in {"tags", "notes", "owner_id"}
    assert client.get(f"/api/runs/{run['id']}").json()["tags"] == []


def test_only_those_who_may_change_a_run_edit_its_tags(lab: Lab) -> None:
    run = lab.launch("alice")
    url = f"/api/runs/{run['id']}"
    viewer = lab.client.patch(url, json={"tags": ["mine"]}, headers=lab.as_("carol"))
    assert viewer.status_code == 403 and "not edit it" in viewer.text
    assert lab.client.patch(url, json={"tags": ["x"]}, headers=lab.as_("bob")).status_code == 404  # other lab
    member = lab.client.patch(url, json={"tags": ["ok"]}, headers=lab.as_("alice"))
    assert member.status_code == 200 and member.json()["tags"] == ["ok"]

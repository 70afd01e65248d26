"""Bounded requests (issue 15, item 2): body size, override counts, linear-time errors, the
permission check before any config work, and the resource guard at launch."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from backend.limits import BodySizeLimit
from backend.store.settings import Settings
from tests.backend import test_security
from tests.backend.test_security import Lab

lab = test_security.lab  # the two-lab fixture: alice member and carol viewer of A, bob member of B
LIMIT = Settings().max_body_bytes


def post_run(lab: Lab, user: str, **body) -> dict:
    response = lab.client.post(
        "/api/runs", json={"name": "x", "preset": "tabletop_pcm", **body}, headers=lab.as_(user)
    )
    return response


def test_a_body_over_the_limit_is_413_before_it_is_used(lab: Lab) -> None:
    big = json.dumps({"name": "x", "preset": "tabletop_pcm", "config": None, "pad": "a" * LIMIT})
    response = lab.client.post(
        "/api/runs", content=big, headers={**lab.as_("alice"), "Content-Type": "application/json"}
    )
    assert response.status_code == 413 and "PCM_MAX_BODY_BYTES" in response.json()["detail"]
    chunked = lab.client.post(
        "/api/runs", content=iter([big.encode()[:LIMIT], big.encode()[LIMIT:]]), headers=lab.as_("alice")
    )
    assert "content-length" not in chunked.request.headers and chunked.status_code == 413


def test_a_chunked_body_is_read_only_until_it_passes_the_limit() -> None:
    """No Content-Length: the limit stops the reading itself, not the app after a full read."""
    chunks = [{"type": "http.request", "body": b"x" * 1000, "more_body": True} for _ in range(1000)]
    read, sent, called = [], [], []

    async def receive() -> dict:
        read.append(chunks[len(read)])
        return read[-1]

    async def send(message: dict) -> None:
        sent.append(message)

    async def app(*_args) -> None:
        called.append(True)

    scope = {"type": "http", "method": "POST", "path": "/api/runs", "headers": []}
    asyncio.run(BodySizeLimit(app, max_bytes=10_000)(scope, receive, send))
    assert len(read) == 11 and not called and sent[0]["status"] == 413


def test_many_unknown_overrides_are_refused_at_once_even_from_a_viewer(lab: Lab) -> None:
    """The attack: 10,000 unknown keys from a viewer took 17.9 s to answer a 1.1 MB 422."""
    flood = {f"unknown{i}": i for i in range(10_000)}
    started = time.perf_counter()
    viewer = post_run(lab, "carol", lab_id=lab.lab_a, overrides=flood)
    member = post_run(lab, "alice", overrides=flood)
    assert time.perf_counter() - started < 2
    assert viewer.status_code == 403  # the permission check comes before any config work
    assert member.status_code == 422 and member.json()["fields"] == ["overrides"]
    assert "PCM_MAX_OVERRIDES" in member.text and len(member.content) < 1000
    keys = post_run(lab, "alice", preset=None, config={"policy": {f"k{i}": i for i in range(5000)}})
    assert keys.status_code == 422 and "PCM_MAX_CONFIG_KEYS" in keys.text


def test_locating_errors_takes_linear_time(lab: Lab) -> None:
    """Every override under the cap is its own error, located in one pass."""
    client = lab.client
    client.app.state.settings.max_overrides = 20_000
    client.app.state.settings.max_config_keys = 40_000
    flood = {f"pcm.unknown{i}": i for i in range(20_000)}
    started = time.perf_counter()
    response = post_run(lab, "alice", overrides=flood)
    assert response.status_code == 422 and len(response.json()["fields"]) == 20_000
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize(
    ("overrides", "field", "setting"),
    [
        (  # a 241 B-parameter policy
            {
                "policy.hidden_size": 8192,
                "policy.num_layers": 128,
                "policy.num_heads": 128,
                "policy.mlp_ratio": 8,
            },
            "policy.hidden_size",
            "PCM_MAX_POLICY_PARAMETERS",
        ),
        (
            {"grpo.groups_per_step": 1024, "grpo.group_size": 256, "train.steps": 2000},
            "train.steps",
            "PCM_MAX_ROLLOUTS",
        ),
        ({"train.torch_threads": 1024}, "train.torch_threads", "PCM_MAX_TORCH_THREADS"),
    ],
)
def test_configs_no_worker_could_hold_are_refused(
    lab: Lab, overrides: dict, field: str, setting: str
) -> None:
    response = post_run(lab, "alice", overrides=overrides)
    assert response.status_code == 422, response.text
    assert field in response.json()["fields"] and setting in response.text
    run = test_security.Lab.launch(lab, "alice")
    clone = lab.client.post(
        f"/api/runs/{run['id']}/clone", json={"overrides": overrides}, headers=lab.as_("alice")
    )
    assert clone.status_code == 422 and setting in clone.text


def test_an_image_size_over_the_limit_is_refused(lab: Lab) -> None:
    response = post_run(lab, "alice", preset="libero_spatial_pcm", overrides={"env.image_size": 512})
    assert response.status_code == 422 and response.json()["fields"] == ["env.image_size"]
    assert "PCM_MAX_IMAGE_SIZE" in response.text and "256" in response.text


def test_a_whole_config_over_a_limit_names_the_field_in_it(lab: Lab) -> None:
    response = post_run(lab, "alice", preset=None, config={"train": {"torch_threads": 65}})
    assert response.status_code == 422 and response.json()["fields"] == ["train.torch_threads"]
    assert response.json()["detail"][0]["loc"] == ["body", "config", "train", "torch_threads"]


@pytest.mark.parametrize("field", ["train.seed", "policy.seed", "sft.seed"])
def test_seeds_are_bounded_to_what_the_generators_take(lab: Lab, field: str) -> None:
    response = post_run(lab, "alice", overrides={field: 10**30})
    assert response.status_code == 422 and response.json()["fields"] == [field]
    assert post_run(lab, "alice", overrides={field: 2**63 - 1}).status_code == 201


def test_every_preset_fits_the_default_limits(lab: Lab) -> None:
    for preset in lab.client.get("/api/presets").json():
        name = preset["name"] if isinstance(preset, dict) else preset
        assert post_run(lab, "alice", preset=name).status_code == 201, name

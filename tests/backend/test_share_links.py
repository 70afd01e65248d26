"""Share links are absolute URLs on the configured public base URL (`PCM_PUBLIC_URL`), else on the
address the request came to; a run's links are listed (without their secrets) and revocable."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from backend.store.settings import Settings
from tests.backend.conftest import launch


def test_public_base_is_the_setting_else_the_request() -> None:
    assert Settings(public_url="https://pcm.lab.example/").public_base("http://127.0.0.1:8000/") == (
        "https://pcm.lab.example"
    )
    assert (
        Settings(public_url="https://lab.example/pcm").public_base("http://x/") == "https://lab.example/pcm"
    )
    assert Settings().public_base("http://10.0.0.5:8000/") == "http://10.0.0.5:8000"
    with pytest.raises(ValidationError, match="public_url"):
        Settings(public_url="pcm.lab.example")  # not a URL: refused at start-up, naming the field


def test_share_links_use_the_public_base_url_and_can_be_listed_and_revoked(make_client: Any) -> None:
    client = make_client(public_url="https://pcm.lab.example")
    run = launch(client)
    created = client.post(f"/api/runs/{run['id']}/share").json()
    assert created["url"] == f"https://pcm.lab.example/share/{created['token']}"
    listed = client.get(f"/api/runs/{run['id']}/share").json()
    assert [link["id"] for link in listed] == [created["id"]] and listed[0]["revoked_at"] is None
    assert created["token"] not in str(listed)  # the secret is shown once, never listed
    assert client.delete(f"/api/runs/{run['id']}/share/{created['id']}").status_code == 204
    assert client.get(f"/api/runs/{run['id']}/share").json()[0]["revoked_at"] is not None
    assert client.get(f"/api/share/{created['token']}").status_code == 404

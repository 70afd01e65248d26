"""The service side of the `pcm` console entry, run as users run it (a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from sqlalchemy import select

from backend.store.credentials import verify_password
from backend.store.db import session_scope
from backend.store.models import Lab, Membership, User
from backend.store.settings import Settings
from tests.services import free_port

pytestmark = pytest.mark.slow  # each test starts `pcm` processes


def pcm(*args: str, data_dir, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PCM_")}
    environ.update(OMP_NUM_THREADS="1", PCM_DATA_DIR=str(data_dir), **env)
    return subprocess.run(
        [sys.executable, "-m", "pcm_lab.cli", *args], env=environ, capture_output=True, text=True, timeout=60
    )


def test_user_add_creates_a_user_with_a_hashed_password_and_a_lab_role(tmp_path):
    done = pcm(
        "user",
        "add",
        "grace",
        "--password",
        "s3cret!",
        "--lab",
        "robots",
        "--role",
        "owner",
        data_dir=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["created"] is True
    again = pcm("user", "add", "grace", "--password", "other", "--admin", data_dir=tmp_path)
    assert json.loads(again.stdout.splitlines()[-1]) == {
        "user": "grace",
        "id": 1,
        "created": False,
        "admin": True,
    }

    url = Settings(_env_file=None, data_dir=tmp_path).resolved_database_url
    with session_scope(url) as session:
        user = session.scalar(select(User).where(User.username == "grace"))
        assert user.is_admin and verify_password("other", user.password_hash)
        assert not verify_password("s3cret!", user.password_hash)
        membership = session.scalar(select(Membership).join(Lab).where(Lab.name == "robots"))
        assert (membership.user_id, membership.role) == (user.id, "owner")


def test_user_add_refuses_an_unknown_role(tmp_path):
    done = pcm("user", "add", "x", "--password", "p", "--lab", "l", "--role", "boss", data_dir=tmp_path)
    assert done.returncode == 2 and "--role must be one of" in done.stderr


def test_serving_beyond_loopback_without_auth_is_refused(tmp_path):
    for command in ("api", "up"):
        done = pcm(
            command, "--host", "0.0.0.0", data_dir=tmp_path, PCM_AUTH="single_user", PCM_PORT=str(free_port())
        )
        assert done.returncode != 0 and "refusing to serve on 0.0.0.0" in done.stderr


def test_engine_commands_still_work_through_the_service_entry(tmp_path):
    done = pcm("presets", data_dir=tmp_path)
    assert done.returncode == 0
    assert "tabletop_pcm" in json.loads(done.stdout.splitlines()[-1])["presets"]

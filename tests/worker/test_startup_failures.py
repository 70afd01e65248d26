"""A worker that cannot use its database must not start: a real worker process pointed at a
PostgreSQL database that does not exist exits non-zero, says why, and never reports ready (a
worker that did would take tasks it cannot claim, leaving their runs queued forever)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import make_url

from tests.conftest import POSTGRES_ADMIN_URL, REDIS_URL
from tests.services import ServiceStack

pytestmark = pytest.mark.slow

PASSWORD = "s3cret-db-pw"


def test_worker_without_its_database_exits_with_the_reason(tmp_path, queue_name) -> None:
    missing = make_url(POSTGRES_ADMIN_URL).set(password=PASSWORD, database=f"pcm_missing_{uuid.uuid4().hex}")
    url = missing.render_as_string(hide_password=False)
    with ServiceStack(tmp_path, database_url=url, broker_url=REDIS_URL, queue=f"{queue_name}-nodb") as stack:
        worker = stack.spawn("w1", "worker", "--name", "w1@%h")
        returncode = worker.wait(timeout=90)
        log = (stack.logs_dir / "w1.log").read_text()

    assert returncode != 0, log
    assert "cannot use the database" in log and "does not exist" in log, log
    assert "ready" not in log, log
    assert PASSWORD not in log, log

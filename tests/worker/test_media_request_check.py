"""The worker's side of episodes on demand, against the real databases: `StopCheck.media_requested`
(the trainer's `should_record_media`) takes a pending request once, and the stop check after it
still sees a cancel or a lost run."""

from __future__ import annotations

import pytest

from backend.store import lifecycle, media_requests
from backend.store.db import migrate, session_scope
from backend.store.models import Run
from tests.worker.checks import add_queued_run
from worker.heartbeat import Attachment
from worker.runner import StopCheck, StopReason

WORKER = "w1@test"


@pytest.fixture(params=["sqlite_url", pytest.param("postgres_url", marks=pytest.mark.slow)])
def running(request) -> tuple[str, int]:
    """A migrated database holding one run that WORKER claimed; returns (url, run id)."""
    url = request.getfixturevalue(request.param)
    migrate(url)
    with session_scope(url) as session:
        run = add_queued_run(session)
        assert lifecycle.claim_run(session, run.id, WORKER)
        return url, run.id


def ask(url: str, run_id: int) -> None:
    with session_scope(url) as session:
        assert media_requests.request(session, run_id) is not None


def test_a_request_is_taken_once_and_the_stop_check_goes_on(running):
    url, run_id = running
    check = StopCheck(url, run_id, WORKER, Attachment(run_id))
    assert check.media_requested() is False  # nobody asked
    assert check() is False

    ask(url, run_id)
    assert check.media_requested() is True
    assert check() is False  # asking is no reason to stop
    assert check.media_requested() is False  # taken: the next step records nothing
    with session_scope(url) as session:
        assert session.get(Run, run_id).media_requested_at is None


def test_a_cancel_wins_over_a_pending_request(running):
    url, run_id = running
    ask(url, run_id)
    with session_scope(url) as session:
        assert lifecycle.request_cancel(session, run_id) == "running"
    check = StopCheck(url, run_id, WORKER, Attachment(run_id))
    assert check.media_requested() is False  # a stopping run records no more
    assert check() is True and check.reason is StopReason.CANCEL


def test_a_run_taken_away_is_lost_even_with_a_request(running):
    url, run_id = running
    ask(url, run_id)
    with session_scope(url) as session:
        assert lifecycle.finish_run(session, run_id, WORKER, "failed")
    check = StopCheck(url, run_id, "w2@test", Attachment(run_id))
    assert check.media_requested() is False
    assert check() is True and check.reason is StopReason.LOST


def test_a_cancel_during_the_evaluation_stops_the_run_at_the_end_of_this_step(running):
    """The stop check reads the row again after the media check: a cancel (or a takeover) that
    arrives between them, while the step evaluates, is not left for the next step."""
    url, run_id = running
    check = StopCheck(url, run_id, WORKER, Attachment(run_id))
    assert check.media_requested() is False
    with session_scope(url) as session:
        assert lifecycle.request_cancel(session, run_id) == "running"
    assert check() is True and check.reason is StopReason.CANCEL

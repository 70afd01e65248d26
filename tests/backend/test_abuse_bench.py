"""bench/abuse.py: a smoke run (a real API process, one-second phases, a few abusers, small
bodies). Timings here mean nothing; the shape of the report, the body the bench builds and the
answers the abusers get (a 4xx, or the 503 of a full hashing queue; never an error) do."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import abuse  # noqa: E402


@pytest.mark.slow  # starts `pcm api`
def test_a_tiny_run_reports_every_phase_and_ends_with_the_json_line(capsys):
    argv = ["--profile", "embedded", "--seconds", "1.5", "--ramp-s", "0.3", "--timeout", "5"]
    report = abuse.main([*argv, "--flood-clients", "2", "--body-clients", "1", "--body-bytes", "4096"])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == report

    assert report["auth"] == "required" and report["body"]["bytes"] == 4096
    assert report["body"]["server_limit"] >= 1024 and report["body"]["limit_source"]
    assert list(report["phases"]) == list(abuse.PHASES)
    for name, phase in report["phases"].items():
        health = phase["health"]
        assert health["probes"] > 0 and health["failures"] == 0, name
        assert 0 < health["p50_ms"] <= health["p99_ms"] <= health["max_ms"], name
        if name != "idle":
            answers = phase["abuse"]["statuses"]
            assert phase["abuse"]["requests"] == sum(answers.values()) > 0, name
            refused = [s for s in answers if s.isdigit() and (400 <= int(s) < 500 or int(s) == 503)]
            assert refused == list(answers), (name, answers)  # a 4xx, or 503 when hashing is full
    assert isinstance(report["meets_target"], bool) and len(report["load_average"]["before"]) == 3


@pytest.mark.parametrize("shape", ["keys", "padding"])
def test_launch_bodies_are_exactly_the_size_asked_and_valid_json(shape):
    for size in (300, 4096, 1 << 20):
        body = abuse.launch_body(size, shape)
        assert len(body) == size
        overrides = json.loads(body)["overrides"]
        assert (len(overrides) > 10) == (shape == "keys") and "abuse.pad" in overrides


def test_the_body_limit_comes_from_the_settings_or_the_issue_default():
    class WithLimit:
        max_body_bytes = 5000

    assert abuse.body_limit(WithLimit()) == (5000, "settings.max_body_bytes")
    assert abuse.body_limit(object())[0] == abuse.DEFAULT_BODY_LIMIT

"""bench/step_split.py: a smoke run on the tiny policy. Timings here mean nothing; the four runs,
the shape of the report, and that only the overlapped runs hide rollout time do."""

import json
import sys
from pathlib import Path

from tests.tiny import TINY

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import step_split as S  # noqa: E402

from pcm_engine import metrics as M  # noqa: E402


def test_a_tiny_run_reports_four_runs_that_differ_in_selector_and_overlap(capsys, tmp_path):
    sets = [arg for key, value in TINY.items() for arg in ("--set", f"{key}={json.dumps(value)}")]
    summary = S.main(["--steps", "3", "--rounds", "1", "--threads", "1", "--out", str(tmp_path), *sets])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == summary
    runs = summary["runs"]
    assert list(runs) == [
        "GRPO, sequential",
        "GRPO, overlapped",
        "pcm B=4, sequential",
        "pcm B=4, overlapped",
    ]
    for name, row in runs.items():
        assert row[M.TIME_STEP] > 0 and row["step_speedup_vs_sequential"] > 0
        if "sequential" in name:
            assert row[M.TIME_ROLLOUT_HIDDEN] == row[M.TIME_ROLLOUT_OVERLAP] == 0.0
            assert row["step_speedup_vs_sequential"] == 1.0
        else:
            assert 0.0 <= row[M.TIME_ROLLOUT_OVERLAP] <= 1.0
    assert summary["threads"] == 1 and {"before", "after"} <= set(summary["load_average"])

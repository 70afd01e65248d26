"""bench/update_cost.py: a smoke run on a tiny policy (both pass modes, two rounds, no time to
converge) and its interval arithmetic. Timings here mean nothing; the shape of the report and
the activation and pass columns do."""

import json
import math
import sys
from pathlib import Path

import pytest

from tests.tiny import TINY

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import update_cost as U  # noqa: E402

TINY_POLICY = [f"{k}={v}" for k, v in TINY.items() if k.startswith("policy.") or k == "env.image_size"]


@pytest.mark.slow
def test_a_tiny_run_reports_both_modes_and_keeps_the_last_json_line(capsys):
    sets = [arg for pair in TINY_POLICY + ["env.max_steps=64"] for arg in ("--set", pair)]
    summary = U.main(["--trajectories", "8", "--min-rounds", "2", "--max-seconds", "0", *sets])
    lines = capsys.readouterr().out.strip().splitlines()
    last = json.loads(lines[-1])
    assert json.loads(lines[-2]) == summary
    # 16 chunks a trajectory: B = 2, 3, 4 (12.5%, 18.75%, 25%); the last line is the middle one, auto
    assert last["method"] == "pcm B=3" and last["mode"] == "auto"
    assert {"kept_fraction", "update_s", "update_speedup", "activation_ratio", "full_update_s"} <= set(last)
    low, high = last["speedup_ci"]
    assert low <= last["update_speedup"] <= high
    assert {"before", "after", "cores", "threads", "idle"} <= set(last["load_average"])
    assert summary["rounds"] == 2 and summary["threads"] == 1
    auto, memory = summary["modes"]["auto"], summary["modes"]["memory"]
    assert list(auto) == list(memory) == ["full", "pcm B=2", "pcm B=3", "pcm B=4"]
    assert auto["full"]["passes"] == memory["full"]["passes"] == 8  # one trajectory a pass either way
    for method in ("pcm B=2", "pcm B=3", "pcm B=4"):
        kept = auto[method]["kept_fraction"]
        assert auto[method]["passes"] < memory[method]["passes"] == 8
        assert auto[method]["activation_ratio"] <= 1.0  # never more per pass than GRPO
        assert memory[method]["activation_ratio"] <= 1.1 * kept  # passes shrink with what PCM keeps


def test_speed_up_intervals():
    assert U.t975(1) == 12.706 and U.t975(30) == 2.042
    assert U.t975(31) == pytest.approx(2.0395, abs=2e-4) and U.t975(120) == pytest.approx(1.9799, abs=2e-4)
    assert U.ratio_interval([2.0, 2.0, 2.0]) == pytest.approx((2.0, 2.0, 2.0))
    estimate, low, high = U.ratio_interval([4.0, 5.0, 6.0, 5.0])
    assert low < estimate < high and estimate == pytest.approx(math.exp(sum(map(math.log, [4, 5, 6, 5])) / 4))
    assert U.within(5.0, 4.8, 5.2, 0.05) and not U.within(5.0, 4.7, 5.2, 0.05)

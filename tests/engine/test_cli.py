"""CPU smoke test of the `pcm` CLI: sft, then train for a few steps, then eval — as a user runs it."""

import json
import os
import subprocess
import sys

import pytest

from pcm_engine.config import RunConfig
from pcm_engine.metrics import EVAL_SUCCESS, ROLLOUT_SUCCESS, TIME_UPDATE, read_metrics
from pcm_engine.sft import pretrain_config, sft_start_key

from .conftest import TINY


def pcm(*args: str, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "pcm_engine.cli", *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def tiny_sets(**extra) -> list[str]:
    pairs = {**TINY, **extra}
    out = []
    for key, value in pairs.items():
        out += ["--set", f"{key}={json.dumps(value)}"]
    return out


def last_json(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_sft_then_train_then_eval_through_the_cli(tmp_path):
    sft = last_json(pcm("sft", "--config", "tabletop_pcm", "--out", "sft", *tiny_sets(), cwd=tmp_path))
    assert (tmp_path / "sft" / "policy" / "policy.json").exists()
    assert 0.0 <= sft[EVAL_SUCCESS] <= 1.0 and sft["sft/loss"] > 0

    sets = tiny_sets(**{"train.steps": 3, "eval.every": 3, "policy.pretrained": "sft/policy"})
    train = last_json(pcm("train", "--config", "tabletop_pcm", "--run-dir", "run", *sets, cwd=tmp_path))
    assert train["steps"] == 3
    rows = read_metrics(tmp_path / "run")
    assert [r["step"] for r in rows] == [0, 1, 2, 3]
    assert all(ROLLOUT_SUCCESS in r and TIME_UPDATE in r for r in rows[1:])
    assert (tmp_path / "run" / "checkpoints" / "step_000003").is_dir()

    # running it again finds the finished checkpoint and does no more steps
    again = last_json(pcm("train", "--config", "tabletop_pcm", "--run-dir", "run", *sets, cwd=tmp_path))
    assert again["steps"] == 3

    result = last_json(
        pcm("eval", "--config", "tabletop_pcm", "--policy", "run/policy", *tiny_sets(), cwd=tmp_path)
    )
    assert result["eval/episodes"] == 4  # 2 tasks x 2 episodes


@pytest.mark.slow
def test_train_with_sft_init_behaviour_clones_once_and_shares_the_start(tmp_path):
    sets = tiny_sets(**{"policy.init": "sft", "train.steps": 1})
    first = pcm("train", "--config", "tabletop_pcm", "--run-dir", "runs/a", *sets, cwd=tmp_path)
    last_json(first)
    assert "behaviour cloning the SFT start" in first.stderr
    starts = sorted((tmp_path / "runs" / "sft-starts").iterdir())
    # the preset's start has two stages, each cached: pre-training, then the fine-tuned start
    config = RunConfig.load(tmp_path / "runs/a/config.yaml")
    assert {p.name for p in starts} == {sft_start_key(config), sft_start_key(pretrain_config(config))}
    assert all((start / "policy" / "policy.json").exists() for start in starts)
    fine_tuned = tmp_path / "runs" / "sft-starts" / sft_start_key(config)
    assert config.policy.pretrained == str((fine_tuned / "policy").resolve())

    # a run that differs only in RL settings reuses that start without training it again
    sets_b = tiny_sets(**{"policy.init": "sft", "train.steps": 1, "pcm.selector": "full"})
    second = pcm("train", "--config", "tabletop_pcm", "--run-dir", "runs/b", *sets_b, cwd=tmp_path)
    last_json(second)
    assert "behaviour cloning" not in second.stderr
    assert sorted((tmp_path / "runs" / "sft-starts").iterdir()) == starts


@pytest.mark.slow  # three `pcm` processes
def test_bad_config_value_is_refused_naming_the_field(tmp_path):
    proc = pcm("train", "--config", "tabletop_pcm", "--set", "pcm.budget=-3", cwd=tmp_path)
    assert proc.returncode == 2
    assert "pcm.budget" in proc.stderr and "greater than or equal to 1" in proc.stderr
    proc = pcm("train", "--config", "tabletop_pcm", "--set", "pcm.selectr=full", cwd=tmp_path)
    assert proc.returncode == 2 and "pcm.selectr" in proc.stderr
    proc = pcm("train", "--config", "no_such_preset", cwd=tmp_path)
    assert proc.returncode == 2 and "tabletop_pcm" in proc.stderr  # lists the known presets


@pytest.mark.slow
def test_changed_config_in_an_existing_run_dir_is_refused(tmp_path):
    sets = tiny_sets(**{"train.steps": 1})
    last_json(pcm("train", "--config", "tabletop_pcm", "--run-dir", "run", *sets, cwd=tmp_path))
    proc = pcm(
        "train", "--config", "tabletop_pcm", "--run-dir", "run", *sets, "--set", "pcm.budget=5", cwd=tmp_path
    )
    assert proc.returncode == 2 and "different config" in proc.stderr


def test_presets_list():
    out = last_json(pcm("presets", cwd="."))
    assert {"tabletop_grpo", "tabletop_pcm"} <= set(out["presets"])


@pytest.mark.slow
def test_demo_runs_sft_then_grpo_and_pcm_from_the_same_start(tmp_path):
    sets = tiny_sets(**{"eval.every": 1})
    result = last_json(pcm("demo", "--out", "demo", "--steps", "1", *sets, cwd=tmp_path))
    assert set(result) >= {"full", "pcm", "update_speedup"}
    for selector in ("full", "pcm"):
        assert result[selector]["steps"] == 1
        saved = (tmp_path / "demo" / selector / "config.yaml").read_text()
        assert f"selector: {selector}" in saved
        assert "pretrained: demo/sft/policy" in saved
    assert result["full"]["eval_success_start"] == result["pcm"]["eval_success_start"]
    # one protocol: the two runs' configs differ in their name and selector only
    full, masked = (RunConfig.load(tmp_path / "demo" / s / "config.yaml").to_dict() for s in ("full", "pcm"))
    assert {k for k in full if full[k] != masked[k]} == {"name", "pcm"}
    assert {k for k in full["pcm"] if full["pcm"][k] != masked["pcm"][k]} == {"selector"}


def test_tabletop_presets_differ_in_the_selector_only():
    """The paper's protocol (spec §6): GRPO and PCM share rollouts, optimizer and SFT start."""
    grpo = RunConfig.load("configs/tabletop_grpo.yaml").to_dict()
    pcm_ = RunConfig.load("configs/tabletop_pcm.yaml").to_dict()
    assert {k for k in grpo if grpo[k] != pcm_[k]} == {"name", "pcm"}
    assert {k for k in grpo["pcm"] if grpo["pcm"][k] != pcm_["pcm"][k]} == {"selector"}
    assert (grpo["pcm"]["selector"], pcm_["pcm"]["selector"]) == ("full", "pcm")


@pytest.mark.slow
def test_kill_9_mid_run_then_rerun_resumes_and_loses_no_finished_step(tmp_path):
    """A crashed trainer keeps every logged step; rerunning resumes from the newest checkpoint and
    each step ends up with exactly one row (a re-run step overwrites, never duplicates)."""
    import signal
    import time

    steps = 12
    sets = tiny_sets(**{"train.steps": steps, "train.checkpoint_every": 3})
    args = [sys.executable, "-m", "pcm_engine.cli", "train", "--config", "tabletop_pcm"]
    args += ["--run-dir", "run", *sets]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    metrics = tmp_path / "run" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 5:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    logged_before = {json.loads(line)["step"] for line in metrics.read_text().splitlines()}
    assert 5 <= len(logged_before) < steps, "the run was not caught mid-way"

    resumed = pcm("train", "--config", "tabletop_pcm", "--run-dir", "run", *sets, cwd=tmp_path)
    assert last_json(resumed)["steps"] == steps
    assert "resumed" in resumed.stderr
    rows = read_metrics(tmp_path / "run")
    assert [r["step"] for r in rows] == list(range(1, steps + 1))
    assert all(ROLLOUT_SUCCESS in r for r in rows)
    assert logged_before <= {r["step"] for r in rows}
    assert (tmp_path / "run" / "checkpoints" / f"step_{steps:06d}").is_dir()

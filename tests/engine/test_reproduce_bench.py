"""bench/reproduce.py and its report: the method plan, the settings check (only selector, budget,
reweight and score may differ), the cost model, both proxy scores, and the report's statistics
(paired differences, time to GRPO's final level, the issue's targets with their margins)."""

import math
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from pcm_engine import metrics as M
from pcm_engine.analysis import eval_curve
from pcm_engine.metrics import FanOutSink
from pcm_engine.trainer import Trainer

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import reproduce as R  # noqa: E402
import reproduce_plan as RP  # noqa: E402
import reproduce_report as RR  # noqa: E402


def test_methods_in_priority_order_and_only_allowed_overrides():
    methods = R.methods_for((2, 4, 5))
    assert [m.name for m in methods] == [
        "full",
        "pcm_b4",
        "pcm_debiased_b4",
        "uniform_b4",
        "top_phase_b4",
        "pcm_b2",
        "pcm_b5",
        "pcm_unbiased_b4",
    ]
    assert [m.label for m in methods][:3] == ["GRPO (every chunk)", "PCM B=4", "PCM debiased B=4"]
    for m in methods:
        assert set(m.overrides) <= set(RP.ALLOWED_DIFFERENCES)
    by_name = {m.name: m for m in methods}
    assert by_name["pcm_debiased_b4"].overrides["pcm.score"] == "debiased"
    assert by_name["pcm_b4"].overrides["pcm.score"] == "paper"
    assert by_name["pcm_unbiased_b4"].overrides["pcm.reweight"] == "unbiased"
    with pytest.raises(ValueError, match="grpo.lr"):
        RP.Method("bad", "bad", {"grpo.lr": 1.0})
    assert R.SIZES["2h"].budgets == R.PAPER_BUDGETS == R.SIZES["long"].budgets


def test_check_settings_allows_only_the_selector_keys(tiny):
    base = tiny()
    methods = R.methods_for((1, 2, 3))
    configs = {}
    for m in methods:
        for seed in range(2):
            overrides = {**m.overrides, "train.seed": seed, "name": f"{m.name}-{seed}"}
            configs[(m.name, seed)] = base.from_dict(base.to_dict(), overrides)
    table = RP.check_settings(configs)
    assert list(table) == [m.name for m in methods]  # the given (priority) order
    assert set(table["full"]) <= set(RP.ALLOWED_DIFFERENCES)
    assert table["pcm_debiased_b2"]["pcm.score"] == "debiased"

    bad = dict(configs)
    bad[("pcm_b2", 1)] = base.from_dict(configs[("pcm_b2", 1)].to_dict(), {"grpo.lr": 0.5})
    with pytest.raises(RP.SettingsMismatch, match="grpo.lr"):
        RP.check_settings(bad)
    bad = dict(configs)
    bad[("pcm_b2", 1)] = base.from_dict(configs[("pcm_b2", 1)].to_dict(), {"pcm.budget": 3})
    with pytest.raises(RP.SettingsMismatch, match="between seeds of pcm_b2"):
        RP.check_settings(bad)


def test_cost_model_scales_the_update_with_kept_chunks():
    methods = {m.name: m for m in R.methods_for((2, 4, 5))}
    cost = R.CostModel(step_overhead_s=1.0, full_update_s=10.0, chunks_per_trajectory=20.0)
    assert cost.step_s(methods["full"]) == pytest.approx(11.0)
    assert cost.step_s(methods["pcm_b4"]) == pytest.approx(1.0 + 10.0 * 4 / 20)
    # twice the chunks at the same per-chunk cost: GRPO's update doubles, PCM's stays
    longer = R.CostModel(step_overhead_s=1.0, full_update_s=20.0, chunks_per_trajectory=40.0)
    assert longer.step_s(methods["full"]) == pytest.approx(21.0)
    assert longer.step_s(methods["pcm_b4"]) == cost.step_s(methods["pcm_b4"])
    assert R.makespan([3.0, 1.0, 1.0, 1.0], 2) == 3.0


def test_both_proxy_scores_from_one_batch(tiny, mixed):
    from pcm_engine.pcm import phase_scores, score_features

    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(tiny(**{"grpo.groups_per_step": 4, "grpo.group_size": 4}), run_dir, FanOutSink())
        mixed(trainer)
        seen = R.recording_select(trainer)
        batch = trainer.rollout()
        selection = trainer.select(batch)
    assert seen == [(batch, selection)]
    dims = tuple(trainer.env.score_dims)
    paper, debiased = R.both_scores(batch, selection, dims)
    assert paper == pytest.approx(selection.scores)  # the run's own (paper, env dims) score
    assert set(debiased) <= set(paper)
    phases = [label for traj in selection.labels for label in traj]
    expected = phase_scores(
        score_features(batch.actions, dims),
        phases,
        batch.success[batch.traj],
        batch.group[batch.traj],
        traj=batch.traj,
        estimator="debiased",
    )
    assert debiased == pytest.approx(expected)


# --- the report's statistics on synthetic runs ------------------------------------------------------


def fake_run(method: str, seed: int, evals: list[float], step_s: float) -> RR.RunData:
    """Eval every 10 steps (0, 10, 20, ...) with `evals`, each training step `step_s` seconds."""
    rows = []
    for step in range(0, 10 * (len(evals) - 1) + 1):
        row = {"step": step}
        if step > 0:
            row[M.TIME_STEP] = step_s
            row[M.TIME_UPDATE] = step_s / 2
            row[M.PCM_KEPT_FRACTION] = 0.2
            row[M.TRAIN_UPDATED] = 1.0
        if step % 10 == 0:
            row[M.EVAL_SUCCESS] = evals[step // 10]
        rows.append(row)
    return RR.RunData(method, seed, rows, eval_curve(rows))


def fake_result(method, curves: list[list[float]], step_s: float) -> RR.MethodResult:
    return RR.summarise_method(method, [fake_run(method.name, k, c, step_s) for k, c in enumerate(curves)])


def test_time_to_grpo_level_paired_difference_and_targets():
    methods = {m.name: m for m in R.methods_for((2, 4, 5))}
    full = fake_result(methods["full"], [[0.3, 0.4, 0.5, 0.6], [0.3, 0.5, 0.6, 0.6]], step_s=4.0)
    pcm = fake_result(methods["pcm_b4"], [[0.3, 0.6, 0.6, 0.59], [0.3, 0.55, 0.6, 0.57]], step_s=1.0)
    uniform = fake_result(methods["uniform_b4"], [[0.3, 0.4, 0.5, 0.55], [0.3, 0.4, 0.5, 0.54]], step_s=1.0)
    level = full.final_mean
    assert level == pytest.approx(0.6)
    for r in (full, pcm, uniform):
        r.to_grpo_level = RR.time_to_level(r, level)
    # GRPO's mean curve: 0.45, 0.55, 0.6 -> reaches 0.6 at step 30 = 120 s in both seeds
    assert full.to_grpo_level.step == 30 and full.to_grpo_level.seconds.mean == pytest.approx(120.0)
    # PCM's mean curve: 0.575, 0.6 -> step 20 = 20 s: a 6x speed-up
    assert pcm.to_grpo_level.step == 20 and pcm.to_grpo_level.seconds.mean == pytest.approx(20.0)
    assert not uniform.to_grpo_level.reached and uniform.to_grpo_level.best == pytest.approx(0.545)
    d = RR.paired_difference(pcm, full)
    assert d.values == pytest.approx([-0.01, -0.03])

    by_name = {"full": full, "pcm_b4": pcm, "uniform_b4": uniform}
    proxy = {
        "points": [
            {"step": 0, "batch": 0, "phase": c, "score": s, "paper": s, "debiased": d2, "variance": v}
            for c, s, d2, v in [
                ("active_grip", 0.9, 0.5, 9.0),
                ("approach", 0.5, -0.1, 1.0),
                ("tail", 0.7, 0.2, 4.0),
            ]
        ]
    }
    claims = RR.target_claims(by_name, (2, 4, 5), proxy, 20.0)
    within, speed, gap, rho = claims
    assert within.held and "PCM − GRPO = -2.0 points" in within.evidence
    assert speed.held and "6.00×" in speed.evidence
    assert gap.held is False and gap.shortfall == "1.5 points"  # PCM − uniform = 3.5 points < 5
    assert rho.held and "Spearman 1.00" in rho.evidence
    assert "Missed by 1.5 points" in gap.line()

    lines = "\n".join(RR.level_table([full, pcm, uniform], full, 0.5))
    assert "not reached" in lines and "6.00×" in lines
    assert RR.proxy_rho(proxy["points"], "debiased")[0] == pytest.approx(1.0)
    assert RR.proxy_rho(proxy["points"], "paper")[0] == pytest.approx(1.0)
    assert math.isnan(RR.proxy_rho([], "paper")[0])


def test_pairing_check_compares_step_one_rollouts():
    methods = {m.name: m for m in R.methods_for((2, 4, 5))}
    a = fake_result(methods["full"], [[0.3, 0.4]], 1.0)
    b = fake_result(methods["pcm_b4"], [[0.3, 0.4]], 1.0)
    for r, success in ((a, 0.25), (b, 0.25)):
        r.runs[0].rows[1].update({M.ROLLOUT_SUCCESS: success, M.ROLLOUT_CHUNKS: 40.0})
    assert RR.pairing_check([a, b]) == (1, 1, [])
    b.runs[0].rows[1][M.ROLLOUT_SUCCESS] = 0.5
    agree, compared, problems = RR.pairing_check([a, b])
    assert (agree, compared) == (0, 1) and "seed 0" in problems[0]
    assert np.isfinite(a.final_mean)

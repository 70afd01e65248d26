"""Spec §3–§5: phase scores, keep weights, chunk sampling and selectors on hand-made cases; and
the outcome-shuffle null of the phase score."""

import math

import numpy as np
import pytest

from pcm_engine.pcm import (
    SELECTORS,
    KeepWeights,
    TrajectoryChunks,
    phase_scores,
    sample_chunks,
    select_chunks,
    shuffle_within_groups,
    shuffled_outcome_scores,
    unbiased_weights,
)
from pcm_engine.phases import PHASES

# --- §3 phase scores -----------------------------------------------------------------------------


def test_phase_score_is_norm_of_mean_difference_in_one_mixed_group():
    actions = np.array([[1.0, 0.0], [3.0, 0.0], [0.0, 4.0], [0.0, 0.0]])
    phases = ["approach", "approach", "approach", "pre_grasp"]
    success = [True, True, False, False]
    groups = [0, 0, 0, 0]
    scores = phase_scores(actions, phases, success, groups)
    # mu+ = (2, 0), mu- = (0, 4) -> ||(2, -4)|| = sqrt(20); pre_grasp only in a failure: no entry
    assert scores == pytest.approx({"approach": np.sqrt(20.0)})


def test_phase_score_is_mean_over_groups_where_defined_and_skips_unmixed_groups():
    actions = np.array(
        [
            [1.0], [0.0],  # group 0: success / failure, approach: C = 1
            [5.0], [2.0],  # group 1: success / failure, approach: C = 3
            [9.0], [0.0],  # group 2: both successes: not mixed, ignored
            [7.0], [7.0],  # group 3: success / failure, pre_grasp: C = 0
        ]
    )  # fmt: skip
    phases = ["approach"] * 6 + ["pre_grasp"] * 2
    success = [True, False, True, False, True, True, True, False]
    groups = [0, 0, 1, 1, 2, 2, 3, 3]
    scores = phase_scores(actions, phases, success, groups)
    assert scores == pytest.approx({"approach": 2.0, "pre_grasp": 0.0})


def test_phase_score_empty_when_no_group_is_mixed():
    assert phase_scores(np.ones((2, 3)), ["tail", "tail"], [True, True], [0, 0]) == {}
    with pytest.raises(ValueError, match="one entry per chunk"):
        phase_scores(np.ones((2, 3)), ["tail"], [True, True], [0, 0])


# --- §4 keep weights ------------------------------------------------------------------------------


def test_keep_weights_start_at_one_and_refresh_on_first_call():
    kw = KeepWeights(refresh_every=5, p_min=0.1)
    assert kw.p == {c: 1.0 for c in PHASES}
    assert kw.update({"active_grip": 2.0, "pre_grasp": 1.0, "approach": 0.1}) is True
    assert kw.p == pytest.approx(
        {"active_grip": 1.0, "pre_grasp": 0.5, "approach": 0.1, "release_ramp": 0.1, "tail": 0.1}
    )


def test_keep_weights_block_average_not_ema_and_fixed_between_refreshes():
    kw = KeepWeights(refresh_every=3, p_min=0.0)
    kw.update({"active_grip": 1.0, "approach": 1.0})  # refresh 1
    p_after_first = kw.p
    assert kw.update({"active_grip": 4.0, "approach": 1.0}) is False
    assert kw.update({"active_grip": 2.0}) is False
    assert kw.p == p_after_first  # fixed between refreshes
    # block of 3 calls: active_grip mean(4, 2, 0) ... only values appended count: mean(4, 2, 6)
    assert kw.update({"active_grip": 6.0, "approach": 4.0}) is True
    # s_active = mean(4, 2, 6) = 4, s_approach = mean(1, 4) = 2.5, others empty -> 0
    assert kw.p["active_grip"] == pytest.approx(1.0)
    assert kw.p["approach"] == pytest.approx(2.5 / 4.0)
    assert kw.p["tail"] == 0.0
    # an EMA would remember the first block; the block average does not
    assert kw.update({"approach": 1.0}) is False


def test_keep_weights_floor_and_all_zero_case():
    kw = KeepWeights(refresh_every=1, p_min=0.25)
    kw.update({"active_grip": 1.0, "tail": 0.01})
    assert kw.p["tail"] == 0.25 and kw.p["active_grip"] == 1.0 and kw.p["approach"] == 0.25
    kw.update({"active_grip": 0.0})
    assert kw.p == {c: 1.0 for c in PHASES}
    kw.update({})  # nothing defined this step: every s_c is 0 -> all 1
    assert kw.p == {c: 1.0 for c in PHASES}


def test_keep_weights_state_round_trip_and_validation():
    kw = KeepWeights(refresh_every=4, p_min=0.2)
    kw.update({"pre_grasp": 1.0})
    kw.update({"pre_grasp": 3.0, "tail": 1.0})
    other = KeepWeights()
    other.load_state_dict(kw.state_dict())
    assert other.state_dict() == kw.state_dict()
    for scores in ({"tail": 2.0}, {"approach": 1.0}, {"pre_grasp": 0.5}):
        assert other.update(scores) == kw.update(scores)
        assert other.p == kw.p
    with pytest.raises(ValueError, match="unknown phases"):
        kw.update({"grasping": 1.0})
    with pytest.raises(ValueError, match="refresh_every"):
        KeepWeights(refresh_every=0)


# --- §5 chunk sampling ---------------------------------------------------------------------------


def test_sample_chunks_distinct_and_min_of_budget_and_length():
    rng = np.random.default_rng(0)
    kept = sample_chunks([1.0] * 10, 4, rng)
    assert len(kept) == 4 and len(set(kept.tolist())) == 4
    assert sorted(sample_chunks([1.0, 2.0, 3.0], 12, rng).tolist()) == [0, 1, 2]
    assert len(sample_chunks([], 3, rng)) == 0


def test_sample_chunks_budget_one_draws_proportionally_to_weight():
    rng = np.random.default_rng(1)
    weights = np.array([1.0, 2.0, 7.0])
    draws = np.array([sample_chunks(weights, 1, rng)[0] for _ in range(20000)])
    freq = np.bincount(draws, minlength=3) / len(draws)
    np.testing.assert_allclose(freq, weights / weights.sum(), atol=0.015)


def test_sample_chunks_inclusion_frequencies_match_successive_sampling():
    """Budget 2 of 3 weights: P(i included) = w_i/W + sum_j w_j/W * w_i/(W - w_j)."""
    rng = np.random.default_rng(2)
    w = np.array([1.0, 2.0, 7.0])
    total = w.sum()
    expected = np.array(
        [
            w[i] / total + sum(w[j] / total * w[i] / (total - w[j]) for j in range(3) if j != i)
            for i in range(3)
        ]
    )
    counts = np.zeros(3)
    trials = 20000
    for _ in range(trials):
        counts[sample_chunks(w, 2, rng)] += 1
    np.testing.assert_allclose(counts / trials, expected, atol=0.015)
    assert expected.sum() == pytest.approx(2.0)


def test_sample_chunks_zero_weights_never_drawn_while_positive_ones_remain():
    rng = np.random.default_rng(3)
    for _ in range(200):
        assert sorted(sample_chunks([0.0, 1.0, 0.0, 1.0], 2, rng).tolist()) == [1, 3]


def test_sample_chunks_rejects_negative_weights():
    with pytest.raises(ValueError, match="weights"):
        sample_chunks([1.0, -1.0], 1)


def test_sample_chunks_is_reproducible_from_the_generator():
    a = sample_chunks(np.arange(1, 20), 5, np.random.default_rng(7))
    b = sample_chunks(np.arange(1, 20), 5, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)


# --- selectors -----------------------------------------------------------------------------------

TRAJ = TrajectoryChunks(
    phases=[
        "approach",
        "approach",
        "pre_grasp",
        "active_grip",
        "active_grip",
        "release_ramp",
        "tail",
    ]
)
P = {"active_grip": 1.0, "pre_grasp": 0.6, "release_ramp": 0.3, "approach": 0.1, "tail": 0.1}


def test_selector_registry_names():
    assert set(SELECTORS) == {"full", "pcm", "uniform", "top_phase"}
    with pytest.raises(ValueError, match="pcm.selector"):
        select_chunks("nope", [TRAJ], P, 2, np.random.default_rng(0))


def test_full_keeps_every_chunk_and_pcm_with_budget_at_least_n_too():
    rng = np.random.default_rng(0)
    full, pcm = (
        select_chunks("full", [TRAJ], P, 3, rng)[0],
        select_chunks("pcm", [TRAJ], P, 7, rng)[0],
    )
    np.testing.assert_array_equal(full, np.arange(7))
    np.testing.assert_array_equal(pcm, np.arange(7))


def test_pcm_prefers_high_keep_phases():
    rng = np.random.default_rng(0)
    counts = np.zeros(len(TRAJ.phases))
    for _ in range(4000):
        counts[select_chunks("pcm", [TRAJ], P, 2, rng)[0]] += 1
    assert counts[3] > counts[2] > counts[5] > counts[0]
    assert counts.sum() == 4000 * 2


def test_uniform_ignores_phases():
    rng = np.random.default_rng(0)
    counts = np.zeros(len(TRAJ.phases))
    for _ in range(7000):
        counts[select_chunks("uniform", [TRAJ], P, 2, rng)[0]] += 1
    np.testing.assert_allclose(counts / 7000, 2 / 7, atol=0.03)


def test_top_phase_keeps_only_the_highest_keep_phase_present():
    rng = np.random.default_rng(0)
    kept = select_chunks("top_phase", [TRAJ], P, 12, rng)[0]
    np.testing.assert_array_equal(kept, [3, 4])
    kept = select_chunks("top_phase", [TRAJ], P, 1, rng)[0]
    assert len(kept) == 1 and kept[0] in (3, 4)
    no_grip = TrajectoryChunks(phases=["approach", "approach", "tail"])
    # highest p present is approach (0.1) tied with tail: the earlier phase in PHASES wins
    np.testing.assert_array_equal(select_chunks("top_phase", [no_grip], P, 5, rng)[0], [0, 1])


def test_unbiased_weights_are_stratified_counts():
    phases = ["approach"] * 4 + ["active_grip"] * 2
    w = unbiased_weights(phases, np.array([0, 4, 5]))
    np.testing.assert_allclose(w, [4.0, 1.0, 1.0])  # 4 approach chunks, 1 kept; 2 grip, 2 kept
    np.testing.assert_allclose(unbiased_weights(phases, np.arange(6)), np.ones(6))


# --- the outcome-shuffle null of C_c (our addition) ---


def test_shuffle_within_groups_keeps_every_groups_outcomes():
    success = np.array([1, 1, 0, 0, 0, 1, 0, 0], dtype=bool)
    groups = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    rng = np.random.default_rng(0)
    draws = [shuffle_within_groups(success, groups, rng) for _ in range(50)]
    for draw in draws:
        assert draw[:4].sum() == 2 and draw[4:].sum() == 1
    assert len({tuple(d) for d in draws}) > 1  # it does shuffle
    assert success.tolist() == [1, 1, 0, 0, 0, 1, 0, 0]  # input left alone


def _two_phase_batch():
    """2 groups x 4 trajectories (2 successes each), 2 chunks per trajectory of 3-D actions:
    an active_grip chunk that is +1 in successes and -1 in failures, and an approach chunk that
    is the same in every trajectory."""
    success = np.array([1, 1, 0, 0, 1, 0, 1, 0], dtype=bool)
    groups = np.repeat([0, 1], 4)
    actions, phases, traj = [], [], []
    for t, won in enumerate(success):
        actions += [np.full(3, 1.0 if won else -1.0), np.full(3, 0.25)]
        phases += ["active_grip", "approach"]
        traj += [t, t]
    return np.array(actions), phases, np.array(traj), success, groups


def test_a_real_divergence_stands_above_the_shuffle_null():
    rng = np.random.default_rng(0)
    actions, phases, traj, success, groups = _two_phase_batch()
    result = {r.phase: r for r in shuffled_outcome_scores(actions, phases, traj, success, groups, 200, rng)}
    grip = result["active_grip"]
    assert grip.score == pytest.approx(2 * math.sqrt(3))  # ||(+1) - (-1)|| over 3 dims
    assert grip.null_mean < 0.6 * grip.score
    # a shuffle ties the real score only when it reproduces each group's split or its mirror
    # image (1 in 3 per group, so about 1 in 9 draws)
    assert 0.05 < grip.p_value < 0.2
    same = result["approach"]
    assert same.score == 0.0 and same.null_mean == 0.0 and same.p_value == 1.0


def test_pure_noise_scores_like_its_null_and_more_for_a_rarer_phase():
    """No divergence anywhere: C_c is still positive, larger for the phase with fewer chunks,
    and the shuffle null matches it -- the bias the null exposes."""
    rng = np.random.default_rng(1)
    trajectories, per_traj = 64, 10
    success = np.tile([True, False], trajectories // 2)
    groups = np.repeat(np.arange(trajectories // 8), 8)
    phases = (["active_grip"] * (per_traj - 1) + ["release_ramp"]) * trajectories
    traj = np.repeat(np.arange(trajectories), per_traj)
    actions = rng.normal(size=(trajectories * per_traj, 16))
    result = {r.phase: r for r in shuffled_outcome_scores(actions, phases, traj, success, groups, 100, rng)}
    common, rare = result["active_grip"], result["release_ramp"]
    assert rare.score > 2 * common.score > 0
    for r in (common, rare):
        assert r.score == pytest.approx(r.null_mean, rel=0.25)
        assert r.p_value > 0.05


def test_shuffled_outcome_scores_needs_a_shuffle():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="shuffles"):
        shuffled_outcome_scores(*_two_phase_batch(), 0, rng)

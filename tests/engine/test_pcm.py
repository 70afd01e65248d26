"""Spec §3–§5: phase scores, keep weights, chunk sampling and selectors on hand-made cases; and
the outcome-shuffle null of the phase score, the debiased score and the env's score dims."""

import itertools
import math

import numpy as np
import pytest

from pcm_engine import metrics as M
from pcm_engine.envs.libero import LiberoEnv
from pcm_engine.envs.tabletop import TabletopEnv
from pcm_engine.metrics import NullSink
from pcm_engine.pcm import (
    SCORE_ESTIMATORS,
    SELECTORS,
    KeepWeights,
    TrajectoryChunks,
    expected_class_draws,
    inclusion_probabilities,
    phase_scores,
    sample_chunks,
    score_features,
    select_chunks,
    selector_draws,
    shuffle_within_groups,
    shuffled_outcome_scores,
    unbiased_weights,
)
from pcm_engine.phases import PHASES
from pcm_engine.trainer import Trainer

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


def test_top_phase_is_the_steps_and_a_trajectory_without_it_keeps_nothing():
    with_grip = TrajectoryChunks(phases=["approach", "active_grip", "active_grip", "active_grip", "tail"])
    no_grip = TrajectoryChunks(phases=["approach", "pre_grasp", "pre_grasp", "tail"])
    rng = np.random.default_rng(0)
    for _ in range(50):
        kept_grip, kept_none = select_chunks("top_phase", [with_grip, no_grip], P, 2, rng)
        assert len(kept_none) == 0  # its own best phase (pre_grasp) is not the step's
        assert len(kept_grip) == 2 and set(kept_grip.tolist()) <= {1, 2, 3}
    # alone in a step, the second trajectory's top phase is its own
    np.testing.assert_array_equal(select_chunks("top_phase", [no_grip], P, 2, rng)[0], [1, 2])


def _successive_inclusion(weights, n):
    """P(chunk kept) under successive sampling, by enumerating every ordered draw."""
    w = np.asarray(weights, dtype=np.float64)
    pi = np.zeros(len(w))
    for order in itertools.permutations(range(len(w)), n):
        prob, left = 1.0, w.sum()
        for k in order:
            prob *= w[k] / left
            left -= w[k]
        pi[list(order)] += prob
    return pi


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7])
def test_inclusion_probabilities_are_exact_against_every_ordered_draw(n):
    w = [3.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.2]
    brute = _successive_inclusion(w, n)
    np.testing.assert_allclose(inclusion_probabilities(w, n), brute, rtol=1e-12, atol=1e-12)
    # the recursion's E[b_c] per weight class (sorted by weight: 0.2, 0.5, 1, 3)
    expected = expected_class_draws((1, 2, 3, 1), (0.2, 0.5, 1.0, 3.0), n)
    by_class = [brute[6], brute[4:6].sum(), brute[1:4].sum(), brute[0]]
    np.testing.assert_allclose(expected, by_class, rtol=1e-12, atol=1e-12)
    assert sum(expected) == pytest.approx(n)


@pytest.mark.slow
def test_inclusion_probabilities_match_sample_chunks_frequencies():
    rng = np.random.default_rng(4)
    trials = 20000
    # a pcm-like draw, and one that runs out of positive weights: the rest among the zeros, uniformly
    for w, n, exact in (
        ([3.0, 1.0, 1.0, 0.5, 0.5, 0.2], 3, None),
        ([1.0, 0.0, 2.0, 0.0, 0.0], 3, [1.0, 1 / 3, 1.0, 1 / 3, 1 / 3]),
    ):
        counts = np.zeros(len(w))
        for _ in range(trials):
            counts[sample_chunks(w, n, rng)] += 1
        pi = inclusion_probabilities(w, n)
        np.testing.assert_allclose(counts / trials, pi, atol=0.015)
        if exact is not None:
            np.testing.assert_allclose(pi, exact)


def _stratified_weights(phases, kept):
    """The former `reweight: unbiased`, N_c / b_c: biased when a phase can get no kept chunk."""
    phases = np.asarray(phases)
    return np.array([(phases == c).sum() / (phases[kept] == c).sum() for c in phases[kept]])


@pytest.mark.slow
@pytest.mark.parametrize("selector", ["pcm", "uniform"])
def test_unbiased_weights_average_to_the_full_trajectory_sum(selector):
    """B = 2 < the 5 phases of TRAJ, so most draws miss some phase. The 1/π-weighted sum of
    per-chunk vectors averages to their full sum; the stratified N_c / b_c one does not."""
    rng = np.random.default_rng(5)
    g = rng.normal(size=(len(TRAJ.phases), 3)) + 1.0  # a per-chunk "gradient"
    full = g.sum(axis=0)
    draws = 20000
    unbiased, stratified = np.zeros(3), np.zeros(3)
    for _ in range(draws):
        kept = select_chunks(selector, [TRAJ], P, 2, rng)
        unbiased += unbiased_weights(selector, [TRAJ], P, 2, kept)[0] @ g[kept[0]]
        stratified += _stratified_weights(TRAJ.phases, kept[0]) @ g[kept[0]]
    np.testing.assert_allclose(unbiased / draws, full, atol=0.2)  # standard error here <= 0.06
    assert np.abs(stratified / draws - full).max() > 1.5


def test_unbiased_weights_per_selector():
    rng = np.random.default_rng(6)
    n = len(TRAJ.phases)
    kept = select_chunks("full", [TRAJ], P, 2, rng)
    np.testing.assert_array_equal(unbiased_weights("full", [TRAJ], P, 2, kept)[0], np.ones(n))
    kept = select_chunks("uniform", [TRAJ], P, 2, rng)
    np.testing.assert_allclose(unbiased_weights("uniform", [TRAJ], P, 2, kept)[0], [n / 2, n / 2])
    # top_phase: 1 of the 2 active_grip chunks, π = 1/2; the other phases have π = 0
    kept = select_chunks("top_phase", [TRAJ], P, 1, rng)
    np.testing.assert_allclose(unbiased_weights("top_phase", [TRAJ], P, 1, kept)[0], [2.0])
    draw = selector_draws("top_phase", [TRAJ], P, 1)[0]
    np.testing.assert_allclose(draw.inclusion(), [0, 0, 0, 0.5, 0.5, 0, 0])
    # pcm: 1/π of each kept chunk, π from the exact recursion
    kept = select_chunks("pcm", [TRAJ], P, 3, rng)
    pi = _successive_inclusion([P[c] for c in TRAJ.phases], 3)
    np.testing.assert_allclose(unbiased_weights("pcm", [TRAJ], P, 3, kept)[0], 1 / pi[kept[0]])


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


# --- pcm.score: debiased (our addition to §3–§4) ---


def _synthetic_groups(rng, *, groups, group_size, successes, chunks, dims, spread=0.5, noise=1.0, shift=None):
    """Chunks of `groups` groups of `group_size` trajectories, `successes` of them successful;
    `chunks` maps phase -> chunks per trajectory. A trajectory's actions are its own offset
    (std `spread`, so its chunks are correlated) plus chunk noise (std `noise`), drawn without
    regard to the outcome; `shift` (a vector) is added to every action of the successes.
    Returns (actions [M, dims], phases, success, groups, traj), all per chunk."""
    trajectories = groups * group_size
    won = np.tile(np.arange(group_size) < successes, groups)
    layout = [phase for phase, n in chunks.items() for _ in range(n)]
    traj = np.repeat(np.arange(trajectories), len(layout))
    offsets = spread * rng.normal(size=(trajectories, dims))
    actions = offsets[traj] + noise * rng.normal(size=(len(traj), dims))
    if shift is not None:
        actions += np.outer(won[traj], shift)
    return actions, layout * trajectories, won[traj], traj // group_size, traj


def _per_group_scores(actions, phases, success, groups, traj, estimator):
    """Each group's own score per phase (phase_scores on that group alone), as arrays."""
    phases = np.asarray(phases)
    out: dict[str, list[float]] = {}
    for g in np.unique(groups):
        rows = groups == g
        one = phase_scores(
            actions[rows], phases[rows], success[rows], groups[rows], traj=traj[rows], estimator=estimator
        )
        for phase, value in one.items():
            out.setdefault(phase, []).append(value)
    return {phase: np.array(values) for phase, values in out.items()}


@pytest.mark.slow
@pytest.mark.parametrize("successes", [1, 3])
def test_debiased_score_is_zero_on_average_without_signal_while_paper_grows_as_chunks_fall(successes):
    rng = np.random.default_rng(100 + successes)
    chunks = {"pre_grasp": 2, "active_grip": 30}
    batch = _synthetic_groups(rng, groups=400, group_size=8, successes=successes, chunks=chunks, dims=6)
    per_group = _per_group_scores(*batch, estimator="debiased")
    assert set(per_group) == set(chunks) and all(len(v) == 400 for v in per_group.values())
    actions, phases, success, groups, traj = batch
    debiased = phase_scores(actions, phases, success, groups, traj=traj, estimator="debiased")
    paper = phase_scores(actions, phases, success, groups)
    assert debiased == pytest.approx({phase: v.mean() for phase, v in per_group.items()})
    for phase, values in per_group.items():
        three_se = 3 * values.std(ddof=1) / math.sqrt(len(values))
        assert abs(values.mean()) < three_se
        assert three_se < 0.25 * paper[phase] ** 2  # the test would see the paper score's floor
    # the paper score has no signal to find either, but scores the 2-chunk phase far higher
    assert paper["pre_grasp"] > 1.3 * paper["active_grip"] > 0


@pytest.mark.slow
def test_debiased_score_recovers_a_known_gap():
    rng = np.random.default_rng(7)
    shift = rng.normal(size=3)
    shift *= 0.5 / np.linalg.norm(shift)  # successes act differently by a vector of norm 0.5
    chunks = {"pre_grasp": 2, "active_grip": 30}
    batch = _synthetic_groups(
        rng, groups=1000, group_size=8, successes=1, chunks=chunks, dims=3, spread=0.2, noise=0.5, shift=shift
    )
    per_group = _per_group_scores(*batch, estimator="debiased")
    paper = phase_scores(*batch[:4])
    for values in per_group.values():
        three_se = 3 * values.std(ddof=1) / math.sqrt(len(values))
        assert three_se < 0.1
        assert values.mean() == pytest.approx(0.25, abs=three_se)
    assert paper["pre_grasp"] > 0.7  # the true gap is 0.5: C_c overshoots it on the rare phase


def test_debiased_score_averages_to_exactly_zero_over_all_outcome_permutations():
    rng = np.random.default_rng(3)
    traj = np.repeat(np.arange(5), [1, 3, 2, 4, 2])  # trajectories with different chunk counts
    actions = rng.normal(size=(len(traj), 4)) + rng.normal(size=(5, 4))[traj]
    phases, groups = ["release_ramp"] * len(traj), np.zeros(len(traj), dtype=int)
    values = {name: [] for name in SCORE_ESTIMATORS}
    for winners in itertools.combinations(range(5), 2):
        won = np.isin(np.arange(5), winners)[traj]
        for name in SCORE_ESTIMATORS:
            score = phase_scores(actions, phases, won, groups, traj=traj, estimator=name)
            values[name].append(score["release_ramp"])
    debiased = np.array(values["debiased"])
    assert len(debiased) == 10 and np.ptp(debiased) > 0.5  # the splits do score differently
    assert np.isclose(debiased.mean(), 0.0, atol=1e-12)
    assert np.mean(values["paper"]) > 0.5  # C_c's null sits well above 0


def test_debiased_score_by_hand_takes_the_trajectory_as_the_unit():
    # success: one trajectory, chunks 1 and 3 (mean 2); failures: [0] and [0.5, 1.5] (means 0, 1)
    actions = np.array([[1.0], [3.0], [0.0], [0.5], [1.5]])
    phases = ["approach"] * 5
    success = [True, True, False, False, False]
    groups, traj = [0] * 5, [0, 0, 1, 2, 2]
    # m+ = 2, mean m- = 0.5; within-outcome squares 0.25 + 0.25 over 1 + 2 - 2 = 1 degree of
    # freedom: tr S = 0.5; D² = 1.5² - 0.5 (1/1 + 1/2) = 1.5
    assert phase_scores(actions, phases, success, groups, traj=traj, estimator="debiased") == pytest.approx(
        {"approach": 1.5}
    )
    # C_c pools chunks: mu+ = 2, mu- = (0 + 0.5 + 1.5) / 3
    assert phase_scores(actions, phases, success, groups, traj=traj) == pytest.approx({"approach": 4 / 3})
    with pytest.raises(ValueError, match="needs traj"):
        phase_scores(actions, phases, success, groups, estimator="debiased")
    with pytest.raises(ValueError, match="pcm.score"):
        phase_scores(actions, phases, success, groups, traj=traj, estimator="median")
    with pytest.raises(ValueError, match="share its outcome"):
        phase_scores(actions, phases, [True, False, False, False, False], groups, traj=traj)


def test_debiased_score_never_nan_and_skips_groups_too_small_to_correct():
    # group 0: one success, one failure: k+ + k- = 2, no covariance to estimate -> no entry;
    # group 1: one success, two failures that act identically (S = 0): D² = ||gap||²
    actions = np.array([[1.0, 0.0], [0.0, 0.0], [2.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    phases = ["tail", "tail", "pre_grasp", "pre_grasp", "pre_grasp"]
    success, groups, traj = [True, False, True, False, False], [0, 0, 1, 1, 1], [0, 1, 2, 3, 4]
    assert phase_scores(actions, phases, success, groups, traj=traj, estimator="debiased") == pytest.approx(
        {"pre_grasp": 4.0}
    )
    rng = np.random.default_rng(11)
    for _ in range(300):  # small random groups: single-trajectory outcomes, ties, missing phases
        size = int(rng.integers(2, 6))
        counts = rng.integers(1, 4, size=size)
        traj = np.repeat(np.arange(size), counts)
        won = rng.random(size) < 0.3
        won[rng.integers(size)] = True
        actions = rng.normal(size=(len(traj), 3)) * rng.integers(0, 2)  # sometimes all zero
        phases = rng.choice(["approach", "pre_grasp", "tail"], size=len(traj))
        scores = phase_scores(
            actions, phases, won[traj], np.zeros(len(traj), dtype=int), traj=traj, estimator="debiased"
        )
        assert all(np.isfinite(v) for v in scores.values())
        null = shuffled_outcome_scores(
            actions, phases, traj, won, np.zeros(size, dtype=int), 3, rng, estimator="debiased"
        )
        assert all(np.isfinite(r.score) and np.isfinite(r.p_value) for r in null)


def test_debiased_keep_weights_truncate_only_after_averaging():
    kw = KeepWeights(refresh_every=2, p_min=0.1, estimator="debiased")
    kw.update({"active_grip": 1.0})  # the first call refreshes
    # one block: pre_grasp's D² is +1 then -1 (mean 0); active_grip's 0.25 twice (s = 0.5)
    assert kw.update({"pre_grasp": 1.0, "active_grip": 0.25}) is False
    assert kw.update({"pre_grasp": -1.0, "active_grip": 0.25}) is True
    # s = sqrt(max(0, 0)) = 0 -> the floor; truncating each step first would give
    # s = sqrt(0.5) > 0.5 and keep pre_grasp always
    assert kw.p["pre_grasp"] == 0.1 and kw.p["active_grip"] == 1.0
    kw.update({"pre_grasp": 3.0, "active_grip": 0.25})
    kw.update({"pre_grasp": -1.0, "active_grip": 0.25})  # block means 1 and 0.25: s = 1 and 0.5
    assert kw.p == pytest.approx({c: {"pre_grasp": 1.0, "active_grip": 0.5}.get(c, 0.1) for c in PHASES})
    kw.update({"pre_grasp": 0.5, "tail": -0.2})
    kw.update({"pre_grasp": -1.5})  # every block mean <= 0: every s is 0 -> all 1
    assert kw.p == {c: 1.0 for c in PHASES}
    paper = KeepWeights(refresh_every=1, p_min=0.1)
    paper.update({"pre_grasp": 1.0, "active_grip": 0.25})  # paper: s is the plain mean
    assert paper.p["active_grip"] == pytest.approx(0.25)


def test_keep_weights_state_keeps_the_estimator_and_old_states_load_as_paper():
    kw = KeepWeights(refresh_every=3, estimator="debiased")
    kw.update({"tail": 0.5})
    kw.update({"tail": -0.2})
    state = kw.state_dict()
    assert state["estimator"] == "debiased"
    other = KeepWeights()
    other.load_state_dict(state)
    assert other.estimator == "debiased" and other.state_dict() == state
    old = {k: v for k, v in state.items() if k != "estimator"}  # saved before pcm.score existed
    legacy = KeepWeights(estimator="debiased")
    legacy.load_state_dict(old)
    assert legacy.estimator == "paper"
    with pytest.raises(ValueError, match="pcm.score"):
        KeepWeights(estimator="median")


# --- pcm.score_dims ---


def test_env_score_dims_are_the_dimensions_the_env_acts_on():
    assert TabletopEnv.score_dims == (0, 1, 2, 6)
    assert LiberoEnv.score_dims == tuple(range(7))
    rng = np.random.default_rng(0)
    base = rng.uniform(-1, 1, size=(2, 6, 7))

    def run(actions):
        env = TabletopEnv()
        env.reset([0, 1], [0, 0], "train")
        out = env.step_chunk(actions)
        return out.obs.proprio, out.obs.images

    rotated = base.copy()
    rotated[..., 3:6] = rng.uniform(-1, 1, size=(2, 6, 3))
    for a, b in zip(run(base), run(rotated), strict=True):
        np.testing.assert_array_equal(a, b)  # the rotation dims change nothing
    moved = base.copy()
    moved[..., 0] = -moved[..., 0]
    assert not np.array_equal(run(base)[0], run(moved)[0])  # an acted-on dim does


def test_score_dims_env_ignores_noise_in_dimensions_the_env_does_not_act_on():
    rng = np.random.default_rng(4)
    chunk_len, dims = 4, TabletopEnv.score_dims
    actions, phases, success, groups, traj = _synthetic_groups(
        rng, groups=6, group_size=5, successes=2, chunks={"approach": 3, "tail": 2}, dims=chunk_len * 7
    )
    actions = actions.reshape(-1, chunk_len, 7)
    noisy = actions.copy()
    noisy[..., 3:6] += 5 * rng.normal(size=noisy[..., 3:6].shape)
    assert score_features(actions, dims).shape == (len(actions), chunk_len * len(dims))
    assert score_features(actions).shape == (len(actions), chunk_len * 7)
    for estimator in SCORE_ESTIMATORS:

        def score(a, d, estimator=estimator):
            return phase_scores(score_features(a, d), phases, success, groups, traj=traj, estimator=estimator)

        assert score(actions, dims) == score(noisy, dims)  # exactly: those dims are never read
        every, every_noisy = score(actions, None), score(noisy, None)
        assert set(every) == set(every_noisy) == {"approach", "tail"}
        for phase in every:
            assert abs(every_noisy[phase] - every[phase]) > 0.1


def test_trainer_with_debiased_score_runs_a_step_and_reports_its_null(tiny, mixed, tmp_path):
    config = tiny(grpo__group_size=4, pcm__budget=2, pcm__score="debiased", pcm__score_null_shuffles=4)
    trainer = Trainer(config, tmp_path, NullSink(), resume=False)
    mixed(trainer)
    batches = []
    forced = trainer.rollout

    def capture(**kwargs):
        batches.append(forced(**kwargs))
        return batches[-1]

    trainer.rollout = capture
    out = trainer.step()
    assert trainer.keep.estimator == "debiased" and trainer.keep.state_dict()["estimator"] == "debiased"
    scored = [c for c in PHASES if M.score_metric(c) in out]
    assert scored
    for phase in scored:
        assert np.isfinite(out[M.score_null_metric(phase)])
    # the reported score is the run's estimator on the env's dims (x, y, z, gripper)
    batch = batches[0]
    chunk_phases = [label for labels in trainer.label(batch) for label in labels]
    expected = phase_scores(
        score_features(batch.actions, (0, 1, 2, 6)),
        chunk_phases,
        batch.success[batch.traj],
        batch.group[batch.traj],
        traj=batch.traj,
        estimator="debiased",
    )
    assert {c: out[M.score_metric(c)] for c in scored} == pytest.approx(expected)

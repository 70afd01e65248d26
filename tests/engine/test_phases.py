"""Spec §2: gripper-rule phase labels on hand-made trajectories."""

import numpy as np
import pytest

from pcm_engine.config import ConfigError, PhaseConfig, RunConfig
from pcm_engine.phases import PHASES, grasp_intervals, gripper_close_fraction, label_phases


def test_phase_names_are_the_contract():
    assert PHASES == ("active_grip", "pre_grasp", "release_ramp", "approach", "tail")


def test_gripper_close_fraction_counts_close_commands_per_chunk():
    grip = [-1, -1, 1, 1, 1, 1, 1, 1, -1, -1]  # T = 10, L = 4 -> chunks of 4, 4, 2
    actions = np.zeros((10, 7))
    actions[:, -1] = grip
    np.testing.assert_allclose(gripper_close_fraction(actions, 4), [0.5, 1.0, 0.0])


def test_gripper_close_fraction_short_last_chunk_and_zero_is_open():
    actions = np.zeros((5, 7))  # gripper exactly 0 is not "close" (> 0)
    actions[4, -1] = 0.3
    np.testing.assert_allclose(gripper_close_fraction(actions, 2), [0.0, 0.0, 1.0])
    np.testing.assert_allclose(gripper_close_fraction(actions, 2, gripper_dim=0), [0.0, 0.0, 0.0])


def test_gripper_close_fraction_rejects_bad_shapes():
    with pytest.raises(ValueError, match="actions must be"):
        gripper_close_fraction(np.zeros(8), 4)
    with pytest.raises(ValueError, match="chunk_len"):
        gripper_close_fraction(np.zeros((8, 7)), 0)


def test_grasp_intervals_are_maximal_runs_at_or_above_sustained():
    g = [0, 0.75, 1, 0.7, 0.8, 0.8, 0]
    assert grasp_intervals(g, 0.75) == [(1, 3), (4, 6)]
    assert grasp_intervals([1, 1], 0.75) == [(0, 2)]
    assert grasp_intervals([0.5, 0.2], 0.75) == []


def test_one_grasp_cycle():
    #    0    1    2    3    4    5    6    7    8    9   10   11
    g = [0.0, 0.0, 0.0, 0.0, 0.2, 1.0, 1.0, 1.0, 0.3, 0.0, 0.0, 0.0]
    assert label_phases(g) == [
        "approach", "approach", "approach",
        "approach",  # in the pre window but g < pre_low: approach
        "pre_grasp",
        "active_grip", "active_grip", "active_grip",
        "release_ramp", "release_ramp", "release_ramp",  # the 3 chunks after it, whatever their g
        "tail",  # after the final release window
    ]  # fmt: skip


def test_grasp_at_the_first_chunk():
    g = [1.0, 1.0, 0.4, 0.0, 0.0, 0.0]
    assert label_phases(g) == [
        "active_grip", "active_grip",
        "release_ramp", "release_ramp", "release_ramp",
        "tail",
    ]  # fmt: skip


def test_grasp_at_the_last_chunk():
    g = [0.0, 0.0, 0.0, 0.2, 0.9]
    assert label_phases(g) == ["approach", "approach", "approach", "pre_grasp", "active_grip"]


def test_pre_grasp_window_is_three_chunks_and_needs_partial_close():
    g = [0.2, 0.2, 0.2, 0.2, 1.0]
    assert label_phases(g) == ["approach", "pre_grasp", "pre_grasp", "pre_grasp", "active_grip"]
    # pre_low = 0 widens pre_grasp to every chunk of the window
    assert label_phases([0, 0, 0, 0, 1.0], pre_low=0.0) == [
        "approach", "pre_grasp", "pre_grasp", "pre_grasp", "active_grip",
    ]  # fmt: skip


def test_release_ramp_has_no_lower_bound_unless_release_low_opts_in():
    g = [1.0, 0.25, 0.0, 0.0, 0.0]
    assert label_phases(g) == [
        "active_grip", "release_ramp", "release_ramp", "release_ramp", "tail",
    ]  # fmt: skip
    assert label_phases(g, release_low=0.1) == ["active_grip", "release_ramp", "tail", "tail", "tail"]


def test_active_grip_takes_priority_even_outside_an_interval():
    # 0.6 >= active but < sustained: no interval of its own, still active_grip
    g = [0.6, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    assert label_phases(g) == [
        "active_grip",
        "approach",
        "approach", "approach", "approach",  # pre window with g < pre_low
        "active_grip",
        "release_ramp",
    ]  # fmt: skip


def test_two_grasp_cycles_approach_between_and_pre_grasp_wins_over_release():
    #    0    1    2    3    4    5    6    7    8    9
    g = [0.0, 0.3, 1.0, 0.2, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    assert label_phases(g) == [
        "approach", "pre_grasp", "active_grip",
        "release_ramp", "release_ramp",  # the release window of cycle 1, any g < active
        "release_ramp",  # also in cycle 2's pre window, but g < pre_low: not pre_grasp
        "approach", "approach",  # pre window of cycle 2 with g < pre_low
        "active_grip",
        "release_ramp",
    ]  # fmt: skip
    # a chunk in both the release window of one cycle and the pre window of the next
    g2 = [1.0, 0.3, 1.0]
    assert label_phases(g2) == ["active_grip", "pre_grasp", "active_grip"]


def test_windows_longer_than_the_gap_between_cycles_resolve_by_priority():
    g = [1.0, 0.0, 0.2, 0.0, 1.0]  # chunks 1-3 are in both windows
    assert label_phases(g) == [
        "active_grip", "release_ramp", "pre_grasp", "release_ramp", "active_grip",
    ]  # fmt: skip
    assert label_phases(g, pre_low=0.0) == [
        "active_grip", "pre_grasp", "pre_grasp", "pre_grasp", "active_grip",
    ]  # fmt: skip


def test_no_grasp_interval_still_has_active_grip_and_the_rest_is_configurable():
    g = [0.0, 0.6, 0.0]  # 0.6 >= active but < sustained: no grasp interval at all
    assert label_phases(g) == ["approach", "active_grip", "approach"]
    assert label_phases(g, no_grasp="tail") == ["tail", "active_grip", "tail"]
    assert label_phases([0.0, 0.3, 0.0]) == ["approach"] * 3
    with pytest.raises(ValueError, match="no_grasp"):
        label_phases(g, no_grasp="nonsense")


def test_thresholds_and_window_are_parameters():
    g = [0.0, 0.2, 0.2, 0.6, 0.6, 0.0]
    # sustained lowered to 0.5: chunks 3-4 form the interval
    assert label_phases(g, sustained=0.5, window=1) == [
        "approach", "approach", "pre_grasp", "active_grip", "active_grip", "release_ramp",
    ]  # fmt: skip
    assert label_phases([], window=3) == []


def test_phase_config_reads_a_legacy_tail_key_as_release_low():
    assert PhaseConfig().release_low == 0.0
    assert PhaseConfig.model_validate({"tail": 0.2, "window": 2}).release_low == 0.2
    saved = RunConfig.from_dict({"pcm": {"phases": {"tail": 0.1}}})
    assert saved.pcm.phases.release_low == 0.1
    assert "tail" not in saved.to_dict()["pcm"]["phases"]
    with pytest.raises(ConfigError, match="tail"):  # both spellings at once: ambiguous
        RunConfig.from_dict({"pcm": {"phases": {"tail": 0.1, "release_low": 0.2}}})


def test_labels_ignore_success():
    """Successful and failed rollouts with the same gripper commands get the same labels."""
    g = [0.0, 0.2, 1.0, 1.0, 0.2, 0.0]
    assert label_phases(g) == label_phases(list(g))

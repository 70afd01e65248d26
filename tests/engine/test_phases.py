"""Spec §2: gripper-rule phase labels on hand-made trajectories."""

import numpy as np
import pytest

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
        "release_ramp",  # gripper ramping open right after the interval
        "tail", "tail", "tail",  # open, after the final release
    ]  # fmt: skip


def test_pre_grasp_window_is_three_chunks_and_needs_partial_close():
    g = [0.2, 0.2, 0.2, 0.2, 1.0]
    assert label_phases(g) == ["approach", "pre_grasp", "pre_grasp", "pre_grasp", "active_grip"]
    # pre_low = 0 widens pre_grasp to every chunk of the window
    assert label_phases([0, 0, 0, 0, 1.0], pre_low=0.0) == [
        "approach", "pre_grasp", "pre_grasp", "pre_grasp", "active_grip",
    ]  # fmt: skip


def test_release_window_bound_and_tail_zero_widens_it():
    g = [1.0, 0.25, 0.0, 0.0, 0.0]
    assert label_phases(g) == ["active_grip", "release_ramp", "tail", "tail", "tail"]
    assert label_phases(g, tail=0.0) == [
        "active_grip", "release_ramp", "release_ramp", "release_ramp", "tail",
    ]  # fmt: skip


def test_active_grip_takes_priority_even_outside_an_interval():
    # 0.6 >= active but < sustained: no interval of its own, still active_grip
    g = [0.6, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    labels = label_phases(g, tail=0.0)
    assert labels[0] == "active_grip"
    assert labels[5] == "active_grip"


def test_two_grasp_cycles_approach_between_and_pre_grasp_wins_over_release():
    #    0    1    2    3    4    5    6    7    8    9
    g = [0.0, 0.3, 1.0, 0.2, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    assert label_phases(g) == [
        "approach", "pre_grasp", "active_grip",
        "release_ramp",  # after cycle 1, g >= tail
        "approach",  # after cycle 1, open, but a later grasp follows
        "approach", "approach", "approach",  # pre window of cycle 2 with g < pre_low
        "active_grip",
        "tail",
    ]  # fmt: skip
    # a chunk in both the release window of one cycle and the pre window of the next
    g2 = [1.0, 0.3, 1.0]
    assert label_phases(g2) == ["active_grip", "pre_grasp", "active_grip"]


def test_no_grasp_is_approach_by_default_and_configurable():
    g = [0.0, 0.3, 0.6, 0.0]  # 0.6 < sustained: no grasp interval at all
    assert label_phases(g) == ["approach"] * 4
    assert label_phases(g, no_grasp="tail") == ["tail"] * 4
    with pytest.raises(ValueError, match="no_grasp"):
        label_phases(g, no_grasp="nonsense")


def test_thresholds_and_window_are_parameters():
    g = [0.0, 0.2, 0.2, 0.6, 0.6, 0.0]
    # sustained lowered to 0.5: chunks 3-4 form the interval
    assert label_phases(g, sustained=0.5, window=1) == [
        "approach", "approach", "pre_grasp", "active_grip", "active_grip", "tail",
    ]  # fmt: skip
    assert label_phases([], window=3) == []


def test_labels_ignore_success():
    """Successful and failed rollouts with the same gripper commands get the same labels."""
    g = [0.0, 0.2, 1.0, 1.0, 0.2, 0.0]
    assert label_phases(g) == label_phases(list(g))

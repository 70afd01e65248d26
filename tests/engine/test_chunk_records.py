"""Which trajectories the chunk heat map records: whole groups, those that took part in the update
first, and both outcomes whenever the step has both."""

import numpy as np

from pcm_engine.chunk_records import recorded_trajectories
from pcm_engine.grpo import mixed_group_mask


def choose(success, group_size, at_least, dynamic_sampling=True):
    success = np.array(success, dtype=bool)
    group = np.arange(len(success)) // group_size
    took_part = mixed_group_mask(success, group) if dynamic_sampling else np.ones(len(success), bool)
    return recorded_trajectories(success, group, took_part, at_least)


def test_a_mixed_group_that_took_part_comes_before_earlier_dropped_groups():
    # group 0 all failed (dropped by dynamic sampling), group 1 mixed, group 2 all succeeded
    chosen = choose([0, 0, 0, 0, 1, 0, 0, 1, 1, 1, 1, 1], group_size=4, at_least=4)
    assert chosen == [4, 5, 6, 7]


def test_without_a_mixed_group_both_outcomes_are_recorded_beyond_the_minimum():
    # the GRPO heat map of issue 16: the first group failed throughout; a later one succeeded
    chosen = choose([0] * 8 + [0] * 8 + [1] * 8, group_size=8, at_least=8)
    assert chosen == list(range(8)) + list(range(16, 24))


def test_whole_groups_only_and_at_least_the_minimum():
    chosen = choose([1, 0, 1, 0, 0, 1, 1, 0], group_size=2, at_least=3)
    assert chosen == [0, 1, 2, 3]  # two whole groups, never a part of one


def test_a_step_with_one_outcome_records_only_the_minimum():
    assert choose([0] * 12, group_size=4, at_least=4) == [0, 1, 2, 3]
    assert choose([1] * 12, group_size=4, at_least=0) == []


def test_without_dynamic_sampling_the_other_outcome_comes_next():
    chosen = choose([0, 0, 0, 0, 1, 1], group_size=2, at_least=2, dynamic_sampling=False)
    assert chosen == [0, 1, 4, 5]

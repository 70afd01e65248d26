"""Spec §1: group advantages and the clipped surrogate on hand-made cases."""

import numpy as np
import pytest
import torch

from pcm_engine.grpo import clipped_surrogate, group_advantages, mixed_group_mask, surrogate_sums


def test_group_advantages_normalise_within_group_with_sample_std():
    adv = group_advantages([1, 0, 0, 0, 1, 1], [0, 0, 0, 0, 1, 1], eps=0.0)
    r = np.array([1, 0, 0, 0])
    expected = (r - r.mean()) / r.std(ddof=1)
    np.testing.assert_allclose(adv[:4], expected)
    np.testing.assert_allclose(adv[4:], [0.0, 0.0])  # all-equal group -> 0 (eps avoids 0/0)


def test_group_advantages_all_equal_groups_are_zero_and_singletons_are_zero():
    np.testing.assert_array_equal(group_advantages([0, 0, 0], [3, 3, 3]), np.zeros(3))
    np.testing.assert_array_equal(group_advantages([1, 1], [0, 0]), np.zeros(2))
    np.testing.assert_array_equal(group_advantages([1.0], [0]), np.zeros(1))


def test_group_advantages_eps_in_denominator():
    adv = group_advantages([1, 0], [0, 0], eps=1.0)
    std = np.std([1, 0], ddof=1)
    np.testing.assert_allclose(adv, [0.5 / (std + 1), -0.5 / (std + 1)])


def test_mixed_group_mask():
    mask = mixed_group_mask([True, False, True, True, False, False], [0, 0, 1, 1, 2, 2])
    assert mask.tolist() == [True, True, False, False, False, False]


def test_asymmetric_clip_positive_advantage_uses_upper_bound_0_4():
    old = torch.zeros(3)
    logp = torch.log(torch.tensor([1.0, 1.3, 2.0]))  # ratios 1.0, 1.3, 2.0
    loss, clipped = clipped_surrogate(logp, old, torch.ones(3), 0.2, 0.4)
    torch.testing.assert_close(loss, -torch.tensor([1.0, 1.3, 1.4]))
    assert clipped.tolist() == [0.0, 0.0, 1.0]


def test_asymmetric_clip_negative_advantage_uses_lower_bound_0_2():
    old = torch.zeros(3)
    logp = torch.log(torch.tensor([0.5, 0.9, 1.5]))  # ratios 0.5, 0.9, 1.5
    loss, clipped = clipped_surrogate(logp, old, -torch.ones(3), 0.2, 0.4)
    # -min(r*A, clip(r)*A) with A=-1 -> max(r, clip(r)): 0.8 (clipped), 0.9, 1.5 (unclipped, pessimistic)
    torch.testing.assert_close(loss, torch.tensor([0.8, 0.9, 1.5]))
    assert clipped.tolist() == [1.0, 0.0, 0.0]


def test_clipped_tokens_get_no_gradient():
    logp = torch.log(torch.tensor([2.0, 1.1])).requires_grad_()
    loss, _ = clipped_surrogate(logp, torch.zeros(2), torch.ones(2), 0.2, 0.4)
    loss.sum().backward()
    assert logp.grad[0] == 0.0 and logp.grad[1] != 0.0


def test_surrogate_sums_weights_entropy_and_kl():
    logp = torch.zeros(2, 3)
    ent = torch.full((2, 3), 2.0)
    adv = torch.tensor([1.0, -1.0])
    w = torch.tensor([1.0, 3.0])
    sums = surrogate_sums(logp, logp, ent, adv, w, clip_low=0.2, clip_high=0.4, entropy_coef=0.1)
    # ratio 1: per-token pg = -A; chunk 0: 3 tokens * -1 * w1, chunk 1: 3 * +1 * w3
    assert sums.policy_loss == pytest.approx(-3.0 + 9.0)
    assert sums.entropy == pytest.approx(2.0 * 3 * 4)
    assert float(sums.loss) == pytest.approx(6.0 - 0.1 * 24.0)
    with pytest.raises(ValueError, match="ref_log_probs"):
        surrogate_sums(logp, logp, ent, adv, w, clip_low=0.2, clip_high=0.4, entropy_coef=0, kl_coef=1)
    sums = surrogate_sums(
        logp, logp, ent, adv, w, clip_low=0.2, clip_high=0.4, entropy_coef=0.0,
        kl_coef=1.0, ref_log_probs=logp,
    )  # fmt: skip
    assert sums.ref_kl == pytest.approx(0.0)

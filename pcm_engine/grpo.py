"""Chunk-level GRPO (spec §1): group advantages and the clipped surrogate per action token.

The loss is a token-level mean over the tokens that take part: each micro-batch returns weighted
*sums*, and the trainer divides by the mini-batch's total token weight before backward, so
splitting a mini-batch into micro-batches does not change the gradient.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


def group_advantages(rewards: Sequence[float], groups: Sequence[int], eps: float = 1e-6) -> np.ndarray:
    """`A_i = (r_i − mean(r)) / (std(r) + eps)` within each group; `std` with ddof=1 as in the
    verl / SimpleVLA-RL code the paper builds on. A group of one, or of equal rewards, gets 0."""
    rewards = np.asarray(rewards, dtype=np.float64)
    groups = np.asarray(groups)
    if rewards.shape != groups.shape:
        raise ValueError("rewards and groups must have one entry per trajectory")
    adv = np.zeros_like(rewards)
    for group in np.unique(groups):
        idx = groups == group
        r = rewards[idx]
        std = r.std(ddof=1) if len(r) > 1 else 0.0
        centred = r - r.mean()
        adv[idx] = centred / (std + eps) if std + eps > 0 else centred  # all-equal: 0, not 0/0
    return adv


def mixed_group_mask(success: Sequence[bool], groups: Sequence[int]) -> np.ndarray:
    """Per trajectory: does its group hold both a success and a failure? (dynamic sampling)"""
    success = np.asarray(success, dtype=bool)
    groups = np.asarray(groups)
    mask = np.zeros(len(success), dtype=bool)
    for group in np.unique(groups):
        idx = groups == group
        mask[idx] = success[idx].any() and not success[idx].all()
    return mask


LOSS_STATS = ("policy_loss", "entropy", "clipped", "approx_kl", "ref_kl")
"""The order of `LossSums.stats`."""


@dataclass
class LossSums:
    """Token-weighted sums of one micro-batch; divide by the mini-batch token weight.

    `stats` holds the detached sums named in `LOSS_STATS` as one tensor on the loss's device, so
    a trainer can add them up over micro-batches without waiting for the device after each one;
    the named properties read them (and wait)."""

    loss: torch.Tensor  # differentiable
    stats: torch.Tensor  # [len(LOSS_STATS)] float32, detached

    @property
    def policy_loss(self) -> float:
        return float(self.stats[0])

    @property
    def entropy(self) -> float:
        return float(self.stats[1])

    @property
    def clipped(self) -> float:
        return float(self.stats[2])

    @property
    def approx_kl(self) -> float:
        return float(self.stats[3])

    @property
    def ref_kl(self) -> float:
        return float(self.stats[4])


def clipped_surrogate(
    log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    clip_low: float,
    clip_high: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token PPO loss `−min(ρA, clip(ρ, 1−ε_low, 1+ε_high)A)` and a mask of the tokens where
    the clipped branch was taken (the clip fraction). The clip is asymmetric: (0.2, 0.4) by default
    lets probabilities of good tokens grow further than bad ones shrink."""
    ratio = torch.exp(log_probs - old_log_probs)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high) * advantages
    loss = -torch.minimum(unclipped, clipped)
    return loss, (clipped < unclipped).float()


def surrogate_sums(
    log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    entropy: torch.Tensor,
    advantages: torch.Tensor,
    weights: torch.Tensor,
    *,
    clip_low: float,
    clip_high: float,
    entropy_coef: float,
    kl_coef: float = 0.0,
    ref_log_probs: torch.Tensor | None = None,
) -> LossSums:
    """Weighted token sums of the full objective for one micro-batch.

    All token tensors are `[chunks, L·D]`; `advantages` and `weights` are per chunk `[chunks]`
    (a chunk's weight is 1, or `1 / π` under `reweight: unbiased`, before `trajectory_mean`).
    """
    adv = advantages[:, None].expand_as(log_probs)
    w = weights[:, None].expand_as(log_probs)
    pg, clipped = clipped_surrogate(log_probs, old_log_probs, adv, clip_low, clip_high)
    per_token = pg - entropy_coef * entropy
    ref_kl = log_probs.new_zeros(())
    if kl_coef > 0:
        if ref_log_probs is None:
            raise ValueError("kl_coef > 0 needs ref_log_probs")
        # k3 estimator of KL(π || π_ref), as in verl's low_var_kl
        delta = ref_log_probs - log_probs
        kl = torch.exp(delta) - delta - 1.0
        per_token = per_token + kl_coef * kl
        ref_kl = (w * kl).sum().detach()
    loss = (w * per_token).sum()
    log_ratio = (log_probs - old_log_probs).detach()
    w, pg, entropy = w.detach(), pg.detach(), entropy.detach()
    return LossSums(
        loss=loss,
        stats=torch.stack(
            [
                (w * pg).sum(),
                (w * entropy).sum(),
                (w * clipped).sum(),
                (w * 0.5 * log_ratio**2).sum(),
                ref_kl.to(pg.dtype),
            ]
        ),
    )

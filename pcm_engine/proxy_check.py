"""The proxy check of the phase score (spec §3): the paper's Lemma 2 bounds a phase's
policy-gradient variance by its score, `V_c ≥ C_c² / 4σ²`, which is why PCM may rank phases by
`C_c` instead of measuring `V_c`. `per_phase_gradient_variance` measures `V_c` directly from
sampled per-chunk gradients so the two can be compared on the same rollout batch;
`pcm_engine.analysis.spearman` says whether they rank phases alike.

A prior question, whether `C_c` measures a divergence at all, is answered by its outcome-shuffle
null (`pcm_engine.pcm.shuffled_outcome_scores`, also a per-step metric).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from pcm_engine.grpo import clipped_surrogate, group_advantages

# --- per-phase gradient variance ----------------------------------------------------------------


@dataclass(frozen=True)
class PhaseGradient:
    """Sampled per-chunk policy gradients of one phase."""

    variance: float  # trace of the covariance of the per-chunk gradient vectors (ddof = 1)
    mean_norm: float  # mean L2 norm of a chunk's gradient
    samples: int


def gradient_parameters(policy: torch.nn.Module, last_layers: int = 1) -> list[torch.nn.Parameter]:
    """The parameters the proxy check differentiates: the action head (`head_norm`, `head`) and
    the last `last_layers` decoder layers of the language model.

    Every chunk's gradient passes through these first, and back-propagating a single chunk only
    that far keeps hundreds of per-chunk gradients cheap; the whole network would cost a full
    backward per chunk for the same ranking question."""
    layers = _hf_language_model(policy).layers
    params = list(policy.head_norm.parameters()) + list(policy.head.parameters())
    for layer in layers[len(layers) - last_layers :]:
        params += [p for p in layer.parameters() if p.requires_grad]
    return params


def _hf_language_model(policy: torch.nn.Module) -> torch.nn.Module:
    lm = policy.language_model
    return lm.get_base_model() if hasattr(lm, "get_base_model") else lm


@contextmanager
def gradients_only_for(module: torch.nn.Module, params: list[torch.nn.Parameter]) -> Iterator[None]:
    """Within the block, only `params` require grad (so autograd stops where they end); restored
    afterwards."""
    wanted = {id(p) for p in params}
    before = [(p, p.requires_grad) for p in module.parameters()]
    try:
        for p, _ in before:
            p.requires_grad_(id(p) in wanted)
        yield
    finally:
        for p, flag in before:
            p.requires_grad_(flag)


def per_chunk_gradients(trainer, batch, rows: np.ndarray, advantages: np.ndarray, params) -> torch.Tensor:
    """[len(rows), P] flattened gradients of each chunk's own clipped surrogate (summed over its
    tokens, weight 1, no entropy term: the policy-gradient estimator the Lemma is about).

    One forward and backward per chunk, with gradients limited to `params`: a backward from one
    row of a batched forward would still run the layers' backward over every row."""
    g = trainer.config.grpo
    grads = []
    with gradients_only_for(trainer.policy, params):
        for row in rows:
            one = np.array([row])
            log_probs, _ = trainer.actor_forward(batch, one)
            old = torch.as_tensor(batch.old_log_probs[one], device=log_probs.device)
            adv = torch.full_like(log_probs, float(advantages[batch.traj[row]]))
            losses, _ = clipped_surrogate(log_probs, old, adv, g.clip_low, g.clip_high)
            parts = torch.autograd.grad(losses.sum(), params)
            grads.append(torch.cat([p.reshape(-1) for p in parts]))
    return torch.stack(grads)


def per_phase_gradient_variance(
    trainer,
    batch,
    selection,
    samples_per_phase: int,
    rng: np.random.Generator,
    *,
    last_layers: int = 1,
) -> dict[str, PhaseGradient]:
    """`V_c` per phase: the spread of per-chunk policy gradients among chunks of phase `c`.

    `trainer` supplies the policy and the loss settings, `batch` is a rollout ChunkBatch and
    `selection` its `Trainer.select` result (phase labels and the rows of mixed groups, the only
    chunks with a non-zero advantage). Up to `samples_per_phase` chunks of each phase are drawn
    uniformly from those rows. Phases with fewer than two sampled chunks get no entry."""
    if samples_per_phase < 2:
        raise ValueError(f"samples_per_phase must be >= 2, got {samples_per_phase}")
    phases = np.array([label for traj in selection.labels for label in traj])
    eligible = np.asarray(selection.available_rows, dtype=np.int64)
    chosen: dict[str, np.ndarray] = {}
    for phase in np.unique(phases[eligible]):
        rows = eligible[phases[eligible] == phase]
        if len(rows) >= 2:
            chosen[str(phase)] = np.sort(rng.choice(rows, min(samples_per_phase, len(rows)), replace=False))
    if not chosen:
        return {}
    advantages = group_advantages(batch.success.astype(np.float64), batch.group, trainer.config.grpo.adv_eps)
    all_rows = np.concatenate(list(chosen.values()))
    grads = per_chunk_gradients(
        trainer, batch, all_rows, advantages, gradient_parameters(trainer.policy, last_layers)
    )
    out, start = {}, 0
    for phase, rows in chosen.items():
        block = grads[start : start + len(rows)].double()
        start += len(rows)
        centred = block - block.mean(dim=0, keepdim=True)
        out[phase] = PhaseGradient(
            variance=float((centred**2).sum() / (len(rows) - 1)),
            mean_norm=float(block.norm(dim=1).mean()),
            samples=len(rows),
        )
    return out


@dataclass(frozen=True)
class ProxyPoint:
    """One phase of one rollout batch: its score `C_c` beside its measured gradient variance."""

    batch: int
    phase: str
    score: float
    variance: float
    samples: int


def proxy_points(trainer, batches: int, samples_per_phase: int) -> list[ProxyPoint]:
    """Draw `batches` rollout batches with the trainer's current policy; for every phase that has
    both a score `C_c` and a measured `V_c` on a batch, one point. Changes no weights (the
    trainer's RNGs and keep-weight buffers advance)."""
    points = []
    for index in range(batches):
        batch = trainer.rollout(probe=index)
        selection = trainer.select(batch)
        rng = trainer.stream("selection", index + 1)
        measured = per_phase_gradient_variance(trainer, batch, selection, samples_per_phase, rng)
        for phase in sorted(set(measured) & set(selection.scores)):
            stats = measured[phase]
            points.append(ProxyPoint(index, phase, selection.scores[phase], stats.variance, stats.samples))
    return points

"""Probabilistic Chunk Masking: phase scores, keep weights and chunk selectors (spec §3–§5).

Reads next to the paper's Algorithm 1:

    C_c   = mean over mixed groups of ||mean success action_c - mean failure action_c||_2   (§3)
    p_c   = max(p_min, s_c / max_c' s_c'), s_c = block average of C_c over T_rc steps   (§4)
    keep  = per trajectory, min(B, N) chunks drawn without replacement, P ∝ p_phase(chunk)   (§5)

Selectors (`full | pcm | uniform | top_phase`) are a small registry: a new variant is one
decorated function plus a config value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from pcm_engine.phases import PHASES

# --- §3 phase scores ----------------------------------------------------------------------------


def phase_scores(
    chunk_actions: np.ndarray,
    phases: Sequence[str],
    success: Sequence[bool],
    groups: Sequence[int],
) -> dict[str, float]:
    """Success–failure action divergence `C_c` per phase for one step (§3).

    Per chunk: `chunk_actions[m]` is its flattened `L·D` continuous actions, `phases[m]` its phase,
    `success[m]` its trajectory's outcome, `groups[m]` its GRPO group. For every group with both
    outcomes and every phase present in both its successful and failed chunks,
    `C_c(group) = ||μ⁺_c − μ⁻_c||₂`; the result is the mean over the groups where it is defined.
    Phases defined in no group get no entry.
    """
    actions = np.asarray(chunk_actions, dtype=np.float64)
    if actions.ndim != 2:
        raise ValueError(f"chunk_actions must be [M, L*D], got shape {actions.shape}")
    phases = np.asarray(phases)
    success = np.asarray(success, dtype=bool)
    groups = np.asarray(groups)
    if not (len(actions) == len(phases) == len(success) == len(groups)):
        raise ValueError("chunk_actions, phases, success and groups must have one entry per chunk")

    per_phase: dict[str, list[float]] = {}
    for group in np.unique(groups):
        in_group = groups == group
        if success[in_group].all() or not success[in_group].any():
            continue  # not a mixed group: no divergence to measure
        for phase in np.unique(phases[in_group]):
            here = in_group & (phases == phase)
            wins, losses = here & success, here & ~success
            if wins.any() and losses.any():
                gap = actions[wins].mean(axis=0) - actions[losses].mean(axis=0)
                per_phase.setdefault(str(phase), []).append(float(np.linalg.norm(gap)))
    return {phase: float(np.mean(values)) for phase, values in per_phase.items()}


# --- §3, our addition: the outcome-shuffle null of C_c --------------------------------------------


def shuffle_within_groups(
    success: Sequence[bool], groups: Sequence[int], rng: np.random.Generator
) -> np.ndarray:
    """Per-trajectory outcomes permuted among the trajectories of each group (so every group
    keeps its number of successes, and mixed groups stay mixed)."""
    success, groups = np.asarray(success, dtype=bool), np.asarray(groups)
    out = success.copy()
    for group in np.unique(groups):
        idx = np.flatnonzero(groups == group)
        out[idx] = success[rng.permutation(idx)]
    return out


@dataclass(frozen=True)
class NullScore:
    """A phase's `C_c` on the real outcomes beside its values with outcomes shuffled."""

    phase: str
    score: float
    null_mean: float
    p_value: float  # share of shuffles scoring at least as high, counting the real one (never 0)


def shuffled_outcome_scores(
    chunk_actions: np.ndarray,
    chunk_phases: Sequence[str],
    chunk_traj: Sequence[int],
    success: Sequence[bool],
    groups: Sequence[int],
    shuffles: int,
    rng: np.random.Generator,
) -> list[NullScore]:
    """`C_c` per phase (spec §3, as `phase_scores`) against its outcome-shuffle null.

    `C_c` is a norm of a difference of sample means, so it is positive even when successes and
    failures act alike, and larger for phases with fewer chunks. Shuffling outcomes among the
    trajectories of each group shows that floor: a phase whose `C_c` sits near its null is
    ranked by its chunk count, not by what separates success from failure.

    Chunk arrays (`chunk_actions` [M, L·D], `chunk_phases`, `chunk_traj`) index trajectories whose
    `success` and `groups` are per trajectory. Each of `shuffles` draws permutes the outcomes
    within groups and scores the same chunks again; a phase missing from a draw (possible when a
    phase sits in a single trajectory) does not count in that draw."""
    if shuffles < 1:
        raise ValueError(f"shuffles must be >= 1, got {shuffles}")
    traj = np.asarray(chunk_traj, dtype=np.int64)
    success, groups = np.asarray(success, dtype=bool), np.asarray(groups)

    def score(outcomes: np.ndarray) -> dict[str, float]:
        return phase_scores(chunk_actions, chunk_phases, outcomes[traj], groups[traj])

    real = score(success)
    draws: dict[str, list[float]] = {phase: [] for phase in real}
    for _ in range(shuffles):
        for phase, value in score(shuffle_within_groups(success, groups, rng)).items():
            if phase in draws:
                draws[phase].append(value)
    out = []
    for phase, value in sorted(real.items()):
        null = np.asarray(draws[phase])
        out.append(
            NullScore(
                phase=phase,
                score=value,
                null_mean=float(null.mean()) if len(null) else float("nan"),
                p_value=float((1 + (null >= value).sum()) / (1 + len(null))),
            )
        )
    return out


# --- §4 keep weights ----------------------------------------------------------------------------


class KeepWeights:
    """Block-averaged keep probabilities `p_c` (§4) — deliberately not an EMA.

    Every call to `update` appends that step's scores to per-phase buffers. On the first call and
    then every `refresh_every` calls, `p_c = max(p_min, s_c / max s)` with `s_c` the buffer mean
    (0 for an empty buffer), and the buffers are cleared; if every `s_c` is 0, all `p_c = 1`.
    Between refreshes `p` stays fixed. Before the first refresh every `p_c` is 1.
    """

    def __init__(self, phases: Sequence[str] = PHASES, refresh_every: int = 5, p_min: float = 0.1):
        if refresh_every < 1:
            raise ValueError(f"refresh_every must be >= 1, got {refresh_every}")
        if not 0 <= p_min <= 1:
            raise ValueError(f"p_min must be in [0, 1], got {p_min}")
        self.phases = tuple(phases)
        self.refresh_every = refresh_every
        self.p_min = p_min
        self.calls = 0
        self.buffers: dict[str, list[float]] = {c: [] for c in self.phases}
        self._p: dict[str, float] = {c: 1.0 for c in self.phases}

    @property
    def p(self) -> dict[str, float]:
        return dict(self._p)

    def update(self, scores: dict[str, float]) -> bool:
        """Record one step's `C_c^(t)`; returns True when this call refreshed `p`."""
        unknown = set(scores) - set(self.phases)
        if unknown:
            raise ValueError(f"scores for unknown phases: {sorted(unknown)}")
        for phase, value in scores.items():
            self.buffers[phase].append(float(value))
        refresh = self.calls % self.refresh_every == 0
        self.calls += 1
        if refresh:
            self._refresh()
        return refresh

    def _refresh(self) -> None:
        means = {c: (float(np.mean(b)) if b else 0.0) for c, b in self.buffers.items()}
        top = max(means.values())
        if top <= 0:
            self._p = {c: 1.0 for c in self.phases}
        else:
            self._p = {c: max(self.p_min, s / top) for c, s in means.items()}
        self.buffers = {c: [] for c in self.phases}

    def state_dict(self) -> dict:
        return {
            "phases": list(self.phases),
            "refresh_every": self.refresh_every,
            "p_min": self.p_min,
            "calls": self.calls,
            "buffers": {c: list(b) for c, b in self.buffers.items()},
            "p": dict(self._p),
        }

    def load_state_dict(self, state: dict) -> None:
        if tuple(state["phases"]) != self.phases:
            raise ValueError(f"keep-weight state has phases {state['phases']}, expected {self.phases}")
        self.refresh_every = int(state["refresh_every"])
        self.p_min = float(state["p_min"])
        self.calls = int(state["calls"])
        self.buffers = {c: [float(v) for v in state["buffers"][c]] for c in self.phases}
        self._p = {c: float(state["p"][c]) for c in self.phases}


# --- §5 chunk sampling --------------------------------------------------------------------------


def sample_chunks(
    weights: Sequence[float], budget: int, generator: np.random.Generator | None = None
) -> np.ndarray:
    """`min(budget, len(weights))` distinct chunk indices, drawn without replacement with
    probability proportional to `weights` (successive / Plackett–Luce sampling).

    Implemented with the Gumbel-top-k trick, which draws exactly that distribution in one pass.
    Zero-weight chunks come last: they are taken only once every positive one is. Returned sorted.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1:
        raise ValueError(f"weights must be 1-D, got shape {w.shape}")
    if (w < 0).any() or not np.isfinite(w).all():
        raise ValueError("weights must be finite and >= 0")
    if budget < 0:
        raise ValueError(f"budget must be >= 0, got {budget}")
    rng = generator if generator is not None else np.random.default_rng()
    n = min(budget, len(w))
    with np.errstate(divide="ignore"):
        keys = np.log(w) + rng.gumbel(size=len(w))
    order = np.argsort(-keys, kind="stable")
    return np.sort(order[:n])


# --- selectors ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrajectoryChunks:
    """What a selector sees of one trajectory: its chunks' phase names, in order."""

    phases: Sequence[str]


Selector = Callable[[TrajectoryChunks, dict[str, float], int, np.random.Generator], np.ndarray]
SELECTORS: dict[str, Selector] = {}


def register_selector(name: str) -> Callable[[Selector], Selector]:
    def wrap(fn: Selector) -> Selector:
        SELECTORS[name] = fn
        return fn

    return wrap


@register_selector("full")
def select_full(traj: TrajectoryChunks, p: dict[str, float], budget: int, rng) -> np.ndarray:
    """Plain GRPO: every chunk takes part."""
    return np.arange(len(traj.phases))


@register_selector("pcm")
def select_pcm(traj: TrajectoryChunks, p: dict[str, float], budget: int, rng) -> np.ndarray:
    """PCM: `min(B, N)` chunks without replacement, P ∝ p of the chunk's phase (§5)."""
    return sample_chunks([p[c] for c in traj.phases], budget, rng)


@register_selector("uniform")
def select_uniform(traj: TrajectoryChunks, p: dict[str, float], budget: int, rng) -> np.ndarray:
    """Random masking: `min(B, N)` chunks uniformly, phases ignored."""
    return sample_chunks(np.ones(len(traj.phases)), budget, rng)


@register_selector("top_phase")
def select_top_phase(traj: TrajectoryChunks, p: dict[str, float], budget: int, rng) -> np.ndarray:
    """Full masking: only chunks of the highest-p phase present in this trajectory (up to B,
    uniformly among them). Ties between phases go to the earlier phase in PHASES."""
    present = [c for c in PHASES if c in set(traj.phases)]
    if not present:
        return np.arange(0)
    top = max(present, key=lambda c: p[c])  # max keeps the first of equals
    weights = np.array([1.0 if c == top else 0.0 for c in traj.phases])
    return sample_chunks(weights, min(budget, int(weights.sum())), rng)


def select_chunks(
    selector: str,
    trajectories: Iterable[TrajectoryChunks],
    p: dict[str, float],
    budget: int,
    rng: np.random.Generator,
) -> list[np.ndarray]:
    """Kept chunk indices (within each trajectory, sorted) for every trajectory."""
    if selector not in SELECTORS:
        raise ValueError(f"pcm.selector: unknown selector '{selector}' (known: {sorted(SELECTORS)})")
    choose = SELECTORS[selector]
    return [choose(traj, p, budget, rng) for traj in trajectories]


def unbiased_weights(phases: Sequence[str], kept: np.ndarray) -> np.ndarray:
    """`reweight: unbiased` — each kept chunk's weight `N_c / b_c` (stratified estimator, §5):
    `N_c` chunks of its phase in the trajectory, `b_c` of them kept. Weights of one trajectory sum
    to the number of chunks of the phases it kept, so for `full` every weight is 1."""
    phases = np.asarray(phases)
    kept_phases = phases[kept]
    totals = {c: int((phases == c).sum()) for c in set(kept_phases.tolist())}
    counts = {c: int((kept_phases == c).sum()) for c in totals}
    return np.array([totals[c] / counts[c] for c in kept_phases.tolist()], dtype=np.float64)

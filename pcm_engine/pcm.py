"""Probabilistic Chunk Masking: phase scores, keep weights and chunk selectors (spec §3–§5).

Reads next to the paper's Algorithm 1:

    C_c   = mean over mixed groups of ||mean success action_c - mean failure action_c||_2   (§3)
    p_c   = max(p_min, s_c / max_c' s_c'), s_c = block average of C_c over T_rc steps   (§4)
    keep  = per trajectory, min(B, N) chunks drawn without replacement, P ∝ p_phase(chunk)   (§5)

`pcm.score: debiased` (ours, §3) replaces C_c by the signed, noise-corrected D² of per-trajectory
mean actions, and s_c by sqrt(max(0, block mean of D²)).

Selectors (`full | pcm | uniform | top_phase`) are a small registry: a new variant is one
decorated function plus a config value.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from pcm_engine.phases import PHASES

# --- §3 phase scores ----------------------------------------------------------------------------


SCORE_ESTIMATORS = ("paper", "debiased")
"""`pcm.score`: `paper` = C_c (the spec's score); `debiased` = signed D² (our addition, §3)."""


def _check_estimator(estimator: str) -> None:
    if estimator not in SCORE_ESTIMATORS:
        raise ValueError(f"pcm.score: unknown estimator '{estimator}' (known: {list(SCORE_ESTIMATORS)})")


def score_features(chunk_actions: np.ndarray, dims: Sequence[int] | None = None) -> np.ndarray:
    """Chunk actions `[M, L, D]` as the rows the phase scores compare: the action dimensions
    `dims` (every one when None — `pcm.score_dims: all`) of each step, flattened to
    `[M, L·|dims|]`. With `pcm.score_dims: env`, `dims` is the env's `score_dims`: dimensions an
    env ignores carry only sampling noise, which would inflate every phase's score alike."""
    actions = np.asarray(chunk_actions, dtype=np.float64)
    if actions.ndim != 3:
        raise ValueError(f"chunk actions must be [M, L, D], got shape {actions.shape}")
    if dims is not None:
        dims = list(dims)
        if not dims:
            raise ValueError("score dims must name at least one action dimension")
        actions = actions[..., dims]
    return actions.reshape(len(actions), -1)


@dataclass(frozen=True)
class _PhaseCells:
    """A step's chunks pooled per (trajectory, phase) — all either estimator reads, and free of
    outcomes, so the outcome-shuffle null re-scores these few rows instead of every chunk."""

    traj: np.ndarray  # [K] trajectory index of each cell (into per-trajectory arrays)
    phase: np.ndarray  # [K] index into `names`
    names: np.ndarray  # phase names
    count: np.ndarray  # [K] chunks in the cell
    total: np.ndarray  # [K, F] sum of their flattened actions

    @classmethod
    def build(cls, actions: np.ndarray, phases: np.ndarray, traj: np.ndarray) -> _PhaseCells:
        """`actions` [M, F], `phases` [M] and `traj` [M] (non-negative trajectory indices)."""
        names, phase = np.unique(phases, return_inverse=True)
        n = max(len(names), 1)
        keys, cell = np.unique(traj.astype(np.int64) * n + phase, return_inverse=True)
        count = np.bincount(cell, minlength=len(keys))
        return cls(keys // n, keys % n, names, count, _sum_by(cell, actions, len(keys)))

    def scores(self, traj_success: np.ndarray, traj_group: np.ndarray, estimator: str) -> dict[str, float]:
        """Per phase, the mean over groups of the estimator's per-group value (groups where it is
        undefined left out; phases defined in no group get no entry). Outcomes and groups are
        given per trajectory."""
        n = max(len(self.names), 1)
        _, group = np.unique(traj_group[self.traj], return_inverse=True)
        pairs, pair = np.unique(group * n + self.phase, return_inverse=True)
        # slot 2p holds the failures of (group, phase) pair p, slot 2p + 1 its successes
        slot = 2 * pair + traj_success[self.traj].astype(np.int64)
        gap = _paper_gaps if estimator == "paper" else _debiased_gaps
        value, defined = gap(self, slot, 2 * len(pairs))
        phase = (pairs % n)[defined]
        sums = np.bincount(phase, weights=value[defined], minlength=len(self.names))
        counts = np.bincount(phase, minlength=len(self.names))
        return {str(self.names[c]): float(sums[c] / counts[c]) for c in np.flatnonzero(counts)}


def _sum_by(slot: np.ndarray, values: np.ndarray, slots: int) -> np.ndarray:
    out = np.zeros((slots, values.shape[1]))
    np.add.at(out, slot, values)
    return out


def _paper_gaps(cells: _PhaseCells, slot: np.ndarray, slots: int) -> tuple[np.ndarray, np.ndarray]:
    """`C_c(group) = ||μ⁺ − μ⁻||₂` over chunks, per (group, phase) pair; defined where both
    outcomes have a chunk of the phase."""
    chunks = np.bincount(slot, weights=cells.count, minlength=slots)
    mean = _sum_by(slot, cells.total, slots) / np.maximum(chunks, 1)[:, None]
    defined = (chunks[0::2] > 0) & (chunks[1::2] > 0)
    return np.linalg.norm(mean[1::2] - mean[0::2], axis=1), defined


def _debiased_gaps(cells: _PhaseCells, slot: np.ndarray, slots: int) -> tuple[np.ndarray, np.ndarray]:
    """Signed `D² = ||m̄⁺ − m̄⁻||² − tr(S)·(1/k⁺ + 1/k⁻)` per (group, phase) pair, the trajectory
    the sampling unit (`m_i` = trajectory i's mean chunk action in the phase; `S` the pooled
    within-outcome covariance of the `m_i`, ddof 2). Defined where k⁺, k⁻ ≥ 1 and k⁺ + k⁻ ≥ 3."""
    m = cells.total / cells.count[:, None]
    k = np.bincount(slot, minlength=slots)
    centre = _sum_by(slot, m, slots) / np.maximum(k, 1)[:, None]
    within = np.bincount(slot, weights=((m - centre[slot]) ** 2).sum(axis=1), minlength=slots)
    k_neg, k_pos = k[0::2], k[1::2]
    defined = (k_pos >= 1) & (k_neg >= 1) & (k_pos + k_neg >= 3)
    trace_s = (within[0::2] + within[1::2]) / np.maximum(k_pos + k_neg - 2, 1)
    spread = 1 / np.maximum(k_pos, 1) + 1 / np.maximum(k_neg, 1)
    return ((centre[1::2] - centre[0::2]) ** 2).sum(axis=1) - trace_s * spread, defined


def phase_scores(
    chunk_actions: np.ndarray,
    phases: Sequence[str],
    success: Sequence[bool],
    groups: Sequence[int],
    *,
    traj: Sequence[int] | None = None,
    estimator: str = "paper",
) -> dict[str, float]:
    """The phase score per phase for one step (§3): `C_c` (`paper`) or the signed `D²`
    (`debiased`, needs `traj`).

    Per chunk: `chunk_actions[m]` is its flattened continuous actions (`score_features`),
    `phases[m]` its phase, `success[m]` its trajectory's outcome, `groups[m]` its GRPO group and
    `traj[m]` its trajectory id. `paper`: for every group with both outcomes and every phase present
    in both its successful and failed chunks, `C_c(group) = ||μ⁺_c − μ⁻_c||₂`. `debiased`: per
    mixed group and phase with k⁺ ≥ 1 successful and k⁻ ≥ 1 failed trajectories in it,
    k⁺ + k⁻ ≥ 3, the signed (never truncated) `D²` of `_debiased_gaps`. Either way the result is the
    mean over the groups where the value is defined; phases defined in no group get no entry.
    """
    _check_estimator(estimator)
    actions = np.asarray(chunk_actions, dtype=np.float64)
    if actions.ndim != 2:
        raise ValueError(f"chunk_actions must be [M, L*D], got shape {actions.shape}")
    phases = np.asarray(phases)
    success = np.asarray(success, dtype=bool)
    groups = np.asarray(groups)
    if not (len(actions) == len(phases) == len(success) == len(groups)):
        raise ValueError("chunk_actions, phases, success and groups must have one entry per chunk")
    if traj is None:
        if estimator == "debiased":
            raise ValueError(
                "phase_scores: estimator 'debiased' needs traj (each chunk's trajectory id): "
                "its sampling unit is the trajectory"
            )
        traj = np.arange(len(actions))  # C_c pools chunks: each may stand alone
    traj = np.asarray(traj)
    if len(traj) != len(actions):
        raise ValueError("traj must have one entry per chunk")
    _, first, index = np.unique(traj, return_index=True, return_inverse=True)
    traj_success, traj_group = success[first], groups[first]
    if (traj_success[index] != success).any() or (traj_group[index] != groups).any():
        raise ValueError("the chunks of one trajectory must share its outcome and group")
    return _PhaseCells.build(actions, phases, index).scores(traj_success, traj_group, estimator)


# --- §3, our addition: the outcome-shuffle null of the phase score ---------------------------------


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
    """A phase's score (`C_c` or signed `D²`) on the real outcomes beside its values with
    outcomes shuffled."""

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
    *,
    estimator: str = "paper",
) -> list[NullScore]:
    """The phase score per phase (spec §3, as `phase_scores` with `estimator`) against its
    outcome-shuffle null.

    `C_c` is a norm of a difference of sample means, so it is positive even when successes and
    failures act alike, and larger for phases with fewer chunks. Shuffling outcomes among the
    trajectories of each group shows that floor: a phase whose `C_c` sits near its null is
    ranked by its chunk count, not by what separates success from failure. The `debiased` `D²`
    subtracts that floor: averaged over every within-group permutation its null is exactly 0.

    Chunk arrays (`chunk_actions` [M, F], `chunk_phases`, `chunk_traj`) index trajectories whose
    `success` and `groups` are per trajectory. Each of `shuffles` draws permutes the outcomes
    within groups and scores the same chunks again (pooled per trajectory and phase once, so a
    draw costs little); a phase missing from a draw (possible when a phase sits in a single
    trajectory) does not count in that draw."""
    if shuffles < 1:
        raise ValueError(f"shuffles must be >= 1, got {shuffles}")
    _check_estimator(estimator)
    traj = np.asarray(chunk_traj, dtype=np.int64)
    success, groups = np.asarray(success, dtype=bool), np.asarray(groups)
    actions = np.asarray(chunk_actions, dtype=np.float64)
    if not (len(actions) == len(chunk_phases) == len(traj)):
        raise ValueError("chunk_actions, chunk_phases and chunk_traj must have one entry per chunk")
    cells = _PhaseCells.build(actions, np.asarray(chunk_phases), traj)

    def score(outcomes: np.ndarray) -> dict[str, float]:
        return cells.scores(outcomes, groups, estimator)

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

    `estimator` is the run's `pcm.score`: with `debiased` the buffers hold signed `D²` and
    `s_c = sqrt(max(0, buffer mean))` — truncated only after averaging, so noise around 0 averages
    out instead of being clipped into a positive score.
    """

    def __init__(
        self,
        phases: Sequence[str] = PHASES,
        refresh_every: int = 5,
        p_min: float = 0.1,
        estimator: str = "paper",
    ):
        if refresh_every < 1:
            raise ValueError(f"refresh_every must be >= 1, got {refresh_every}")
        if not 0 <= p_min <= 1:
            raise ValueError(f"p_min must be in [0, 1], got {p_min}")
        _check_estimator(estimator)
        self.phases = tuple(phases)
        self.refresh_every = refresh_every
        self.p_min = p_min
        self.estimator = estimator
        self.calls = 0
        self.buffers: dict[str, list[float]] = {c: [] for c in self.phases}
        self._p: dict[str, float] = {c: 1.0 for c in self.phases}

    @property
    def p(self) -> dict[str, float]:
        return dict(self._p)

    def update(self, scores: dict[str, float]) -> bool:
        """Record one step's scores (`C_c^(t)`, or signed `D²` with `debiased`); returns True when
        this call refreshed `p`."""
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

    def block_score(self, buffer: Sequence[float]) -> float:
        """`s_c` of one phase's buffer: its mean (`paper`), or `sqrt(max(0, mean))` of the signed
        `D²` (`debiased`); 0 when empty."""
        mean = float(np.mean(buffer)) if len(buffer) else 0.0
        return float(np.sqrt(max(0.0, mean))) if self.estimator == "debiased" else mean

    def _refresh(self) -> None:
        means = {c: self.block_score(b) for c, b in self.buffers.items()}
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
            "estimator": self.estimator,
            "calls": self.calls,
            "buffers": {c: list(b) for c, b in self.buffers.items()},
            "p": dict(self._p),
        }

    def load_state_dict(self, state: dict) -> None:
        if tuple(state["phases"]) != self.phases:
            raise ValueError(f"keep-weight state has phases {state['phases']}, expected {self.phases}")
        self.refresh_every = int(state["refresh_every"])
        self.p_min = float(state["p_min"])
        estimator = str(state.get("estimator", "paper"))  # states saved before pcm.score: paper
        _check_estimator(estimator)
        self.estimator = estimator
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
    Zero-weight chunks come last: they are taken only once every positive one is, and then
    uniformly among themselves. Returned sorted.
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
    noise = rng.gumbel(size=len(w))
    with np.errstate(divide="ignore"):
        keys = np.log(w) + noise
    order = np.lexsort((-noise, -keys))  # by key; zero weights (all -inf) by their noise
    return np.sort(order[:n])


@functools.lru_cache(maxsize=4096)
def expected_class_draws(sizes: tuple[int, ...], weights: tuple[float, ...], n: int) -> tuple[float, ...]:
    """`E[b_c]`: how many chunks of each class `n` successive draws take, exactly.

    Class `c` has `sizes[c]` chunks of weight `weights[c] > 0`; each draw takes one of the chunks
    left with probability ∝ its weight (as `sample_chunks`), so it lands in class `c` with
    probability ∝ `weights[c] · (sizes[c] − b_c)`, where `b_c` counts the draws so far. Chunks of
    one class are exchangeable, so only that count vector matters: the recursion carries the
    probability of every count vector from one draw to the next (states sharing counts merge;
    at most C(n + K, K) of them for K classes). Cached: a step's trajectories often repeat.
    """
    if not 0 <= n <= sum(sizes):
        raise ValueError(f"cannot draw {n} of {sum(sizes)} chunks")
    if any(w <= 0 for w in weights):
        raise ValueError("class weights must be > 0")
    states: dict[tuple[int, ...], float] = {tuple(0 for _ in sizes): 1.0}
    for _ in range(n):
        after: dict[tuple[int, ...], float] = defaultdict(float)
        for counts, prob in states.items():
            left = [w * (size - b) for w, size, b in zip(weights, sizes, counts, strict=True)]
            total = sum(left)
            for c, mass in enumerate(left):
                if mass > 0:
                    after[counts[:c] + (counts[c] + 1,) + counts[c + 1 :]] += prob * mass / total
        states = after
    return tuple(sum(prob * counts[c] for counts, prob in states.items()) for c in range(len(sizes)))


def inclusion_probabilities(weights: Sequence[float], n: int) -> np.ndarray:
    """`π_k`: the probability that `sample_chunks(weights, n)` keeps chunk `k`, exactly.

    Chunks of equal weight are exchangeable, so `π_k = E[b_c] / N_c` for its weight class `c`
    (`expected_class_draws`). Zero-weight chunks are drawn only after every positive one, then
    uniformly."""
    w = np.asarray(weights, dtype=np.float64)
    n = min(n, len(w))
    positive = w > 0
    n_positive = int(positive.sum())
    pi = np.zeros(len(w))
    if n >= n_positive:  # every positive chunk, and the rest of the draws among the zero ones
        pi[positive] = 1.0
        pi[~positive] = (n - n_positive) / max(1, len(w) - n_positive)
        return pi
    values, sizes = np.unique(w[positive], return_counts=True)
    expected = expected_class_draws(tuple(sizes.tolist()), tuple(values.tolist()), n)
    for value, size, drawn in zip(values, sizes, expected, strict=True):
        pi[w == value] = drawn / size
    return pi


# --- selectors ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrajectoryChunks:
    """What a selector sees of one trajectory: its chunks' phase names, in order."""

    phases: Sequence[str]


@dataclass(frozen=True)
class StepContext:
    """What a selector knows of the whole step: the keep weights, the budget B, and the phases
    present among the step's trajectories (those selection runs on)."""

    p: dict[str, float]
    budget: int
    present: frozenset[str]

    def top_phase(self) -> str | None:
        """The highest-p phase present in the step; ties go to the earlier phase in PHASES."""
        present = [c for c in PHASES if c in self.present]
        return max(present, key=lambda c: self.p[c]) if present else None  # max keeps the first


@dataclass(frozen=True)
class Draw:
    """A selector's answer for one trajectory: draw `n` of its chunks without replacement, with
    probability ∝ `weights` (`sample_chunks`). The kept chunks and each chunk's inclusion
    probability (`reweight: unbiased`) both follow from it, so they cannot disagree."""

    weights: np.ndarray  # [chunks], >= 0
    n: int  # <= chunks

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """Kept chunk indices, sorted. Drawing every chunk takes no randomness."""
        if self.n >= len(self.weights):
            return np.arange(len(self.weights))
        return sample_chunks(self.weights, self.n, rng)

    def inclusion(self) -> np.ndarray:
        """`π_k` of every chunk (`inclusion_probabilities`)."""
        return inclusion_probabilities(self.weights, self.n)


Selector = Callable[[TrajectoryChunks, StepContext], Draw]
SELECTORS: dict[str, Selector] = {}
GRPO_SELECTOR = "full"
"""The selector that back-propagates every chunk: plain GRPO, the baseline PCM is measured against."""


def register_selector(name: str) -> Callable[[Selector], Selector]:
    def wrap(fn: Selector) -> Selector:
        SELECTORS[name] = fn
        return fn

    return wrap


@register_selector(GRPO_SELECTOR)
def select_full(traj: TrajectoryChunks, step: StepContext) -> Draw:
    """Plain GRPO: every chunk takes part."""
    return Draw(np.ones(len(traj.phases)), len(traj.phases))


@register_selector("pcm")
def select_pcm(traj: TrajectoryChunks, step: StepContext) -> Draw:
    """PCM: `min(B, N)` chunks without replacement, P ∝ p of the chunk's phase (§5)."""
    weights = np.array([step.p[c] for c in traj.phases], dtype=np.float64)
    return Draw(weights, min(step.budget, len(traj.phases)))


@register_selector("uniform")
def select_uniform(traj: TrajectoryChunks, step: StepContext) -> Draw:
    """Random masking: `min(B, N)` chunks uniformly, phases ignored."""
    return Draw(np.ones(len(traj.phases)), min(step.budget, len(traj.phases)))


@register_selector("top_phase")
def select_top_phase(traj: TrajectoryChunks, step: StepContext) -> Draw:
    """Full masking: only chunks of the step's single highest-p phase (`StepContext.top_phase`),
    up to B of them, uniformly; a trajectory without that phase keeps nothing."""
    top = step.top_phase()
    weights = np.array([1.0 if c == top else 0.0 for c in traj.phases])
    return Draw(weights, min(step.budget, int(weights.sum())))


def select_chunks(
    selector: str,
    trajectories: Iterable[TrajectoryChunks],
    p: dict[str, float],
    budget: int,
    rng: np.random.Generator,
) -> list[np.ndarray]:
    """Kept chunk indices (within each trajectory, sorted) for every trajectory."""
    return [draw.sample(rng) for draw in selector_draws(selector, trajectories, p, budget)]


def selector_draws(
    selector: str, trajectories: Iterable[TrajectoryChunks], p: dict[str, float], budget: int
) -> list[Draw]:
    """The selector's `Draw` for every trajectory of one step (all of the step's trajectories
    that selection runs on: `top_phase` picks its phase among them)."""
    if selector not in SELECTORS:
        raise ValueError(f"pcm.selector: unknown selector '{selector}' (known: {sorted(SELECTORS)})")
    trajectories = list(trajectories)
    step = StepContext(dict(p), budget, frozenset(c for traj in trajectories for c in traj.phases))
    return [SELECTORS[selector](traj, step) for traj in trajectories]


def unbiased_weights(
    selector: str,
    trajectories: Iterable[TrajectoryChunks],
    p: dict[str, float],
    budget: int,
    kept: Sequence[np.ndarray],
) -> list[np.ndarray]:
    """`reweight: unbiased` — each kept chunk's weight `1 / π_k`, its exact inclusion probability
    under the selector's draw (Horvitz–Thompson, §5), for the chunks `kept` of every trajectory
    (as `select_chunks` returned them for the same arguments).

    Over selection draws, `Σ_kept x_k / π_k` averages to `Σ_k x_k` over every chunk that can be
    kept (`π_k > 0`): for `full`, `pcm` (with p_min > 0) and `uniform` that is the whole
    trajectory; `top_phase` never keeps its other phases. For `full` every weight is 1."""
    draws = selector_draws(selector, trajectories, p, budget)
    out = []
    for draw, chosen in zip(draws, kept, strict=True):
        pi = draw.inclusion()[chosen]
        if (pi <= 0).any():
            raise ValueError("a kept chunk has inclusion probability 0 under its selector")
        out.append(1.0 / pi)
    return out

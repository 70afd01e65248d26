"""What the paper-reproduction comparison is, shared by its runner (bench/reproduce.py) and its
report (bench/reproduce_report.py) so that neither imports the other for it: the config keys in
which methods may differ and the check that enforces it (`check_settings`), a compared `Method`,
and the `Plan` of a run (OUT/plan.json).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pcm_engine.config import RunConfig

# The paper's protocol: every method takes GRPO's rollouts and optimiser settings; only pcm.selector,
# pcm.budget, pcm.reweight and pcm.score differ (ALLOWED_DIFFERENCES, enforced by check_settings).
PRESET = "tabletop_grpo"
SFT_SEED = 0

ALLOWED_DIFFERENCES = ("pcm.selector", "pcm.budget", "pcm.reweight", "pcm.score")
"""The only config keys in which one method may differ from another (spec §6)."""
PER_RUN_KEYS = ("name", "train.seed")
"""Keys that differ between the runs of one method (and so between any two runs)."""


# --- settings: what differs between methods -------------------------------------------------------


class SettingsMismatch(ValueError):
    """Two runs of the comparison differ in a setting other than ALLOWED_DIFFERENCES."""


def flatten(data: dict, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists stay values."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{dotted}."))
        else:
            out[dotted] = value
    return out


def _as_dict(config: RunConfig | dict) -> dict:
    return config.to_dict() if hasattr(config, "to_dict") else config


def check_settings(configs: dict[tuple[str, int], RunConfig | dict]) -> dict[str, dict[str, Any]]:
    """Per method, its values of the allowed keys that differ between methods; raises
    SettingsMismatch naming every other key that differs between any two runs, and any allowed
    key that differs between two seeds of one method.

    `configs` maps (method name, seed) to the config that run used (or will use)."""
    flat = {run: flatten(_as_dict(config)) for run, config in configs.items()}
    keys = sorted(set().union(*(f.keys() for f in flat.values()))) if flat else []

    def value(run, key):
        return json.dumps(flat[run].get(key, "<missing>"), sort_keys=True)

    differing = [k for k in keys if len({value(run, k) for run in flat}) > 1]
    problems = []
    for key in differing:
        if key in PER_RUN_KEYS:
            continue
        if key not in ALLOWED_DIFFERENCES:
            seen = {f"{m}/seed{s}": flat[(m, s)].get(key, "<missing>") for m, s in sorted(flat)}
            problems.append(f"{key}: {seen}")
            continue
        for method in sorted({m for m, _ in flat}):
            per_seed = {value(run, key) for run in flat if run[0] == method}
            if len(per_seed) > 1:
                problems.append(f"{key} differs between seeds of {method}: {sorted(per_seed)}")
    if problems:
        raise SettingsMismatch(
            "the methods must differ only in " + ", ".join(ALLOWED_DIFFERENCES) + "; these settings "
            "differ too:\n  " + "\n  ".join(problems)
        )
    shown = [k for k in ALLOWED_DIFFERENCES if k in differing]
    methods: dict[str, dict[str, Any]] = {}
    for (method, _), f in flat.items():  # in the order given (the plan's priority order)
        methods.setdefault(method, {k: f.get(k) for k in shown})
    return methods


# --- what is compared -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Method:
    """One compared method: `overrides` of the preset (only ALLOWED_DIFFERENCES), and its budget
    (None when it keeps every chunk)."""

    name: str
    label: str
    overrides: dict
    budget: int | None = None

    def __post_init__(self) -> None:
        extra = set(self.overrides) - set(ALLOWED_DIFFERENCES)
        if extra:
            raise ValueError(f"method {self.name} overrides {sorted(extra)}; only {ALLOWED_DIFFERENCES} may")


@dataclass
class Plan:
    """Everything that decides what runs; written to OUT/plan.json so --report-only can rebuild."""

    size: str
    steps: int
    seeds: int
    workers: int
    methods: list[str]
    budgets: tuple[int, int, int]
    threshold: float | None
    preset: str = PRESET
    sft_seed: int = SFT_SEED
    sft_policy: str | None = None
    sessions: list[dict] = field(default_factory=list)

    def save(self, out: Path) -> None:
        (out / "plan.json").write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, out: Path) -> Plan:
        data = json.loads((out / "plan.json").read_text())
        data["budgets"] = tuple(data["budgets"])
        return cls(**data)

"""Domain errors of the run store. They say what went wrong in the store's words; the API maps
each to an HTTP answer (backend/errors.py), and nothing here knows about HTTP."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from backend.store.redact import masked, redact


@dataclass(frozen=True)
class Problem:
    """One reason a launch request is refused. `where` is the part of the request the caller
    wrote it in: `("overrides", "pcm.budget")`, `("config", "pcm", "budget")`, `("preset",)`;
    `field` is the dotted config field at fault (default: `where` without its first part)."""

    where: tuple[str, ...]
    message: str
    field: str | None = None

    def dotted(self) -> str:
        return self.field if self.field is not None else ".".join(self.where[1:] or self.where)


class ConfigProblems(Exception):
    """A run cannot be launched from this preset, config or overrides."""

    def __init__(self, problems: Sequence[Problem]):
        super().__init__("; ".join(f"{p.dotted()}: {p.message}" for p in problems))
        self.problems = list(problems)


class BrokerUnavailable(Exception):
    """The run was saved (and marked failed) but its task message could not be sent. The message
    names the broker with its password masked: it is answered to callers and stored on the run."""

    def __init__(self, run_id: int, broker_url: str, reason: Exception):
        self.reason = redact(str(reason), broker_url)
        super().__init__(
            f"run {run_id} was saved but could not be queued: the broker at {masked(broker_url)} is "
            f"unreachable ({self.reason})"
        )
        self.run_id = run_id

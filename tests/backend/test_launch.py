"""Launch errors are located from ConfigError's `(field, message)` pairs, never by reading the
message back."""

from __future__ import annotations

import pytest

from backend.store import launch
from backend.store.errors import ConfigProblems, Problem
from pcm_engine.config import WHOLE_CONFIG, ConfigError, RunConfig

PAIRS = [
    ("pcm.budget", "must be at least 1\npolicy.lora.rank: not a field of this error"),
    (WHOLE_CONFIG, "train.steps (3) is fewer than eval.every"),
    ("policy.lora.rank", "too big"),
]


@pytest.fixture
def refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """RunConfig.from_dict refuses every config with the hand-made PAIRS."""

    def refuse(*_args: object) -> RunConfig:
        raise ConfigError(PAIRS)

    monkeypatch.setattr(RunConfig, "from_dict", refuse)


def problems(source: launch.Source, overrides: dict) -> list[Problem]:
    with pytest.raises(ConfigProblems) as caught:
        launch.build_config({}, overrides, None, source=source)
    return caught.value.problems


@pytest.mark.usefixtures("refused")
def test_overrides_take_their_errors_and_the_rest_points_into_the_config() -> None:
    assert problems("config", {"pcm.budget": 0, "train.steps": 3}) == [
        Problem(("overrides", "pcm.budget"), PAIRS[0][1], "pcm.budget"),
        Problem(("overrides", "train.steps"), PAIRS[1][1], "train.steps"),  # named in the message
        Problem(("config", "policy", "lora", "rank"), "too big", "policy.lora.rank"),
    ]


@pytest.mark.usefixtures("refused")
def test_without_overrides_a_preset_takes_every_error() -> None:
    assert problems("preset", {}) == [
        Problem(("preset",), f"pcm.budget: {PAIRS[0][1]}", "pcm.budget"),
        Problem(("preset",), PAIRS[1][1], "preset"),
        Problem(("preset",), "policy.lora.rank: too big", "policy.lora.rank"),
    ]


def test_an_unknown_preset_is_a_problem_of_the_preset() -> None:
    with pytest.raises(ConfigProblems) as caught:
        launch.load_preset("../configs/tabletop_pcm")
    [problem] = caught.value.problems
    assert problem.where == ("preset",) and problem.dotted() == "preset"
    assert "tabletop_pcm" in problem.message

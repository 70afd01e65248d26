"""RunConfig's dotted keys: the nearest valid key to a typo, unknown keys named in launch errors,
and `key=value` config filters parsed as the field's type."""

from __future__ import annotations

import pytest

from backend.store import launch
from backend.store.errors import ConfigProblems, Problem
from pcm_engine.config_keys import (
    ConfigFilterError,
    all_keys,
    leaf_types,
    nearest_key,
    parse_config_filter,
    unknown_key_message,
)


def test_the_keys_are_every_leaf_and_section_of_the_config() -> None:
    assert {"pcm.budget", "pcm.phases.active", "grpo.lr", "env.image_size", "env.tasks"} <= set(leaf_types())
    assert {"pcm", "pcm.phases", "env"} <= set(all_keys()) - set(leaf_types())
    assert all_keys() is all_keys()  # computed once


@pytest.mark.parametrize(
    ("typo", "nearest"),
    [
        ("pcm.budgt", "pcm.budget"),
        ("pcmx.budget", "pcm.budget"),
        ("grpo.group_sise", "grpo.group_size"),
        ("train.step", "train.steps"),
        ("zzz", None),
    ],
)
def test_the_nearest_key_to_a_typo(typo: str, nearest: str | None) -> None:
    assert nearest_key(typo) == nearest
    message = unknown_key_message(typo)
    assert message.startswith(f"unknown key {typo}")
    assert (f"did you mean {nearest}?" in message) == (nearest is not None)


def problems(base: dict, overrides: dict) -> list[Problem]:
    with pytest.raises(ConfigProblems) as caught:
        launch.build_config(base, overrides, None, source="config")
    return caught.value.problems


def test_each_problem_is_located_at_the_key_that_caused_it() -> None:
    found = problems({}, {"pcm.budgt": 2, "pcm.budget": 0, "train.steps": 5})
    assert set(found) == {
        Problem(("overrides", "pcm.budgt"), "unknown key pcm.budgt — did you mean pcm.budget?", "pcm.budgt"),
        Problem(("overrides", "pcm.budget"), "Input should be greater than or equal to 1", "pcm.budget"),
    }


def test_an_unknown_key_inside_a_section_value_or_a_whole_config_is_named_in_full() -> None:
    [in_section] = problems({}, {"pcm": {"budgt": 2}})
    assert in_section.where == ("overrides", "pcm")
    assert in_section.message == "unknown key pcm.budgt — did you mean pcm.budget?"
    [misspelt_section] = problems({}, {"pcmx.budget": 2})
    assert misspelt_section.message == "unknown key pcmx.budget — did you mean pcm.budget?"
    [in_config] = problems({"env": {"image_sise": 32}}, {})
    assert in_config.where == ("config", "env", "image_sise")
    assert in_config.message == "unknown key env.image_sise — did you mean env.image_size?"


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("pcm.budget=2", ("pcm.budget", 2)),
        ("pcm.selector=pcm", ("pcm.selector", "pcm")),
        (" grpo.lr = 1e-4", ("grpo.lr", 0.0001)),
        ("grpo.temperature=1", ("grpo.temperature", 1.0)),
        ("grpo.dynamic_sampling=true", ("grpo.dynamic_sampling", True)),
        ("policy.pretrained=null", ("policy.pretrained", None)),
        ("name=a=b", ("name", "a=b")),
    ],
)
def test_a_config_filter_is_parsed_as_the_fields_type(text: str, parsed: tuple) -> None:
    key, value = parse_config_filter(text)
    assert (key, value) == parsed and type(value) is type(parsed[1])


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        ("pcm.budgt=2", "pcm.budgt", "did you mean pcm.budget?"),
        ("pcm.phases=1", "pcm.phases", "is a section"),
        ("grpo.betas=0.9", "grpo.betas", "valid tuple"),
        ("pcm.budget=[1, 2]", "pcm.budget", "one number, word"),
        ("pcm.budget=two", "pcm.budget", "valid integer"),
        ("=2", "=2", "expected dotted.key=value"),
    ],
)
def test_a_bad_config_filter_names_its_key(text: str, key: str, words: str) -> None:
    with pytest.raises(ConfigFilterError) as caught:
        parse_config_filter(text)
    assert caught.value.key == key and words in str(caught.value)


def test_only_the_first_unknown_keys_of_a_request_get_a_suggestion() -> None:
    """difflib costs ~1 ms a key: a flood of unknown keys is named without looking each one up."""
    flood = {f"pcm.budgt{i}": 1 for i in range(launch.UnknownKeys.MAX_SUGGESTED + 10)}
    messages = [p.message for p in problems({}, flood)]
    assert len(messages) == len(flood)
    suggested = [m for m in messages if "did you mean pcm.budget?" in m]
    assert len(suggested) == launch.UnknownKeys.MAX_SUGGESTED
    assert all(m.startswith("unknown key pcm.budgt") for m in messages)

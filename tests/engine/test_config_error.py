"""`ConfigError` carries `(field, message)` pairs; its text lists them for people."""

from __future__ import annotations

import pytest

from pcm_engine.config import WHOLE_CONFIG, ConfigError, RunConfig, apply_override, parse_set_arguments


def test_each_invalid_field_is_a_pair_and_the_text_lists_them_one_a_line() -> None:
    with pytest.raises(ConfigError) as caught:
        RunConfig.from_dict({}, {"pcm.budget": 0, "train.steps": -1})
    err = caught.value
    assert [field for field, _ in err.problems] == err.fields == ["pcm.budget", "train.steps"]
    assert all("greater than or equal" in message for _, message in err.problems)
    assert str(err).splitlines() == ["invalid run config:"] + [f"  {f}: {m}" for f, m in err.problems]


def test_a_rule_across_fields_is_a_pair_for_the_whole_config() -> None:
    with pytest.raises(ConfigError) as caught:
        RunConfig.from_dict({}, {"grpo.mini_batches": 1000})
    [(field, message)] = caught.value.problems
    assert field == WHOLE_CONFIG and "grpo.mini_batches (1000) exceeds" in message


def test_hand_made_errors_keep_their_pairs_whatever_the_messages_hold() -> None:
    awkward = ("pcm.budget", "two lines:\nfield: lookalike")
    err = ConfigError([awkward, ("env.tasks", "empty")])
    assert err.problems == [awkward, ("env.tasks", "empty")]
    assert str(err) == "invalid run config:\n  pcm.budget: two lines:\nfield: lookalike\n  env.tasks: empty"
    assert str(ConfigError([("run_dir", "taken")])) == "run_dir: taken"  # one problem, one line


def test_override_and_set_syntax_errors_name_what_was_written() -> None:
    with pytest.raises(ConfigError) as caught:
        apply_override({"pcm": {"budget": 2}}, "pcm.budget.x", 1)
    assert caught.value.problems == [("pcm.budget.x", "'budget' is not a section")]
    with pytest.raises(ConfigError) as caught:
        parse_set_arguments(["pcm.budget"])
    assert caught.value.problems == [("--set", "expects key=value, got 'pcm.budget'")]


def test_the_cli_names_an_unknown_key_with_the_nearest_valid_one(capsys) -> None:
    from pcm_engine.cli import main

    code = main(["train", "--config", "tabletop_pcm", "--set", "pcm.budgt=2", "--run-dir", "/nonexistent/x"])
    assert code == 2
    assert "unknown key pcm.budgt — did you mean pcm.budget?" in capsys.readouterr().err

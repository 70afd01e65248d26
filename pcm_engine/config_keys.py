"""The dotted keys of RunConfig (`pcm.budget`), indexed once: what an override or a config filter
may name, the type of each leaf, and the nearest valid key to a misspelt one."""

from __future__ import annotations

import difflib
import typing
from functools import cache
from typing import Any

from pydantic import BaseModel, TypeAdapter

from pcm_engine.config import ConfigError, RunConfig

SUGGESTION_CUTOFF = 0.6  # difflib ratio below which a key is too far off to suggest


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The config sections an annotation holds: itself, or each variant of a union (env)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found.extend(_models_in(arg))
    return found


@cache
def leaf_types() -> dict[str, Any]:
    """Every leaf field as `{dotted key: annotation}`; a key in several variants of a union
    section (env.image_size) takes the first variant's type."""
    leaves: dict[str, Any] = {}
    pending: list[tuple[str, type[BaseModel]]] = [("", RunConfig)]
    while pending:
        prefix, model = pending.pop(0)
        for name, field in model.model_fields.items():
            dotted = f"{prefix}{name}"
            sections = _models_in(field.annotation)
            if sections:
                pending.extend((f"{dotted}.", section) for section in sections)
            else:
                leaves.setdefault(dotted, field.annotation)
    return leaves


@cache
def all_keys() -> tuple[str, ...]:
    """Leaves and the sections above them (`pcm`, `pcm.phases`): every key an override may name."""
    keys = dict.fromkeys(leaf_types())
    for leaf in leaf_types():
        parts = leaf.split(".")
        keys.update(dict.fromkeys(".".join(parts[:i]) for i in range(1, len(parts))))
    return tuple(sorted(keys))


def nearest_key(key: str) -> str | None:
    """The valid key closest to `key` (difflib's ratio), or None when none is close."""
    matches = difflib.get_close_matches(key, all_keys(), n=1, cutoff=SUGGESTION_CUTOFF)
    return matches[0] if matches else None


EXTRA_FORBIDDEN = "Extra inputs are not permitted"  # pydantic's message for an unknown key


def named_unknown_keys(err: ConfigError, most: int = 50) -> ConfigError:
    """`err` with pydantic's words for an unknown key replaced by `unknown_key_message` (the
    nearest valid key named), for the first `most` such keys (~1 ms each), as the CLI prints it."""
    problems, named = [], 0
    for field, message in err.problems:
        if message == EXTRA_FORBIDDEN and named < most:
            named += 1
            message = unknown_key_message(field)
        problems.append((field, message))
    return ConfigError(problems)


def unknown_key_message(key: str) -> str:
    """`unknown key pcm.budgt — did you mean pcm.budget?`"""
    nearest = nearest_key(key)
    return f"unknown key {key}" + (f" — did you mean {nearest}?" if nearest else "")


class ConfigFilterError(ValueError):
    """A `key=value` config filter that cannot be applied; `key` is what it names."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


SCALARS = (str, int, float, bool, type(None))


def parse_config_filter(text: str) -> tuple[str, Any]:
    """`pcm.budget=2` -> `("pcm.budget", 2)`. The value is read as YAML (so `2` is a number,
    `pcm` a string, `null` None) and then as the field's own type (so `2` on a float field is
    2.0). Raises ConfigFilterError for a missing `=`, an unknown key, a section or list field,
    or a value the field cannot hold."""
    import yaml

    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigFilterError(key or text, f"config filter '{text}': expected dotted.key=value")
    annotation = leaf_types().get(key)
    if annotation is None:
        if key in all_keys():
            raise ConfigFilterError(key, f"{key} is a section: filter by one of its fields")
        raise ConfigFilterError(key, unknown_key_message(key))
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw.strip()
    if not isinstance(value, SCALARS):
        raise ConfigFilterError(key, f"{key}: a filter value is one number, word, true/false or null")
    try:
        value = TypeAdapter(annotation).validate_python(value)
    except ValueError as err:
        reason = err.errors()[0]["msg"] if hasattr(err, "errors") else str(err)
        raise ConfigFilterError(key, f"{key}={raw.strip()}: {reason}") from None
    if not isinstance(value, SCALARS):
        raise ConfigFilterError(key, f"{key} holds a list: filter by a field with one value")
    return key, value

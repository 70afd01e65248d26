"""SQL conditions the runs list filters by that reach inside JSON columns: a config value
(`pcm.budget=2`) and a tag. JSON is queried differently by PostgreSQL (jsonb operators) and SQLite
(json_extract / json_each), so each condition takes the dialect's name."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import ColumnElement, cast, column, exists, func, literal, select
from sqlalchemy.dialects.postgresql import JSONB

from backend.store.models import Run


def config_equals(dialect: str, key: str, value: Any) -> ColumnElement[bool]:
    """The run's stored config holds `value` at the dotted `key`; `value` is a JSON scalar (as
    `pcm_engine.config_keys.parse_config_filter` returns it), and null also matches a key the config lacks."""
    parts = key.split(".")
    if dialect == "postgresql":
        stored = Run.config[tuple(parts)]  # config #> '{pcm,budget}'
        if value is None:
            return func.coalesce(func.json_typeof(stored), "null") == "null"
        # jsonb compares numbers by value (2 = 2.0) and strings/booleans exactly
        return cast(stored, JSONB) == cast(literal(json.dumps(value)), JSONB)
    extracted = func.json_extract(Run.config, "$." + ".".join(f'"{p}"' for p in parts))
    if value is None:
        return extracted.is_(None)
    return extracted == (int(value) if isinstance(value, bool) else value)  # SQLite: true is 1


def has_tag(dialect: str, tag: str) -> ColumnElement[bool]:
    """The run's tags list contains `tag` exactly."""
    if dialect == "postgresql":
        return cast(Run.tags, JSONB).op("@>")(cast(literal(json.dumps([tag])), JSONB))
    items = func.json_each(Run.tags).table_valued("value").alias("tag_items")
    return exists(select(literal(1)).select_from(items).where(column("value") == tag))

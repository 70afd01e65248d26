"""Idempotent multi-row upserts (INSERT ... ON CONFLICT DO UPDATE) on PostgreSQL and SQLite.

A resumed run replays the steps after its last checkpoint; writing them again must overwrite
the earlier rows, never duplicate them or fail on the primary key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Session

_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def upsert(
    session: Session,
    model: type[DeclarativeBase],
    rows: Sequence[dict[str, Any]],
    *,
    keys: Sequence[str],
) -> None:
    """Insert `rows` (one executemany); a row whose `keys` already exist gets its other columns
    overwritten with the new values."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    try:
        insert = _INSERTS[dialect]
    except KeyError:
        raise NotImplementedError(f"upsert: no ON CONFLICT support for the '{dialect}' dialect") from None
    stmt = insert(model)
    columns = [c for c in rows[0] if c not in keys]
    if columns:
        stmt = stmt.on_conflict_do_update(
            index_elements=list(keys), set_={c: stmt.excluded[c] for c in columns}
        )
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=list(keys))
    session.execute(stmt, list(rows))

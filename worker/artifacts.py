"""Artifact rows for a run's checkpoint and exported-policy folders: size and a content hash."""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from backend.store.models import Artifact, utcnow
from worker.upsert import upsert

CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def folder_digest(folder: Path) -> tuple[int, str]:
    """(total bytes, sha256 of a manifest of `relative path, size, sha256` lines, sorted), so
    two folders hash equal exactly when they hold the same files with the same contents."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    lines, total = [], 0
    for path in files:
        size = path.stat().st_size
        total += size
        lines.append(f"{path.relative_to(folder).as_posix()}\t{size}\t{file_sha256(path)}\n")
    return total, hashlib.sha256("".join(lines).encode()).hexdigest()


def register_artifact(session: Session, run_id: int, kind: str, step: int, folder: Path) -> None:
    """Create or refresh the Artifact row of `folder` (a resumed run rewrites a step's checkpoint)."""
    size, sha = folder_digest(folder)
    row = {
        "run_id": run_id,
        "path": str(folder.resolve()),
        "kind": kind,
        "step": step,
        "size_bytes": size,
        "sha256": sha,
        "created_at": utcnow(),
    }
    upsert(session, Artifact, [row], keys=("run_id", "path"))


def prune_missing(session: Session, run_id: int, kind: str = "checkpoint") -> list[str]:
    """Delete the rows of folders that no longer exist (checkpoints removed by keep_checkpoints)."""
    paths = session.scalars(select(Artifact.path).where(Artifact.run_id == run_id, Artifact.kind == kind))
    gone = [p for p in paths if not Path(p).exists()]
    if gone:
        session.execute(delete(Artifact).where(Artifact.run_id == run_id, Artifact.path.in_(gone)))
    return gone

"""The run database (SQLAlchemy 2). The API reads and writes it; workers write runs, metrics,
chunk records, artifacts, events and heart-beats. Alembic migrations in backend/store/migrations
create it; `backend.store.db.migrate` applies them on start."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

RUN_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "stale")
ACTIVE_STATUSES = ("queued", "running")
FINAL_STATUSES = ("succeeded", "failed", "cancelled")
VISIBILITIES = ("private", "lab", "public")
ROLES = ("owner", "member", "viewer")
TICKET_PURPOSES = ("events", "download")


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes (stored in UTC); make them aware so they compare and
    serialise like PostgreSQL's."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


# Integer primary keys that autoincrement on SQLite (INTEGER) and PostgreSQL (BIGINT).
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, datetime: DateTime(timezone=True)}


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(256))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    memberships: Mapped[list[Membership]] = relationship(back_populates="user", cascade="all, delete")


class Lab(Base):
    __tablename__ = "labs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    memberships: Mapped[list[Membership]] = relationship(back_populates="lab", cascade="all, delete")


class Membership(Base):
    __tablename__ = "memberships"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    lab_id: Mapped[int] = mapped_column(ForeignKey("labs.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))  # one of ROLES
    user: Mapped[User] = relationship(back_populates="memberships")
    lab: Mapped[Lab] = relationship(back_populates="memberships")


class ApiToken(Base):
    """A bearer token. Only its SHA-256 is stored; the secret is shown once, at creation."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # first characters, to tell tokens apart
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class Run(Base):
    __tablename__ = "runs"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    lab_id: Mapped[int | None] = mapped_column(ForeignKey("labs.id"), index=True)
    visibility: Mapped[str] = mapped_column(String(16), default="lab")
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    preset: Mapped[str | None] = mapped_column(String(200))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)  # the validated RunConfig
    config_hash: Mapped[str] = mapped_column(String(32), index=True)
    # denormalised from the config, for filtering and the runs table
    selector: Mapped[str] = mapped_column(String(32), index=True)
    env_name: Mapped[str] = mapped_column(String(64), index=True)
    steps_total: Mapped[int] = mapped_column(Integer)
    steps_done: Mapped[int] = mapped_column(Integer, default=0)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # latest headline numbers
    environment: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # git SHA, packages, host
    run_dir: Mapped[str | None] = mapped_column(String(1024))
    worker: Mapped[str | None] = mapped_column(String(256))
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # set by POST /api/runs/{id}/media/requests, cleared by the worker when it records the episodes
    # of the step it was training (backend/store/media_requests.py; migration 0007)
    media_requested_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    traceback: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    # lineage (migration 0003): the run this one was cloned from, and the SFT start it used (its
    # hash, trained-at, success) with the start's progress while it was made (worker/start_progress.py)
    cloned_from_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("runs.id", ondelete="SET NULL", name="fk_runs_cloned_from_id_runs")
    )
    start: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # a distributed run's ranks (dist.world_size > 1), written by the worker that starts them:
    # {"endpoint": "host:port", "world_size": W, "strategy": "ddp",
    #  "nodes": [{"worker": name, "node_rank": 0, "ranks": [0, 1]}, ...]}; None for one process
    placement: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")  # PATCH /api/runs/{id}
    notes: Mapped[str] = mapped_column(Text, default="", server_default="")
    sweep_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("sweeps.id", ondelete="SET NULL", name="fk_runs_sweep_id_sweeps"), index=True
    )
    owner: Mapped[User] = relationship()
    lab: Mapped[Lab | None] = relationship()
    # Not stored: set by lifecycle.note_waiting_for_worker on the runs an answer shows.
    waiting_for_worker_since = None
    # Not stored: set by GET /api/runs/{id} (backend/store/history.py).
    events = ()
    queue = None
    # Not stored: set by the runs routes' RunDetail answers (backend.access.can_change).
    may_change = False


class Sweep(Base):
    """A grid of runs: one run per grid point x seed (backend/store/sweeps.py). It keeps what its
    runs were made from, so more seeds can be added later; lab and visibility are its runs'."""

    __tablename__ = "sweeps"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    lab_id: Mapped[int | None] = mapped_column(ForeignKey("labs.id"), index=True)
    visibility: Mapped[str] = mapped_column(String(16), default="lab")
    preset: Mapped[str | None] = mapped_column(String(200))
    base: Mapped[dict[str, Any]] = mapped_column(JSON)  # the preset's or caller's config, as given
    overrides: Mapped[dict[str, Any]] = mapped_column(JSON)  # applied to every run
    grid: Mapped[dict[str, Any]] = mapped_column(JSON)  # dotted key -> list of values
    seeds: Mapped[list[int]] = mapped_column(JSON)  # train.seed of each run of every arm
    # the policy every run starts from (migration 0010): as the creator named it ({run: ID} or
    # {artifact: ID}), and the folder the server found for it (never served)
    start_from: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    start_policy: Mapped[str | None] = mapped_column(String(1024))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    owner: Mapped[User] = relationship()


class Metric(Base):
    """One value of one metric at one step. Unique per (run, step, name): a resumed step
    overwrites its earlier row (upsert), never duplicates it."""

    __tablename__ = "metrics"
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[float] = mapped_column(Float)
    wall_time: Mapped[float] = mapped_column(Float)  # seconds since the epoch when logged


class ChunkMask(Base):
    """Which chunk of a recorded trajectory was back-propagated (the heat map)."""

    __tablename__ = "chunk_masks"
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    trajectory: Mapped[int] = mapped_column(Integer, primary_key=True)
    chunk: Mapped[int] = mapped_column(Integer, primary_key=True)
    phase: Mapped[str] = mapped_column(String(32))
    kept: Mapped[bool] = mapped_column(Boolean)
    success: Mapped[bool] = mapped_column(Boolean)
    group: Mapped[int] = mapped_column(Integer)


class Artifact(Base):
    """A checkpoint or exported policy folder of a run, with its size and content hash."""

    __tablename__ = "artifacts"
    __table_args__ = (UniqueConstraint("run_id", "path"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))  # "checkpoint" | "policy"
    step: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(1024))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RunMedia(Base):
    """One recorded episode of a run (`pcm_engine.media`): a GIF in the run folder, `path`
    relative to it, with the episode's chunks (`[{"chunk", "phase", "kept"}]`) and outcome."""

    __tablename__ = "run_media"
    __table_args__ = (UniqueConstraint("run_id", "path"), Index("ix_run_media_run_id_step", "run_id", "step"))
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    task: Mapped[int] = mapped_column(Integer)
    trajectory: Mapped[int] = mapped_column(Integer)
    success: Mapped[bool] = mapped_column(Boolean)
    instruction: Mapped[str] = mapped_column(String(1024), default="")
    path: Mapped[str] = mapped_column(String(1024))
    content_type: Mapped[str] = mapped_column(String(64))
    frame_ms: Mapped[int] = mapped_column(Integer)  # chunk k shows from k * frame_ms
    chunks: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RunEvent(Base):
    """The live stream's source: an append-only log per run. `id` is the SSE event id, so a
    client that reconnects with Last-Event-ID gets exactly what it missed."""

    __tablename__ = "run_events"
    __table_args__ = (Index("ix_run_events_run_id_id", "run_id", "id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # "metrics" | "status" | "chunks"
    step: Mapped[int | None] = mapped_column(Integer)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RunNode(Base):
    """A seat of a multi-node run (`dist.nodes` > 1) for one attempt: node 0 is the worker that
    claimed the run (it holds no seat); every other node rank is a seat that another worker takes
    (worker/nodes.py). States: open -> joined -> done | failed, joined -> leaving (its worker is
    shutting down: the run checkpoints and is queued again), open -> closed (the attempt ended
    before a worker took it). Migration 0009."""

    __tablename__ = "run_nodes"
    __table_args__ = (UniqueConstraint("run_id", "attempt", "node_rank", name="uq_run_nodes_seat"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    node_rank: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default="open")
    worker: Mapped[str | None] = mapped_column(String(256))
    heartbeat_at: Mapped[datetime | None]
    exit_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)


class WorkerRecord(Base):
    __tablename__ = "workers"
    name: Mapped[str] = mapped_column(String(256), primary_key=True)  # celery hostname
    hostname: Mapped[str] = mapped_column(String(256))
    pid: Mapped[int] = mapped_column(Integer)
    devices: Mapped[str] = mapped_column(String(256), default="cpu")
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)
    current_run_id: Mapped[int | None] = mapped_column(BigId)


class ShareLink(Base):
    """A read-only link to one run or one sweep; only the token's SHA-256 is stored."""

    __tablename__ = "share_links"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # exactly one of the two: a link opens one run, or a whole sweep (and every run of it)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    sweep_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("sweeps.id", ondelete="CASCADE", name="fk_share_links_sweep_id_sweeps"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class Ticket(Base):
    """A single-use credential for one request that cannot send headers (an EventSource, a
    download link): one purpose, one run, a lifetime of seconds. Only its SHA-256 is stored. It
    carries the grant it was made under (the login/API token or the share link), so revoking
    that revokes what the ticket opened."""

    __tablename__ = "tickets"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    purpose: Mapped[str] = mapped_column(String(16))  # one of TICKET_PURPOSES
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    api_token_id: Mapped[int | None] = mapped_column(ForeignKey("api_tokens.id", ondelete="CASCADE"))
    share_link_id: Mapped[int | None] = mapped_column(ForeignKey("share_links.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    used_at: Mapped[datetime | None]

"""One `Settings` object, read from `PCM_*` environment variables or a `.env` file.

The embedded profile needs none of them: SQLite and a file-system broker under `data_dir`.
The lab profile sets `PCM_DATABASE_URL` (PostgreSQL) and `PCM_BROKER_URL` (Redis).
"""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PCM_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path("pcm-data"), description="Runs, checkpoints, SQLite file, broker spool.")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default: SQLite in data_dir.")
    broker_url: str | None = Field(
        None, description="Celery broker; default: kombu's file-system transport in data_dir."
    )
    queue: str = Field("runs", description="Celery queue the API sends runs to and workers consume.")
    advertise_host: str = Field(
        "127.0.0.1",
        description="The address other workers reach this worker at: a multi-node run (dist.nodes > 1) "
        "that this worker leads has its rendezvous here. Set it on every GPU machine of a lab.",
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    public_url: str | None = Field(
        None,
        pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$",
        description="The dashboard's address as others reach it (e.g. https://pcm.lab.example): "
        "share links are built from it. Default: the address each request came to.",
    )
    auth: Literal["auto", "single_user", "required"] = Field(
        "auto",
        description="single_user: every request acts as the local admin (loopback only); "
        "required: bearer tokens; auto: single_user on loopback, required otherwise.",
    )
    admin_username: str = "admin"
    admin_password: str | None = Field(None, description="Creates/updates the admin on start.")
    heartbeat_s: float = Field(5.0, gt=0, description="Worker heartbeat period.")
    stale_after_s: float = Field(60.0, gt=0, description="A running run with an older heartbeat is stale.")
    queue_wait_warning_s: float = Field(
        300.0,
        ge=0,
        description="A run queued this long with no worker claiming it is shown as waiting for a "
        "worker, and may be requeued.",
    )
    broker_poll_s: float = Field(0.5, gt=0, description="Polling period of the serverless broker.")
    sse_poll_s: float = Field(0.5, gt=0, description="How often the event stream looks for new rows.")
    max_series_points: int = Field(2000, ge=10, description="Server-side downsampling limit per series.")
    # What one API request may ask of the server (docs/architecture.md, "Security posture").
    max_body_bytes: int = Field(1 << 20, ge=1024, description="Largest request body; larger is a 413.")
    max_overrides: int = Field(100, ge=1, description="Most dotted overrides in one launch or clone.")
    max_config_keys: int = Field(
        2000, ge=100, description="Most keys, counted at every depth, in a launch's config and overrides."
    )
    max_policy_parameters: int = Field(
        2_000_000_000, ge=1, description="Largest policy a launch may build (pcm_engine.sizing)."
    )
    max_rollouts: int = Field(
        5_000_000,
        ge=1,
        description="Most rollouts one run may make: group_size x groups_per_step x train.steps.",
    )
    max_torch_threads: int = Field(64, ge=1, description="Largest train.torch_threads a launch may ask.")
    max_image_size: int = Field(256, ge=16, description="Largest env.image_size a launch may ask.")
    # --- credentials and logins (docs/architecture.md, "Tokens, tickets and logins") ---
    token_ttl_hours: float = Field(
        168.0, gt=0, description="A login or API token stops working this long after it was made."
    )
    ticket_ttl_s: float = Field(
        60.0, gt=0, le=3600, description="Lifetime of a single-use ticket (a live stream or a download)."
    )
    login_free_failures_per_user: int = Field(
        5, ge=1, description="Failed logins for one username before it must wait (login_backoff_s)."
    )
    login_free_failures_per_address: int = Field(
        30, ge=1, description="Failed logins from one address before it must wait."
    )
    login_backoff_s: float = Field(
        1.0, gt=0, description="The first wait after the free failures; it doubles with each further one."
    )
    login_backoff_max_s: float = Field(
        900.0, gt=0, description="The longest wait; failures are forgotten this long after a wait ends."
    )
    password_hash_threads: int = Field(
        2, ge=1, description="Password checks hashed at once (scrypt: ~16 MiB and one core each)."
    )
    password_hash_queue: int = Field(
        16, ge=0, description="Logins that may wait for a hashing thread; beyond that: 503."
    )

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'pcm.db').resolve()}"

    @property
    def resolved_broker_url(self) -> str:
        return self.broker_url or "filesystem://"

    @property
    def embedded(self) -> bool:
        return self.resolved_broker_url.startswith("filesystem")

    def public_base(self, request_base: str) -> str:
        """The base URL of links handed to others (no trailing slash): `public_url`, else the
        base URL of the request that asks for the link."""
        return (self.public_url or request_base).rstrip("/")

    @property
    def runs_dir(self) -> Path:
        return self.data_dir / "runs"

    @property
    def sft_cache_dir(self) -> Path:
        return self.data_dir / "sft-starts"

    @property
    def broker_dir(self) -> Path:
        return self.data_dir / "broker"

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def token_ttl(self) -> timedelta:
        return timedelta(hours=self.token_ttl_hours)

    @property
    def ticket_ttl(self) -> timedelta:
        return timedelta(seconds=self.ticket_ttl_s)

    @property
    def single_user(self) -> bool:
        if self.auth == "auto":
            return self.loopback
        return self.auth == "single_user"

    def check_safe_to_serve(self) -> None:
        """Refuse to expose an unauthenticated API beyond loopback."""
        if self.single_user and not self.loopback:
            raise SystemExit(
                f"refusing to serve on {self.host} without authentication: set PCM_AUTH=required "
                "(and PCM_ADMIN_PASSWORD for the first login), or bind to 127.0.0.1"
            )


@lru_cache
def get_settings() -> Settings:
    return Settings()

"""Request and response bodies of the REST API (pydantic). ORM rows convert with
`Model.model_validate(row)`; datetimes always come out timezone-aware (UTC)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from backend.models import as_utc
from pcm_engine.metrics import ChunkRecord

UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]
# Ids and steps as the database stores them (INTEGER / BIGINT): anything larger cannot exist,
# and bounding it keeps an absurd id a clean 404/422 instead of a driver overflow.
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
Visibility = Literal["private", "lab", "public"]
Role = Literal["owner", "member", "viewer"]
Status = Literal["queued", "running", "succeeded", "failed", "cancelled", "stale"]
Points = list[tuple[int, float]]
"""A series: `[[step, value], ...]` in step order."""


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- runs ---------------------------------------------------------------------------------------


class RunCreate(_In):
    """A new run from a preset (plus dotted overrides) or from a whole config."""

    name: str | None = Field(
        None, min_length=1, max_length=200, description="Replaces config.name; default: the config's name."
    )
    preset: str | None = Field(
        None, description="A preset name from GET /api/presets.", examples=["tabletop_pcm"]
    )
    config: dict[str, Any] | None = Field(None, description="A whole RunConfig (see GET /api/config-schema).")
    overrides: dict[str, Any] = Field(
        default_factory=dict,
        description="Dotted field paths applied on top of the preset or config.",
        examples=[{"pcm.budget": 3}],
    )
    lab_id: int | None = Field(
        None, ge=1, le=INT32_MAX, description="Default: your first lab where you are owner or member."
    )
    visibility: Visibility = "lab"

    @model_validator(mode="after")
    def _one_source(self) -> RunCreate:
        if self.preset is not None and self.config is not None:
            raise ValueError("give either 'preset' or 'config', not both")
        if self.preset is None and self.config is None:
            raise ValueError("give a 'preset' (see GET /api/presets) or a whole 'config'")
        return self


class RunClone(_In):
    name: str | None = Field(
        None, min_length=1, max_length=200, description="Default: '<source name> (copy)'."
    )
    overrides: dict[str, Any] = Field(default_factory=dict, description="Dotted field paths to change.")
    lab_id: int | None = Field(None, ge=1, le=INT32_MAX, description="Default: the source run's lab.")
    visibility: Visibility | None = Field(None, description="Default: the source run's visibility.")


class RunPublic(_Out):
    id: int
    name: str
    status: Status
    owner_id: int
    owner: str = Field(description="The owner's username.")
    lab_id: int | None
    visibility: Visibility
    preset: str | None
    config_hash: str
    selector: str
    env_name: str
    steps_total: int
    steps_done: int
    summary: dict[str, Any]
    worker: str | None
    attempt: int
    cancel_requested: bool
    error: str | None
    created_at: UtcDatetime
    started_at: UtcDatetime | None
    finished_at: UtcDatetime | None
    heartbeat_at: UtcDatetime | None

    @model_validator(mode="before")
    @classmethod
    def _owner_name(cls, data: Any) -> Any:
        """An ORM `Run` carries its owner as a relationship; the API shows the username."""
        if hasattr(data, "owner") and not isinstance(data, dict):
            fields = {name: getattr(data, name) for name in cls.model_fields if name != "owner"}
            return {**fields, "owner": data.owner.username}
        return data


class RunShared(RunPublic):
    """What a share link shows: the run and its config."""

    config: dict[str, Any]


class RunDetail(RunShared):
    environment: dict[str, Any] | None
    run_dir: str | None
    traceback: str | None


class RunsPublic(BaseModel):
    data: list[RunPublic]
    count: int = Field(description="Runs matching the filters (before limit/offset).")


class MetricsOut(BaseModel):
    series: dict[str, Points]
    wall_time: dict[str, Points] = Field(
        description="Per name, [[step, seconds since the run's first logged metric], ...]."
    )
    last_step: int | None = Field(description="Highest step among the selected names (before since_step).")
    last_event_id: int = Field(
        0,
        description="Open the run's event stream with ?last_event_id=<this> to get only what is newer "
        "than these series (instead of replaying the whole history).",
    )


class MetricNamesOut(BaseModel):
    names: list[str]
    phases: list[str]


class ChunksOut(BaseModel):
    step: int | None
    steps: list[int]
    records: list[ChunkRecord]  # the engine's record, served as it is


class CompareOut(BaseModel):
    runs: list[RunPublic]
    series: dict[int, dict[str, Points]]
    config_diff: dict[str, dict[int, Any]] = Field(
        description="Only the dotted config keys whose values differ between the runs."
    )


class PresetOut(BaseModel):
    name: str
    config: dict[str, Any]


class ArtifactOut(_Out):
    id: int
    run_id: int
    kind: str
    step: int
    path: str
    size_bytes: int
    sha256: str
    created_at: UtcDatetime


class WorkerOut(_Out):
    name: str
    hostname: str
    pid: int
    devices: str
    started_at: UtcDatetime
    heartbeat_at: UtcDatetime
    current_run_id: int | None
    alive: bool


class HealthOut(BaseModel):
    status: Literal["ok", "error"]
    database: str
    broker: Literal["filesystem", "redis"]
    single_user: bool
    version: str


# --- users, tokens, labs, share links -------------------------------------------------------------


class LoginIn(_In):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class UserCreate(LoginIn):
    username: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    password: str = Field(min_length=8, max_length=1024)
    is_admin: bool = False


class MembershipOut(BaseModel):
    lab_id: int
    lab: str
    role: Role


class UserPublic(_Out):
    id: int
    username: str
    is_admin: bool
    created_at: UtcDatetime


class Me(UserPublic):
    labs: list[MembershipOut]


class LoginOut(BaseModel):
    token: str = Field(description="A bearer token; shown only now.")
    user: UserPublic


class TokenCreate(_In):
    name: str = Field(min_length=1, max_length=128)


class TokenPublic(_Out):
    id: int
    name: str
    prefix: str
    created_at: UtcDatetime
    last_used_at: UtcDatetime | None
    revoked_at: UtcDatetime | None


class TokenCreated(TokenPublic):
    token: str = Field(description="The secret; shown only now, store it.")


class LabCreate(_In):
    name: str = Field(min_length=1, max_length=64)


class LabPublic(_Out):
    id: int
    name: str
    created_at: UtcDatetime
    role: Role | None = Field(
        None, description="Your role in this lab (None for an admin who is not a member)."
    )


class MemberOut(BaseModel):
    user_id: int
    username: str
    role: Role


class LabDetail(LabPublic):
    members: list[MemberOut]


class MemberAdd(_In):
    username: str = Field(min_length=1, max_length=64)
    role: Role = "member"


class ShareCreated(BaseModel):
    id: int
    token: str = Field(description="Shown only now.")
    url: str


class ShareLinkPublic(_Out):
    id: int
    run_id: int
    created_by: int
    created_at: UtcDatetime
    revoked_at: UtcDatetime | None

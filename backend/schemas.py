"""Request and response bodies of the REST API (pydantic). ORM rows convert with
`Model.model_validate(row)`; datetimes always come out timezone-aware (UTC)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from backend.store.history import TIMELINE_KINDS
from backend.store.models import as_utc
from pcm_engine.analysis import RunCosts
from pcm_engine.config import SEED_MAX
from pcm_engine.metrics import ChunkRecord

UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]
# Ids and steps as the database stores them (INTEGER / BIGINT): anything larger cannot exist,
# and bounding it keeps an absurd id a clean 404/422 instead of a driver overflow.
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
Visibility = Literal["private", "lab", "public"]
Role = Literal["owner", "member", "viewer"]
Status = Literal["queued", "running", "succeeded", "failed", "cancelled", "stale"]
Point = Annotated[list[int | float], Field(min_length=2, max_length=2)]
"""`[step, value]`. Not a tuple: a tuple's schema (`prefixItems`) is one that schemathesis's
response check misreads as OpenAPI 3.0's `items: [...]` and refuses."""
Points = list[Point]
"""A series: `[[step, value], ...]` in step order."""


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- runs ---------------------------------------------------------------------------------------


class PolicyRef(_In):
    """The policy a run starts from, named by something the caller may read: a run (its exported
    policy) or a policy artifact. The server finds the folder; a client never names a path."""

    run: int | None = Field(
        None, ge=1, le=INT64_MAX, description="A run whose exported policy to start from."
    )
    artifact: int | None = Field(
        None, ge=1, le=INT64_MAX, description="A policy artifact (GET /api/runs/{id}/artifacts)."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> PolicyRef:
        if (self.run is None) == (self.artifact is None):
            raise ValueError("give exactly one of 'run' or 'artifact'")
        return self


START_FROM_DESCRIPTION = (
    "The policy to start from, as {run: ID} or {artifact: ID}; it sets policy.pretrained, which "
    "the API does not take as a path."
)


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
    start_from: PolicyRef | None = Field(None, description=START_FROM_DESCRIPTION)

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
    start_from: PolicyRef | None = Field(
        None, description=f"{START_FROM_DESCRIPTION} Default: the source run's start, if you may read it."
    )


MAX_TAGS = 20
MAX_TAG_LENGTH = 40
MAX_NOTES_LENGTH = 10_000
Tag = Annotated[
    str,
    Field(min_length=1, max_length=MAX_TAG_LENGTH, pattern=r"^[^\s,]+$", description="No spaces or commas."),
]


class RunPatch(_In):
    """What a run's owners may edit after launch (`PATCH /api/runs/{id}`); fields left out stay."""

    tags: list[Tag] | None = Field(None, max_length=MAX_TAGS, description=f"At most {MAX_TAGS} tags.")
    notes: str | None = Field(None, max_length=MAX_NOTES_LENGTH, description="Free text, searched by ?q=.")


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
    tags: list[str] = Field(default_factory=list)
    sweep_id: int | None = Field(None, description="The sweep this run is part of (GET /api/sweeps/{id}).")
    waiting_for_worker_since: UtcDatetime | None = Field(
        None,
        description="Set while the run has been queued longer than the server's "
        "queue_wait_warning_s with no worker claiming it: when it entered the queue.",
    )
    cloned_from_id: int | None = Field(None, description="The run this one was cloned from.")
    start: dict[str, Any] | None = Field(
        None,
        description="The SFT start the run uses (policy.init: sft): its hash, state (waiting | "
        "training | ready), reused, stage/epoch/loss/eta_s while it trains, then trained_at, "
        "success and task_success (its eval). Null for a run without one.",
    )

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


class TimelineEvent(BaseModel):
    """One entry of a run's history (backend/store/history.py)."""

    at: UtcDatetime
    kind: Literal[TIMELINE_KINDS]  # type: ignore[valid-type]
    detail: str


class QueueWorker(BaseModel):
    name: str
    devices: str
    busy: bool
    current_run_id: int | None = Field(
        description="The run a busy worker holds; null when idle or when the caller may not see that run."
    )


class QueuePlace(BaseModel):
    position: int = Field(description="1 = the next run a free worker takes.")
    ahead: int = Field(description="Runs queued before this one.")
    workers: list[QueueWorker] = Field(description="The live workers that could take it, busy or idle.")


class PlacementNode(BaseModel):
    worker: str | None = Field(
        description="The worker (its name in GET /api/workers) that runs these ranks; null while "
        "no worker has taken the node yet."
    )
    node_rank: int = Field(description="The node's index in the rendezvous, 0..dist.nodes-1.")
    ranks: list[int] = Field(description="The global ranks this node's processes hold.")
    state: str = Field(
        "joined",
        description="open (waiting for a worker), joined, leaving (its worker shuts down), done, "
        "failed, or closed (the attempt ended before a worker took it). Node 0 is always joined.",
    )


class Placement(BaseModel):
    """Where a distributed run's ranks train (written by the worker that starts them)."""

    endpoint: str = Field(description="The rendezvous endpoint, host:port (node 0's TCP store).")
    world_size: int
    strategy: str = Field(description="dist.strategy: ddp or fsdp.")
    attempt: int | None = Field(None, description="The run's attempt these ranks train.")
    nodes: list[PlacementNode]


class RunDetail(RunShared):
    """A run as its readers see it; no server paths (the run's folder is the server's business)."""

    placement: Placement | None = Field(
        None,
        description="A distributed run's ranks (dist.world_size > 1) once a worker started them: "
        "the rendezvous endpoint and which worker holds which node and ranks. Null for a run in one "
        "process or not started. Not on share links (it names hosts, like `environment`).",
    )

    events: list[TimelineEvent] = Field(
        default_factory=list,
        description="The run's history, oldest first: queued, claimed, start, "
        "checkpoints, stale, requeued, resumed, cancel requested, finished.",
    )
    queue: QueuePlace | None = Field(None, description="While queued: its place and who could take it.")

    environment: dict[str, Any] | None
    traceback: str | None
    notes: str = ""
    may_change: bool = Field(
        False,
        description="Whether the caller may change the run (cancel, requeue, share, edit, ask for "
        "episodes): its owner, an owner or member of its lab, an admin.",
    )
    media_requested_at: UtcDatetime | None = Field(
        None,
        description="While the episodes of the run's current step are asked for "
        "(POST /api/runs/{id}/media/requests) and not yet recorded: when they were asked for.",
    )


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


class MetricTemplate(BaseModel):
    over: str = Field(description="What the placeholder stands for: `phase` or `task`.")
    template: str = Field(description="The name with `{phase}` or `{task}` in it, e.g. `pcm/keep/{phase}`.")


class MetricContract(BaseModel):
    names: list[str] = Field(description="Every fixed metric name the engine can emit.")
    constants: dict[str, str] = Field(description="pcm_engine.metrics constant -> metric name.")
    templates: dict[str, MetricTemplate] = Field(
        description="Families of names, by their pcm_engine.metrics function (`keep` for keep_metric)."
    )
    spreads: dict[str, str] = Field(
        description="A per-step timing -> the metric of its slowest-minus-fastest rank seconds "
        "(pcm_engine.metrics.SPREADS; logged by runs with dist.world_size > 1)."
    )


class StatusContract(BaseModel):
    all: list[str]
    active: list[str]
    final: list[str]
    requeueable: list[str]
    cancellable: list[str]
    recordable: list[str] = Field(description="Where POST /api/runs/{id}/media/requests is accepted.")


class SelectorContract(BaseModel):
    names: list[str]
    default: str = Field(description="The selector of a config that names none.")
    baseline: str = Field(description="Plain GRPO: the run the compare page's ratios divide by.")


class ColorContract(BaseModel):
    """The dashboard's colours, defined once (backend/api/routes/contract.py)."""

    phases: dict[str, str] = Field(description="Phase -> colour, on every chart and the chunk map.")
    outcomes: dict[str, str] = Field(description='"success" / "failure" -> colour, unlike any phase.')
    methods: dict[str, str] = Field(description="Selector -> colour: one colour per method in every view.")


class ContractOut(BaseModel):
    """What the dashboard would otherwise retype: read from the Python definitions."""

    metrics: MetricContract
    phases: list[str]
    statuses: StatusContract
    selectors: SelectorContract
    colors: ColorContract


class ChunksOut(BaseModel):
    step: int | None
    steps: list[int]
    records: list[ChunkRecord]  # the engine's record, served as it is


class CompareOut(BaseModel):
    runs: list[RunPublic]
    series: dict[int, dict[str, Points]]
    wall_clock: dict[int, Points] = Field(
        description="Per run, [[step, training seconds up to it], ...] at the steps of its series: "
        "cumulative time/step_s minus time/eval_s over the full series (pcm_engine.analysis)."
    )
    costs: dict[int, RunCosts] = Field(
        description="Per run, what it reached and cost (pcm_engine.analysis.run_costs on the full "
        "series), with the success level measured on `success`."
    )
    ratios: dict[int, dict[str, float]] = Field(
        description="Per run, its costs over the baseline's (pcm_engine.analysis.cost_ratios)."
    )
    baseline_id: int | None = Field(description="The first run with the plain GRPO selector, if any.")
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
    name: str = Field(description="The folder inside the run, e.g. `checkpoints/step_000025` or `policy`.")
    size_bytes: int
    sha256: str
    created_at: UtcDatetime


class MediaChunkOut(BaseModel):
    chunk: int
    phase: str
    kept: bool


class MediaOut(_Out):
    """One recorded episode of a run (`GET /api/runs/{id}/media`)."""

    id: int
    step: int
    task: int
    trajectory: int = Field(description="Its row in the step's rollout batch (as in the chunk records).")
    success: bool
    instruction: str
    url: str = Field(description="Serves the file, with the run's read access (or a `download` ticket).")
    content_type: str
    frame_ms: int = Field(description="How long each chunk shows: chunk k plays from k * frame_ms.")
    chunks: list[MediaChunkOut] = Field(description="The episode's chunks in order.")


class MediaRequestOut(BaseModel):
    """A request for the episodes of a running run's current step (`POST /api/runs/{id}/media/requests`):
    `eval.record_episodes` per task, or 2 when that is 0."""

    run_id: int
    requested_at: UtcDatetime
    step: int = Field(
        description="The step the worker is training as asked (steps_done + 1): its episodes are "
        "recorded when it ends (those of the step after it if the request comes as it ends), then "
        "listed by GET /api/runs/{id}/media and announced by a `media` event on the run's stream."
    )


class WorkerRun(BaseModel):
    """The run a worker holds, as far as the caller may see it."""

    id: int
    name: str
    node_rank: int | None = Field(
        description="For a distributed run: the worker's node in its placement; null otherwise."
    )
    ranks: list[int] = Field(description="For a distributed run: the ranks on this worker; [] otherwise.")


class WorkerOut(_Out):
    name: str
    hostname: str
    pid: int
    devices: str = Field(description="What the worker trains on (its rank slots / GPUs), as it reports it.")
    started_at: UtcDatetime
    heartbeat_at: UtcDatetime
    busy: bool = Field(description="The worker holds a run (whether or not the caller may see it).")
    current_run_id: int | None = Field(
        description="The run the worker holds; null when idle or when the caller may not see that run."
    )
    alive: bool
    run: WorkerRun | None = Field(
        None,
        description="The run the worker holds (current_run_id) with its node and ranks, only if the "
        "caller may see that run; null when idle or when the run is not the caller's to see.",
    )


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
    token: str = Field(description="A bearer token; shown only now. It expires (PCM_TOKEN_TTL_HOURS).")
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


class TicketCreate(_In):
    purpose: Literal["events", "download"] = Field(
        description="events: one GET /api/runs/{run_id}/events; download: one GET "
        "/api/artifacts/{id}/download of an artifact of this run."
    )
    run_id: int = Field(ge=1, le=INT64_MAX)


class TicketOut(BaseModel):
    ticket: str = Field(description="Pass as `?ticket=`; works once, for this purpose and run only.")
    expires_at: UtcDatetime


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
    run_id: int | None = Field(description="The run it opens; None for a sweep's link.")
    sweep_id: int | None = Field(None, description="The sweep it opens (with every run of it).")
    created_by: int
    created_at: UtcDatetime
    revoked_at: UtcDatetime | None


# --- sweeps -------------------------------------------------------------------------------------

SweepSeed = Annotated[int, Field(ge=0, le=SEED_MAX)]
Band = Annotated[list[float], Field(min_length=4, max_length=4)]
"""`[step, mean, lo, hi]`: the mean over an arm's seeds and its 95% t-interval (lo = hi = mean
with one seed)."""
Interval = Annotated[list[float], Field(min_length=4, max_length=4)]
"""`[mean, lo, hi, n]`: the mean over n seeds and its 95% t-interval."""


def _distinct_seeds(seeds: list[int]) -> list[int]:
    if len(set(seeds)) != len(seeds):
        raise ValueError("a seed is listed twice")
    return seeds


Seeds = Annotated[list[SweepSeed], AfterValidator(_distinct_seeds)]


class SweepCreate(_In):
    """A grid of runs: one per grid point x seed, each launched as POST /api/runs would."""

    name: str = Field("sweep", min_length=1, max_length=150, description="Its runs are named after it.")
    preset: str | None = Field(
        None, description="A preset name from GET /api/presets.", examples=["tabletop_pcm"]
    )
    config: dict[str, Any] | None = Field(None, description="A whole RunConfig instead of a preset.")
    grid: dict[str, list[Any]] = Field(
        default_factory=dict,
        description="Dotted config keys, each with the values to try; every combination is an arm.",
        examples=[{"pcm.budget": [1, 2], "pcm.selector": ["full", "pcm"]}],
    )
    seeds: Seeds = Field(
        min_length=1, description="train.seed of each arm's runs (paired across arms).", examples=[[0, 1]]
    )
    overrides: dict[str, Any] = Field(default_factory=dict, description="Dotted overrides for every run.")
    lab_id: int | None = Field(
        None, ge=1, le=INT32_MAX, description="Default: your first lab where you are owner or member."
    )
    visibility: Visibility = "lab"
    start_from: PolicyRef | None = Field(
        None,
        description=f"{START_FROM_DESCRIPTION} Every run of the sweep, and of seeds added later, "
        "starts there.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> SweepCreate:
        if (self.preset is None) == (self.config is None):
            raise ValueError("give a 'preset' (see GET /api/presets) or a whole 'config', not both")
        return self


class SweepSeeds(_In):
    seeds: Seeds = Field(min_length=1, description="New seeds: a run of each in every arm.")


class SweepCreated(BaseModel):
    id: int
    runs: list[int] = Field(description="The new runs' ids, arm by arm, seed by seed.")


class SweepArm(BaseModel):
    values: dict[str, Any] = Field(description="The grid values of this arm.")
    runs: list[int]
    seeds: list[int] = Field(description="train.seed of each of `runs`.")
    selector: str | None
    series: dict[str, list[Band]] = Field(description="Per metric, [[step, mean, lo, hi], ...] over seeds.")
    wall_clock: list[Band] = Field(
        description="[[step, mean, lo, hi], ...] of the training seconds up to each step "
        "(pcm_engine.analysis.training_seconds: evaluation excluded)."
    )
    costs: dict[str, Interval] = Field(
        description="Per pcm_engine.analysis.RunCosts field, [mean, lo, hi, n] over seeds."
    )
    baseline: int | None = Field(description="Index in `arms` of the plain-GRPO arm the ratios divide by.")
    ratios: dict[str, Interval] = Field(
        description="Per cost ratio (pcm_engine.analysis.cost_ratios, seed by seed against the "
        "baseline arm's run of the same seed), [mean, lo, hi, n]."
    )


class SweepSummary(_Out):
    id: int
    name: str
    owner_id: int
    lab_id: int | None
    visibility: Visibility
    preset: str | None
    grid: dict[str, list[Any]]
    seeds: list[int]
    overrides: dict[str, Any]
    start_from: PolicyRef | None = Field(
        None, description="The policy every run starts from, as its creator named it."
    )
    created_at: UtcDatetime


class SweepOut(SweepSummary):
    runs: list[int]
    run_details: list[RunPublic]
    arms: list[SweepArm]
    success: str = Field(description="The success metric the costs' level is measured on.")
    level: float

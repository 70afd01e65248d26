"""Turning a request into a validated RunConfig, a `runs` row and a task message.

Config errors are raised as `ConfigProblems`, each located where the caller wrote it:
`("overrides", "pcm.budget")` for an override, `("config", "pcm", "budget")` for a field of a
whole config, `("preset",)` for a preset (or a preset file that no longer validates).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sqlalchemy.orm import Session

from backend.store import lifecycle
from backend.store.broker import send_train_run
from backend.store.errors import BrokerUnavailable, ConfigProblems, Problem
from backend.store.models import Lab, Run, User
from backend.store.settings import Settings
from pcm_engine.config import PRESETS_DIR, WHOLE_CONFIG, ConfigError, RunConfig, resolve_preset
from pcm_engine.config_keys import EXTRA_FORBIDDEN, unknown_key_message
from pcm_engine.sizing import policy_parameters

log = logging.getLogger(__name__)
Source = Literal["preset", "config"]
PRETRAINED = "policy.pretrained"
MAX_KEY_LENGTH = 200  # a dotted override key; real ones are under 60 characters
SERVER_PATH_REFUSED = (
    "a server path is not accepted over the API: start from a policy you may read with "
    "start_from: {run: ID} or start_from: {artifact: ID}"
)


def preset_names() -> list[str]:
    return sorted(path.stem for path in PRESETS_DIR.glob("*.yaml"))


def load_preset(name: str) -> dict[str, Any]:
    """The raw YAML of a preset in configs/. Only bare preset names are accepted: a path would let
    an API caller read files on the server."""
    stem = name.removesuffix(".yaml")
    if stem not in preset_names():
        known = ", ".join(preset_names())
        raise ConfigProblems([Problem(("preset",), f"no preset named '{name}' (presets: {known})")])
    import yaml

    return yaml.safe_load(Path(resolve_preset(stem)).read_text()) or {}


def check_request_size(config: dict[str, Any] | None, overrides: dict[str, Any], settings: Settings) -> None:
    """Refuse, before any validation work, a launch with more overrides or keys than a config
    has any use for (settings `max_overrides`, `max_config_keys`)."""
    if len(overrides) > settings.max_overrides:
        limit = f"at most {settings.max_overrides} (setting PCM_MAX_OVERRIDES)"
        raise _refused("overrides", f"{len(overrides)} overrides: {limit}")
    if any(len(key) > MAX_KEY_LENGTH for key in overrides):
        raise _refused("overrides", f"an override key is longer than {MAX_KEY_LENGTH} characters")
    keys = len(overrides) + count_keys(config)
    if keys > settings.max_config_keys:
        limit = f"at most {settings.max_config_keys} (setting PCM_MAX_CONFIG_KEYS)"
        raise _refused("config", f"{keys} keys in config and overrides: {limit}")


def _refused(part: str, message: str) -> ConfigProblems:
    return ConfigProblems([Problem((part,), message, part)])


def count_keys(value: Any) -> int:
    """Keys of every dict nested in `value` (lists included), counted without recursion, so a
    deeply nested body cannot exhaust the stack."""
    count, pending = 0, [value]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            count += len(node)
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return count


def refuse_server_paths(config: dict[str, Any] | None, overrides: dict[str, Any]) -> None:
    """`policy.pretrained` is a path on the server: the CLI and a worker's own configs may name
    one, an API caller may not (a path would open any folder the server can read, and its
    errors would tell which exist). Null, which means "no pretrained policy", is accepted."""
    policy = (config or {}).get("policy")
    problems = []
    if isinstance(policy, dict) and policy.get("pretrained") is not None:
        problems.append(Problem(("config", "policy", "pretrained"), SERVER_PATH_REFUSED, PRETRAINED))
    for key, value in overrides.items():
        if _names_a_pretrained_path(key, value):
            problems.append(Problem(("overrides", key), SERVER_PATH_REFUSED, PRETRAINED))
    if problems:
        raise ConfigProblems(problems)


def _names_a_pretrained_path(key: str, value: Any) -> bool:
    if key == PRETRAINED:
        return value is not None
    return key == "policy" and isinstance(value, dict) and value.get("pretrained") is not None


@dataclass(frozen=True)
class Limit:
    """One resource guard: `field` (a dotted config path) measured as `value`, against a setting."""

    field: str
    what: str
    value: int
    limit: int
    setting: str

    def problem(self, locator: OverrideLocator, source: Source) -> Problem:
        message = f"{self.what}: this server's limit is {self.limit:,} (setting {self.setting})"
        return _problem(self.field, message, locator, source)


def resource_limits(config: RunConfig, settings: Settings) -> list[Limit]:
    grpo, train, image = config.grpo, config.train, config.env.image_size
    rollouts = grpo.group_size * grpo.groups_per_step * train.steps
    parameters = policy_parameters(config)
    return [
        Limit(
            "policy",
            f"the policy would have {parameters:,} parameters",
            parameters,
            settings.max_policy_parameters,
            "PCM_MAX_POLICY_PARAMETERS",
        ),
        Limit(
            "train.steps",
            f"grpo.group_size x grpo.groups_per_step x train.steps = {rollouts:,} rollouts",
            rollouts,
            settings.max_rollouts,
            "PCM_MAX_ROLLOUTS",
        ),
        Limit(
            "train.torch_threads",
            f"{train.torch_threads} threads",
            train.torch_threads,
            settings.max_torch_threads,
            "PCM_MAX_TORCH_THREADS",
        ),
        Limit("env.image_size", f"{image} pixels", image, settings.max_image_size, "PCM_MAX_IMAGE_SIZE"),
    ]


def check_resources(config: RunConfig, overrides: dict[str, Any], source: Source, settings: Settings) -> None:
    """Refuse a config no worker of this server should take on (the limits are settings)."""
    locator = OverrideLocator(overrides)
    problems = [
        limit.problem(locator, source)
        for limit in resource_limits(config, settings)
        if limit.value > limit.limit
    ]
    if problems:
        raise ConfigProblems(problems)


class OverrideLocator:
    """Finds the override key responsible for an error at a dotted field: the key itself, a key
    above it (`pcm` for `pcm.budget`) or one below it (`pcm.budget` for `pcm`). Indexed once, so
    locating every problem of a request costs time linear in its keys (a scan of all keys per
    problem made 10,000 unknown keys take 18 s)."""

    def __init__(self, overrides: dict[str, Any]):
        self.keys = dict.fromkeys(overrides)  # ordered, for the first key a message names
        self.first_under: dict[str, str] = {}  # each dotted prefix of a key -> the first such key
        for key in overrides:
            for prefix in _prefixes(key):
                self.first_under.setdefault(prefix, key)

    def key_for(self, field: str, message: str) -> str | None:
        if field == WHOLE_CONFIG:  # a cross-field rule; its message names the fields involved
            return next((key for key in self.keys if key in message), None)
        above = next((prefix for prefix in _prefixes(field) if prefix in self.keys), None)
        return above if above is not None else self.first_under.get(field)


def _prefixes(dotted: str) -> list[str]:
    """`a.b.c` -> `a`, `a.b`, `a.b.c` (keys are at most MAX_KEY_LENGTH long, so this is cheap)."""
    parts = dotted.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


class UnknownKeys:
    """Words an unknown key's problem: `unknown key pcm.budgt — did you mean pcm.budget?`. The
    nearest key (difflib, ~1 ms a key) is looked up for the first MAX_SUGGESTED of a request
    only, so a flood of unknown keys is still refused in linear, short time."""

    MAX_SUGGESTED = 50

    def __init__(self) -> None:
        self.suggested = 0

    def message(self, key: str) -> str:
        self.suggested += 1
        return unknown_key_message(key) if self.suggested <= self.MAX_SUGGESTED else f"unknown key {key}"


def _problem(
    field: str, message: str, locator: OverrideLocator, source: Source, unknown: UnknownKeys | None = None
) -> Problem:
    key = locator.key_for(field, message)
    if message == EXTRA_FORBIDDEN:  # pydantic's words for a key no section has: name it, and the nearest
        named = key if key is not None and len(key) > len(field) else field
        message = (unknown or UnknownKeys()).message(named)
    if key is not None:
        return Problem(("overrides", key), message, key)
    if field == WHOLE_CONFIG:
        return Problem((source,), message, source)
    if source == "config":
        return Problem(("config", *field.split(".")), message, field)
    return Problem(("preset",), f"{field}: {message}", field)  # a preset file that no longer validates


def build_config(
    base: dict[str, Any],
    overrides: dict[str, Any],
    name: str | None,
    *,
    source: Source,
    start_policy: str | None = None,
) -> RunConfig:
    """Validate `base` + `overrides` (+ the run name); `source` says where errors that are not an
    override's point to. `start_policy` is the folder of the policy the run starts from, resolved
    by the server (never a path an API caller wrote)."""
    start = {} if start_policy is None else {PRETRAINED: start_policy}
    try:
        config = RunConfig.from_dict(base, {**overrides, **start})
    except ConfigError as err:
        locator, unknown = OverrideLocator(overrides), UnknownKeys()
        raise ConfigProblems([_problem(f, m, locator, source, unknown) for f, m in err.problems]) from None
    if name is not None:
        config.name = name
    return config


def new_run(
    session: Session,
    settings: Settings,
    user: User,
    config: RunConfig,
    *,
    lab: Lab,
    visibility: str,
    preset: str | None,
) -> Run:
    """Insert a queued run, commit, then send its task (in that order: a worker that gets the
    message must find the row)."""
    run = insert_run(session, user, config, lab=lab, visibility=visibility, preset=preset)
    session.commit()
    send(session, settings, run)
    return run


def insert_run(
    session: Session,
    user: User,
    config: RunConfig,
    *,
    lab: Lab,
    visibility: str,
    preset: str | None,
    sweep_id: int | None = None,
) -> Run:
    """Add a queued run (and its "queued" event) to the session, uncommitted and not yet sent:
    a sweep adds all of its runs, commits once, then sends them."""
    run = Run(
        name=config.name,
        owner_id=user.id,
        lab_id=lab.id,
        visibility=visibility,
        status="queued",
        preset=preset,
        config=config.to_dict(),
        config_hash=config.config_hash(),
        selector=config.pcm.selector,
        env_name=config.env.name,
        steps_total=config.train.steps,
        steps_done=0,
        summary={},
        sweep_id=sweep_id,
    )
    session.add(run)
    session.flush()
    lifecycle.record_event(session, run.id, "status", {"status": "queued"})
    return run


def send(session: Session, settings: Settings, run: Run) -> None:
    """Send the run's task; if the broker is unreachable, fail the run (so it can be requeued
    later) and raise `BrokerUnavailable`."""
    try:
        send_train_run(run.id, settings)
    except Exception as exc:  # any broker/transport failure
        unavailable = BrokerUnavailable(run.id, settings.resolved_broker_url, exc)
        log.error("could not queue run %s: %s", run.id, unavailable)
        lifecycle.fail_queued(session, run.id, f"could not send the task to the broker: {unavailable.reason}")
        session.commit()
        raise unavailable from exc

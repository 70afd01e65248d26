"""Turning a request into a validated RunConfig, a `runs` row and a task message.

Config errors come back as `FieldErrors` naming the dotted field path, located where the caller
wrote it: `["body", "overrides", "pcm.budget"]` for an override, `["body", "config", "pcm",
"budget"]` for a field of a whole config.
"""

from __future__ import annotations

import logging
from itertools import zip_longest
from pathlib import Path
from typing import Any

from fastapi import HTTPException, status
from sqlalchemy.orm import Session

from backend import lifecycle
from backend.errors import FieldErrors, FieldProblem
from backend.models import Lab, Run, User
from backend.settings import Settings
from pcm_engine.config import PRESETS_DIR, ConfigError, RunConfig, resolve_preset

log = logging.getLogger(__name__)
_WHOLE_CONFIG = "(config)"  # ConfigError's name for a cross-field (model-level) error


def preset_names() -> list[str]:
    return sorted(path.stem for path in PRESETS_DIR.glob("*.yaml"))


def load_preset(name: str) -> dict[str, Any]:
    """The raw YAML of a preset in configs/. Only bare preset names are accepted: a path would let
    an API caller read files on the server."""
    stem = name.removesuffix(".yaml")
    if stem not in preset_names():
        known = ", ".join(preset_names())
        raise FieldErrors([FieldProblem(("body", "preset"), f"no preset named '{name}' (presets: {known})")])
    import yaml

    return yaml.safe_load(Path(resolve_preset(stem)).read_text()) or {}


def _messages(err: ConfigError) -> list[str]:
    """ConfigError's message has one 'field: message' line per field (after a header line)."""
    lines = [line.strip() for line in str(err).splitlines()][-len(err.fields) :] if err.fields else []
    return [line.removeprefix(f"{field}: ") for field, line in zip_longest(err.fields, lines, fillvalue="")]


def _override_for(field: str, message: str, overrides: dict[str, Any]) -> str | None:
    """The override key responsible for an error at `field`, if any."""
    for key in overrides:
        if field == key or field.startswith(key + ".") or key.startswith(field + "."):
            return key
    if field == _WHOLE_CONFIG:  # a cross-field rule; its message names the fields involved
        return next((key for key in overrides if key in message), None)
    return None


def _problems(err: ConfigError, overrides: dict[str, Any], source: str) -> list[FieldProblem]:
    problems = []
    for field, message in zip(err.fields, _messages(err), strict=True):
        key = _override_for(field, message, overrides)
        if key is not None:
            problems.append(FieldProblem(("body", "overrides", key), message, "value_error.config", key))
        elif field == _WHOLE_CONFIG:
            problems.append(FieldProblem(("body", source), message, "value_error.config", source))
        elif source == "config":
            loc = ("body", "config", *field.split("."))
            problems.append(FieldProblem(loc, message, "value_error.config", field))
        else:  # a preset file that no longer validates
            problems.append(
                FieldProblem(("body", source), f"{field}: {message}", "value_error.config", field)
            )
    return problems


def build_config(
    base: dict[str, Any], overrides: dict[str, Any], name: str | None, *, source: str
) -> RunConfig:
    """Validate `base` + `overrides` (+ the run name); `source` ("preset" | "config") says where
    errors that are not an override's point to."""
    try:
        config = RunConfig.from_dict(base, overrides)
    except ConfigError as err:
        raise FieldErrors(_problems(err, overrides, source)) from None
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
    )
    session.add(run)
    session.flush()
    lifecycle.record_event(session, run.id, "status", {"status": "queued"})
    session.commit()
    send(session, settings, run)
    return run


def send(session: Session, settings: Settings, run: Run) -> None:
    """Send the run's task; if the broker is unreachable, fail the run (so it can be requeued
    later) and answer 503."""
    from worker.celery_app import send_train_run

    try:
        send_train_run(run.id, settings)
    except Exception as exc:  # any broker/transport failure
        log.exception("could not queue run %s", run.id)
        lifecycle.fail_queued(session, run.id, f"could not send the task to the broker: {exc}")
        session.commit()
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"run {run.id} was saved but could not be queued: the broker at "
            f"{settings.resolved_broker_url} is unreachable ({exc}). Start it, then POST "
            f"/api/runs/{run.id}/requeue.",
        ) from exc

"""The config schema, the presets and the metric names: public, static contracts."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from backend.launch import load_preset, preset_names
from backend.schemas import MetricNamesOut, PresetOut
from pcm_engine.config import RunConfig
from pcm_engine.metrics import all_metric_names
from pcm_engine.phases import PHASES

router = APIRouter(tags=["config"])


@router.get("/presets", response_model=list[PresetOut])
def presets() -> list[PresetOut]:
    """Every preset in configs/, as a whole validated config (what the launch form starts from)."""
    return [
        PresetOut(name=name, config=RunConfig.from_dict(load_preset(name)).to_dict())
        for name in preset_names()
    ]


@router.get("/config-schema")
def config_schema() -> dict[str, Any]:
    """RunConfig's JSON schema: the launch form renders from it."""
    return RunConfig.model_json_schema()


@router.get("/metric-names", response_model=MetricNamesOut)
def metric_names() -> MetricNamesOut:
    """Every fixed metric name the engine can emit, and the phases (for `pcm/score/<phase>` etc.)."""
    return MetricNamesOut(names=all_metric_names(), phases=list(PHASES))

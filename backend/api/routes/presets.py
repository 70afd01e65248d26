"""The config schema and the presets: public, static contracts (the rest is /api/contract)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from backend.schemas import PresetOut
from backend.store.launch import load_preset, preset_names
from pcm_engine.config import RunConfig

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

"""The dashboard's contract: metric names, name templates and the per-rank spread of each timing,
phases, run statuses, selectors and the colours of phases, outcomes and methods, read from their
Python definitions so that the browser never retypes them (frontend/static/js/contract.js loads
it once per page). Public and the same for every caller."""

from __future__ import annotations

import hashlib
import inspect
from functools import cache

from fastapi import APIRouter, Request, Response

from backend.schemas import (
    ColorContract,
    ContractOut,
    MetricContract,
    MetricTemplate,
    SelectorContract,
    StatusContract,
)
from backend.store import media_requests
from backend.store.lifecycle import CANCELLABLE, REQUEUEABLE
from backend.store.models import ACTIVE_STATUSES, FINAL_STATUSES, RUN_STATUSES
from pcm_engine import metrics
from pcm_engine.analysis import BASELINE_SELECTOR
from pcm_engine.config import PCMConfig
from pcm_engine.pcm import SELECTORS
from pcm_engine.phases import PHASES

router = APIRouter(tags=["config"])

# The dashboard's colours, defined here once. Phases go by their index in PHASES (the grasp itself
# first: red, where outcomes diverge most; a phase added later still gets a distinct colour).
PHASE_PALETTE = (
    "#d62728", "#ff7f0e", "#9467bd", "#1f77b4", "#7f7f7f",
    "#2ca02c", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
)  # fmt: skip
# A trajectory's outcome: green and near-black, never a phase's colour (failed vs active grip).
OUTCOME_COLORS = {"success": "#1a9850", "failure": "#252525"}
# One colour per method (selector), the same on the runs list, the pair view and compare.
METHOD_COLORS = {"full": "#4c78a8", "pcm": "#f58518", "uniform": "#54a24b", "top_phase": "#b279a2"}

TEMPLATE_SUFFIX = "_metric"


def metric_constants() -> dict[str, str]:
    """Every upper-case name of pcm_engine.metrics that holds a metric name ("prefix/name")."""
    return {
        key: value
        for key, value in vars(metrics).items()
        if key.isupper() and isinstance(value, str) and "/" in value
    }


def metric_templates() -> dict[str, MetricTemplate]:
    """Every `<family>_metric(<over>)` function of pcm_engine.metrics as `{over}` in its name:
    `keep_metric(phase)` -> `keep: pcm/keep/{phase}`."""
    templates = {}
    for key, function in vars(metrics).items():
        if key.endswith(TEMPLATE_SUFFIX) and inspect.isfunction(function):
            (over,) = inspect.signature(function).parameters
            templates[key.removesuffix(TEMPLATE_SUFFIX)] = MetricTemplate(
                over=over, template=function("{" + over + "}")
            )
    return templates


def build_contract() -> ContractOut:
    return ContractOut(
        metrics=MetricContract(
            names=metrics.all_metric_names(),
            constants=metric_constants(),
            templates=metric_templates(),
            spreads=dict(metrics.SPREADS),
        ),
        phases=list(PHASES),
        statuses=StatusContract(
            all=list(RUN_STATUSES),
            active=list(ACTIVE_STATUSES),
            final=list(FINAL_STATUSES),
            requeueable=list(REQUEUEABLE),
            cancellable=list(CANCELLABLE),
            recordable=list(media_requests.RECORDABLE),
        ),
        selectors=SelectorContract(
            names=list(SELECTORS),
            default=PCMConfig.model_fields["selector"].default,
            baseline=BASELINE_SELECTOR,
        ),
        colors=ColorContract(
            phases={phase: PHASE_PALETTE[i % len(PHASE_PALETTE)] for i, phase in enumerate(PHASES)},
            outcomes=OUTCOME_COLORS,
            methods={name: METHOD_COLORS[name] for name in SELECTORS},  # a new selector needs a colour
        ),
    )


@cache
def contract_body() -> tuple[bytes, str]:
    """The JSON body and its ETag: the contract changes only with the code."""
    body = build_contract().model_dump_json().encode()
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


@router.get("/contract", response_model=ContractOut)
def contract(request: Request) -> Response:
    """Revalidated on every page load (`no-cache` + ETag): a page never runs on an old contract,
    and an unchanged one costs a 304."""
    body, etag = contract_body()
    headers = {"ETag": etag, "Cache-Control": "public, no-cache"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)

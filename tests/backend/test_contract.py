"""GET /api/contract: what the dashboard would otherwise retype, read from the Python definitions.
(Whether the run page can draw every metric in it is tests/e2e/test_modules.py.)"""

from __future__ import annotations

from backend.store.lifecycle import REQUEUEABLE
from backend.store.models import ACTIVE_STATUSES, FINAL_STATUSES, RUN_STATUSES
from pcm_engine import metrics as M
from pcm_engine.config import RunConfig
from pcm_engine.pcm import GRPO_SELECTOR, SELECTORS
from pcm_engine.phases import PHASES
from tests.backend.conftest import Api


def test_the_contract_is_read_from_the_python_definitions(client: Api) -> None:
    body = client.get("/api/contract").json()
    assert body["metrics"]["names"] == M.all_metric_names()
    assert body["metrics"]["constants"]["ROLLOUT_SUCCESS"] == M.ROLLOUT_SUCCESS
    assert body["phases"] == list(PHASES)
    assert body["statuses"]["all"] == list(RUN_STATUSES)
    assert (body["statuses"]["active"], body["statuses"]["final"]) == (
        list(ACTIVE_STATUSES),
        list(FINAL_STATUSES),
    )
    assert body["statuses"]["requeueable"] == list(REQUEUEABLE)
    assert set(body["statuses"]["cancellable"]) < set(RUN_STATUSES)
    assert body["selectors"] == {
        "names": list(SELECTORS),
        "default": RunConfig().pcm.selector,
        "baseline": GRPO_SELECTOR,
    }


def test_templates_are_the_engines_name_functions(client: Api) -> None:
    templates = client.get("/api/contract").json()["metrics"]["templates"]
    assert templates["keep"] == {"over": "phase", "template": "pcm/keep/{phase}"}
    functions = {name.removesuffix("_metric"): f for name, f in vars(M).items() if name.endswith("_metric")}
    assert set(templates) == set(functions)
    for family, spec in templates.items():
        value = PHASES[0] if spec["over"] == "phase" else 3
        assert spec["template"].replace("{" + spec["over"] + "}", str(value)) == functions[family](value)


def test_every_metric_constant_is_a_name_the_engine_lists(client: Api) -> None:
    """A constant missing from all_metric_names() would be emitted without the dashboard knowing."""
    constants = client.get("/api/contract").json()["metrics"]["constants"]
    assert constants and set(constants.values()) <= set(M.all_metric_names())
    assert set(constants) == {
        k for k, v in vars(M).items() if k.isupper() and isinstance(v, str) and "/" in v
    }


def test_each_timing_names_its_per_rank_spread(client: Api) -> None:
    """The run page pairs a timing with its spread from here (several ranks), never by retyping."""
    spreads = client.get("/api/contract").json()["metrics"]["spreads"]
    assert spreads == M.SPREADS and spreads[M.TIME_UPDATE] == M.TIME_UPDATE_SPREAD
    assert set(spreads) | set(spreads.values()) <= set(M.all_metric_names())


def test_the_contract_is_cacheable(client: Api) -> None:
    first = client.get("/api/contract")
    assert first.headers["cache-control"] == "public, no-cache" and first.headers["etag"]
    again = client.get("/api/contract", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and not again.content


def test_colours_are_defined_once_for_every_phase_outcome_and_method(client: Api) -> None:
    colors = client.get("/api/contract").json()["colors"]
    assert list(colors["phases"]) == list(PHASES)
    assert len(set(colors["phases"].values())) == len(PHASES)
    # "failed" is never drawn in a phase's colour (it was the active grip's red)
    assert set(colors["outcomes"]) == {"success", "failure"}
    assert not set(colors["outcomes"].values()) & set(colors["phases"].values())
    assert colors["outcomes"]["success"] != colors["outcomes"]["failure"]
    # one colour per method, distinct, for every selector the engine has
    assert list(colors["methods"]) == list(SELECTORS)
    assert len(set(colors["methods"].values())) == len(SELECTORS)

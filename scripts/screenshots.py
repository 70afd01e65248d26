"""Screenshots of the dashboard for the README: docs/img/run.png, episodes.png, compare.png and
sweep.png.

Starts a throw-away stack (API + two workers, embedded profile) unless --url points at a running
one, launches a real sweep of `pcm.selector` (full, pcm) x two seeds (every run the same config
but for those, one shared SFT start), waits for the runs to train, and photographs in headless
Chromium at a 1400x900 viewport: seed 0's PCM run page (top, and its recorded episodes), seed 0's
GRPO-vs-PCM comparison, and the sweep page.

    python scripts/screenshots.py                      # ~15 min on 2 CPU cores (SFT start, 4 runs x 12 steps)
    python scripts/screenshots.py --tiny               # a minute: the test config, for a quick look
    python scripts/screenshots.py --url http://127.0.0.1:8000 [--token pcm_...] [--runs 3,4]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pcm_engine.metrics import EVAL_SUCCESS  # noqa: E402
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, FAST_RUN, VIEWPORT  # noqa: E402
from tests.services import ServiceStack  # noqa: E402

PRESET = "tabletop_pcm"
# A short but real pair: the preset's behaviour-cloned start (~30% success, so groups have both
# outcomes and the phase scores are defined; built once, shared by both runs), 32 rollouts per
# step, evaluation every 4 steps.
DEMO = {
    "policy.init": "sft",
    "grpo.group_size": 8,
    "grpo.groups_per_step": 4,
    "grpo.mini_batches": 2,
    "grpo.micro_batch_trajectories": 4,
    "eval.every": 4,
    "eval.episodes_per_task": 10,
    "train.steps": 12,
    "train.checkpoint_every": 0,
    "train.torch_threads": 1,
}
TINY = {**FAST_RUN, "train.steps": 30, "eval.every": 10, "pcm.budget": 2}


def launch_sweep(client: httpx.Client, name: str, overrides: dict) -> dict:
    """The sweep `pcm.selector` (full, pcm) x seeds (0, 1); returns {"id", "runs"} with the runs'
    rows (seed 0's GRPO and PCM runs first)."""
    body = {
        "name": f"{name}-sweep",
        "preset": PRESET,
        "grid": {"pcm.selector": ["full", "pcm"]},
        "seeds": [0, 1],
        "overrides": overrides,
    }
    response = client.post("/api/sweeps", json=body)
    response.raise_for_status()
    sweep = response.json()
    runs = [client.get(f"/api/runs/{run_id}").json() for run_id in sweep["runs"]]

    def order(run: dict) -> tuple[int, int]:
        return run["config"]["train"]["seed"], run["selector"] != "full"

    print(f"launched sweep {sweep['id']}: runs {', '.join(str(r['id']) for r in runs)}", flush=True)
    return {"id": sweep["id"], "runs": sorted(runs, key=order)}


def wait_done(client: httpx.Client, run_ids: list[int], timeout: float) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        runs = [client.get(f"/api/runs/{i}").json() for i in run_ids]
        print(
            "  " + ", ".join(f"#{r['id']} {r['status']} {r['steps_done']}/{r['steps_total']}" for r in runs),
            flush=True,
        )
        if all(r["status"] not in ("queued", "running") for r in runs):
            return runs
        if time.monotonic() > deadline:
            raise TimeoutError(f"runs {run_ids} still training after {timeout:.0f} s")
        time.sleep(5)


def success_level(client: httpx.Client, run_ids: list[int]) -> int:
    """A success level (%) every run reached: the compare page then shows each run's time to it."""
    params = {"ids": ",".join(map(str, run_ids)), "names": EVAL_SUCCESS}
    series = client.get("/api/compare", params=params).json()["series"].values()
    bests = [max((value for _, value in one.get(EVAL_SUCCESS, [])), default=0.0) for one in series]
    return max(1, int(min(bests) * 100)) if bests else 50


def photograph(
    base_url: str, token: str | None, grpo_id: int, pcm_id: int, level: int, sweep_id: int | None, out: Path
) -> None:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport=VIEWPORT)
        if token:
            context.add_init_script(f"localStorage.setItem('pcm.token', {token!r})")
        page = context.new_page()
        page.goto(f"{base_url}/runs/{pcm_id}")
        # a selector, not a JS predicate: the dashboard's CSP allows no string evaluation
        page.wait_for_selector("#chunk-map[data-records]:not([data-records='0'])", timeout=60_000)
        page.wait_for_selector("#chart-success .main-svg")
        time.sleep(1)  # let the last chart batch draw
        page.screenshot(path=str(out / "run.png"))
        saved = ["run.png"]
        player = page.locator("#media-player")
        if player.count():
            player.wait_for(timeout=60_000)
            page.locator("#media-title").scroll_into_view_if_needed()
            time.sleep(2)  # a few chunks into the episode
            page.screenshot(path=str(out / "episodes.png"))
            saved.append("episodes.png")
        page.goto(f"{base_url}/compare?ids={grpo_id},{pcm_id}&level={level}")
        page.wait_for_selector("#bought-table tbody tr >> nth=1")
        page.wait_for_selector("#compare-step .main-svg")
        time.sleep(1)
        page.screenshot(path=str(out / "compare.png"))
        saved.append("compare.png")
        if sweep_id is not None:
            page.goto(f"{base_url}/sweeps/{sweep_id}")
            page.wait_for_selector("#sweep-eval-step .main-svg")
            time.sleep(1)
            page.screenshot(path=str(out / "sweep.png"))
            saved.append("sweep.png")
        browser.close()
    print(f"saved {', '.join(str(out / name) for name in saved)}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="a running PCM Lab (default: start a throw-away stack)")
    parser.add_argument("--token", help="bearer token, when the server requires login")
    parser.add_argument(
        "--tiny", action="store_true", help="the test-suite's tiny config (seconds, not minutes)"
    )
    parser.add_argument("--name", default="readme", help="run name prefix")
    parser.add_argument(
        "--runs", help="GRPO_ID,PCM_ID: photograph these runs (no sweep picture) instead of launching"
    )
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds to wait for training")
    args = parser.parse_args()
    if not CHROMIUM.exists():
        parser.error(f"{CHROMIUM} is missing (apt-get install chromium)")

    with ExitStack() as cleanup:
        base_url = args.url
        if base_url is None:
            root = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="pcm-screens-")))
            stack = cleanup.enter_context(ServiceStack(root, start_timeout=180))
            stack.start_api()
            stack.start_workers("w1", "w2")
            base_url = stack.base_url
            print(f"stack up at {base_url}", flush=True)
        headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
        with httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=60) as client:
            sweep_id = None
            if args.runs:
                ids = [int(i) for i in args.runs.split(",")]
                wait_done(client, ids, args.timeout)
            else:
                sweep = launch_sweep(client, args.name, TINY if args.tiny else DEMO)
                sweep_id = sweep["id"]
                wait_done(client, [run["id"] for run in sweep["runs"]], args.timeout)
                ids = [run["id"] for run in sweep["runs"][:2]]  # seed 0: GRPO, PCM
            level = success_level(client, ids)
        photograph(base_url.rstrip("/"), args.token, ids[0], ids[1], level, sweep_id, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

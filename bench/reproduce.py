"""Paper reproduction on the tabletop suite (issue: a fair, paired, paper-exact GRPO-vs-PCM
comparison): GRPO against PCM (paper score) at three budgets, PCM with the debiased score, random
masking (`uniform`), full masking (`top_phase`) and PCM with `reweight: unbiased`, all from one
shared SFT start on `tabletop_grpo`'s settings, several paired seeds each. Writes docs/results.md and
docs/img/results/*.png, including the proxy check (measured per-phase gradient variance `V_c`
against both phase scores, the paper's `C_c` and the debiased `D²`).

    python bench/reproduce.py                 # the "2h" preset; prints its time estimate first
    python bench/reproduce.py --estimate-only # just the estimate (cost model: COST CALIBRATION below)
    python bench/reproduce.py --quick         # a miniature smoke run; raw results AND its report
                                              # go to a temp folder (docs/ is left alone)
    python bench/reproduce.py --report-only   # rebuild the report from OUT's raw results
    python bench/reproduce.py --methods full,pcm_b4 --seeds 2 --steps 60 --workers 2

Methods, in priority order (runs start in this order; `--methods` picks a subset): `full` (GRPO),
`pcm_b{mid}`, `pcm_debiased_b{mid}`, `uniform_b{mid}`, `top_phase_b{mid}`, `pcm_b{low}`,
`pcm_b{high}`, `pcm_unbiased_b{mid}`. Every method takes `tabletop_grpo` as its base and changes
only `pcm.selector`, `pcm.budget`, `pcm.reweight` and `pcm.score` (checked before training and
again by the report, which refuses to build otherwise).

Size presets: "2h" = 8 methods x 3 seeds x 100 steps, budgets PAPER_BUDGETS, eval every 15 steps;
"long" triples the steps; "quick" is a tiny policy for a few steps.

Raw results live in OUT (default bench/out/reproduce): `sft/` the shared start, `runs/<method>/
seed<k>/` each run's metrics.jsonl, chunks.jsonl, train.log and checkpoints, `proxy.json`, and
`plan.json`. Rerunning skips finished runs and resumes half-finished ones from their newest
checkpoint. Seeds are paired: `train.seed` k gives every method the same task/init-state schedule
and rollout-sampling stream at every step (pcm_engine/seeding.py); every run starts from the same
SFT policy (built once with seed 0 and passed as `policy.pretrained`). The last line printed is one
JSON object: per method, final eval success, time to GRPO's final level and its speed-up, mean
update seconds per step and mean kept fraction; the proxy Spearmans; the orderings held.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import redirect_stderr
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from reproduce_plan import PRESET, SFT_SEED, Method, Plan, check_settings
from reproduce_report import ROOT, ReportPaths, build_report, code_state

from pcm_engine.config import ConfigError, RunConfig, resolve_preset
from pcm_engine.proxy_check import proxy_points

PROXY_SEED = 2_000_003  # the proxy check's own rollouts: never the same draws as a training step
PROXY_VERSION = 2  # bump when proxy.json's content changes, so a cached one is recomputed

PAPER_BUDGETS = (3, 4, 5)
"""(low, mid, high) chunks per trajectory for the full-size runs: of ~22 chunks per trajectory of a
mixed group at `grpo.chunk_len: 4`, about 14%, 18% and 23% (the paper: B = 8/12/16 of 64 = 12.5/19/25%). The
one place these numbers live: "2h" and "long" both read it."""

# --- what runs ------------------------------------------------------------------------------------


def methods_for(budgets: tuple[int, int, int]) -> list[Method]:
    """Every method, in priority order: GRPO, PCM (paper score) and PCM (debiased score) at the mid
    budget, uniform and top_phase at the mid budget, PCM at the low and high budgets, and PCM with
    `reweight: unbiased` at the mid budget. Each sets the selector and score explicitly, so none
    depends on what the preset happens to say for them."""
    low, mid, high = budgets

    def masked(name: str, label: str, selector: str, budget: int, **extra) -> Method:
        overrides = {
            "pcm.selector": selector,
            "pcm.budget": budget,
            "pcm.reweight": "none",
            "pcm.score": "paper",
            **extra,
        }
        return Method(name, f"{label} B={budget}", overrides, budget)

    return [
        Method("full", "GRPO (every chunk)", {"pcm.selector": "full", "pcm.score": "paper"}),
        masked(f"pcm_b{mid}", "PCM", "pcm", mid),
        masked(f"pcm_debiased_b{mid}", "PCM debiased", "pcm", mid, **{"pcm.score": "debiased"}),
        masked(f"uniform_b{mid}", "uniform", "uniform", mid),
        masked(f"top_phase_b{mid}", "top_phase", "top_phase", mid),
        masked(f"pcm_b{low}", "PCM", "pcm", low),
        masked(f"pcm_b{high}", "PCM", "pcm", high),
        masked(f"pcm_unbiased_b{mid}", "PCM unbiased", "pcm", mid, **{"pcm.reweight": "unbiased"}),
    ]


# ==== COST CALIBRATION — recalibrate from a measured run ==========================================
# Seconds of one run of the "2h"/"long" sizes (2 cores, two runs side by side, one torch thread
# each). Measured 2026-11-28 on 4 steps of each preset from the two-stage start (grpo.chunk_len 4):
# GRPO 2.2 s rollout + 3.3-3.6 s update per step, PCM B=4 2.1 s rollout + 0.8 s update (kept
# 19.3%); trajectories of mixed groups hold ~22 chunks (14 when successful, 24 when failed); one
# 200-episode eval ~16 s.
COST_STEP_OVERHEAD_S = 2.3  # rollout + scoring/selection + other, per step
COST_FULL_UPDATE_S = 3.5  # actor update of a step that keeps every chunk
COST_CHUNKS_PER_TRAJECTORY = 22.0  # chunks per trajectory of a mixed group
COST_EVAL_EPISODE_S = 0.08  # one eval episode
COST_STARTUP_S = 15.0  # process start, env and policy build
COST_SFT_S = 540.0  # the two-stage start: ~6 min pre-training + ~2 min fine-tuning + evals
COST_PROXY_CHECKPOINT_S = 25.0  # one proxy-check checkpoint (batches x per-chunk gradients)
COST_TOP_PHASE_SHARE = 0.7  # top_phase keeps at most B chunks of one phase: fewer than B on average
# ==================================================================================================


@dataclass(frozen=True)
class CostModel:
    """Seconds of one run, for the estimate printed before starting (defaults: the COST
    CALIBRATION block above). The actor update costs `full_update_s / chunks_per_trajectory` per
    kept chunk per trajectory, so it scales with the chunks a method keeps: GRPO all
    `chunks_per_trajectory`, a masked method min(B, chunks_per_trajectory)."""

    step_overhead_s: float = COST_STEP_OVERHEAD_S
    full_update_s: float = COST_FULL_UPDATE_S
    eval_episode_s: float = COST_EVAL_EPISODE_S
    startup_s: float = COST_STARTUP_S
    sft_s: float = COST_SFT_S
    proxy_checkpoint_s: float = COST_PROXY_CHECKPOINT_S
    chunks_per_trajectory: float = COST_CHUNKS_PER_TRAJECTORY

    @property
    def update_s_per_chunk(self) -> float:
        """Actor-update seconds per step for each chunk kept per trajectory."""
        return self.full_update_s / self.chunks_per_trajectory

    def kept_chunks(self, method: Method) -> float:
        """Chunks per trajectory that reach the actor update."""
        if method.budget is None:
            return self.chunks_per_trajectory
        kept = min(method.budget, self.chunks_per_trajectory)
        return COST_TOP_PHASE_SHARE * kept if method.overrides["pcm.selector"] == "top_phase" else kept

    def kept_fraction(self, method: Method) -> float:
        return self.kept_chunks(method) / self.chunks_per_trajectory

    def step_s(self, method: Method) -> float:
        return self.step_overhead_s + self.update_s_per_chunk * self.kept_chunks(method)


@dataclass(frozen=True)
class Size:
    steps: int
    seeds: int
    eval_every: int
    checkpoint_every: int
    budgets: tuple[int, int, int]
    proxy_checkpoints: int
    proxy_batches: int
    proxy_samples: int
    cost: CostModel
    overrides: dict = field(default_factory=dict)
    pretrain_overrides: dict = field(default_factory=dict)  # only if the preset pre-trains


QUICK_OVERRIDES = {
    # small enough to train in seconds, forgiving enough that an SFT policy succeeds sometimes
    # (so groups are mixed and every code path runs)
    "env.image_size": 32,
    "env.tasks": [0, 1],
    "env.train_init_states": 20,
    "env.eval_init_states": 4,
    "env.grasp_tolerance": 0.3,
    "env.place_tolerance": 0.3,
    "policy.hidden_size": 32,
    "policy.num_layers": 1,
    "policy.num_heads": 2,
    "policy.vision_hidden_size": 32,
    "policy.vision_layers": 1,
    "policy.vision_heads": 2,
    "grpo.group_size": 4,
    "grpo.groups_per_step": 4,
    "sft.demos_per_task": 20,
    "sft.epochs": 20,
    "sft.lr": 1e-3,
    "eval.episodes_per_task": 8,
}
QUICK_PRETRAIN_OVERRIDES = {
    # the two-stage start in miniature; applied only when the preset's start has a pre-training
    # stage (sft.pretrain_demos_per_task > 0), so quick keeps the preset's kind of start
    "sft.pretrain_demos_per_task": 2,
    "sft.pretrain_epochs": 1,
}
QUICK_COST = CostModel(
    step_overhead_s=0.5,
    full_update_s=0.3,
    eval_episode_s=0.01,
    startup_s=8,
    sft_s=10,
    proxy_checkpoint_s=3,
    chunks_per_trajectory=COST_CHUNKS_PER_TRAJECTORY,
)

SIZES = {
    # 8 methods x 3 seeds x 100 steps of the preset's rollouts; see --estimate-only for the time
    "2h": Size(100, 3, 15, 25, PAPER_BUDGETS, 4, 3, 24, CostModel()),
    "long": Size(300, 3, 20, 50, PAPER_BUDGETS, 4, 4, 32, CostModel()),
    "quick": Size(4, 2, 2, 2, (1, 2, 3), 3, 3, 4, QUICK_COST, QUICK_OVERRIDES, QUICK_PRETRAIN_OVERRIDES),
}


@dataclass(frozen=True)
class Job:
    method: Method
    seed: int
    config: RunConfig
    run_dir: Path


def base_config(size: Size, steps: int) -> RunConfig:
    """The tabletop preset with this size's run length; the same for every method."""
    preset = RunConfig.load(resolve_preset(PRESET))
    pretrains = getattr(preset.sft, "pretrain_demos_per_task", 0) > 0
    overrides = {
        **size.overrides,
        **(size.pretrain_overrides if pretrains else {}),
        "train.steps": steps,
        "eval.every": size.eval_every,
        "train.checkpoint_every": size.checkpoint_every,
        # every checkpoint stays, so the proxy check can revisit the run's history
        "train.keep_checkpoints": steps // size.checkpoint_every + 1,
        "train.torch_threads": 1,
    }
    return RunConfig.from_dict(preset.to_dict(), overrides)


def sft_config(base: RunConfig, threads: int) -> RunConfig:
    """The config the shared SFT start is built from: seeded by `sft.seed` = SFT_SEED (the start's
    cache key holds `sft.seed`, not `train.seed`, so every run shares it whatever its own seed;
    `train.seed` stays SFT_SEED too, as it was when the start was seeded by it)."""
    overrides = {
        "policy.init": "sft",
        "sft.seed": SFT_SEED,
        "train.seed": SFT_SEED,
        "train.torch_threads": threads,
    }
    return RunConfig.from_dict(base.to_dict(), overrides)


def sft_policy_path(base: RunConfig, out: Path) -> Path:
    """Where resolve_start keeps (or will keep) the shared SFT policy."""
    from pcm_engine.sft import sft_start_key

    return out / "sft" / sft_start_key(sft_config(base, 1)) / "policy"


def build_sft_start(base: RunConfig, out: Path, threads: int) -> str:
    """Train the shared SFT start unless it is cached; returns its policy folder."""
    from pcm_engine.sft import resolve_start

    def announce(directory: Path) -> None:
        print(f"building the SFT start in {directory} ...", file=sys.stderr, flush=True)

    return str(resolve_start(sft_config(base, threads), out / "sft", on_start=announce).policy.pretrained)


def make_jobs(plan: Plan, base: RunConfig, methods: list[Method], out: Path) -> list[Job]:
    """One job per method and seed, in priority order (method by method, seeds within); refuses
    (check_settings) a set of configs that differ in anything but the allowed keys."""
    jobs = []
    for method in methods:
        for seed in range(plan.seeds):
            overrides = {
                **method.overrides,
                "policy.pretrained": plan.sft_policy,
                "train.seed": seed,
                "name": f"{method.name}-seed{seed}",
            }
            config = RunConfig.from_dict(base.to_dict(), overrides)
            jobs.append(Job(method, seed, config, out / "runs" / method.name / f"seed{seed}"))
    check_settings({(job.method.name, job.seed): job.config for job in jobs})
    return jobs


# --- running ------------------------------------------------------------------------------------


def run_state(job: Job) -> tuple[str, int]:
    """('done' | 'partial' | 'new', steps already checkpointed); refuses a folder holding a
    different config (another --steps, say) rather than mixing two runs."""
    from pcm_engine.checkpoint import latest_checkpoint

    saved = job.run_dir / "config.yaml"
    if saved.exists() and RunConfig.load(saved).config_hash() != job.config.config_hash():
        raise SystemExit(f"{job.run_dir} holds a run with another config; use another --out")
    latest = latest_checkpoint(job.run_dir)
    step = latest.step if latest else 0
    if step >= job.config.train.steps and (job.run_dir / "policy" / "policy.json").exists():
        return "done", step
    return ("partial" if step else "new"), step


def estimate_seconds(job: Job, size: Size, done_steps: int = 0) -> float:
    cost, config = size.cost, job.config
    steps = config.train.steps - done_steps
    evals = steps // max(1, config.eval.every) + (1 if done_steps == 0 else 0)
    episodes = config.eval.episodes_per_task * len(config.env.tasks or [0])
    return cost.startup_s + steps * cost.step_s(job.method) + evals * episodes * cost.eval_episode_s


def makespan(durations: list[float], workers: int) -> float:
    """Wall-clock of running `durations` in the given order on `workers` parallel workers (each
    takes the next when it is free, as the process pool does)."""
    loads = [0.0] * workers
    for d in durations:
        loads[loads.index(min(loads))] += d
    return max(loads)


def print_estimate(pending: list[tuple[Job, int]], size: Size, workers: int, need_sft: bool) -> float:
    per_method: dict[str, float] = {}
    durations = []
    for job, done in pending:
        seconds = estimate_seconds(job, size, done)
        durations.append(seconds)
        per_method[job.method.name] = per_method.get(job.method.name, 0.0) + seconds
    total = makespan(durations, workers) + size.cost.proxy_checkpoint_s * size.proxy_checkpoints
    total += size.cost.sft_s if need_sft else 0.0
    cost = size.cost
    print(
        "estimated cost (cost model: COST CALIBRATION in bench/reproduce.py; "
        f"{cost.step_overhead_s:g} s/step overhead + {cost.update_s_per_chunk:.3g} s/step "
        f"per chunk kept of {cost.chunks_per_trajectory:g} per trajectory):",
        file=sys.stderr,
    )
    methods = {job.method.name: job.method for job, _ in pending}
    for name, seconds in per_method.items():
        print(
            f"  {name:<22} {seconds / 60:7.1f} worker-min  ({cost.step_s(methods[name]):.2f} s/step, "
            f"kept {cost.kept_fraction(methods[name]):.0%})",
            file=sys.stderr,
        )
    print(
        f"  => about {total / 3600:.2f} h wall-clock with {workers} workers ({len(pending)} runs to do)",
        file=sys.stderr,
        flush=True,
    )
    return total


def train_job(config_data: dict, run_dir: str) -> dict:
    """One training run in a child process; its progress bar and warnings go to train.log."""
    from pcm_engine.cli import run_training

    path = Path(run_dir)
    path.mkdir(parents=True, exist_ok=True)
    with open(path / "train.log", "a") as log, redirect_stderr(log):
        return run_training(RunConfig.from_dict(config_data), path)


def run_jobs(pending: list[tuple[Job, int]], workers: int) -> None:
    """Runs in priority order (`pending`'s: method by method) over `workers` fresh processes (one
    per run: peak-RSS stays per run), so a stopped benchmark has its most important runs done."""
    order = pending
    os.environ["OMP_NUM_THREADS"] = "1"  # children inherit it; each run also sets torch_threads 1
    start = time.perf_counter()
    context = get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, max_tasks_per_child=1) as pool:
        futures = {pool.submit(train_job, j.config.to_dict(), str(j.run_dir)): j for j, _ in order}
        failed = []
        for count, future in enumerate(as_completed(futures), start=1):
            job = futures[future]
            minutes = (time.perf_counter() - start) / 60
            try:
                result = future.result()
            except Exception as err:  # report, let the other runs finish; a rerun resumes it
                failed.append(f"{job.method.name} seed {job.seed}: {err!r} (see {job.run_dir}/train.log)")
                print(f"[{count}/{len(futures)}] FAILED {failed[-1]}", file=sys.stderr, flush=True)
                continue
            print(
                f"[{count}/{len(futures)}] {job.method.name} seed {job.seed}: eval "
                f"{result['eval_success_start']} -> {result['eval_success_final']}, "
                f"{minutes:.1f} min elapsed",
                file=sys.stderr,
                flush=True,
            )
    if failed:
        raise SystemExit("some runs failed:\n  " + "\n  ".join(failed))


def both_scores(batch, selection, dims) -> tuple[dict[str, float], dict[str, float]]:
    """The paper's `C_c` and the signed debiased `D²` per phase, from one rollout batch and its
    selection's phase labels, on the action dims `dims` (the env's `score_dims`) — the same
    chunks for both (spec §3)."""
    from pcm_engine.pcm import phase_scores, score_features

    features = score_features(batch.actions, dims)
    phases = [label for traj in selection.labels for label in traj]  # rows are trajectory-major
    args = (features, phases, batch.success[batch.traj], batch.group[batch.traj])
    paper = phase_scores(*args, traj=batch.traj, estimator="paper")
    debiased = phase_scores(*args, traj=batch.traj, estimator="debiased")
    return paper, debiased


def recording_select(trainer) -> list:
    """Wrap `trainer.select` so every (batch, selection) it sees is kept, in call order: lets the
    bench score `proxy_points`' own batches with both estimators without changing it."""
    seen: list = []
    select = trainer.select

    def wrapped(batch, *args, **kwargs):
        selection = select(batch, *args, **kwargs)
        seen.append((batch, selection))
        return selection

    trainer.select = wrapped
    return seen


def run_proxy_check(job: Job, size: Size, out: Path, threads: int) -> dict:
    """Both phase scores (`C_c`, the paper's; signed `D²`, the debiased one) and the measured
    `V_c` per phase at a few checkpoints of `job`'s run (the SFT start included), on the same
    batches and chunks, using only the env's score dims; cached in OUT/proxy.json."""
    from pcm_engine.checkpoint import list_checkpoints, load_checkpoint
    from pcm_engine.metrics import FanOutSink
    from pcm_engine.trainer import Trainer

    path = out / "proxy.json"
    if path.exists():
        cached = json.loads(path.read_text())
        if (
            cached.get("source") == str(job.run_dir)
            and cached.get("config") == job.config.config_hash()
            and cached.get("version") == PROXY_VERSION
            and (cached.get("batches"), cached.get("samples_per_phase"), cached.get("checkpoints"))
            == (size.proxy_batches, size.proxy_samples, size.proxy_checkpoints)
        ):
            return cached
    checkpoints = [None] + list_checkpoints(job.run_dir)
    chosen = sorted({round(i) for i in np.linspace(0, len(checkpoints) - 1, size.proxy_checkpoints)})
    config = RunConfig.from_dict(
        job.config.to_dict(), {"train.seed": PROXY_SEED, "train.torch_threads": threads}
    )
    points, dims = [], None
    for index in chosen:
        checkpoint = checkpoints[index]
        with tempfile.TemporaryDirectory() as tmp:
            trainer = Trainer(config, tmp, FanOutSink(), resume=False)
            if checkpoint is not None:
                load_checkpoint(checkpoint, policy=trainer.policy, optimizer=trainer.optimizer)
            step = checkpoint.step if checkpoint else 0
            dims = tuple(int(d) for d in trainer.env.score_dims)
            seen = recording_select(trainer)
            found = proxy_points(trainer, size.proxy_batches, size.proxy_samples)
            scores = [both_scores(batch, selection, dims) for batch, selection in seen]
            for point in found:
                paper, debiased = scores[point.batch]
                points.append(
                    {
                        "step": step,
                        **asdict(point),
                        "paper": paper.get(point.phase),
                        "debiased": debiased.get(point.phase),  # signed D²; None: undefined
                    }
                )
    result = {
        "version": PROXY_VERSION,
        "source": str(job.run_dir),
        "config": job.config.config_hash(),
        "method": job.method.name,
        "seed": job.seed,
        "run_score": job.config.pcm.score,
        "score_dims": list(dims) if dims is not None else None,
        "samples_per_phase": size.proxy_samples,
        "batches": size.proxy_batches,
        "checkpoints": size.proxy_checkpoints,
        "points": points,
    }
    path.write_text(json.dumps(finite(result), indent=1))
    return result


# --- main ---------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="2h", help="size preset (default 2h)")
    parser.add_argument("--quick", action="store_true", help="the miniature smoke run (--size quick)")
    parser.add_argument("--seeds", type=int, help="seeds per method (default: the size's)")
    parser.add_argument("--steps", type=int, help="training steps per run (default: the size's)")
    parser.add_argument("--methods", help="comma-separated method names (default: all)")
    parser.add_argument("--workers", type=int, default=2, help="trainings in parallel (default 2)")
    parser.add_argument("--threshold", type=float, help="success threshold (default: by rule)")
    parser.add_argument(
        "--out",
        help="raw results folder (default bench/out/reproduce; --quick: a temp dir, and the quick "
        "report goes to OUT/report instead of docs/)",
    )
    parser.add_argument("--report-only", action="store_true", help="rebuild the report from OUT only")
    parser.add_argument("--estimate-only", action="store_true", help="print the time estimate and stop")
    args = parser.parse_args(argv)
    if args.quick:
        args.size = "quick"
    return args


def make_plan(args: argparse.Namespace, out: Path) -> Plan:
    if args.report_only:
        if not (out / "plan.json").exists():
            raise SystemExit(f"--report-only: no plan.json in {out}")
        plan = Plan.load(out)
        plan.threshold = args.threshold if args.threshold is not None else plan.threshold
        return plan
    size = SIZES[args.size]
    all_methods = [m.name for m in methods_for(size.budgets)]
    chosen = args.methods.split(",") if args.methods else all_methods
    unknown = sorted(set(chosen) - set(all_methods))
    if unknown:
        raise SystemExit(f"--methods: unknown {unknown} (known: {', '.join(all_methods)})")
    previous = Plan.load(out) if (out / "plan.json").exists() else None
    return Plan(
        size=args.size,
        steps=args.steps or size.steps,
        seeds=args.seeds or size.seeds,
        workers=args.workers,
        methods=chosen,
        budgets=size.budgets,
        threshold=args.threshold,
        sessions=previous.sessions if previous else [],
    )


def train_everything(
    plan: Plan, size: Size, base: RunConfig, methods: list[Method], out: Path, *, estimate_only: bool = False
) -> None:
    """Estimate, build the SFT start, run every unfinished training, then the proxy check."""
    sft_policy = sft_policy_path(base, out)
    need_sft = not (sft_policy / "policy.json").exists()
    plan.sft_policy = str(sft_policy)
    jobs = make_jobs(plan, base, methods, out)
    states = [(job, *run_state(job)) for job in jobs]
    pending = [(job, step) for job, state, step in states if state != "done"]
    print(f"{len(jobs) - len(pending)} of {len(jobs)} runs already finished", file=sys.stderr)
    print_estimate(pending, size, plan.workers, need_sft)
    if estimate_only:
        return
    plan.save(out)
    if build_sft_start(base, out, plan.workers) != plan.sft_policy:
        raise RuntimeError("the SFT start landed somewhere else than its cache key says")
    if pending:
        run_jobs(pending, plan.workers)
    proxy_source = jobs[0]
    print(f"proxy check on {proxy_source.run_dir} ...", file=sys.stderr, flush=True)
    run_proxy_check(proxy_source, size, out, plan.workers)


def finite(value):
    """NaN -> None (JSON has no NaN), numpy scalars -> Python numbers, recursively."""
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    return None if isinstance(value, float) and math.isnan(value) else value


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    if args.out:
        out = Path(args.out).resolve()  # resolve_start keeps absolute paths; so do run configs
    elif args.size == "quick" and not args.estimate_only:
        out = Path(tempfile.mkdtemp(prefix="reproduce-quick-"))
    elif args.size == "quick":
        out = Path(tempfile.gettempdir()) / "reproduce-quick-estimate"  # never created
    else:
        out = ROOT / "bench" / "out" / "reproduce"
    if not args.estimate_only:  # an estimate creates nothing
        out.mkdir(parents=True, exist_ok=True)
    plan = make_plan(args, out)
    size = SIZES[plan.size]
    methods = [m for m in methods_for(plan.budgets) if m.name in plan.methods]
    try:
        base = base_config(size, plan.steps)
    except ConfigError:
        if not args.report_only:
            raise
        base = None  # the report quotes the runs' saved configs; the preset is not needed
    print(f"raw results in {out}", file=sys.stderr)
    if args.estimate_only:
        train_everything(plan, size, base, methods, out, estimate_only=True)
        return
    if not args.report_only:
        train_everything(plan, size, base, methods, out)
        finished = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        commit, dirty = code_state()
        plan.sessions.append(
            {"finished": finished, "seconds": time.perf_counter() - started, "commit": commit, "dirty": dirty}
        )
        plan.save(out)
    # a quick smoke run never overwrites the real report: its page goes beside its raw results
    paths = ReportPaths(out / "report") if plan.size == "quick" else ReportPaths(ROOT / "docs")
    summary = build_report(plan, base, methods, out, preset_size=(size.steps, size.seeds), paths=paths)
    print(f"wrote {paths.results_md} and {paths.figures}/", file=sys.stderr)
    print(json.dumps(finite(summary)))


if __name__ == "__main__":
    main()

"""`pcm` console entry: sft, train, eval, demo, env-check, presets.

    pcm sft   --config tabletop_pcm --out runs/sft
    pcm train --config tabletop_pcm --set policy.pretrained=runs/sft/policy --set pcm.budget=3
    pcm eval  --config tabletop_pcm --policy runs/sft/policy
    pcm demo  # SFT, then GRPO and PCM from the same start, side by side
    pcm env-check libero_spatial --task 0 --episodes 1 --max-steps 40  # needs the libero extra

Every command that finishes prints, as its last line, one JSON object with its result.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from pcm_engine import metrics as M
from pcm_engine.config import ConfigError, RunConfig, parse_set_arguments, resolve_preset


class ProgressSink:
    """A tqdm bar that shows step, success, kept fraction and the time split."""

    def __init__(self, total: int, initial: int = 0, desc: str = "train"):
        self.bar = tqdm(total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True)
        self.eval_success: float | None = None

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        if M.EVAL_SUCCESS in metrics:
            self.eval_success = metrics[M.EVAL_SUCCESS]
        if M.ROLLOUT_SUCCESS not in metrics:
            self.bar.set_postfix_str(self._eval_text())
            return
        split = "/".join(
            f"{metrics.get(k, 0.0):.1f}" for k in (M.TIME_ROLLOUT, M.TIME_SELECT, M.TIME_UPDATE, M.TIME_OTHER)
        )
        self.bar.set_postfix_str(
            f"success={metrics[M.ROLLOUT_SUCCESS]:.2f} {self._eval_text()} "
            f"kept={metrics.get(M.PCM_KEPT_FRACTION, 0.0):.2f} roll/sel/upd/other={split}s"
        )
        self.bar.update(step - self.bar.n)

    def _eval_text(self) -> str:
        return "" if self.eval_success is None else f"eval={self.eval_success:.2f}"

    def log_chunks(self, step: int, records: list) -> None:
        pass

    def close(self) -> None:
        self.bar.close()


def load_config(args: argparse.Namespace, config: str | None = None) -> RunConfig:
    """`config` (default `--config`): a preset name or YAML path, with the `--set` overrides."""
    overrides = parse_set_arguments(args.set or [])
    return RunConfig.load(resolve_preset(config or args.config), overrides)


def _add_config_args(p: argparse.ArgumentParser, default: str = "tabletop_pcm") -> None:
    p.add_argument("--config", default=default, help=f"YAML file or preset name (default: {default})")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a config field, e.g. pcm.budget=3",
    )


def cmd_sft(args: argparse.Namespace) -> dict:
    from pcm_engine.metrics import FanOutSink, JsonlSink
    from pcm_engine.sft import run_sft

    config = load_config(args)
    out = Path(args.out)
    bar = tqdm(total=config.sft.epochs, desc="sft", unit="epoch", dynamic_ncols=True)

    def on_epoch(epoch: int, loss: float) -> None:
        bar.set_postfix(loss=f"{loss:.3f}")
        bar.update(1)

    sink = FanOutSink(JsonlSink(out))
    # a pre-training stage (sft.pretrain_demos_per_task) is cached where `pcm train` keeps starts
    result = run_sft(config, out, sink, on_epoch=on_epoch, stage_cache=out.parent / "sft-starts")
    bar.close()
    sink.close()
    return {"policy": str(out / "policy"), **result}


@dataclass(frozen=True)
class NodeArgs:
    """`pcm train --node-rank R --rendezvous HOST:PORT`: this machine's part of a run over
    `dist.nodes` machines (each runs the same command but for its node rank)."""

    node_rank: int = 0
    rendezvous: str | None = None

    def check(self, config: RunConfig, fresh: bool) -> None:
        """Refuse flags that do not fit the config, naming them."""
        nodes = config.dist.nodes
        if nodes == 1 and (self.node_rank or self.rendezvous):
            raise ConfigError([("--node-rank", "--node-rank and --rendezvous are for dist.nodes > 1")])
        if nodes > 1 and not self.rendezvous:
            raise ConfigError(
                [("--rendezvous", f"dist.nodes is {nodes}: give node 0's address as --rendezvous HOST:PORT")]
            )
        if not 0 <= self.node_rank < nodes:
            raise ConfigError([("--node-rank", f"must be 0..{nodes - 1} (dist.nodes is {nodes})")])
        if self.node_rank and fresh:
            raise ConfigError([("--fresh", "only node 0 starts the run folder over")])


def run_training(
    config: RunConfig, run_dir: Path, *, fresh: bool = False, node: NodeArgs | None = None
) -> dict:
    """Train `config` in `run_dir` (resuming from its newest checkpoint); returns the summary.
    For a run over several machines this is `node`'s part: node 0 prepares the run folder
    (which every node shares) and holds the rendezvous, node 1.. only start their ranks."""
    node = node or NodeArgs()
    node.check(config, fresh)
    if node.node_rank > 0:
        train_ranks(config, run_dir, node)
        return {"run_dir": str(run_dir), "node_rank": node.node_rank}
    from pcm_engine.checkpoint import latest_checkpoint
    from pcm_engine.metrics import FanOutSink, JsonlSink
    from pcm_engine.tensorboard_sink import mirror_sinks
    from pcm_engine.trainer import Trainer

    if run_dir.exists() and not fresh:
        saved = run_dir / "config.yaml"
        if latest_checkpoint(run_dir) and saved.exists():
            previous = RunConfig.load(saved)
            if previous.config_hash() != config.config_hash():
                raise ConfigError(
                    [
                        (
                            "run_dir",
                            f"{run_dir} holds a run with a different config; choose another "
                            "--run-dir or pass --fresh to start over there",
                        )
                    ]
                )
    if fresh and run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)
    if config.policy.init == "sft" and not config.policy.pretrained:
        from pcm_engine.sft import resolve_start

        cache = run_dir.parent / "sft-starts"
        config = resolve_start(
            config,
            cache,
            on_start=lambda d: tqdm.write(f"behaviour cloning the SFT start -> {d}", file=sys.stderr),
        )
    if config.dist.world_size > 1:
        train_ranks(config, run_dir, node)
        return summarize(M.read_metrics(run_dir), run_dir)
    progress = ProgressSink(total=config.train.steps, desc=config.name)
    sink = mirror_sinks(FanOutSink(JsonlSink(run_dir), progress), config, run_dir)
    trainer = Trainer(config, run_dir, sink)
    if trainer.resume_from:
        progress.bar.update(trainer.resume_from)
        tqdm.write(f"resumed {run_dir} from step {trainer.resume_from}", file=sys.stderr)
    try:
        trainer.train()
    finally:
        sink.close()
    return summarize(M.read_metrics(run_dir), run_dir)


def train_ranks(config: RunConfig, run_dir: Path, node: NodeArgs) -> None:
    """Train this machine's ranks of a `dist.world_size` > 1 run: `torch.distributed.run` starts
    them (`pcm_engine.rank`; global rank 0 shows the progress bar and writes metrics.jsonl). One
    rank failing ends them all, on every node, and this raises; Ctrl-C or SIGTERM reaches every
    rank. Node 0 writes run_dir/config.yaml, which every rank trains: node 1.. never write the
    run folder, and their ranks start only once node 0's agent (hence its config) is there."""
    import signal
    import subprocess

    from pcm_engine.launch import Rendezvous, local_rendezvous, torchrun_command

    d = config.dist
    if node.rendezvous:
        rendezvous = Rendezvous(node.rendezvous, config.name)
    else:
        rendezvous = local_rendezvous(config.name)
    if node.node_rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        config.save(run_dir / "config.yaml")
    command = torchrun_command(
        config, rendezvous, "pcm_engine.rank", "--run-dir", str(run_dir), node_rank=node.node_rank
    )
    where = f" as node {node.node_rank} of {d.nodes} ({rendezvous.endpoint})" if d.nodes > 1 else ""
    here = d.world_size // d.nodes
    tqdm.write(f"starting {here} of {d.world_size} ranks ({d.strategy}){where}", file=sys.stderr)
    ranks = subprocess.Popen(command)
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: ranks.send_signal(signum))
    try:
        code = ranks.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
    if code != 0:
        raise RuntimeError(
            f"a rank of the run failed (torch.distributed.run exited {code}); see its log above"
        )


def summarize(rows: list[dict], run_dir: Path) -> dict:
    """Run-level numbers from its metric rows: final eval success, mean update seconds, ..."""
    evals = [(r["step"], r[M.EVAL_SUCCESS]) for r in rows if M.EVAL_SUCCESS in r]
    steps = [r for r in rows if M.TIME_UPDATE in r]

    def mean(key: str) -> float:
        values = [r[key] for r in steps if key in r]
        return sum(values) / len(values) if values else 0.0

    return {
        "run_dir": str(run_dir),
        "steps": len(steps),
        "eval_success_start": evals[0][1] if evals else None,
        "eval_success_final": evals[-1][1] if evals else None,
        "mean_update_s": mean(M.TIME_UPDATE),
        "mean_step_s": mean(M.TIME_STEP),
        "total_s": sum(r.get(M.TIME_STEP, 0.0) for r in steps),
        "mean_kept_fraction": mean(M.PCM_KEPT_FRACTION),
        "mean_activation_bytes": mean(M.MEM_ACTIVATION),
    }


def cmd_train(args: argparse.Namespace) -> dict:
    config = load_config(args)
    run_dir = Path(args.run_dir or Path("runs") / config.name)
    node = NodeArgs(args.node_rank, args.rendezvous)
    return run_training(config, run_dir, fresh=args.fresh, node=node)


def cmd_eval(args: argparse.Namespace) -> dict:
    from pcm_engine.device import pick_device
    from pcm_engine.envs import make_env
    from pcm_engine.evaluation import evaluate_policy
    from pcm_engine.policies import VLAPolicy

    overrides = parse_set_arguments(args.set or [])
    if args.episodes:
        overrides["eval.episodes_per_task"] = args.episodes
    config = RunConfig.load(resolve_preset(args.config), overrides)
    if not Path(args.policy).is_dir():
        raise ConfigError([("--policy", f"no directory at '{args.policy}'")])
    policy = VLAPolicy.from_pretrained(args.policy).to(pick_device(config.train.device))
    return {
        "policy": args.policy,
        **evaluate_policy(make_env(config.env), policy, config, seed=config.train.seed),
    }


def cmd_demo(args: argparse.Namespace) -> dict:
    """SFT once, then GRPO and PCM from that start: both from `--config` (default tabletop_pcm),
    identical but for `pcm.selector` (`full` / `pcm`), one seed: the paper's protocol (spec §6)."""
    out = Path(args.out)
    base = load_config(args)
    sft_dir = out / "sft"
    if not (sft_dir / "policy").is_dir():
        tqdm.write(f"[1/3] behaviour cloning from scripted demos -> {sft_dir}", file=sys.stderr)
        args.out = str(sft_dir)
        cmd_sft(args)
    results = {}
    for i, selector in enumerate(("full", "pcm"), start=2):
        run_overrides = {
            "pcm.selector": selector,
            "policy.pretrained": str(sft_dir / "policy"),
            "name": selector,
        }
        if args.steps is not None:
            run_overrides["train.steps"] = args.steps
        config = RunConfig.from_dict(base.to_dict(), run_overrides)
        label = "GRPO (every chunk)" if selector == "full" else "PCM"
        tqdm.write(f"[{i}/3] {label} -> {out / selector}", file=sys.stderr)
        results[selector] = run_training(config, out / selector)
    full, pcm = results["full"], results["pcm"]
    print("\n            eval success (start -> final)   mean update s   kept fraction")
    for name, r in results.items():
        print(
            f"{name:>10}   {r['eval_success_start']:.2f} -> {r['eval_success_final']:.2f}"
            f"                  {r['mean_update_s']:8.2f}        {r['mean_kept_fraction']:.2f}"
        )
    speedup = full["mean_update_s"] / max(pcm["mean_update_s"], 1e-9)
    print(f"PCM update speed-up: {speedup:.2f}x")
    return {"update_speedup": speedup, **{k: v for k, v in results.items()}}


def cmd_presets(args: argparse.Namespace) -> dict:
    from pcm_engine.config import PRESETS_DIR

    names = sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))
    for name in names:
        print(name)
    return {"presets": names}


def cmd_env_check(args: argparse.Namespace) -> dict:
    from pcm_engine.envs.libero_check import run_env_check

    return run_env_check(
        args.suite,
        args.task,
        episodes=args.episodes,
        max_steps=args.max_steps,
        workers=args.workers,
        image_size=args.image_size,
        render=not args.no_render,
        seed=args.seed,
        save_image=args.save_image,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pcm", description="PCM Lab: GRPO and PCM for VLA policies")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("sft", help="behaviour cloning from scripted demos (the RL starting point)")
    _add_config_args(p)
    p.add_argument("--out", default="runs/sft", help="output folder (policy saved in OUT/policy)")
    p.set_defaults(func=cmd_sft)

    p = sub.add_parser("train", help="GRPO / PCM training (resumes from the run dir's newest checkpoint)")
    _add_config_args(p)
    p.add_argument("--run-dir", help="run folder (default runs/<name>)")
    p.add_argument("--fresh", action="store_true", help="delete the run folder first")
    p.add_argument(
        "--node-rank",
        type=int,
        default=0,
        help="for dist.nodes > 1: this machine's node, 0..nodes-1 (node 0 holds the rendezvous, "
        "writes the run folder and reports; every node must see the same --run-dir)",
    )
    p.add_argument(
        "--rendezvous",
        metavar="HOST:PORT",
        help="for dist.nodes > 1: node 0's address and a free port there, the same on every node",
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="success rate of a saved policy on the eval init states")
    _add_config_args(p)
    p.add_argument("--policy", required=True, help="folder written by pcm sft / pcm train")
    p.add_argument("--episodes", type=int, help="episodes per task")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("demo", help="SFT, then GRPO vs PCM side by side (the quick tour)")
    _add_config_args(p)
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--steps", type=int, help="RL steps per method (default: the preset's)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "env-check", help="run a LIBERO task with random actions: checks the install, times a step"
    )
    p.add_argument("suite", choices=["libero_spatial", "libero_object", "libero_goal", "libero_10"])
    p.add_argument("--task", type=int, default=0, help="task id in the suite, 0-9 (default 0)")
    p.add_argument("--episodes", type=int, default=1, help="episodes run side by side (default 1)")
    p.add_argument("--max-steps", type=int, help="steps per episode (default: the suite's limit)")
    p.add_argument("--workers", type=int, default=1, help="simulator processes; 0 = in-process")
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--no-render", action="store_true", help="skip the camera (physics only)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-image", metavar="PNG", help="write the first observation to this file")
    p.set_defaults(func=cmd_env_check)

    p = sub.add_parser("presets", help="list the presets in configs/")
    p.set_defaults(func=cmd_presets)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = args.func(args)
    except ConfigError as err:
        from pcm_engine.config_keys import named_unknown_keys

        print(f"error: {named_unknown_keys(err)}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

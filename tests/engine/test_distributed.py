"""One run over several ranks (pcm_engine.distributed): the ranks together do what one process
does. The in-process tests check the pieces (shares, keyed draws, config rules); the `slow` ones
train real gloo process groups of 2 ranks on the CPU, and the CLI ones go through
`torch.distributed.run` as a user would."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from pcm_engine import metrics as M
from pcm_engine.cli import NodeArgs, run_training
from pcm_engine.config import ConfigError
from pcm_engine.distributed import DistContext
from pcm_engine.launch import free_port
from pcm_engine.metrics import SPREADS, NullSink, read_metrics
from pcm_engine.policies import VLAPolicy
from pcm_engine.seeding import trajectory_streams
from pcm_engine.sharding import pad_passes
from pcm_engine.trainer import Trainer
from tests.engine.conftest import force_mixed_outcomes, tiny_config
from tests.engine.ranks import spawn_ranks

TWO_GROUPS = {"grpo.groups_per_step": 2, "pcm.budget": 2, "train.steps": 1}


# --- the pieces, in one process --------------------------------------------------------------


def test_ranks_share_the_groups_in_contiguous_equal_blocks():
    shares = [DistContext(r, 4, r).groups(8) for r in range(4)]
    assert [list(s) for s in shares] == [[0, 1], [2, 3], [4, 5], [6, 7]]


def test_a_trajectory_draws_the_same_numbers_whichever_others_are_drawn_beside_it():
    together = trajectory_streams(7, "rollout", 3, np.arange(4))
    alone = trajectory_streams(7, "rollout", 3, np.array([2]))
    assert np.array_equal(together[2].random(5), alone[0].random(5))
    assert not np.array_equal(together[1].random(5), together[2].random(5))


def test_sampling_from_uniforms_inverts_the_distribution():
    policy = VLAPolicy.__new__(VLAPolicy)
    torch.nn.Module.__init__(policy)
    probs = torch.tensor([0.2, 0.5, 0.3])
    policy.forward = lambda inputs: probs.log().expand(3, 1, 3)
    policy._log_softmax = lambda logits, temperature: logits.log_softmax(-1)
    tokens, log_probs = VLAPolicy.sample(policy, None, 1.0, uniforms=torch.tensor([[0.1], [0.3], [0.75]]))
    assert tokens.flatten().tolist() == [0, 1, 2]
    torch.testing.assert_close(log_probs.flatten(), probs.log())


def test_the_ranks_rollouts_together_are_the_one_process_rollout(tmp_path):
    """Rank r rolls out groups r*G/W.. of the step with each trajectory's own stream: stacked in
    rank order they are the batch one process rolls out (schedule, tokens, outcomes)."""
    one = Trainer(tiny_config(**TWO_GROUPS), tmp_path / "one", NullSink(), resume=False).rollout()
    two = tiny_config(**TWO_GROUPS, **{"dist.world_size": 2})
    parts = [
        Trainer(two, tmp_path / f"rank{r}", NullSink(), resume=False, dist=DistContext(r, 2, r)).rollout()
        for r in range(2)
    ]
    assert [p.num_trajectories for p in parts] == [2, 2]
    for r, part in enumerate(parts):
        rows = (one.traj >= 2 * r) & (one.traj < 2 * r + 2)
        assert np.array_equal(part.group, one.group[2 * r : 2 * r + 2])
        assert np.array_equal(part.task, one.task[2 * r : 2 * r + 2])
        assert np.array_equal(part.tokens, one.tokens[rows])
        assert np.array_equal(part.success, one.success[2 * r : 2 * r + 2])
        np.testing.assert_allclose(part.old_log_probs, one.old_log_probs[rows], rtol=0, atol=1e-5)


def test_padding_gives_every_rank_as_many_passes_as_the_busiest():
    assert pad_passes(["a"], [1, 3], None) == ["a", None, None]
    assert pad_passes(["a", "b", "c"], [1, 3], None) == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"dist.world_size": 0}, "dist.world_size"),
        ({"dist.strategy": "zero3"}, "dist.strategy"),
        ({"dist.backend": "mpi"}, "dist.backend"),
        ({"dist.world_size": 2, "grpo.groups_per_step": 3}, "groups_per_step"),
        ({"dist.world_size": 2, "train.overlap_rollouts": True}, "overlap_rollouts"),
        ({"dist.world_size": 2, "dist.nodes": 4}, "dist.nodes"),
        ({"dist.world_size": 4, "grpo.groups_per_step": 4, "dist.nodes": 3}, "dist.nodes"),
        ({"dist.world_size": 2, "dist.backend": "nccl", "train.device": "cpu"}, "nccl"),
    ],
)
def test_distributed_settings_out_of_bounds_are_refused_naming_the_field(overrides, field):
    with pytest.raises(ConfigError) as err:
        tiny_config(**overrides)
    assert field in str(err.value)


def test_a_trainer_refuses_a_world_size_it_was_not_started_as(tmp_path):
    with pytest.raises(ValueError, match="start the ranks with `pcm train`"):
        Trainer(tiny_config(**{"dist.world_size": 2}), tmp_path, NullSink())


# --- real process groups -----------------------------------------------------------------------


def relative_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """‖a − b‖ / ‖a‖ over every parameter together."""
    diff = sum(float(((a[k] - b[k]).double() ** 2).sum()) for k in a)
    norm = sum(float((a[k].double() ** 2).sum()) for k in a)
    return math.sqrt(diff / norm)


def exported(run_dir: Path) -> dict[str, torch.Tensor]:
    return VLAPolicy.from_pretrained(run_dir / "policy").state_dict()


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
@pytest.mark.parametrize("selector", ["full", "pcm", "uniform"])
def test_two_ranks_make_the_one_process_update(selector, strategy, tmp_path):
    overrides = {**TWO_GROUPS, "pcm.selector": selector}
    one = Trainer(tiny_config(**overrides), tmp_path / "one", NullSink())
    before = {k: v.detach().clone() for k, v in one.policy.state_dict().items()}
    force_mixed_outcomes(one)  # every group mixed: the step updates
    one.train()
    ranks = spawn_ranks(2, {**overrides, "dist.strategy": strategy}, tmp_path / "two", tmp_path / "out")

    after_one, after_two = exported(tmp_path / "one"), exported(tmp_path / "two")
    assert relative_difference(after_one, before) > 1e-4  # it did update
    assert relative_difference(after_one, after_two) < 1e-5
    assert ranks[0]["keep"] == ranks[1]["keep"] == one.keep.p
    if strategy == "ddp":  # every rank holds the same weights
        for name, value in ranks[0]["params"].items():
            assert torch.equal(value, ranks[1]["params"][name])


@pytest.mark.slow
def test_a_sharded_reference_policy_makes_the_one_process_kl_update(tmp_path):
    """grpo.kl_coef > 0 under fsdp: the frozen reference is sharded like the actor (its forwards
    are the update's passes, which every rank makes together), and the update is one process's."""
    overrides = {**TWO_GROUPS, "grpo.kl_coef": 0.5}
    one = Trainer(tiny_config(**overrides), tmp_path / "one", NullSink())
    force_mixed_outcomes(one)
    one.train()
    spawn_ranks(2, {**overrides, "dist.strategy": "fsdp"}, tmp_path / "two", tmp_path / "out")
    assert relative_difference(exported(tmp_path / "one"), exported(tmp_path / "two")) < 1e-5
    (step,) = [row for row in read_metrics(tmp_path / "two") if row["step"] == 1]
    assert M.TRAIN_REF_KL in step


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_a_resumed_two_rank_run_equals_an_uninterrupted_one(strategy, tmp_path):
    overrides = {**TWO_GROUPS, "dist.strategy": strategy, "train.steps": 2}
    spawn_ranks(2, overrides, tmp_path / "straight", tmp_path / "out")
    spawn_ranks(2, {**overrides, "train.steps": 1}, tmp_path / "resumed", tmp_path / "out")
    spawn_ranks(2, overrides, tmp_path / "resumed", tmp_path / "out")  # from step 1's checkpoint
    straight, resumed = exported(tmp_path / "straight"), exported(tmp_path / "resumed")
    for name, value in straight.items():
        torch.testing.assert_close(resumed[name], value, rtol=0, atol=0)


@pytest.mark.slow
def test_fsdp_counts_the_activations_ddp_counts(tmp_path):
    """The activation meter leaves out the whole weights FSDP gathers for a forward, as it leaves
    out DDP's weights: rank 0 saves the same activations for the same kept chunks either way."""
    saved = {}
    for strategy in ("ddp", "fsdp"):
        spawn_ranks(2, {**TWO_GROUPS, "dist.strategy": strategy}, tmp_path / strategy, tmp_path / "out")
        (step,) = [row for row in read_metrics(tmp_path / strategy) if row["step"] == 1]
        saved[strategy] = step[M.MEM_ACTIVATION]
    assert saved["ddp"] > 0 and saved["fsdp"] == saved["ddp"], saved


# --- through the CLI and torch.distributed.run -------------------------------------------------


def pcm_train(run_dir: Path, *settings: str, flags: tuple[str, ...] = ()) -> subprocess.Popen:
    sets = [a for s in settings for a in ("--set", s)]
    tiny = [
        a for k, v in {**dict(_tiny_sets()), **TWO_GROUPS}.items() for a in ("--set", f"{k}={json.dumps(v)}")
    ]
    command = [
        sys.executable,
        "-m",
        "pcm_engine.cli",
        "train",
        "--run-dir",
        str(run_dir),
        *tiny,
        *sets,
        *flags,
    ]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )


def _tiny_sets():
    from tests.tiny import TINY

    return TINY.items()


@pytest.mark.slow
def test_pcm_train_on_two_nodes_trains_what_two_ranks_on_one_node_train(tmp_path):
    """`pcm train --node-rank R --rendezvous HOST:PORT` on two "machines" (two processes here,
    one rank each, sharing the run folder): node 1, started first, waits for node 0; together
    they train exactly what one node's 2 ranks train, and node 0 alone writes the metrics."""
    one = pcm_train(tmp_path / "one", "dist.world_size=2", "train.steps=2")
    _, err = one.communicate(timeout=240)
    assert one.returncode == 0, err[-3000:]
    rendezvous = f"127.0.0.1:{free_port()}"
    settings = ("dist.world_size=2", "dist.nodes=2", "train.steps=2")
    nodes = [
        pcm_train(tmp_path / "two", *settings, flags=("--node-rank", str(rank), "--rendezvous", rendezvous))
        for rank in (1, 0)
    ]
    said = [node.communicate(timeout=240)[1] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], said[0][-3000:] + said[1][-3000:]
    assert f"starting 1 of 2 ranks (ddp) as node 1 of 2 ({rendezvous})" in said[0]
    assert [r["step"] for r in read_metrics(tmp_path / "two")] == [1, 2]
    one_node, two_nodes = exported(tmp_path / "one"), exported(tmp_path / "two")
    for name, value in one_node.items():
        torch.testing.assert_close(two_nodes[name], value, rtol=0, atol=0)


@pytest.mark.parametrize(
    "flags, settings, field",
    [
        ({}, {"dist.nodes": 2}, "--rendezvous"),
        ({"rendezvous": "h:1", "node_rank": 2}, {"dist.nodes": 2}, "--node-rank"),
        ({"rendezvous": "h:1", "node_rank": 1}, {"dist.nodes": 1}, "--node-rank"),
    ],
)
def test_node_flags_that_do_not_fit_the_config_are_refused_naming_them(flags, settings, field, tmp_path):
    config = tiny_config(**{"dist.world_size": 2, **settings})
    with pytest.raises(ConfigError) as err:
        run_training(config, tmp_path / "run", node=NodeArgs(**flags))
    assert err.value.problems[0][0] == field
    with pytest.raises(ConfigError, match="only node 0"):
        run_training(
            tiny_config(**{"dist.world_size": 2, "dist.nodes": 2}),
            tmp_path,
            fresh=True,
            node=NodeArgs(1, "h:1"),
        )
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_pcm_train_starts_the_ranks_and_writes_one_metrics_file(tmp_path):
    proc = pcm_train(tmp_path / "run", "dist.world_size=2", "train.steps=2")
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err[-3000:]
    result = json.loads(out.strip().splitlines()[-1])
    assert result["steps"] == 2
    rows = read_metrics(tmp_path / "run")
    assert [r["step"] for r in rows] == [1, 2]
    for spread in SPREADS.values():
        assert all(r[spread] >= 0 for r in rows)
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2  # rank 0 alone writes
    assert (tmp_path / "run" / "policy").is_dir()


def descendants(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (int(p) for p in (task / "children").read_text().split()):
            found += [child, *descendants(child)]
    return found


@pytest.mark.slow
def test_a_rank_killed_ends_the_run_as_failed_instead_of_hanging(tmp_path):
    proc = pcm_train(tmp_path / "run", "dist.world_size=2", "train.steps=1000", "dist.timeout_s=60")
    try:
        deadline = time.monotonic() + 180
        while not read_metrics(tmp_path / "run") and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read()[-3000:]
            time.sleep(0.5)
        assert read_metrics(tmp_path / "run"), "no step finished in time"
        commands = {p: Path(f"/proc/{p}/cmdline").read_text() for p in descendants(proc.pid)}
        ranks = [
            p for p, c in commands.items() if "pcm_engine.rank" in c and "torch.distributed.run" not in c
        ]
        assert len(ranks) == 2
        os.kill(ranks[1], signal.SIGKILL)
        _, err = proc.communicate(timeout=120)  # fails the test if it hangs
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0
    assert "a rank of the run failed" in err

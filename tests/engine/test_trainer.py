"""The training loop: selection physically shrinks the batch, full == pcm at B >= N, metrics,
and exact resume."""

import json

import numpy as np
import pytest
import torch

from pcm_engine import metrics as M
from pcm_engine.config import ConfigError, RunConfig
from pcm_engine.metrics import JsonlSink, read_metrics
from pcm_engine.passes import PassShape, cap_within, pack_rows
from pcm_engine.pcm import inclusion_probabilities
from pcm_engine.phases import PHASES
from pcm_engine.trainer import Trainer


class ListSink:
    def __init__(self):
        self.metrics, self.chunks = [], []

    def log_metrics(self, step, metrics):
        self.metrics.append((step, dict(metrics)))

    def log_chunks(self, step, records):
        self.chunks.append((step, list(records)))

    def close(self):
        pass


def params(trainer):
    return {k: v.detach().clone() for k, v in trainer.policy.state_dict().items()}


def test_actor_forward_only_ever_receives_kept_chunks(tiny, mixed, tmp_path):
    trainer = Trainer(tiny(pcm__selector="pcm", pcm__budget=2), tmp_path, ListSink(), resume=False)
    mixed(trainer)
    seen = []
    real_forward = trainer.actor_forward

    def spy(batch, rows, **kwargs):
        seen.append((batch, rows))
        return real_forward(batch, rows, **kwargs)

    trainer.actor_forward = spy
    rollout = trainer.rollout()
    selection = trainer.select(rollout)
    trainer.update(selection)

    update_batch = selection.update_batch
    assert update_batch.num_chunks == len(selection.kept_rows) < rollout.num_chunks
    assert all(batch is update_batch for batch, _ in seen)
    fed = np.concatenate([rows for _, rows in seen])
    assert sorted(fed.tolist()) == list(range(update_batch.num_chunks))  # each kept chunk once
    # the images the actor saw are exactly those of the kept chunks of the rollout
    np.testing.assert_array_equal(update_batch.images, rollout.images[selection.kept_rows])
    # at most `budget` chunks of any trajectory reach the actor
    assert np.bincount(update_batch.traj).max() <= 2


def _one_update(tiny, mixed, tmp_path, **overrides):
    trainer = Trainer(tiny(**overrides), tmp_path, ListSink(), resume=False)
    mixed(trainer)
    selection = trainer.select(trainer.rollout())
    trainer.update(selection)
    return params(trainer), selection


def test_full_and_pcm_with_budget_at_least_n_give_the_same_update(tiny, mixed, tmp_path):
    full, sel_full = _one_update(tiny, mixed, tmp_path / "a", pcm__selector="full")
    pcm, sel_pcm = _one_update(tiny, mixed, tmp_path / "b", pcm__selector="pcm", pcm__budget=1000)
    np.testing.assert_array_equal(sel_full.kept_rows, sel_pcm.kept_rows)
    for name in full:
        torch.testing.assert_close(full[name], pcm[name], rtol=1e-5, atol=1e-6)


def _count_forwards(trainer) -> list[int]:
    sizes = []
    real_forward = trainer.actor_forward

    def spy(batch, rows, **kwargs):
        sizes.append(len(rows))
        return real_forward(batch, rows, **kwargs)

    trainer.actor_forward = spy
    return sizes


def _record_pass_shapes(trainer) -> list[PassShape]:
    """(chunks, instruction width, padded) of every forward/backward pass of the actor."""
    shapes = []
    real_forward = trainer.actor_forward

    def spy(batch, rows, *, inputs, **kwargs):
        shapes.append(PassShape(len(rows), inputs.input_ids.shape[1], not inputs.unpadded))
        return real_forward(batch, rows, inputs=inputs, **kwargs)

    trainer.actor_forward = spy
    return shapes


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("grpo__micro_batch_chunks", -1),
        ("grpo__micro_batch_chunks", "fast"),
        ("grpo__micro_batch_chunks", True),
        ("grpo__micro_batch_chunks", 1.5),
        ("grpo__pass_memory_mb", 0),
        ("pcm__score_null_shuffles", -2),
        ("pcm__score_null_shuffles", 5000),
        ("env__grip_force", 1.0),
        ("env__grip_force", -0.1),
        ("sft__expert_grip_noise", -1),
    ],
)
def test_out_of_bounds_run_settings_are_refused_naming_the_field(tiny, key, value):
    with pytest.raises(ConfigError) as err:
        tiny(**{key: value})
    assert err.value.fields == [key.replace("__", ".")]
    assert key.replace("__", ".") in str(err.value)


def test_micro_batch_modes_default_to_auto_and_an_old_zero_reads_as_memory(tiny):
    assert tiny().grpo.micro_batch_chunks == "auto" and tiny().grpo.pass_memory_mb is None
    for given, read in [("auto", "auto"), ("memory", "memory"), (0, "memory"), (64, 64), ("64", 64)]:
        assert tiny(grpo__micro_batch_chunks=given).grpo.micro_batch_chunks == read
    saved = tiny(grpo__micro_batch_chunks=0).to_dict()  # a config saved before `auto`: 0 then
    saved["grpo"]["micro_batch_chunks"] = 0
    assert RunConfig.from_dict(saved).grpo.micro_batch_chunks == "memory"
    with pytest.raises(ConfigError) as err:  # a budget for auto only
        tiny(grpo__micro_batch_chunks="memory", grpo__pass_memory_mb=100)
    assert err.value.fields == ["grpo.pass_memory_mb"]


PACKINGS = {
    "1": dict(grpo__micro_batch_chunks=1),
    "3": dict(grpo__micro_batch_chunks=3),
    "5": dict(grpo__micro_batch_chunks=5),
    "memory_2": dict(grpo__micro_batch_chunks="memory", grpo__micro_batch_trajectories=2),
    "auto": dict(grpo__micro_batch_chunks="auto"),
    "auto_2": dict(grpo__micro_batch_chunks="auto", grpo__micro_batch_trajectories=2),
    "auto_mb": dict(grpo__micro_batch_chunks="auto", grpo__pass_memory_mb=1.5),  # ~5 tiny chunks
}


@pytest.mark.parametrize("packing", list(PACKINGS))
def test_packing_chunks_across_trajectories_gives_the_same_update_in_fewer_passes(
    tiny, mixed, tmp_path, packing
):
    runs = {}
    for name, overrides in {
        "by_trajectory": dict(grpo__micro_batch_chunks="memory", grpo__micro_batch_trajectories=1),
        "packed": PACKINGS[packing],
    }.items():
        trainer = Trainer(
            tiny(pcm__selector="pcm", pcm__budget=2, grpo__mini_batches=1, **overrides),
            tmp_path / name,
            ListSink(),
            resume=False,
        )
        mixed(trainer)
        sizes = _count_forwards(trainer)
        selection = trainer.select(trainer.rollout())
        out = trainer.update(selection)
        assert out[M.TRAIN_PASSES] == len(sizes)
        # AdamW's first moment after its first step is (1 - beta1) x the gradient: compare those
        # (the parameters themselves move by ~lr x sign(gradient), which float noise can flip
        # where a gradient is ~0)
        moments = [trainer.optimizer.state[p]["exp_avg"].clone() for p in trainer.policy.parameters()]
        runs[name] = (moments, sizes, selection)
    (by_traj, traj_sizes, selection), (packed, packed_sizes, _) = runs["by_trajectory"], runs["packed"]
    kept = len(selection.kept_rows)
    trajectories = selection.update_batch.num_trajectories
    assert sum(traj_sizes) == sum(packed_sizes) == kept  # every kept chunk once, either way
    assert len(traj_sizes) == trajectories  # one pass per trajectory
    if packing.isdigit():
        chunks = int(packing)
        assert packed_sizes == [chunks] * (kept // chunks) + ([kept % chunks] if kept % chunks else [])
    elif packing == "memory_2":
        assert len(packed_sizes) == -(-trajectories // 2)
    else:
        assert len(packed_sizes) < trajectories
    for a, b in zip(by_traj, packed, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("per_pass", [1, 2])
def test_auto_packs_pcm_in_fewer_passes_none_larger_than_grpos(tiny, mixed, tmp_path, per_pass):
    """`auto`'s default budget is GRPO's largest `memory` pass on the same batch: under it PCM
    makes fewer passes than GRPO, none holding more chunks, a longer instruction or padding GRPO
    does not have, so none saves more activation; GRPO itself makes no larger passes than in
    `memory` mode."""
    runs = {}
    for name, overrides in {
        "grpo_memory": dict(pcm__selector="full", grpo__micro_batch_chunks="memory"),
        "grpo_auto": dict(pcm__selector="full"),
        "pcm_memory": dict(pcm__selector="pcm", pcm__budget=2, grpo__micro_batch_chunks="memory"),
        "pcm_auto": dict(pcm__selector="pcm", pcm__budget=2),
    }.items():
        # seed 1: tasks 0, 1, 1, whose instructions differ in length, so passes may pad
        config = tiny(
            grpo__groups_per_step=3, train__seed=1, grpo__micro_batch_trajectories=per_pass, **overrides
        )
        trainer = Trainer(config, tmp_path / name, ListSink(), resume=False)
        mixed(trainer)
        shapes = _record_pass_shapes(trainer)
        selection = trainer.select(trainer.rollout())
        out = trainer.update(selection)
        assert out[M.TRAIN_PASSES] == len(shapes)
        runs[name] = (shapes, out, selection)
    grpo, grpo_out, grpo_selection = runs["grpo_memory"]
    trajectories = grpo_selection.update_batch.num_trajectories
    assert len(grpo) == -(-trajectories // per_pass)
    largest = max(shape.chunks for shape in grpo)

    def within_grpos(shape):
        return any(
            shape.chunks <= g.chunks and shape.width <= g.width and (g.padded or not shape.padded)
            for g in grpo
        )

    assert len(set(grpo_selection.update_batch.instructions)) == 2  # the case this test is about
    for name in ("grpo_auto", "pcm_auto"):
        shapes, out, _ = runs[name]
        assert all(within_grpos(shape) for shape in shapes), (name, shapes, grpo)
        assert max(shape.chunks for shape in shapes) <= largest
        assert out[M.MEM_ACTIVATION] <= grpo_out[M.MEM_ACTIVATION]
    pcm, _, pcm_selection = runs["pcm_auto"]
    assert sum(shape.chunks for shape in pcm) == len(pcm_selection.kept_rows)
    assert len(pcm) < len(grpo) == len(runs["pcm_memory"][0])
    # `memory` keeps the paper's passes: PCM's shrink with what it keeps
    assert runs["pcm_memory"][1][M.MEM_ACTIVATION] < runs["pcm_auto"][1][M.MEM_ACTIVATION]


def test_pack_rows_fills_passes_within_the_cap_longest_instruction_first():
    grpo = [PassShape(8, 39, False), PassShape(8, 37, False)]  # one trajectory a pass, two widths
    cap = cap_within(grpo)
    assert (cap(39, False), cap(37, False), cap(39, True), cap(40, False)) == (8, 8, 0, 0)
    rows = np.arange(12)
    widths = np.array([37] * 4 + [39] * 8)
    # no padding where GRPO has none: the 8 long rows, then the 4 short ones
    assert [p.tolist() for p in pack_rows(rows, widths, cap)] == [list(range(4, 12)), [0, 1, 2, 3]]
    # 12 rows of one width: two even passes of 6 rather than 8 + 4
    assert [len(p) for p in pack_rows(rows, np.full(12, 39), cap)] == [6, 6]
    # GRPO pads (two trajectories a pass): so may PCM, up to GRPO's padded pass
    padded = cap_within([PassShape(16, 39, True), PassShape(16, 37, False)])
    assert [len(p) for p in pack_rows(rows, widths, padded)] == [12]
    assert [len(p) for p in pack_rows(np.arange(20), np.r_[np.full(10, 37), np.full(10, 39)], padded)] == [
        10,
        10,
    ]
    assert pack_rows(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), cap) == []


def test_a_pass_memory_budget_bounds_what_every_pass_saves(tiny, mixed, tmp_path):
    """`grpo.pass_memory_mb`: passes of up to budget / c chunks, c measured once by a two-chunk
    forward at the longest instruction, padded: an upper bound, so no pass saves more."""
    config = tiny(pcm__budget=3, grpo__pass_memory_mb=1e6)
    trainer = Trainer(config, tmp_path / "probe", ListSink(), resume=False)
    mixed(trainer)
    trainer.update(trainer.select(trainer.rollout()))
    assert len(trainer._chunk_bytes) == 1
    per_chunk = next(iter(trainer._chunk_bytes.values()))
    budget = 3.5 * per_chunk
    trainer = Trainer(
        tiny(pcm__budget=3, grpo__pass_memory_mb=budget / 2**20), tmp_path / "run", ListSink(), resume=False
    )
    mixed(trainer)
    sizes = _count_forwards(trainer)
    selection = trainer.select(trainer.rollout())
    out = trainer.update(selection)
    kept = len(selection.kept_rows)
    assert max(sizes) == 3 and len(sizes) == -(-kept // 3) and sum(sizes) == kept
    assert 0 < out[M.MEM_ACTIVATION] <= budget


def test_unbiased_reweight_with_every_chunk_kept_changes_nothing(tiny, mixed, tmp_path):
    none, _ = _one_update(tiny, mixed, tmp_path / "a", pcm__selector="full")
    unbiased, sel = _one_update(tiny, mixed, tmp_path / "b", pcm__selector="full", pcm__reweight="unbiased")
    np.testing.assert_allclose(sel.chunk_weights, 1.0)
    for name in none:
        torch.testing.assert_close(none[name], unbiased[name], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("loss_agg", ["token_mean", "trajectory_mean"])
def test_unbiased_reweight_weighs_a_kept_chunk_by_its_inverse_inclusion_probability(
    tiny, mixed, tmp_path, loss_agg
):
    overrides = dict(pcm__selector="pcm", pcm__budget=1, pcm__reweight="unbiased", grpo__loss_agg=loss_agg)
    _, sel = _one_update(tiny, mixed, tmp_path, **overrides)
    batch = sel.update_batch  # every group is mixed: its trajectories are the rollout's
    lengths = np.array([len(labels) for labels in sel.labels], dtype=np.float64)
    pi = [inclusion_probabilities([sel.p[c] for c in labels], 1) for labels in sel.labels]
    expected = np.array([1 / pi[t][k] for t, k in zip(batch.traj, batch.chunk_index, strict=True)])
    if loss_agg == "trajectory_mean":
        expected /= lengths[batch.traj]
        np.testing.assert_allclose(sel.full_weights, 1.0)
    else:
        np.testing.assert_allclose(sel.full_weights, lengths)
    np.testing.assert_allclose(sel.chunk_weights, expected)


def _record_normalisers(trainer) -> list[float]:
    seen = []
    real = trainer.normaliser

    def spy(selection, mini, mini_rows):
        seen.append(real(selection, mini, mini_rows))
        return seen[-1]

    trainer.normaliser = spy
    return seen


@pytest.mark.parametrize("loss_agg", ["token_mean", "trajectory_mean"])
def test_unbiased_reweight_normalises_by_the_full_selectors_count(tiny, mixed, tmp_path, loss_agg):
    """Whatever the draw keeps, the unbiased loss is divided by what the full selector's is
    (all chunks, or all trajectories), never by the kept weights' sum, which varies by draw."""
    normalisers, rollouts = {}, {}
    for name, overrides in {
        "full": dict(pcm__selector="full"),
        "pcm": dict(pcm__selector="pcm", pcm__budget=1, pcm__reweight="unbiased"),
        "uniform": dict(pcm__selector="uniform", pcm__budget=2, pcm__reweight="unbiased"),
    }.items():
        config = tiny(grpo__loss_agg=loss_agg, grpo__mini_batches=2, **overrides)
        trainer = Trainer(config, tmp_path / name, ListSink(), resume=False)
        mixed(trainer)
        normalisers[name] = _record_normalisers(trainer)
        rollouts[name] = trainer.rollout()
        trainer.update(trainer.select(rollouts[name]))
    full = sum(normalisers["full"])
    if loss_agg == "token_mean":
        assert full == rollouts["full"].num_chunks
    else:
        assert full == pytest.approx(rollouts["full"].num_trajectories)
    for name in ("pcm", "uniform"):
        assert rollouts[name].num_chunks == rollouts["full"].num_chunks  # paired rollouts
        assert len(normalisers[name]) == 2 and sum(normalisers[name]) == pytest.approx(full)


def test_dynamic_sampling_skips_the_update_when_no_group_is_mixed(tiny, tmp_path):
    trainer = Trainer(tiny(), tmp_path, ListSink(), resume=False)
    before = params(trainer)
    real = trainer.rollout

    def all_fail():
        batch = real()
        batch.success[:] = False
        return batch

    trainer.rollout = all_fail
    out = trainer.step()
    assert out[M.TRAIN_UPDATED] == 0.0 and out[M.PCM_KEPT_CHUNKS] == 0
    for name, value in params(trainer).items():
        torch.testing.assert_close(value, before[name], rtol=0, atol=0)


def test_score_nulls_are_reported_beside_the_scores_and_never_touch_training(tiny, mixed, tmp_path):
    outs, states = {}, {}
    for shuffles in (0, 8):
        trainer = Trainer(
            tiny(pcm__budget=2, pcm__score_null_shuffles=shuffles),
            tmp_path / str(shuffles),
            ListSink(),
            resume=False,
        )
        mixed(trainer)
        outs[shuffles] = trainer.step()
        states[shuffles] = params(trainer)
    off, on = outs[0], outs[8]
    scored = [c for c in PHASES if M.score_metric(c) in on]
    assert scored  # the forced-mixed groups give scores
    assert not any(M.score_null_metric(c) in off for c in PHASES)
    for phase in scored:
        assert on[M.score_null_metric(phase)] >= 0
        assert on[M.score_metric(phase)] == off[M.score_metric(phase)]
    for name in states[0]:  # a reporting metric: training is bit-identical with it on
        torch.testing.assert_close(states[0][name], states[8][name], rtol=0, atol=0)


def test_step_emits_the_metric_contract_and_chunk_records(tiny, mixed, tmp_path):
    sink = ListSink()
    trainer = Trainer(tiny(pcm__budget=2, pcm__mask_records_trajectories=3), tmp_path, sink, resume=False)
    mixed(trainer)
    out = trainer.step()
    assert set(M.PER_STEP_METRICS) <= set(out)
    assert set(out) <= set(M.all_metric_names())
    assert out[M.TIME_STEP] >= out[M.TIME_ROLLOUT] + out[M.TIME_SELECT] + out[M.TIME_UPDATE] - 1e-9
    assert out[M.MEM_ACTIVATION] > 0 and out[M.MEM_PEAK_RSS] > 0
    kept = sum(
        out[M.kept_metric(c)] for c in ("active_grip", "pre_grasp", "release_ramp", "approach", "tail")
    )
    assert kept == out[M.PCM_KEPT_CHUNKS]
    assert out[M.PCM_KEPT_FRACTION] == pytest.approx(kept / out[M.ROLLOUT_CHUNKS])
    step, records = sink.chunks[0]
    # at least 3 trajectories, in whole groups (of 2): both groups
    assert step == 1 and {r.trajectory for r in records} == {0, 1, 2, 3}
    assert sum(r.kept for r in records) == sum(
        min(2, sum(1 for r in records if r.trajectory == t)) for t in range(4)
    )


def test_pcm_saves_fewer_activation_bytes_than_full(tiny, mixed, tmp_path):
    results = {}
    for selector in ("full", "pcm"):
        trainer = Trainer(
            tiny(pcm__selector=selector, pcm__budget=1),
            tmp_path / selector,
            ListSink(),
            resume=False,
        )
        mixed(trainer)
        results[selector] = trainer.step()
    assert results["pcm"][M.MEM_ACTIVATION] < 0.6 * results["full"][M.MEM_ACTIVATION]


@pytest.mark.slow
def test_two_steps_resume_two_steps_equals_four_steps(tiny, mixed, tmp_path):
    straight = Trainer(tiny(train__steps=4), tmp_path / "straight", ListSink(), resume=False)
    mixed(straight)
    straight.train()

    first = Trainer(tiny(train__steps=2), tmp_path / "resumed", ListSink())
    mixed(first)
    first.train()
    second = Trainer(tiny(train__steps=4), tmp_path / "resumed", ListSink())
    assert second.resume_from == 2
    mixed(second)
    second.train()

    assert second.step_count == 4
    assert second.keep.state_dict() == straight.keep.state_dict()
    for name, value in params(straight).items():
        torch.testing.assert_close(params(second)[name], value, rtol=0, atol=0)


def test_jsonl_sink_and_checkpoint_files(tiny, mixed, tmp_path):
    sink = JsonlSink(tmp_path)
    trainer = Trainer(tiny(train__steps=2, eval__every=2), tmp_path, sink)
    mixed(trainer)
    trainer.train()
    sink.close()
    rows = read_metrics(tmp_path)
    assert [r["step"] for r in rows] == [0, 1, 2]
    assert M.EVAL_SUCCESS in rows[0] and M.EVAL_SUCCESS in rows[2]
    assert M.ROLLOUT_SUCCESS in rows[1]
    assert (tmp_path / "policy").is_dir()
    ckpts = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert ckpts == ["step_000001", "step_000002"]
    saved = (tmp_path / "checkpoints" / "step_000002" / "config.yaml").read_text()
    assert "train_init_states: 4" in saved
    chunk_lines = (tmp_path / "chunks.jsonl").read_text().splitlines()
    assert {"step", "trajectory", "chunk", "phase", "kept"} <= set(json.loads(chunk_lines[0]))


def test_trajectory_mean_gives_every_trajectory_the_same_total_weight(tiny, mixed, tmp_path):
    _, sel = _one_update(tiny, mixed, tmp_path, pcm__selector="full", grpo__loss_agg="trajectory_mean")
    batch = sel.update_batch
    totals = np.bincount(batch.traj, weights=sel.chunk_weights)
    np.testing.assert_allclose(totals, 1.0)
    # a longer trajectory's chunks weigh less each
    lengths = np.bincount(batch.traj)
    np.testing.assert_allclose(sel.chunk_weights, 1.0 / lengths[batch.traj])


@pytest.mark.slow
def test_paired_seeds_roll_out_the_same_groups_whatever_the_selector(tiny, mixed, tmp_path):
    """Spec §6: two runs with one seed start every step's groups from the same tasks and init
    states, although PCM draws chunks (and its policy moves differently) and GRPO does not."""
    schedules = {}
    for selector in ("full", "pcm"):
        trainer = Trainer(
            tiny(pcm__selector=selector, pcm__budget=1, train__steps=3),
            tmp_path / selector,
            ListSink(),
            resume=False,
        )
        mixed(trainer)
        seen = []
        real_rollout = trainer.rollout

        def recording(real_rollout=real_rollout, seen=seen, **kwargs):
            batch = real_rollout(**kwargs)
            seen.append((batch.task.copy(), batch.init_state.copy()))
            return batch

        trainer.rollout = recording
        trainer.train()
        schedules[selector] = seen
    assert len(schedules["full"]) == 3
    for (tasks_a, inits_a), (tasks_b, inits_b) in zip(schedules["full"], schedules["pcm"], strict=True):
        np.testing.assert_array_equal(tasks_a, tasks_b)
        np.testing.assert_array_equal(inits_a, inits_b)
    # the schedule does move from step to step (it is a stream, not one fixed draw)
    assert any(not np.array_equal(schedules["full"][0][1], later[1]) for later in schedules["full"][1:])


def test_each_purpose_draws_from_its_own_stream():
    from pcm_engine.seeding import step_stream, step_torch_generator

    a = step_stream(0, "schedule", 1).integers(0, 1 << 30, size=4)
    np.testing.assert_array_equal(a, step_stream(0, "schedule", 1).integers(0, 1 << 30, size=4))
    for other in (
        step_stream(0, "selection", 1),
        step_stream(0, "schedule", 2),
        step_stream(1, "schedule", 1),
    ):
        assert not np.array_equal(a, other.integers(0, 1 << 30, size=4))
    t1 = torch.rand(3, generator=step_torch_generator(0, "rollout", 5, "cpu"))
    t2 = torch.rand(3, generator=step_torch_generator(0, "rollout", 5, "cpu"))
    torch.testing.assert_close(t1, t2, rtol=0, atol=0)
    with pytest.raises(ValueError, match="unknown random stream"):
        step_stream(0, "nope", 1)


def test_top_phase_trains_when_some_trajectories_lack_the_top_phase(tiny, mixed, tmp_path):
    config = tiny(
        pcm__selector="top_phase", pcm__budget=1, grpo__micro_batch_trajectories=1, grpo__group_size=4
    )
    trainer = Trainer(config, tmp_path, ListSink(), resume=False)
    mixed(trainer)
    batch = trainer.rollout()
    labels = trainer.label(batch)
    # make the top phase one that some trajectories have and others lack
    top = next(c for c in PHASES if 0 < sum(c in traj for traj in labels) < len(labels))
    trainer.keep.calls, trainer.keep._p = 1, {c: (1.0 if c == top else 0.1) for c in PHASES}
    selection = trainer.select(batch)
    lacking = [t for t in range(batch.num_trajectories) if top not in labels[t]]
    for t in lacking:
        assert not np.isin(batch.chunks_of(t), selection.kept_rows).any()
    assert trainer.update(selection)[M.TRAIN_UPDATED] == 1.0  # no empty pass reaches the actor

"""Episode media: GIFs of a step's rollouts per task, successes and failures, with sidecars that
match the step's chunk records."""

import json

import imageio.v3 as iio
import numpy as np
from PIL import Image

from pcm_engine.media import downscale, pick_episodes
from pcm_engine.metrics import FanOutSink, JsonlSink
from pcm_engine.trainer import Trainer
from tests.tiny import RecordingSink


def test_pick_episodes_takes_a_success_and_a_failure_of_each_task_when_both_exist():
    success = np.array([False, False, True, True, False, False])
    task = np.array([0, 0, 0, 1, 1, 1])
    assert pick_episodes(success, task, 2) == [0, 2, 3, 4]  # task 0: a success and a failure
    assert pick_episodes(success, task, 3) == [0, 1, 2, 3, 4, 5]
    assert pick_episodes(np.zeros(4, dtype=bool), np.array([0, 0, 0, 0]), 2) == [0, 1]  # failures only
    assert pick_episodes(success, task, 0) == []


def test_downscale_fits_the_largest_side_by_an_integer_stride():
    frames = np.zeros((3, 256, 200, 3), dtype=np.uint8)
    assert downscale(frames, 128).shape == (3, 128, 100, 3)
    small = np.zeros((3, 64, 64, 3), dtype=np.uint8)
    assert downscale(small, 128) is small


def test_eval_steps_record_decodable_gifs_whose_sidecars_match_the_chunk_records(tiny, mixed, tmp_path):
    config = tiny(
        eval__every=2,
        eval__record_episodes=2,
        train__steps=2,
        pcm__selector="pcm",
        pcm__budget=2,
        pcm__mask_records_trajectories=64,  # every trajectory's chunk records, to compare with
    )
    sink = RecordingSink()
    trainer = Trainer(config, tmp_path, FanOutSink(sink, JsonlSink(tmp_path)), resume=False)
    mixed(trainer)  # even trajectories succeed, odd ones fail: every task has both
    trainer.train()

    assert list(sink.media) == [2]  # only at the eval step (not step 1, not the step-0 eval)
    items = sink.media[2]
    records = sink.chunks[2]
    tasks = sorted({item.task for item in items})
    assert tasks and len(items) == 2 * len(tasks)
    for task in tasks:
        outcomes = sorted(item.success for item in items if item.task == task)
        assert outcomes == [False, True]  # a success and a failure of each task
    for item in items:
        gif = tmp_path / item.path
        assert gif.is_file() and item.content_type == "image/gif"
        frames = iio.imread(gif, index=None)
        assert frames.ndim == 4 and 1 <= frames.shape[0] <= len(item.chunks)
        # a frame per chunk (identical neighbours merged into one longer frame): chunk k at k * frame_ms
        assert gif_duration_ms(gif) == item.frame_ms * len(item.chunks)
        sidecar = json.loads((tmp_path / item.sidecar).read_text())
        assert sidecar["success"] == item.success and sidecar["step"] == 2
        mine = sorted((r.chunk, r.phase, r.kept) for r in records if r.trajectory == item.trajectory)
        assert [(c["chunk"], c["phase"], c["kept"]) for c in sidecar["chunks"]] == mine
        assert all(r.success == item.success for r in records if r.trajectory == item.trajectory)
    assert any(c.kept for item in items for c in item.chunks)
    index = [json.loads(line) for line in (tmp_path / "media.jsonl").read_text().splitlines()]
    assert [row["path"] for row in index] == [item.path for item in items]


def gif_duration_ms(path) -> int:
    with Image.open(path) as gif:
        total = 0
        for frame in range(gif.n_frames):
            gif.seek(frame)
            total += gif.info["duration"]
        return total


def test_record_episodes_zero_records_nothing(tiny, tmp_path):
    sink = RecordingSink()
    trainer = Trainer(
        tiny(eval__every=1, eval__record_episodes=0, train__steps=1), tmp_path, sink, resume=False
    )
    trainer.train()
    assert sink.media == {} and not (tmp_path / "media").exists()

"""DatabaseSink.log_media: a `run_media` row per recorded episode (a replayed step overwrites its
rows) and a `media` event for the live stream."""

from __future__ import annotations

from backend.store.models import RunEvent, RunMedia
from pcm_engine.media import MediaChunk, MediaItem
from tests.worker.test_db_sink import database, rows  # noqa: F401 (the fixture)
from worker.db_sink import DatabaseSink


def item(step: int, task: int, success: bool) -> MediaItem:
    return MediaItem(
        step=step, task=task, trajectory=task * 2 + int(success), success=success, instruction="pick",
        path=f"media/step_{step:06d}/task{task}.gif", sidecar=f"media/step_{step:06d}/task{task}.json",
        content_type="image/gif", frame_ms=250,
        chunks=[
            MediaChunk(chunk=0, phase="approach", kept=False), MediaChunk(chunk=1, phase="grasp", kept=True)
        ],
    )  # fmt: skip


def test_media_rows_are_upserted_with_their_chunks(database):  # noqa: F811
    settings, run_id = database
    sink = DatabaseSink(settings, run_id)
    sink.log_media(10, [item(10, 0, False), item(10, 1, True)])
    sink.log_media(10, [item(10, 1, False)])  # resumed: the same file again
    stored = sorted(rows(settings, RunMedia, run_id), key=lambda m: m.task)
    assert [(m.step, m.task, m.success, m.path) for m in stored] == [
        (10, 0, False, "media/step_000010/task0.gif"),
        (10, 1, False, "media/step_000010/task1.gif"),
    ]
    assert stored[0].chunks == [
        {"chunk": 0, "phase": "approach", "kept": False},
        {"chunk": 1, "phase": "grasp", "kept": True},
    ]
    events = [(e.kind, e.step, e.payload) for e in rows(settings, RunEvent, run_id)]
    assert events == [("media", 10, {"step": 10, "count": 2}), ("media", 10, {"step": 10, "count": 1})]

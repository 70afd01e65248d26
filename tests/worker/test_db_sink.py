"""DatabaseSink against the real databases (SQLite and PostgreSQL): idempotent upserts, run
progress and the events the live stream reads."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import select

from backend.store.db import migrate, session_scope
from backend.store.models import ChunkMask, Metric, Run, RunEvent
from backend.store.settings import Settings
from pcm_engine import metrics as M
from pcm_engine.metrics import ChunkRecord
from tests.worker.checks import add_queued_run
from worker.db_sink import MEAN_UPDATE_S, DatabaseSink


@pytest.fixture(params=["sqlite_url", pytest.param("postgres_url", marks=pytest.mark.slow)])
def database(request, tmp_path) -> tuple[Settings, int]:
    """Settings on a migrated database holding one queued run; returns (settings, run id)."""
    url = request.getfixturevalue(request.param)
    settings = Settings(_env_file=None, data_dir=tmp_path, database_url=url)
    migrate(url)
    with session_scope(url) as session:
        run = add_queued_run(session)
        return settings, run.id


def rows(settings: Settings, model, run_id: int) -> list:
    with session_scope(settings.resolved_database_url) as session:
        return list(session.scalars(select(model).where(model.run_id == run_id)))


def test_a_replayed_step_overwrites_its_rows_and_progress_never_goes_back(database):
    settings, run_id = database
    sink = DatabaseSink(settings, run_id)
    sink.log_metrics(0, {M.EVAL_SUCCESS: 0.25})
    sink.log_metrics(1, {M.ROLLOUT_SUCCESS: 0.5, M.TRAIN_POLICY_LOSS: 1.0})
    sink.log_metrics(2, {M.ROLLOUT_SUCCESS: 0.75, M.TRAIN_POLICY_LOSS: math.nan})
    sink.log_metrics(1, {M.ROLLOUT_SUCCESS: 0.6, M.TRAIN_POLICY_LOSS: 2.0})  # resumed: step 1 again
    sink.close()

    stored = {(m.step, m.name): m.value for m in rows(settings, Metric, run_id)}
    assert stored == {
        (0, M.EVAL_SUCCESS): 0.25,
        (1, M.ROLLOUT_SUCCESS): 0.6,
        (1, M.TRAIN_POLICY_LOSS): 2.0,
        (2, M.ROLLOUT_SUCCESS): 0.75,  # NaN is not stored ...
    }
    events = rows(settings, RunEvent, run_id)
    assert [(e.kind, e.step) for e in events] == [
        ("metrics", 0),
        ("metrics", 1),
        ("metrics", 2),
        ("metrics", 1),
    ]
    assert events[2].payload == {"step": 2, "metrics": {M.ROLLOUT_SUCCESS: 0.75, M.TRAIN_POLICY_LOSS: None}}
    with session_scope(settings.resolved_database_url) as session:
        run = session.get(Run, run_id)
        assert run.steps_done == 2
        assert run.summary == {M.EVAL_SUCCESS: 0.25, M.ROLLOUT_SUCCESS: 0.6, "step": 2}
    assert (sink.stats.transactions, sink.stats.rows, sink.skipped_nonfinite) == (4, 6, 1)
    assert sink.stats.rows_per_s > 0


def test_the_summary_keeps_the_mean_update_time_over_distinct_steps(database):
    settings, run_id = database
    sink = DatabaseSink(settings, run_id)
    sink.log_metrics(1, {M.TIME_UPDATE: 1.0})
    sink.log_metrics(2, {M.TIME_UPDATE: 3.0})
    sink.log_metrics(2, {M.TIME_UPDATE: 2.0})  # resumed: step 2 again replaces its value
    sink.close()
    with session_scope(settings.resolved_database_url) as session:
        summary = session.get(Run, run_id).summary
    assert summary[MEAN_UPDATE_S] == 1.5 and summary[M.TIME_UPDATE] == 2.0


def test_chunk_masks_are_upserted_per_step_trajectory_and_chunk(database):
    settings, run_id = database
    sink = DatabaseSink(settings, run_id)
    records = [
        ChunkRecord(trajectory=0, chunk=c, phase="approach", kept=c == 0, success=True, group=0)
        for c in range(3)
    ]
    sink.log_chunks(1, records)
    sink.log_chunks(
        1, [ChunkRecord(trajectory=0, chunk=2, phase="transport", kept=True, success=True, group=0)]
    )
    sink.log_chunks(2, [])  # nothing recorded: nothing written

    stored = {(m.step, m.trajectory, m.chunk): (m.phase, m.kept) for m in rows(settings, ChunkMask, run_id)}
    assert stored == {
        (1, 0, 0): ("approach", True),
        (1, 0, 1): ("approach", False),
        (1, 0, 2): ("transport", True),
    }
    events = rows(settings, RunEvent, run_id)
    assert [(e.kind, e.payload) for e in events] == [
        ("chunks", {"step": 1, "count": 3}),
        ("chunks", {"step": 1, "count": 1}),
    ]

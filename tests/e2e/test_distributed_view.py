"""The pure formatting of distributed runs (frontend/static/js/format.js, workers.js) in the real
browser without a server (the `page` fixture of test_modules.py): rank ranges, a run's processes,
and what a workers-page cell says of a run its reader may or may not see."""

from __future__ import annotations

import pytest

from tests.e2e.test_modules import page  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_ranks_processes_and_a_run_the_reader_may_not_see_read_plainly(page):  # noqa: F811
    got = page.evaluate(
        """async () => {
      const { fmtProcesses, fmtRanks } = await import('/static/js/format.js');
      const { heldRun } = await import('/static/js/workers.js');
      const text = (worker) => {
        const cell = document.createElement('td');
        cell.append(...[heldRun(worker)].flat().filter(Boolean));
        return cell.textContent;
      };
      return {
        ranks: [[3], [0, 1, 2, 3], [0, 2, 3], [5, 4, 7]].map(fmtRanks),
        processes: [undefined, { world_size: 1, strategy: 'ddp', nodes: 1 },
          { world_size: 8, strategy: 'fsdp', nodes: 2 }].map(fmtProcesses),
        hidden: text({ busy: true, current_run_id: null, run: null }),
        idle: text({ busy: false, current_run_id: null, run: null }),
        single: text({
          busy: true, current_run_id: 7, run: { id: 7, name: 'solo', node_rank: null, ranks: [] } }),
      };
    }"""
    )
    assert got["ranks"] == ["rank 3", "ranks 0–3", "ranks 0, 2–3", "ranks 4–5, 7"]
    assert got["processes"] == ["1 process", "1 process", "8 ranks · fsdp · 2 nodes"]
    assert got["hidden"] == "busy with a run you may not see"  # no id, no name, no link
    assert got["idle"] == "idle"
    assert got["single"] == "run #7 solo"  # one process: no ranks to name

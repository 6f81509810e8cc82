"""The progress lines: on changes and as heartbeats, not on every poll."""

from __future__ import annotations

from typing import Any

from dbtgate.cloud.models import Run
from dbtgate.watch.progress import ProgressReporter


def run(status: int, **more: Any) -> Run:
    return Run.from_api({"id": 1, "status": status, "job_definition_id": 2, **more})


# ---- progress -------------------------------------------------------------------------------------------------
def test_progress_prints_changes_and_heartbeats_not_every_poll() -> None:
    lines: list[str] = []
    reporter = ProgressReporter(lines.append, heartbeat_seconds=120)
    for second in range(0, 100, 10):
        reporter.observe(run(1), second)
    assert len(lines) == 1 and "Queued" in lines[0]
    reporter.observe(run(3, run_steps=[{"index": 3, "name": "Invoke dbt with `dbt build`", "status": 3}]), 100)
    assert "step 3: Invoke dbt with `dbt build`" in lines[-1]
    for second in range(110, 400, 10):
        reporter.observe(run(3, run_steps=[{"index": 3, "name": "x", "status": 3}]), second)
    assert 3 <= len(lines) <= 5, lines
    assert "still Running" in lines[-1]
    reporter.observe(run(1, blocked_by=[5]), 500)
    assert "behind run 5" in lines[-1]


def test_a_fusion_run_s_progress_counts_the_nodes_done() -> None:
    """Fusion says how many nodes a run has only at its end: until then the line counts the nodes done."""
    from dbtgate.watch.progress import describe
    from dbtgate.watch.schedule import Progress
    running = run(3, run_steps=[{"index": 3, "name": "Invoke dbt with `dbt build`", "status": 3, "logs": "x"}])
    assert describe(running, Progress(41, 0, None)).endswith(", 41 nodes done")
    assert describe(running, Progress(41, 120, None)).endswith(", 41 of 120 nodes")

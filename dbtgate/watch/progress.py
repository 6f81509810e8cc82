"""Human progress lines: one when the status or the step changes, and a heartbeat on long quiet waits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from dbtgate.cloud.models import Run, RunStatus, RunStep

if TYPE_CHECKING:  # polling is imported when a run is watched, not on the way to the first request
    from dbtgate.watch.schedule import Progress


def format_seconds(seconds: float) -> str:
    whole = int(max(0, seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def describe(run: Run, progress: Progress | None = None, total_steps: int | None = None) -> str:
    """E.g. "Running — step 3/4 Invoke dbt with `dbt build`, 41 of 120 nodes, about 2m10s left"."""
    text = run.status_humanized or str(run.status_code)
    if run.status is RunStatus.QUEUED and run.blocked_by:
        return f"{text} behind run {', '.join(str(b) for b in run.blocked_by)}"
    if not run.steps or run.is_terminal:
        return text
    current = run.steps[-1]
    of_total = f"/{total_steps}" if total_steps and total_steps >= current.index else ""
    text = f"{text} — step {current.index}{of_total}: {current.name}"
    if progress is not None and progress.nodes_total:
        text += f", {progress.nodes_done} of {progress.nodes_total} nodes"
    elif progress is not None and progress.nodes_done:
        text += f", {progress.nodes_done} nodes done"   # Fusion says how many nodes there are only at the end
    if progress is not None and progress.remaining is not None and progress.remaining > 0:
        text += f", about {format_seconds(progress.remaining)} left"
    return text


class ProgressReporter:
    """(A plain class: a dataclass is built at import time, and this module is on the way to the first request.)"""

    def __init__(self, emit: Callable[[str], None], heartbeat_seconds: float = 120.0) -> None:
        self.emit = emit
        self.heartbeat_seconds = heartbeat_seconds
        self._last_key: tuple[int, int] | None = None
        self._last_emit = 0.0
        self._steps: tuple[RunStep, ...] = ()

    def observe(self, run: Run, waited: float, progress: Progress | None = None,
                total_steps: int | None = None) -> None:
        # Most polls read the run without its steps (a few KB instead of every step's log): such a poll says
        # nothing new about the steps, so the last ones seen stand, rather than a line announcing plain "Running".
        if run.steps:
            self._steps = run.steps
        elif self._steps and run.status is RunStatus.RUNNING:
            run = replace(run, steps=self._steps)
        key = (run.status_code, run.steps[-1].index if run.steps else 0)
        if key != self._last_key:
            self._last_key = key
            self._last_emit = waited
            self.emit(f"Run {run.id}: {describe(run, progress, total_steps)} (after {format_seconds(waited)})")
        elif waited - self._last_emit >= self.heartbeat_seconds:
            self._last_emit = waited
            self.emit(f"Run {run.id}: still {describe(run, progress, total_steps)} after {format_seconds(waited)}")

"""Human progress lines: one when the status or the step changes, and a heartbeat on long quiet waits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dbtgate.models import Run, RunStatus
from dbtgate.polling import Progress


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
    if progress is not None and progress.remaining is not None and progress.remaining > 0:
        text += f", about {format_seconds(progress.remaining)} left"
    return text


@dataclass
class ProgressReporter:
    emit: Callable[[str], None]
    heartbeat_seconds: float = 120.0
    _last_key: tuple[int, int] | None = None
    _last_emit: float = 0.0

    def observe(self, run: Run, waited: float, progress: Progress | None = None,
                total_steps: int | None = None) -> None:
        key = (run.status_code, run.steps[-1].index if run.steps else 0)
        if key != self._last_key:
            self._last_key = key
            self._last_emit = waited
            self.emit(f"Run {run.id}: {describe(run, progress, total_steps)} (after {format_seconds(waited)})")
        elif waited - self._last_emit >= self.heartbeat_seconds:
            self._last_emit = waited
            self.emit(f"Run {run.id}: still {describe(run, progress, total_steps)} after {format_seconds(waited)}")

"""When to poll next: a pure function of what the gate has seen so far.

The fixed-interval tools either spend API calls or detect the end of a run late. This policy polls quickly right
after the trigger (a bad branch or a deps error fails in seconds), then sleeps half of the time it expects the run
still needs, so polls close in on the end of the run instead of marching past it at a fixed pace. "Expected" comes
from the run itself when it can: the "N of M" node lines in the running step's log (fetched with every poll anyway)
and that step's elapsed time; otherwise from the median duration of the job's recent runs. It never polls faster
than `min_interval` nor slower than the user's `interval`, and a rate limit (429) stretches it to the maximum.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from dbtgate.models import Run, RunStatus

_NODE_DONE = re.compile(r"\b(\d+) of (\d+) (?:OK|PASS|FAIL|WARN|ERROR|SKIP)\b")
_TAIL = 4000  # characters of the step log to look at: the newest progress line is near the end


@dataclass(frozen=True)
class PollState:
    since_trigger: float                     # seconds since the run was triggered (or first seen)
    run: Run | None                          # the run as last seen
    since_start: float | None = None         # seconds the run has been executing, when known
    expected_duration: float | None = None   # typical run_duration of this job, from its history
    rate_limited: bool = False
    total_steps: int | None = None           # steps the run will have, when known


@dataclass(frozen=True)
class Progress:
    nodes_done: int
    nodes_total: int
    remaining: float | None                  # seconds, estimated


def node_progress(logs: str) -> tuple[int, int] | None:
    """The newest "N of M <RESULT>" line of a dbt step log, as (N, M)."""
    matches = _NODE_DONE.findall(logs[-_TAIL:])
    if not matches:
        return None
    done, total = matches[-1]
    return int(done), int(total)


def estimate(state: PollState) -> Progress | None:
    """How far the run is, and roughly how long it has left; None when nothing is known yet."""
    run = state.run
    if run is None:
        return None
    step = run.steps[-1] if run.steps else None
    last_step = step is not None and (state.total_steps is None or step.index >= state.total_steps)
    if step is not None and step.status_code == RunStatus.RUNNING:
        found = node_progress(step.logs)
        if found is not None and found[0] > 0 and step.duration_seconds is not None:
            done, total = found
            remaining = step.duration_seconds * (total - done) / done if last_step else None
            if remaining is None and state.expected_duration is not None and state.since_start is not None:
                remaining = state.expected_duration - state.since_start
            return Progress(done, total, remaining)
    if state.expected_duration is not None and state.since_start is not None:
        return Progress(0, 0, state.expected_duration - state.since_start)
    return None


@dataclass(frozen=True)
class FixedInterval:
    interval: float

    def next_delay(self, state: PollState) -> float:
        return self.interval


@dataclass(frozen=True)
class AdaptivePolicy:
    max_interval: float = 30.0
    min_interval: float = 2.0
    early_window: float = 60.0     # seconds after the trigger in which early failures are likely

    def next_delay(self, state: PollState) -> float:
        ceiling = max(self.max_interval, self.min_interval)
        floor = min(self.min_interval, ceiling)
        if state.rate_limited:
            return ceiling
        progress = estimate(state)
        remaining = progress.remaining if progress is not None else None
        if state.since_trigger < self.early_window:
            delay = max(floor, state.since_trigger / 4)
        elif remaining is not None:
            # Sleep half of what is left: polls close in on the end. Past the estimate, the end can come at any
            # moment, so poll often, backing off slowly while the run overstays.
            delay = remaining / 2 if remaining > 0 else floor + (-remaining) / 8
        else:
            delay = state.since_trigger / 4
        status = state.run.status if state.run is not None else None
        if status is RunStatus.QUEUED and state.run is not None and state.run.blocked_by:
            delay = max(delay, ceiling / 2)  # waiting behind another run: nothing will change soon
        return min(ceiling, max(floor, delay))


def expected_duration(history: Sequence[Run]) -> float | None:
    """The median run duration of the job's recent successful or failed runs, or None without history."""
    durations = [run.run_duration_seconds for run in history
                 if run.run_duration_seconds and run.status in (RunStatus.SUCCESS, RunStatus.ERROR)]
    return float(statistics.median(durations)) if durations else None

"""When to poll next: a pure function of what the gate has seen so far.

The fixed-interval tools either spend API calls or detect the end of a run late. This policy polls quickly right
after the trigger (a bad branch or a deps error fails in seconds), spaces polls out while the run is far from done,
and tightens again as the run nears the duration its recent history predicts. It never polls faster than
`min_interval` nor slower than the user's `interval`, and a rate limit (429) stretches it.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from dbtgate.models import Run, RunStatus


@dataclass(frozen=True)
class PollState:
    since_trigger: float                 # seconds since the run was triggered (or first seen)
    run: Run | None                      # the run as last seen
    since_start: float | None = None     # seconds the run has been executing, when known
    expected_duration: float | None = None  # typical run_duration of this job, from its history
    rate_limited: bool = False


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
        if state.since_trigger < self.early_window:
            delay = max(floor, state.since_trigger / 4)
        elif state.expected_duration is not None and state.since_start is not None:
            left = state.expected_duration - state.since_start
            # Far from done: sleep half the time that is left. Near or past the expected end: poll often, since
            # the end can come at any moment, but back off slowly if the run overstays its history.
            delay = left / 2 if left > 0 else floor + (-left) / 8
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

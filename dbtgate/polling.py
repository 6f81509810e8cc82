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
from functools import cached_property

from dbtgate.models import Run, RunStatus

_NODE_DONE = re.compile(r"\b(\d+) of (\d+) (?:OK|PASS|FAIL|WARN|ERROR|SKIP)\b")
_TIMED_DONE = re.compile(r"^(\d\d):(\d\d):(\d\d)\s+(\d+) of (\d+) (?:OK|PASS|FAIL|WARN|ERROR|SKIP)\b", re.M)
_DBT_START = re.compile(r"^(\d\d):(\d\d):(\d\d)\s+Running with dbt=", re.M)
_TAIL = 4000  # characters of the step log to look at: the newest progress line is near the end


@dataclass(frozen=True)
class PollState:
    """What the policy sees after a poll. `progress` is estimated once, on first use, for the policy and the
    progress line alike (it scans the step log)."""

    since_trigger: float                     # seconds since the run was triggered (or first seen)
    run: Run | None                          # the run as last seen
    since_start: float | None = None         # seconds the run has been executing, when known
    expected_duration: float | None = None   # typical run_duration of this job, from its history
    rate_limited: bool = False
    total_steps: int | None = None           # steps the run will have, when known

    @cached_property
    def progress(self) -> Progress | None:
        return estimate(self)


def poll_state(run: Run, waited: float, history: float | None, *, total_steps: int | None = None,
               rate_limited: bool = False) -> PollState:
    """What the policy sees after a poll: the gate and the benchmark's simulation both build it here."""
    since_start = None
    if run.started_at is not None and run.duration_seconds is not None:
        since_start = max(0.0, float(run.duration_seconds - (run.queued_duration_seconds or 0)))
    return PollState(since_trigger=waited, run=run, since_start=since_start, expected_duration=history,
                     rate_limited=rate_limited, total_steps=total_steps)


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


def _seconds(match: re.Match[str]) -> int:
    return int(match.group(1)) * 3600 + int(match.group(2)) * 60 + int(match.group(3))


def step_projection(logs: str, elapsed: float) -> tuple[int, int, float] | None:
    """(nodes done, nodes total, seconds the step still needs) from a running dbt step's log.

    The pace is taken from the log's own timestamps (dbt start → the Nth node's end), so the estimate does not
    drift between node completions; a truncated log (no "Running with dbt=" line) falls back to the step's
    elapsed time.
    """
    tail = logs[-_TAIL:]
    timed = list(_TIMED_DONE.finditer(tail))
    start = _DBT_START.search(logs)
    if timed and start:
        newest = timed[-1]
        done, total = int(newest.group(4)), int(newest.group(5))
        at = _seconds(newest) - _seconds(start)
        at += 86400 if at < 0 else 0  # the step ran past midnight
        if done > 0 and at > 0:
            return done, total, at * total / done - elapsed
    found = node_progress(tail)
    if found is None or found[0] <= 0:
        return None
    done, total = found
    return done, total, elapsed * (total - done) / done


def estimate(state: PollState) -> Progress | None:
    """How far the run is, and roughly how long it has left; None when nothing is known yet.

    The job's history is the prior until the first node of the last step finishes; from then on the run's own pace
    decides, which also corrects a history that is wrong for this run. (Blending the two was tried: a history that
    is far off drags the estimate to "done" after every node and causes bursts of needless polls.)
    """
    run = state.run
    if run is None:
        return None
    from_history = (state.expected_duration - state.since_start
                    if state.expected_duration is not None and state.since_start is not None else None)
    step = run.steps[-1] if run.steps else None
    if step is not None and step.status_code == RunStatus.RUNNING and step.duration_seconds is not None:
        projected = step_projection(step.logs, step.duration_seconds)
        last_step = state.total_steps is None or step.index >= state.total_steps
        if projected is not None:
            done, total, remaining = projected
            return Progress(done, total, remaining if last_step else from_history)
    if from_history is not None:
        return Progress(0, 0, from_history)
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
    early_max: float = 5.0         # the longest spacing within it

    def next_delay(self, state: PollState) -> float:
        ceiling = max(self.max_interval, self.min_interval)
        floor = min(self.min_interval, ceiling)
        if state.rate_limited:
            return ceiling
        progress = state.progress
        remaining = progress.remaining if progress is not None else None
        if state.since_trigger < self.early_window:
            delay = max(floor, min(self.early_max, state.since_trigger / 3))
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

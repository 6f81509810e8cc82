"""When to poll next, and whether to read the step logs with it: pure functions of what the watcher has seen.

Two things are bounded by construction, whatever the estimates say:

- Calls. Every poll spends a token from a bucket that refills at one token per `period` (30 s, or the user's
  `interval` if shorter) and holds at most `capacity`. A poll waits until a token is there, so over any stretch of
  T seconds there are at most `capacity + T / period` polls: never more than a fixed-`period` poller on the same
  run plus a constant, and fast polling (spacing below `period`) can only spend what slower polling saved, at most
  `capacity` polls in a row. No log shape can make it poll every few seconds for long.
- Bytes. The run object alone is a few KB; with `run_steps` it carries every step's log (up to 1,000 lines each,
  tens to hundreds of KB). Logs are read only when an estimate needs refreshing and `logs_affordable` says the log
  bytes so far stay within `ratio` times what plain polls at `period` would have read (plus a small allowance).

Within those bounds the policy puts its polls where the run is likely to end: quickly in the first seconds after
the run *starts* (a bad branch or a compilation error fails then), at the user's `interval` while the end is far,
and close together inside the window the estimate gives for the end. The estimate comes from the job's previous
run: its log says how long before its end each node finished, so a node seen finishing now predicts the end from
the part of the run that follows it — the heavy tail included — rather than from "N of M", which says nothing
about a long final model. Without that, the job's history is the prior.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from dbtgate.cloud.models import Run, RunStatus
from dbtgate.watch.dbtlog import LogScan

DAY = 86400
FINALIZE = 3.0          # seconds from the last step's end to the run's completion (dbt Cloud: about 1 to 6)


# ---- the call budget ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PollBudget:
    """A token bucket, as a value. `level(now)` tokens are there at clock time `now`; a poll needs one."""

    period: float = 30.0
    capacity: float = 20.0
    tokens: float = 20.0
    at: float = 0.0

    def level(self, now: float) -> float:
        return min(self.capacity, self.tokens + max(0.0, now - self.at) / self.period)

    def wait_for_token(self, now: float) -> float:
        """Seconds until a poll may be made (0 when a token is there)."""
        return max(0.0, (1.0 - self.level(now)) * self.period)

    def spend(self, now: float) -> PollBudget:
        return replace(self, tokens=self.level(now) - 1.0, at=now)


LOG_RATIO = 6.0       # log bytes may be this many times what plain polls at `period` read: the whole stays within
                      # 10x a fixed-`period` poller's bytes, and the log is what tells an early end (a failure) apart


def logs_affordable(*, spent: int, expected: int, plain: int, elapsed: float, period: float,
                    horizon: float | None = None, ratio: float = LOG_RATIO, initial: int = 16 * 1024) -> bool:
    """True when reading `expected` more bytes of logs keeps log bytes within `ratio` times what a fixed-`period`
    poller of `plain`-byte polls would have read by now (or by half the expected run, `horizon`, so a long job can
    afford its first look early), plus `initial`."""
    span = max(elapsed, (horizon or 0.0) / 2)
    allowance = initial + ratio * plain * (span / period + 1)
    return spent + expected <= allowance


# ---- what the watcher knows --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Estimate:
    """When the run should end, in seconds after it started, give or take `spread`."""

    end: float
    spread: float
    made_at: float                     # seconds after the start of the information it rests on
    source: str                        # history | previous-run | finished | pace
    nodes_done: int = 0
    nodes_total: int = 0


@dataclass(frozen=True)
class Progress:
    nodes_done: int
    nodes_total: int
    remaining: float | None            # seconds, estimated


@dataclass(frozen=True)
class PollState:
    since_trigger: float                       # seconds since the watcher began
    run: Run | None
    since_start: float | None = None           # seconds the run has been executing, when it has started
    estimate: Estimate | None = None
    rate_limited: bool = False
    logs_affordable: bool = False
    logs_age: float | None = None              # seconds since logs were last read; None: never
    fail_fast: bool = False                    # follow the running step's log to its first failed node
    stops_itself: bool = False                 # fail_fast: dbt: dbt ends the run at its first failed node

    @property
    def progress(self) -> Progress | None:
        if self.estimate is None:
            return None
        remaining = self.estimate.end - self.since_start if self.since_start is not None else None
        return Progress(self.estimate.nodes_done, self.estimate.nodes_total, remaining)


def since_start(run: Run) -> float | None:
    """Seconds the run has been executing, by dbt Cloud's own clock (its durations), when it has started."""
    if run.started_at is None or run.duration_seconds is None:
        return None
    return max(0.0, float(run.duration_seconds - (run.queued_duration_seconds or 0)))


@dataclass(frozen=True)
class Decision:
    delay: float
    logs: bool = False                         # read the step logs with the next poll


@dataclass(frozen=True)
class AdaptivePolicy:
    max_interval: float = 60.0         # the user's `interval`: the longest spacing
    min_interval: float = 2.0
    early_window: float = 45.0         # seconds after the run starts in which early failures are likely
    early_max: float = 5.0             # the longest spacing within it
    window_spacing: float = 3.0        # the closest spacing inside the end window
    reserve: float = 3.0               # tokens kept back inside the window for an end that comes after it
    fail_fast_interval: float = 8.0    # fail_fast: how often the running step's log is read (the goal: failed line →
                                       # red within 10 s; the line's whole-second stamp and the read add up to ~1 s)
    fail_fast_calls: float = 3.0       # fail_fast may spend this many times the calls of a fixed `period` poller
    refresh: float = 120.0             # before the end window, the log is read again when older than this: a
                                       # failure skips its descendants and brings the end forward
    overrun_max: float = 12.0          # past the end window: the longest spacing while the overrun is looked for

    def budget_period(self, fail_fast: bool, period: float) -> float:
        """How fast the call budget refills: a fixed `period` poller's pace, or `fail_fast_calls` times it (either
        fail_fast: the one that follows the log, or dbt's own)."""
        return period / self.fail_fast_calls if fail_fast else period

    def decide(self, state: PollState, budget: PollBudget, now: float) -> Decision:
        ceiling = max(self.max_interval, self.min_interval)
        floor = min(self.min_interval, ceiling)
        delay, logs = self._desired(state, budget.level(now), floor, ceiling)
        delay = min(ceiling, max(floor, delay))
        # The bucket has the last word: this is what bounds the calls, whatever the estimate says.
        return Decision(max(delay, budget.wait_for_token(now)), logs)

    def _desired(self, state: PollState, tokens: float, floor: float, ceiling: float) -> tuple[float, bool]:
        run = state.run
        if state.rate_limited or run is None:
            return ceiling, False
        status = run.status
        started = state.since_start
        if started is None or status in (RunStatus.QUEUED, RunStatus.STARTING):
            if status is RunStatus.QUEUED and run.blocked_by:
                return ceiling / 2, False          # behind another run: nothing will change soon
            # Not started: look often enough that the early window below begins close to the real start (a run
            # queued for minutes can still fail in its first seconds), slowing down only as far as every 10 s.
            return min(10.0, max(3.0, state.since_trigger / 3)), False
        if state.fail_fast and status is RunStatus.RUNNING:
            return self.fail_fast_interval, True
        if state.stops_itself and status is RunStatus.RUNNING:
            # dbt ends the run seconds after its first failed node, which nothing predicts: the status alone (a few
            # KB, no log) is read at fail_fast's pace for as long as the run goes.
            return self.fail_fast_interval, False
        if started < self.early_window:
            return min(self.early_max, max(floor, 3.0, started / 3)), False
        estimate = state.estimate
        age = state.logs_age
        if estimate is None:
            # Nothing known: a quarter of the time it has run, with a look at the logs when they are affordable.
            fresh_enough = age is not None and age < ceiling
            return started / 4, state.logs_affordable and not fresh_enough
        low, high = estimate.end - estimate.spread, estimate.end + estimate.spread
        usable = max(1.0, tokens - self.reserve)
        if started < low:
            # Before the window: sleep towards it (the ceiling caps each sleep). A window too wide for the tokens
            # left is sharpened by reading the logs again whenever what was read is old compared with what is left:
            # the estimate's spread shrinks with the time left, so each read lands closer to the end.
            delay = low - started
            coverable = 2 * estimate.spread <= usable * self.window_spacing
            if estimate.source == "finished" or not state.logs_affordable:
                return delay, False
            if coverable:
                # Sharp enough, but the log may since have shown a failure that brings the end forward: look again
                # when what was read is old.
                return delay, age is None or age + min(delay, ceiling) >= self.refresh
            delay = min(delay, max(floor, (low - started) / 2))
            nearest = min(delay, ceiling)
            seen_for = math.inf if age is None else age + nearest
            return delay, seen_for >= (estimate.end - started - nearest) / 2
        if started <= high:
            # Inside the window the end is likeliest near its middle: close in on the middle by halving the distance,
            # then spread out again — never sparser than the tokens left spread evenly, never closer than
            # `window_spacing`. Logs are read again when what was read is older than the time left to the middle.
            to_end = estimate.end - started
            even = (high - started) / usable
            shaped = to_end / 2 if to_end > 0 else self.window_spacing - to_end / 2
            stale = age is None or age >= max(ceiling / 2, abs(to_end))
            spacing = min(max(shaped, even / 4), max(even, self.window_spacing))
            return max(self.window_spacing, spacing), state.logs_affordable and stale and to_end > 0
        # Past the window: the estimate was wrong. Back off with the overrun and refresh it when affordable.
        over = started - high
        stale = age is None or age >= max(floor * 2, over)
        return min(floor + over / 3, max(floor, self.overrun_max)), state.logs_affordable and stale


# ---- estimating the end --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Prior:
    """The previous run's last step, per node: (seconds it took, seconds from its end to the step's end)."""

    nodes: Mapping[tuple[str, str], tuple[float, float]]

    @classmethod
    def from_scan(cls, scan: LogScan) -> Prior | None:
        end = scan.last_at
        if end is None or not scan.finished:
            return None
        nodes: dict[tuple[str, str], tuple[float, float]] = {}
        for line in scan.results:
            took = line.seconds
            if took is None or line.at is None or not line.name:
                continue
            nodes[line.key] = (took, float((end - line.at) % DAY))
        return cls(nodes) if nodes else None


def clock_of_day(moment: datetime | None) -> float | None:
    if moment is None:
        return None
    return moment.hour * 3600 + moment.minute * 60 + moment.second + moment.microsecond / 1e6


def _run_time(at: int, start_of_day: float) -> float:
    """A log line's time of day as seconds after the run started (dbt prints UTC; the step may cross midnight)."""
    offset = (at - start_of_day) % DAY
    return offset - DAY if offset > DAY - 600 else offset


def estimate_end(scan: LogScan | None, *, fetched_at: float, start_of_day: float | None, last_step: bool,
                 prior: Prior | None, history: float | None, step_elapsed: float | None = None) -> Estimate | None:
    """The run's end, from the newest log of its running step (read `fetched_at` seconds after the start), the
    previous run's node timings and the job's typical duration. The sharpest of what applies wins."""
    candidates: list[Estimate] = []
    done = scan.done if scan is not None else 0
    total = scan.total if scan is not None else 0
    if history is not None and history + 0.2 * history >= fetched_at:
        # Runs of one job vary by some 20% (data volumes, warehouse load): the history is a wide prior.
        candidates.append(Estimate(max(history, fetched_at), 0.2 * history + 5, fetched_at, "history", done, total))
    if scan is not None and last_step:
        if scan.finished:
            return Estimate(fetched_at + FINALIZE, FINALIZE, fetched_at, "finished", done, total)
        if start_of_day is not None and prior is not None:
            found = _from_prior(scan, prior, start_of_day, fetched_at)
            if found is not None:
                candidates.append(found)
        if not candidates and total and done and step_elapsed is not None:
            # Only the pace is known: the nodes left at the rate so far, with a spread as wide as that guess, since
            # a long final model can take longer than all the others together.
            remaining = step_elapsed * (total - done) / done
            candidates.append(Estimate(fetched_at + remaining, max(remaining, 30.0), fetched_at, "pace", done,
                                       total))
    if not candidates:
        return None
    best = min(candidates, key=lambda e: e.spread)
    return replace(best, end=max(best.end, fetched_at + 1), nodes_done=done, nodes_total=total)


def _from_prior(scan: LogScan, prior: Prior, start_of_day: float, fetched_at: float) -> Estimate | None:
    ratios = []
    points: list[tuple[float, float]] = []         # (seconds the previous run still needed after it, the estimate)
    pending: list[tuple[float, float, float]] = []  # in flight: (started, its previous duration, then still needed)
    for line in scan.results:
        known = prior.nodes.get(line.key)
        if known is None or line.at is None or line.word == "SKIP":
            continue      # a skipped node did not run: it says nothing of the pace
        took, before_end = known
        if line.seconds is not None and took >= 1.0:
            ratios.append(line.seconds / took)
        points.append((before_end, _run_time(line.at, start_of_day)))
    for line in scan.starts:
        known = prior.nodes.get(line.key)
        if known is not None and line.at is not None:
            pending.append((_run_time(line.at, start_of_day), known[0], known[1]))
    if not points and not pending:
        return None
    # How much slower or faster this run is than the previous one, from the nodes both ran.
    pace = median(ratios) if ratios else 1.0
    pace = min(4.0, max(0.25, pace))
    # How independently the nodes vary from the previous run: the spread of their ratios about the pace (a run
    # whose nodes all move together, one factor, is predicted more sharply than one whose nodes each vary).
    scatter = median([abs(r / pace - 1.0) for r in ratios]) if len(ratios) >= 5 else 0.0
    vary = max(0.2, 1.5 * scatter)
    options = [(before_end, at + pace * before_end) for before_end, at in points]
    options += [(took + before_end, began + pace * (took + before_end)) for began, took, before_end in pending]
    ahead, end = min(options)
    # The less of the previous run lies beyond the anchor, the sharper the estimate: node times vary by some 15%.
    spread = vary * pace * ahead + (0.0 if ratios else 0.3 * ahead) + FINALIZE + 2.0
    if scan.failures:
        # A failure skips its descendants: the run may end as soon as the nodes in flight are done, or as late as
        # the previous run's pace says. The window spans both.
        soonest = max([fetched_at] + [began + pace * took for began, took, _ in pending])
        if soonest < end:
            return Estimate((soonest + end) / 2 + FINALIZE, (end - soonest) / 2 + spread, fetched_at, "previous-run")
    return Estimate(end + FINALIZE, spread, fetched_at, "previous-run")


def expected_duration(history: Sequence[Run]) -> float | None:
    """The median run duration of the job's recent successful or failed runs, or None without history."""
    durations = [run.run_duration_seconds for run in history
                 if run.run_duration_seconds and run.status in (RunStatus.SUCCESS, RunStatus.ERROR)]
    return median([float(d) for d in durations]) if durations else None


def median(values: Sequence[float]) -> float:
    """The median, as statistics.median (not imported: it brings random and decimal to the cold start)."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2

"""Watching a run to its end: poll, known what dbt prints, tell people how it goes, and stop at the deadline.

The gate hands a run and a deadline to `RunWatcher.wait`. When to poll next and whether to read the logs with it
is the pure policy's decision (polling.py); reading dbt's log is dbtlog.py's job; what to say is the progress
reporter's (progress.py). Most polls fetch the run object alone (a few KB); the step logs (every step's, tens to
hundreds of KB) come only when the policy wants a fresh estimate, when fail_fast follows the log, and once at the
end for the summary. Every request carries the gate's deadline.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from dbtgate.clock import Clock
from dbtgate.cloud.models import Run, RunStatus, RunStep
from dbtgate.errors import ApiError, DeadlineExceeded
from dbtgate.watch.progress import ProgressReporter

if TYPE_CHECKING:
    # Imported when a run is watched (below), not when the gate is built: they are off the path to the first
    # request, which the action's cold start pays for.
    from dbtgate.cloud.interface import RunReader
    from dbtgate.watch.dbtlog import LogScan, NodeLine
    from dbtgate.watch.schedule import AdaptivePolicy, Estimate, PollState, Prior

UNKNOWN_AFTER = 20              # lines of a dbt step's log without one readable node line: its format is unknown
NEW_RUN_404_GRACE = 30.0        # a brand-new run can 404 for a few seconds (a known race)
PLAIN_INCLUDE = ("trigger",)    # the run alone; trigger for the cause in the summary
LOGS_INCLUDE = ("run_steps", "trigger")
LAST_LOOK = 10.0                # at the deadline, one more look (bounded by this) so a finished run is not a timeout
BASE_PERIOD = 30.0              # the call budget refills at the pace of a fixed 30 s poller
BURST = 20.0                    # polls that may be spent ahead of that pace
GUESS_PLAIN = 2_000             # bytes of a run object without logs, until one has been measured
GUESS_LOGS = 40_000             # bytes of a run with its logs, until one has been measured


@dataclass(frozen=True)
class LiveFailure:
    """A node that failed (model error, test failure, source freshness error), as the running step's log showed it.

    `file` and `message` are dbt's own, from the closing summary when the log already had it; otherwise the file is
    "" and the message is what the result line said (e.g. "FAIL 3")."""

    name: str
    resource_type: str          # model | test | seed | snapshot | source | "" when dbt's line did not say
    file: str
    message: str
    step: int                   # the run step's index
    seen_at: float              # the watcher's clock when it was seen
    logged_at: datetime | None  # when dbt printed the line (UTC), when the run's start date is known
    unique_id: str = ""         # dbt's unique id, when the gate could look it up (the log prints names only)
    status: str = "error"       # error | fail, as dbt's result line said (ERROR / FAIL)
    seconds: float | None = None  # the node's execution time, when the line gave it
    explained: bool = False     # `message` and `file` come from dbt's closing summary, not the result line


@dataclass(frozen=True)
class Watch:
    """What waiting came to. `run` is None when the deadline came first; `failed_fast` is True when
    fail_fast stopped the wait at the first failed node (the run is then still going: cancelling is the caller's)."""

    run: Run | None
    failures: tuple[LiveFailure, ...] = ()
    failed_fast: bool = False
    polls: int = 0              # requests made while waiting (history and previous-run lookups included)
    bytes_read: int = 0         # body bytes those requests read


class _Known:
    """What the watcher has learnt of one run so far (a plain class: no dataclass to build at import time)."""

    def __init__(self) -> None:
        self.history: float | None = None
        self.prior: Prior | None = None
        self.estimate: Estimate | None = None
        self.logs_at: float | None = None          # since_start when logs were last read
        self.plain_bytes: list[int] = []
        self.log_bytes = 0                         # spent on logs (and the previous run's log)
        self.last_log_size = GUESS_LOGS
        self.failures: dict[tuple[str, str], LiveFailure] = {}
        self.said_unknown = False                  # "its log format is unknown" is said once per run
        self.step_done: int | None = None          # fail_fast: the followed step was seen done (re-read the run)
        self.steps_endpoint = True                 # False once GET steps/{id}/ was refused: follow the run's logs

    @property
    def plain_size(self) -> int:
        recent = self.plain_bytes[-5:]
        return int(sum(recent) / len(recent)) if recent else GUESS_PLAIN


class RunWatcher:
    def __init__(self, client: RunReader, clock: Clock, *, emit: Callable[[str], None], interval: float,
                 api_timeout: float) -> None:
        self.client = client
        self.clock = clock
        self.emit = emit
        self.api_timeout = api_timeout
        self.interval = interval
        self.period = min(BASE_PERIOD, interval)
        self._policy: AdaptivePolicy | None = None
        self.progress = ProgressReporter(emit)

    @property
    def policy(self) -> AdaptivePolicy:
        from dbtgate.watch.schedule import AdaptivePolicy

        if self._policy is None:
            self._policy = AdaptivePolicy(max_interval=self.interval, min_interval=min(2.0, self.interval))
        return self._policy

    def wait(self, run: Run, *, deadline: float, commands: Sequence[str] = (),
             seen: Callable[[Run], None] = lambda run: None, fail_fast: bool = False,
             stops_itself: bool = False) -> Watch:
        """Poll until the run is terminal (or, with `fail_fast`, until a node fails); `Watch.run` is None when the
        deadline passes first. `seen` hears of every poll. `stops_itself`: the run carries dbt's own --fail-fast,
        so its end can come at any moment and is looked for at fail_fast's pace."""
        from dbtgate.watch.schedule import PollBudget, since_start

        began = self.clock.monotonic()
        bytes_before = self.client.bytes_received
        calls = 0
        grace_until = began + NEW_RUN_404_GRACE
        total_steps = len(commands) + 2 if commands else None  # the two setup steps dbt Cloud adds, then each
        known = _Known()
        period = self.policy.budget_period(fail_fast or stops_itself, self.period)
        budget = PollBudget(period=period, capacity=BURST, tokens=BURST, at=began)
        calls += self._learn_history(run, deadline, known)
        warned_unknown = False
        verified = False  # the run as the gate got it (a trigger's answer, a list) has not been read back yet

        def result(final: Run | None, stopped: bool = False) -> Watch:
            return Watch(final, tuple(known.failures.values()), stopped, calls,
                         self.client.bytes_received - bytes_before)

        while True:
            seen(run)
            now = self.clock.monotonic()
            started = since_start(run)
            if run.steps:
                self._read_logs(run, started, total_steps, known, now)
            state = replace(self._state(run, now - began, started, known, fail_fast), stops_itself=stops_itself)
            self.progress.observe(run, now - began, state.progress, total_steps)
            if run.is_terminal and not verified:
                # The verdict comes from a GET of the run, never from a trigger's or a list's answer alone: that
                # answer is re-read (and an error reading it is an error, not a verdict).
                run = self.client.get_run(run.id, LOGS_INCLUDE, deadline=max(deadline, now + LAST_LOOK),
                                          not_found_grace_until=grace_until)
                calls += 1
                verified = True
                continue
            if run.is_terminal:
                if not run.steps:
                    # The summary needs the steps and the failing step's log: one read of them at the end.
                    try:
                        run = self.client.get_run(run.id, LOGS_INCLUDE, deadline=max(deadline, now + LAST_LOOK))
                        calls += 1
                        seen(run)
                        self._read_logs(run, since_start(run), total_steps, known, self.clock.monotonic())
                    except (ApiError, DeadlineExceeded):
                        pass  # the verdict stands on the status already seen; the summary just has no log
                return result(run)
            if fail_fast and known.failures:
                return result(run, stopped=True)
            if run.status is None and not warned_unknown:
                warned_unknown = True
                self.emit(f"Run {run.id} reports status code {run.status_code}, which dbtgate does not know; it is "
                          "not treated as success. Waiting for dbt Cloud to mark the run complete.")
            if now >= deadline:
                return result(None)
            decision = self.policy.decide(state, budget, now)
            self.clock.sleep(min(decision.delay, max(0.0, deadline - now)))
            include = LOGS_INCLUDE if decision.logs else PLAIN_INCLUDE
            budget = budget.spend(self.clock.monotonic())
            before = self.client.bytes_received
            if self.clock.monotonic() >= deadline:
                # One last look so a run that just finished is reported as it is, not as a timeout.
                last_look = self.clock.monotonic() + min(LAST_LOOK, self.api_timeout)
                run = self.client.get_run(run.id, LOGS_INCLUDE, deadline=last_look)
                calls += 1
                verified = True
                seen(run)
                self._read_logs(run, since_start(run), total_steps, known, self.clock.monotonic())
                self.progress.observe(run, self.clock.monotonic() - began)
                return result(run if run.is_terminal else None)
            step = _followable(run, known) if decision.logs and fail_fast else None
            if step is not None and step.id is not None:
                # fail_fast follows the running step alone (GET steps/{id}/): not the run's finished steps' logs.
                # The run object is read again (with every step) when that step is seen done.
                try:
                    fresh = self.client.get_run_step(step.id, deadline=deadline)
                except ApiError as refused:
                    if refused.kind.loses_the_run:
                        raise
                    # A dbt Cloud that does not serve this step (a 404, an answer about another step) must not end
                    # the watch of a run that is going on: follow it through the run's own logs instead.
                    known.steps_endpoint = False
                    calls += 1
                else:
                    calls += 1
                    if fresh.index != step.index or fresh.status_code != RunStatus.RUNNING:
                        known.step_done = step.index
                    run = replace(run, steps=(fresh,))
                    known.log_bytes += self.client.bytes_received - before
                    continue
            run = self.client.get_run(run.id, include, deadline=deadline, not_found_grace_until=grace_until)
            calls += 1
            verified = True
            if decision.logs:
                known.step_done = None
            size = self.client.bytes_received - before
            if decision.logs:
                known.log_bytes += size
                known.last_log_size = max(size, GUESS_PLAIN)
            else:
                known.plain_bytes.append(size)

    # ---- what is known ------------------------------------------------------------------------------------
    def _state(self, run: Run, waited: float, started: float | None, known: _Known, fail_fast: bool) -> PollState:
        from dbtgate.watch.schedule import PollState, estimate_end, logs_affordable

        affordable = logs_affordable(spent=known.log_bytes, expected=known.last_log_size,
                                     plain=known.plain_size, elapsed=waited, period=self.period,
                                     horizon=known.history)
        age = started - known.logs_at if started is not None and known.logs_at is not None else None
        estimate = known.estimate
        if estimate is None and started is not None and run.status is RunStatus.RUNNING:
            # No log read yet: the job's history is the prior.
            estimate = estimate_end(None, fetched_at=started, start_of_day=None, last_step=True, prior=None,
                                    history=known.history)
        return PollState(since_trigger=waited, run=run, since_start=started, estimate=estimate,
                         rate_limited=self.client.rate_limited_recently(), logs_affordable=affordable,
                         logs_age=age, fail_fast=fail_fast)

    def _read_logs(self, run: Run, started: float | None, total_steps: int | None, known: _Known,
                   now: float) -> None:
        """Take what a poll with logs says: failed nodes to report, and a fresh estimate of the end."""
        from dbtgate.watch.dbtlog import scan
        from dbtgate.watch.schedule import clock_of_day, estimate_end

        if not run.steps:
            return
        current = run.steps[-1]
        hint = run.engine_hint
        scanned = scan(current.logs, hint)
        for step in run.steps:
            if step.logs and (step.status_code == RunStatus.RUNNING or step.failed or step is current):
                self._report_failures(run, step.index, scanned if step is current else scan(step.logs, hint), known,
                                      now)
        if scanned.engine == "unknown" and _invokes_dbt(current) and current.logs.count("\n") >= UNKNOWN_AFTER \
                and not known.said_unknown:
            known.said_unknown = True
            self.emit(f"Run {run.id}: fail_fast and live failures are off for this run: its log format is unknown "
                      f"(step {current.index}, {current.name!r}). dbtgate still decides by the run's status; "
                      "please report the log's first lines to dbtgate.")
        if started is None or current.status_code != RunStatus.RUNNING:
            return
        known.logs_at = started
        last_step = total_steps is None or current.index >= total_steps
        known.estimate = estimate_end(scanned, fetched_at=started,
                                       start_of_day=clock_of_day(run.started_at), last_step=last_step,
                                       prior=known.prior, history=known.history,
                                       step_elapsed=current.duration_seconds)

    def _report_failures(self, run: Run, step: int, scanned: LogScan, known: _Known, now: float) -> None:
        for line in scanned.failures:
            key = (line.resource_type, line.name)
            problem = scanned.problem_for(line)
            explained = problem is not None and bool(problem.message)
            seen = known.failures.get(key)
            if seen is not None:
                if explained and not seen.explained and problem is not None:
                    # dbt explains a failure only in its closing summary, after the node's line: complete what was
                    # seen (once reported), so the report at the end has dbt's message and file without a rescan.
                    known.failures[key] = replace(seen, message=problem.message, file=problem.path, explained=True)
                continue
            failure = LiveFailure(name=line.name, resource_type=line.resource_type,
                                  file=problem.path if problem else "",
                                  message=(problem.message if problem and problem.message else line.outcome),
                                  step=step, seen_at=now, logged_at=_logged_at(run, line),
                                  status="fail" if line.word == "FAIL" else "error", seconds=line.seconds,
                                  explained=explained)
            known.failures[key] = failure
            what = f"{failure.resource_type} {failure.name}".strip()
            where = f" ({failure.file})" if failure.file else ""
            verb = "failed" if line.word == "FAIL" else "errored"
            message = failure.message.splitlines()[0] if failure.message else ""
            self.emit(f"Run {run.id}: {what}{where} {verb}" + (f": {message}" if message else ""))

    def _learn_history(self, run: Run, deadline: float, known: _Known) -> int:
        """The job's typical duration and its previous successful run's log (node timings), best effort: one list
        call, and one read of that run when the byte budget can carry it. Returns the calls made."""
        from dbtgate.watch.dbtlog import scan
        from dbtgate.watch.schedule import Prior, expected_duration, logs_affordable

        if run.job_id is None:
            return 0
        try:
            history = self.client.list_runs(run.job_id, limit=10, statuses=(10, 20), include=(), deadline=deadline)
        except ApiError:
            return 1
        known.history = expected_duration(history)
        previous = next((past for past in history if past.status is RunStatus.SUCCESS and past.id != run.id), None)
        if previous is None or known.history is None or not logs_affordable(
                spent=0, expected=GUESS_LOGS, plain=GUESS_PLAIN, elapsed=0.0, period=self.period,
                horizon=known.history):
            return 1
        before = self.client.bytes_received
        try:
            past = self.client.get_run(previous.id, ("run_steps",), deadline=deadline)
        except ApiError:
            return 2
        finally:
            known.log_bytes += self.client.bytes_received - before
        steps = [step for step in past.steps if step.logs]
        if steps:
            known.prior = Prior.from_scan(scan(steps[-1].logs, past.engine_hint))
        return 2


def _followable(run: Run, known: _Known) -> RunStep | None:
    """The step fail_fast can follow on its own: the run's last known step, running, with an id, not seen done."""
    if not run.steps or run.status is not RunStatus.RUNNING:
        return None
    step = run.steps[-1]
    if (step.id is None or step.status_code != RunStatus.RUNNING or known.step_done == step.index
            or not known.steps_endpoint):
        return None
    return step


def _invokes_dbt(step: RunStep) -> bool:
    """A step that runs a dbt command (not cloning the repository or writing the profile)."""
    return "dbt " in step.name


def _logged_at(run: Run, line: NodeLine) -> datetime | None:
    if run.started_at is None or line.at is None:
        return None
    day = run.started_at.replace(hour=0, minute=0, second=0, microsecond=0)
    moment = day + timedelta(seconds=line.at)
    if moment < run.started_at - timedelta(minutes=10):
        moment += timedelta(days=1)   # the step ran past midnight
    return moment

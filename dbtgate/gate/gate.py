"""The gate: trigger a job exactly once (or take an existing run), wait for the run, and decide.

Everything here is plain control flow over a `DbtCloudClient` and a `Clock`; it never sleeps or reads the
environment itself, so the whole decision logic runs in tests on a virtual clock.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from dbtgate.artifacts import ArtifactReport, NodeIssue, collect_artifacts
from dbtgate.clock import Clock
from dbtgate.cloud.client import DbtCloudClient
from dbtgate.cloud.models import Job, Run, RunStatus, humanize_status
from dbtgate.config import GateConfig
from dbtgate.errors import AmbiguousTrigger, ApiError, ApiErrorKind, ConfigError, DeadlineExceeded
from dbtgate.gate.find import LatestRunQuery, find_job_by_name, staleness, wait_for_latest_run
from dbtgate.logs import get_logger
from dbtgate.outcome import Outcome, exit_status_for
from dbtgate.signals import Interrupted
from dbtgate.watch.progress import format_seconds
from dbtgate.watch.watcher import RunWatcher, Watch

log = get_logger("dbtgate")

# After SIGINT the runner sends SIGTERM 7.5 s later and kills the step 2.5 s after that. Finding and cancelling the
# run gets this much of it (every request is hard-bounded by its deadline), which leaves time to write the report.
CLEANUP_BUDGET = 4.0
# When the gate's own timeout runs out, cancelling the run (or finding one whose trigger answer was lost) and
# downloading artifacts of a run that has just finished may take this much longer: the documented bound of the
# whole gate is `timeout` + CANCEL_BUDGET.
CANCEL_BUDGET = 15.0
ARTIFACT_BUDGET = 60.0
RECONCILE_WAITS = (0.0, 2.0, 5.0)  # look for a run whose trigger answer was lost, three times over ~7 s
TRIGGER_TRIES = 3


def outcome_of(run: Run) -> Outcome:
    """A finished run's outcome. Only status 10 is success; an unknown status is never success."""
    if run.status is RunStatus.SUCCESS:
        return Outcome.SUCCESS
    if run.status is RunStatus.CANCELLED:
        return Outcome.CANCELLED
    return Outcome.ERROR


@dataclass(frozen=True)
class GateResult:
    outcome: Outcome
    exit_code: int
    headline: str                       # one line: what happened, to which run
    run: Run | None = None
    job: Job | None = None
    adopted: bool = False               # the run was found after a lost trigger answer, not triggered twice
    reused: bool = False                # an in-flight run was reused (reuse_existing_run)
    attempts: tuple[Run, ...] = ()      # every run waited on, in order: retried ones first, the final one last
    cancel_sent: bool = False
    cancel_note: str = ""               # what dbtgate did about cancelling, and why
    detail: str = ""                    # the error, for api_error / interrupted
    waited_seconds: float = 0.0
    artifacts: ArtifactReport | None = None
    notes: tuple[str, ...] = field(default=())


# What decides what a run builds. A run in flight is reused only if every one of these is what this gate would
# send (unset on both sides counts as equal): a run with other steps, schema, target, threads or commit builds
# something else, and reporting its result as ours would be a false green.
BUILD_FIELDS = ("git_sha", "git_branch", "github_pull_request_id", "gitlab_merge_request_id", "azure_pull_request_id",
                "non_native_pull_request_id", "schema_override", "dbt_version_override", "threads_override",
                "target_name_override", "generate_docs_override", "timeout_seconds_override", "steps_override")
IN_FLIGHT = (RunStatus.QUEUED, RunStatus.STARTING, RunStatus.RUNNING)


def reuse_mismatch(wanted: dict[str, object], run: Run, job_id: int) -> str:
    """Why an in-flight run is not the run this gate would trigger ("" when it is)."""
    if run.job_id != job_id:
        return f"it belongs to job {run.job_id}"
    if run.status not in IN_FLIGHT:
        return f"it is not in flight (status {humanize_status(run.status_code)})"
    if not run.trigger_fields:
        return "dbt Cloud did not say what it was triggered with"
    for key in BUILD_FIELDS:
        value, seen = wanted.get(key), run.trigger_fields.get(key)
        if value in (None, "", []) and seen in (None, "", []):
            continue
        if key == "git_sha" and isinstance(seen, str) and isinstance(value, str) and seen and value and (
                seen.startswith(value) or value.startswith(seen)):
            continue  # a short sha matches its full form
        if seen != value:
            return f"{key} is {_short(seen)}, this gate wants {_short(value)}"
    return ""


def _short(value: object) -> str:
    return "unset" if value in (None, "", []) else repr(value)[:80]


class _Signalled(Exception):
    """A signal that arrived while an ending was looking for a run: turn to the interrupted ending."""

    def __init__(self, interrupted: Interrupted) -> None:
        super().__init__(str(interrupted))
        self.interrupted = interrupted


@dataclass(frozen=True)
class CancelAttempt:
    sent: bool
    note: str
    signal: Interrupted | None = None   # a signal that cut the cancel short


class Gate:
    def __init__(self, config: GateConfig, client: DbtCloudClient, clock: Clock, *,
                 emit: Callable[[str], None] | None = None, marker: str | None = None) -> None:
        self.config = config
        self.client = client
        self.clock = clock
        self.emit = emit or (lambda line: log.info(line))
        self.marker = f" [dbtgate:{marker or secrets.token_hex(4)}]"
        self.watcher = RunWatcher(client, clock, emit=self.emit, interval=config.interval,
                                  api_timeout=config.api_timeout)
        self._run: Run | None = None
        self._job: Job | None = None
        self._adopted = False
        self._reused = False
        self._attempts: list[Run] = []     # finished runs that were retried, oldest first
        self._started = 0.0
        self._deadline = 0.0
        self._notes: list[str] = []
        # Set while a POST that may create a run is unanswered: if the gate gives up then, it must look for the run
        # (by the cause marker, or by `retrying_run_id`) so that it is never left running unobserved.
        self._may_have_created: Callable[[Run], bool] | None = None

    # ---- entry --------------------------------------------------------------------------------------------
    def run(self) -> GateResult:
        self._started = self.clock.monotonic()
        self._deadline = self._started + self.config.timeout
        try:
            return self._gate()
        except Interrupted as interrupted:
            # A signal during an ending (a cancel, the artifact download): report what is known, with its run.
            return self.salvage(interrupted)
        except BaseException:
            # Used as a library, a stop arrives as KeyboardInterrupt, an orchestrator's task timeout or SystemExit,
            # none of them ours: still cancel the run this gate started (within the cleanup budget), then let the
            # caller's exception go on.
            self._clean_up_before(CLEANUP_BUDGET)
            raise

    @property
    def _hard_end(self) -> float:
        """The documented bound of the whole gate: `timeout` + CANCEL_BUDGET, whatever happens at the end."""
        return self._deadline + CANCEL_BUDGET

    def _left(self, budget: float, end: float | None = None) -> float:
        """`budget` seconds from now, but never past `end` (the hard end by default); at least a moment."""
        return max(0.5, min(budget, (end if end is not None else self._hard_end) - self.clock.monotonic()))

    def _clean_up_before(self, budget: float) -> None:
        with contextlib.suppress(BaseException):
            end = self.clock.monotonic() + budget
            self._find_orphan(end)
            run = self._run
            if run is not None and not run.is_terminal and self.config.cancel_on_interrupt:
                self._cancel_run(run, self._left(budget, end), "the caller stopped the gate")

    def salvage(self, interrupted: Interrupted) -> GateResult:
        """The result after a signal when no more requests can be made: whatever run is known, and why."""
        run = self._run
        note = (f"dbtgate was stopped by {interrupted} before it could confirm that run {run.id} was cancelled; "
                f"check it and cancel it by hand if it is still running: {run.href}"
                if run is not None and not run.is_terminal else "")
        target = f"run {run.id}" if run is not None else "the trigger"
        return self._result(Outcome.INTERRUPTED, f"Interrupted by {interrupted} while waiting on {target}",
                            cancel_note=note, signum=interrupted.signum)

    def _gate(self) -> GateResult:
        deadline = self._deadline
        try:
            if self.config.run_id is not None:
                self._run = self.client.get_run(self.config.run_id, ("run_steps", "job", "trigger"), deadline=deadline)
                self.emit(f"Waiting on existing run {self._run.id}: {self._run.href}")
            else:
                self._job = self.client.get_job(self._job_id(), deadline=deadline)
                if self.config.latest_run:
                    early = self._take_latest(self._job)
                    if early is not None:
                        return early
                else:
                    reused = self._find_reusable(self._job) if self.config.reuse_existing_run else None
                    self._run = reused or self._trigger_once(self._job)
            assert self._run is not None
            if not self.config.wait:
                return self._result(Outcome.NOT_WAITED, f"Triggered run {self._run.id} without waiting")
            watch = self._wait(self._run)
            while watch.run is not None and not watch.stopped_for_failure and self._should_rerun(watch.run):
                self._attempts.append(watch.run)
                retry = self._retry_once(watch.run)
                if retry is None:
                    break
                watch = self._wait(retry)
            if watch.stopped_for_failure:
                return self._failed_fast(watch)
            final = watch.run
            if final is None:
                return self._timed_out("")
            # Inside the try: a signal while artifacts download must still be reported with the run it concerns.
            outcome = outcome_of(final)
            return self._result(outcome, self._headline(outcome, final), artifacts=self._artifacts(final))
        except DeadlineExceeded as exceeded:
            return self._timed_out(str(exceeded))
        except _Signalled as signalled:
            return self._interrupted(signalled.interrupted)
        except ConfigError as problem:
            return self._result(Outcome.CONFIG_ERROR, str(problem))
        except ApiError as failure:
            return self._api_failed(failure)
        except Interrupted as interrupted:
            return self._interrupted(interrupted)
        except Exception as error:  # a bug must not leave a run burning unobserved, nor skip the report
            log.exception("unexpected error")
            return self._api_failed(ApiError(f"dbtgate hit an unexpected error: {error.__class__.__name__}: "
                                               f"{error}", kind=ApiErrorKind.UNAVAILABLE))

    # ---- which job, which run ------------------------------------------------------------------------------
    def _job_id(self) -> int:
        if self.config.job_id is not None:
            return self.config.job_id
        assert self.config.job_name is not None
        job = find_job_by_name(self.client, self.config.job_name, project_id=self.config.project_id,
                               environment_id=self.config.environment_id, deadline=self._deadline)
        self.emit(f"Job {self.config.job_name!r} is job {job.id} (project {job.project_id}, environment "
                  f"{job.environment_id}).")
        return job.id

    def _take_latest(self, job: Job) -> GateResult | None:
        """latest_run: take the job's newest run (for the commit/PR when given) without triggering anything; a
        result now when there is none within the timeout, or it is older than max_age."""
        trigger = self.config.trigger
        query = LatestRunQuery(job.id, trigger.git_sha, trigger.github_pull_request_id or
                               trigger.gitlab_merge_request_id or trigger.azure_pull_request_id or
                               trigger.non_native_pull_request_id)
        self._run = wait_for_latest_run(self.client, self.clock, query, deadline=self._deadline,
                                        interval=self.config.interval, emit=self.emit)
        if self._run is None:
            return self._result(Outcome.TIMEOUT, f"No run of {query.describe()} appeared within the timeout of "
                                f"{format_seconds(self.config.timeout)}", detail=(
                                    "latest_run triggers nothing: check that the job runs for this commit (e.g. "
                                    "dbt Cloud's CI job on pull requests), or trigger it instead."))
        run = self._run
        self.emit(f"Latest run of {query.describe()}: run {run.id} ({humanize_status(run.status_code)}): {run.href}")
        if self.config.max_age is not None:
            why = staleness(run, self.config.max_age, self.clock.wall())
            if why:
                return self._result(Outcome.STALE, f"The latest run of {query.describe()}, run {run.id}, is too old: "
                                    f"{why}", detail="Run the job again (or raise max_age) and re-run this "
                                    "workflow.")
        return None

    # ---- reuse a run in flight ----------------------------------------------------------------------------
    def _find_reusable(self, job: Job) -> Run | None:
        """A queued or running run of the job that builds exactly what this gate would trigger, or None."""
        wanted = self.config.trigger.body()
        wanted.pop("cause")
        for candidate in self.client.list_runs(job.id, limit=25, statuses=IN_FLIGHT, deadline=self._deadline):
            mismatch = reuse_mismatch(wanted, candidate, job.id)
            if mismatch:
                self.emit(f"Run {candidate.id} of job {job.id} is not reused: {mismatch}.")
                continue
            self._reused = True
            self._notes.append(f"Run {candidate.id} was already {humanize_status(candidate.status_code).lower()} "
                               "with the same settings, so dbtgate waited on it instead of queueing another "
                               "(reuse_existing_run).")
            self.emit(f"Reusing run {candidate.id} already in flight: {candidate.href}")
            return candidate
        return None

    # ---- retry from the point of failure ------------------------------------------------------------------
    def _should_rerun(self, run: Run) -> bool:
        if outcome_of(run) is not Outcome.ERROR or len(self._attempts) >= self.config.rerun_attempts:
            return False
        if not run.can_retry:
            reason = run.retry_not_supported_reason or "dbt Cloud says it cannot be retried"
            self._notes.append(f"Run {run.id} was not retried from the point of failure: {reason}.")
            self.emit(f"Run {run.id} cannot be retried from the point of failure ({reason}).")
            return False
        return True

    def _retry_once(self, failed: Run) -> Run | None:
        """POST runs/{id}/retry/ once and check that what comes back retries *that* run; a lost answer is reconciled
        by `retrying_run_id`. None (and a note) when dbt Cloud answered with some other run: that run is cancelled,
        since this gate started it, and the failed run's outcome stands."""
        attempt = len(self._attempts) + 1
        self.emit(f"Run {failed.id} failed; retrying from the point of failure (attempt {attempt} of "
                  f"{self.config.rerun_attempts + 1}).")
        job_id = failed.job_id or self.config.job_id

        def is_retry(run: Run) -> bool:
            return run.retrying_run_id == failed.id and run.job_id == job_id

        self._may_have_created = is_retry
        try:
            retry = self.client.retry_run(failed.id, deadline=self._deadline)
        except AmbiguousTrigger as lost:
            found = self._find_run(is_retry, deadline=self._deadline)
            if found is None:
                raise ApiError(f"The retry of run {failed.id} got no usable answer ({lost}) and no retry run "
                                 "was found; not retrying blindly, so no duplicate run is started.",
                                 kind=ApiErrorKind.UNAVAILABLE) from None
            retry = found
        except ApiError as refused:
            if refused.kind is ApiErrorKind.UNAVAILABLE:
                raise
            # dbt Cloud said no (e.g. 400 with retry_not_supported_reason): the failed run's outcome stands.
            self._may_have_created = None
            self._attempts.pop()
            self._run = failed
            self._notes.append(f"dbt Cloud refused to retry run {failed.id}: {refused}")
            return None
        self._may_have_created = None
        if not is_retry(retry):
            self._run = failed
            self._notes.append(f"dbt Cloud answered the retry of run {failed.id} with run {retry.id}, which is not a "
                               f"retry of it (retrying_run_id {retry.retrying_run_id}, job {retry.job_id}); dbtgate "
                               f"did not take its result as run {failed.id}'s.")
            self._attempts.pop()
            if not retry.is_terminal:
                done = self._cancel_run(retry, self._left(CANCEL_BUDGET), "it is not the retry dbtgate asked for")
                self._notes.append(done.note)
                if done.signal is not None:
                    raise done.signal
            return None
        self._run = retry
        self.emit(f"Retry run {retry.id} started: {retry.href}")
        return retry

    # ---- trigger exactly once -----------------------------------------------------------------------------
    def _trigger_once(self, job: Job) -> Run:
        body = self.config.trigger.body(self.marker)
        marker = self.marker.strip()
        self._may_have_created = lambda run: marker in run.cause
        for attempt in range(1, TRIGGER_TRIES + 1):
            try:
                run = self.client.trigger_run(job.id, body, deadline=self._deadline)
            except AmbiguousTrigger as lost:
                self.emit(f"The trigger request for job {job.id} got no usable answer ({lost}); checking whether "
                          "dbt Cloud created the run before trying again, so no duplicate run is started.")
                found = self._find_run(self._may_have_created, deadline=self._deadline)
                if found is not None:
                    self._adopted = True
                    self._notes.append(f"The trigger answer was lost ({lost}); dbtgate found the run it had "
                                       f"created ({found.id}) by its marker and waited on it instead of "
                                       "triggering a second one.")
                    self._run = found
                    self._may_have_created = None
                    self.emit(f"Found run {found.id} created by this gate; adopting it: {found.href}")
                    return found
                if attempt == TRIGGER_TRIES:
                    raise ApiError(f"Could not trigger job {job.id}: {TRIGGER_TRIES} trigger requests got no "
                                     f"usable answer and no run carrying this gate's marker was found (last: "
                                     f"{lost}).", kind=ApiErrorKind.UNAVAILABLE) from None
                continue
            # Known before anything else happens: a signal from here on is reported (and cancelled) with this run.
            self._run = run
            self._may_have_created = None
            self.emit(f"Triggered run {run.id} of job \"{job.name}\" ({humanize_status(run.status_code)}): {run.href}")
            return run
        raise AssertionError("unreachable")

    def _find_run(self, matches: Callable[[Run], bool], *, deadline: float,
                  waits: tuple[float, ...] = RECONCILE_WAITS) -> Run | None:
        """Look for a run the gate may have created, a few times while dbt Cloud catches up, before `deadline`."""
        job_id = self._job.id if self._job is not None else (self._run.job_id if self._run else self.config.job_id)
        if job_id is None:
            return None
        for pause in waits:
            if self.clock.monotonic() + pause >= deadline:
                break
            self.clock.sleep(pause)
            for run in self.client.list_runs(job_id, limit=25, deadline=deadline):
                if matches(run):
                    return run
        return None

    # ---- wait ---------------------------------------------------------------------------------------------
    def _wait(self, run: Run) -> Watch:
        """Watch the run to its end, the deadline, or (fail_fast) its first failed node; the gate always knows the
        run as last seen."""
        commands = self.config.trigger.steps_override or (self._job.execute_steps if self._job else ())
        return self.watcher.wait(run, deadline=self._deadline, commands=commands, seen=self._seen,
                                 fail_fast=self.config.fail_fast)

    def _seen(self, run: Run) -> None:
        self._run = run

    # ---- endings ------------------------------------------------------------------------------------------
    def _cancel_run(self, run: Run, budget: float, why: str) -> CancelAttempt:
        """Cancel within `budget` seconds. A signal during it cuts it short and is returned, not raised, so the
        caller still reports the run."""
        try:
            cancelled = self.client.cancel_run(run.id, deadline=self.clock.monotonic() + budget)
        except (ApiError, DeadlineExceeded) as error:
            return CancelAttempt(False, f"dbtgate tried to cancel run {run.id} ({why}) but dbt Cloud did not confirm "
                                        f"it: {error}. Check the run and cancel it by hand if it is still running: "
                                        f"{run.href}")
        except Interrupted as signal:
            return CancelAttempt(False, f"dbtgate was cancelling run {run.id} ({why}) when {signal} arrived; dbt "
                                        "Cloud had not confirmed the cancel. Check the run and cancel it by hand if "
                                        f"it is still running: {run.href}", signal)
        if self._run is not None and self._run.id == cancelled.id:
            self._run = cancelled
        return CancelAttempt(True, f"dbtgate cancelled run {run.id} ({why}) so it stops spending warehouse time.")

    def _find_orphan(self, end: float) -> None:
        """If a POST that may have created a run went unanswered, find that run (so it is reported and can be
        cancelled). Best effort before `end`; a signal meanwhile is raised as `_Signalled` so the caller turns to
        the interrupted ending, with the run if it was found."""
        matches, self._may_have_created = self._may_have_created, None
        if matches is None or (self._run is not None and matches(self._run)):
            return
        try:
            found = self._find_run(matches, deadline=end, waits=(0.0, 1.0))
        except (ApiError, DeadlineExceeded):
            found = None
        except Interrupted as interrupted:
            self._notes.append("A request that may have created a run got no answer, and a signal cut the search "
                               f"for it short; if a run appears in dbt Cloud with \"{self.marker.strip()}\" in its "
                               "cause, it was started by this gate.")
            raise _Signalled(interrupted) from None
        if found is not None:
            self._run = found
            self._notes.append(f"Run {found.id} was created by this gate although its answer never arrived; "
                               "dbtgate found it by its marker.")
        else:
            self._notes.append(f"A request that may have created a run got no answer, and no such run was found; "
                               f"if one appears in dbt Cloud with \"{self.marker.strip()}\" in its cause, it was "
                               "started by this gate.")

    def _failed_fast(self, watch: Watch) -> GateResult:
        """fail_fast saw a node fail while the run goes on: cancel it (when this gate may) and fail now. A fail-fast
        cancel is never retried; the failed nodes come from the log, since the run has not written its results."""
        run = self._run
        assert run is not None
        first = watch.failures[0]
        names = ", ".join(f"{f.resource_type + ' ' if f.resource_type else ''}{f.name}" for f in watch.failures[:3])
        more = f" and {len(watch.failures) - 3} more" if len(watch.failures) > 3 else ""
        why = f"fail_fast: {first.resource_type or 'node'} {first.name} failed"
        if self.config.cancel_on_timeout:
            done = self._cancel_run(run, self._left(CANCEL_BUDGET), why)
            if done.signal is not None:
                return self._result(Outcome.INTERRUPTED, f"Interrupted by {done.signal} while cancelling run {run.id}",
                                    cancel_note=done.note, signum=done.signal.signum)
            sent, note = done.sent, done.note
        else:
            why_not = ("this gate did not trigger it (set cancel_on_timeout: true to let dbtgate cancel it)"
                       if self.config.run_id is not None or self.config.latest_run else "cancel_on_timeout is false")
            sent, note = False, f"fail_fast: run {run.id} was left running because {why_not}."
        self._notes.append(f"dbtgate stopped waiting at the first failed node because of fail_fast ({names}{more}); "
                           "the rest of the run was not waited for.")
        failed = tuple(NodeIssue(unique_id=f.name, name=f.name, resource_type=f.resource_type, status="error" if
                                 f.resource_type == "model" else "fail", message=f.message, execution_time=None,
                                 file_path=f.file) for f in watch.failures)
        return self._result(Outcome.ERROR, f"Run {run.id} of \"{self._job_name(run)}\" failed at {names}{more} "
                            "(fail_fast)", cancel_sent=sent, cancel_note=note,
                            artifacts=ArtifactReport(directory=None, failed=failed))

    def _timed_out(self, detail: str) -> GateResult:
        try:
            self._find_orphan(min(self.clock.monotonic() + CANCEL_BUDGET / 2, self._hard_end))
        except _Signalled as signalled:
            return self._interrupted(signalled.interrupted)
        run = self._run
        if run is None:
            if self.config.latest_run:
                return self._result(Outcome.TIMEOUT, "No run to gate on was found within the timeout of "
                                    f"{format_seconds(self.config.timeout)}", detail=detail)
            return self._result(Outcome.API_ERROR, "dbt Cloud did not answer before the timeout; no run of this "
                                "gate was found", detail=detail)
        limit = format_seconds(self.config.timeout)
        headline = f"Run {run.id} did not finish within the timeout of {limit}"
        if not self.config.cancel_on_timeout:
            why = "it was not triggered by this gate" if self.config.run_id else "cancel_on_timeout is false"
            return self._result(Outcome.TIMEOUT, headline, detail=detail, cancel_note=(
                f"Run {run.id} was left running because {why}; dbtgate stopped waiting after {limit}."))
        done = self._cancel_run(run, self._left(CANCEL_BUDGET), f"the gate's timeout of {limit} ran out")
        if done.signal is not None:
            return self._result(Outcome.INTERRUPTED, f"Interrupted by {done.signal} while cancelling run {run.id} "
                                "after the timeout", cancel_note=done.note, detail=detail, signum=done.signal.signum)
        return self._result(Outcome.TIMEOUT, headline, cancel_sent=done.sent, cancel_note=done.note, detail=detail)

    def _interrupted(self, interrupted: Interrupted) -> GateResult:
        name = str(interrupted)
        end = self.clock.monotonic() + CLEANUP_BUDGET  # the runner sends SIGTERM 7.5 s after SIGINT
        with contextlib.suppress(_Signalled):  # a second signal only shortens the way out
            self._find_orphan(self.clock.monotonic() + CLEANUP_BUDGET / 2)
        run = self._run
        sent, note = False, ""
        if run is not None and not run.is_terminal and self.config.cancel_on_interrupt:
            done = self._cancel_run(run, self._left(CLEANUP_BUDGET, end), f"the workflow was cancelled ({name})")
            sent, note = done.sent, done.note
        elif run is not None and not run.is_terminal:
            note = (f"Run {run.id} was left running because cancel_on_interrupt is off "
                    f"({'a run this gate did not trigger' if self.config.run_id else 'as configured'}).")
        target = f"run {run.id}" if run is not None else "the trigger"
        return self._result(Outcome.INTERRUPTED, f"Interrupted by {name} while waiting on {target}",
                            cancel_sent=sent, cancel_note=note, signum=interrupted.signum)

    def _api_failed(self, failure: ApiError) -> GateResult:
        # Whatever the failure, a POST that may have created a run is followed up: never an orphan.
        try:
            self._find_orphan(min(self.clock.monotonic() + CANCEL_BUDGET / 2, self._hard_end))
        except _Signalled as signalled:
            return self._interrupted(signalled.interrupted)
        run = self._run
        sent, note = False, ""
        if run is not None and not run.is_terminal and self.config.cancel_on_timeout and failure.kind.loses_the_run:
            # The gate can no longer watch this run: giving up on it is a timeout in all but name, so the same
            # setting decides whether it is cancelled rather than left burning warehouse money unobserved.
            done = self._cancel_run(run, self._left(CLEANUP_BUDGET),
                                    "dbt Cloud kept failing and the gate cannot watch the run")
            sent, note = done.sent, done.note
            if done.signal is not None:
                return self._result(Outcome.INTERRUPTED, f"Interrupted by {done.signal} while cancelling run "
                                    f"{run.id}", cancel_note=note, detail=str(failure), signum=done.signal.signum)
        target = f" while waiting on run {run.id}" if run is not None else ""
        return self._result(Outcome.API_ERROR, f"dbt Cloud could not be used{target}", detail=str(failure),
                            cancel_sent=sent, cancel_note=note)

    def _artifacts(self, run: Run) -> ArtifactReport | None:
        wants_files = self.config.get_artifacts
        if not wants_files and run.succeeded:
            return None
        # Never past the documented bound of the whole gate (timeout + CANCEL_BUDGET).
        deadline = min(self.clock.monotonic() + ARTIFACT_BUDGET, self._deadline + CANCEL_BUDGET)
        report = collect_artifacts(self.client, run.id, workspace=self.config.workspace,
                                   directory=self.config.artifacts_dir if wants_files else None,
                                   fetch_catalog=self.config.fetch_catalog and wants_files,
                                   extra=self.config.extra_artifacts if wants_files else (),
                                   max_bytes=self.config.max_artifact_size, deadline=deadline,
                                   secrets=(self.config.token,))
        if wants_files:
            for path in report.missing:
                log.warning(f"Run {run.id} produced no {path}; nothing to download (a warning, not a failure).")
        return report

    def _headline(self, outcome: Outcome, run: Run) -> str:
        name = self._job_name(run)
        took = f" in {format_seconds(run.duration_seconds)}" if run.duration_seconds is not None else ""
        verb = {Outcome.SUCCESS: "succeeded", Outcome.CANCELLED: "was cancelled"}.get(
            outcome, "failed" if run.status is not None else f"ended with unknown status {run.status_code}")
        return f"Run {run.id} of \"{name}\" {verb}{took}"

    def _job_name(self, run: Run | None) -> str:
        if self._job is not None and self._job.name:
            return self._job.name
        if run is not None and run.job_name:
            return run.job_name
        return f"job {run.job_id if run else self.config.job_id}"

    def _result(self, outcome: Outcome, headline: str, *, cancel_sent: bool = False, cancel_note: str = "",
                detail: str = "", artifacts: ArtifactReport | None = None, signum: int | None = None) -> GateResult:
        run = self._run
        job = self._job
        if job is None and run is not None and run.job_name:
            job = Job(id=run.job_id or 0, name=run.job_name)
        return GateResult(
            outcome=outcome, exit_code=exit_status_for(outcome, self.config.failure_on_error, signum),
            headline=headline, run=run, job=job, adopted=self._adopted, reused=self._reused,
            attempts=tuple(self._attempts) + ((run,) if run is not None else ()), cancel_sent=cancel_sent,
            cancel_note=cancel_note, detail=detail, waited_seconds=self.clock.monotonic() - self._started,
            artifacts=artifacts, notes=tuple(self._notes),
        )

"""The gate: trigger a job exactly once (or take an existing run), wait for the run, and decide.

Everything here is plain control flow over a `DbtCloudClient` and a `Clock`; it never sleeps or reads the
environment itself, so the whole decision logic runs in tests on a virtual clock.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from dbtgate.artifacts import ArtifactReport, collect_artifacts
from dbtgate.client import AmbiguousTrigger, ApiFailure, DbtCloudClient, DeadlineExceeded
from dbtgate.clock import Clock
from dbtgate.config import GateConfig
from dbtgate.logs import get_logger
from dbtgate.models import Job, Run, RunStatus
from dbtgate.polling import AdaptivePolicy, PollState, expected_duration, poll_state
from dbtgate.progress import ProgressReporter, format_seconds
from dbtgate.signals import Interrupted

log = get_logger("dbtgate")

NEW_RUN_404_GRACE = 30.0        # a brand-new run can 404 for a few seconds (a known race)
CLEANUP_BUDGET = 4.0            # cancel on interrupt: the runner kills us 7.5 s after SIGINT
TIMEOUT_CANCEL_BUDGET = 15.0    # cancel after the overall timeout
ARTIFACT_BUDGET = 60.0
RECONCILE_WAITS = (0.0, 2.0, 5.0)  # look for a run whose trigger answer was lost, three times over ~7 s
TRIGGER_TRIES = 3
POLL_INCLUDE = ("run_steps", "trigger")  # steps for progress and logs; trigger for the cause in the summary


class Outcome(StrEnum):
    SUCCESS = "success"
    ERROR = "error"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    NOT_WAITED = "not_waited"
    INTERRUPTED = "interrupted"
    API_ERROR = "api_error"


class ExitCode:
    SUCCESS = 0
    RUN_FAILED = 1
    BAD_CONFIG = 2
    API_FAILED = 3


def exit_code_for(outcome: Outcome, failure_on_error: bool, signum: int | None = None) -> int:
    """Outcome → process exit code. The one place that decides whether the pipeline may continue."""
    if outcome in (Outcome.SUCCESS, Outcome.NOT_WAITED):
        return ExitCode.SUCCESS
    if outcome is Outcome.INTERRUPTED:
        return 128 + (signum or 2)
    if outcome is Outcome.API_ERROR:
        return ExitCode.API_FAILED
    return ExitCode.RUN_FAILED if failure_on_error else ExitCode.SUCCESS


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


def _mismatch(wanted: dict[str, object], run: Run) -> str:
    """Why an in-flight run differs from what the gate would trigger ("" when it matches)."""
    observed = dict(run.trigger_fields)
    observed.setdefault("git_sha", run.git_sha or None)
    observed.setdefault("git_branch", run.git_branch or None)
    for key, value in wanted.items():
        seen = observed.get(key)
        short_sha = key == "git_sha" and isinstance(seen, str) and isinstance(value, str)
        if short_sha and (str(seen).startswith(str(value)) or str(value).startswith(str(seen))):
            continue  # a short sha matches its full form
        if seen != value:
            return f"{key} is {seen!r}, this gate wants {value!r}"
    return ""


class Gate:
    def __init__(self, config: GateConfig, client: DbtCloudClient, clock: Clock, *,
                 emit: Callable[[str], None] | None = None, marker: str | None = None) -> None:
        self.config = config
        self.client = client
        self.clock = clock
        self.emit = emit or (lambda line: log.info(line))
        self.marker = f" [dbtgate:{marker or secrets.token_hex(4)}]"
        self.policy = AdaptivePolicy(max_interval=config.interval, min_interval=min(2.0, config.interval))
        self.progress = ProgressReporter(self.emit)
        self._run: Run | None = None
        self._job: Job | None = None
        self._adopted = False
        self._reused = False
        self._attempts: list[Run] = []     # finished runs that were retried, oldest first
        self._started = 0.0
        self._notes: list[str] = []

    # ---- entry --------------------------------------------------------------------------------------------
    def run(self) -> GateResult:
        self._started = self.clock.monotonic()
        deadline = self._started + self.config.timeout
        self.client.deadline = deadline
        try:
            if self.config.run_id is not None:
                self._run = self.client.get_run(self.config.run_id, ("run_steps", "job", "trigger"))
                self.emit(f"Waiting on existing run {self._run.id}: {self._run.href}")
            else:
                assert self.config.job_id is not None
                self._job = self.client.get_job(self.config.job_id)
                reused = self._find_reusable(self._job) if self.config.reuse_existing_run else None
                self._run = reused or self._trigger_once(self._job)
            if not self.config.wait:
                return self._result(Outcome.NOT_WAITED, f"Triggered run {self._run.id} without waiting")
            final = self._wait(self._run, deadline)
            while final is not None and self._should_rerun(final):
                self._attempts.append(final)
                self.client.deadline = deadline
                final = self._wait(self._rerun_once(final), deadline)
            if final is None:
                return self._timed_out("")
            # Inside the try: a signal while artifacts download must still be reported with the run it concerns.
            outcome = outcome_of(final)
            return self._result(outcome, self._headline(outcome, final), artifacts=self._artifacts(final))
        except DeadlineExceeded as exceeded:
            return self._timed_out(str(exceeded))
        except ApiFailure as failure:
            return self._api_failed(failure)
        except Interrupted as interrupted:
            return self._interrupted(interrupted)
        except Exception as error:  # a bug must not leave a run burning unobserved, nor skip the report
            log.exception("unexpected error")
            return self._api_failed(ApiFailure(f"dbtgate hit an unexpected error: {error.__class__.__name__}: "
                                               f"{error}", kind="unavailable"))

    # ---- reuse a run in flight ----------------------------------------------------------------------------
    def _find_reusable(self, job: Job) -> Run | None:
        """A queued or running run of the job that matches what this gate would trigger, or None."""
        wanted = self.config.trigger.body()
        wanted.pop("cause")
        for candidate in self.client.list_runs(job.id, limit=25, statuses=(1, 2, 3)):
            mismatch = _mismatch(wanted, candidate)
            if mismatch:
                self.emit(f"Run {candidate.id} of job {job.id} is in flight but not reused: {mismatch}.")
                continue
            self._reused = True
            self._notes.append(f"Run {candidate.id} was already {candidate.status_humanized.lower()} with the same "
                               "settings, so dbtgate waited on it instead of queueing another (reuse_existing_run).")
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

    def _rerun_once(self, failed: Run) -> Run:
        """POST jobs/{id}/rerun/ once; a lost answer is reconciled by the new run's `retrying_run_id`."""
        job_id = failed.job_id or self.config.job_id
        assert job_id is not None
        attempt = len(self._attempts) + 1
        self.emit(f"Run {failed.id} failed; retrying from the point of failure (attempt {attempt} of "
                  f"{self.config.rerun_attempts + 1}).")
        try:
            rerun = self.client.rerun(job_id)
        except AmbiguousTrigger as lost:
            found = self._find_run(job_id, lambda run: run.retrying_run_id == failed.id)
            if found is None:
                raise ApiFailure(f"The retry of run {failed.id} got no usable answer ({lost}) and no retry run "
                                 "was found; not retrying blindly, so no duplicate run is started.",
                                 kind="unavailable") from None
            rerun = found
        self.emit(f"Retry run {rerun.id} started: {rerun.href}")
        return rerun

    # ---- trigger exactly once -----------------------------------------------------------------------------
    def _trigger_once(self, job: Job) -> Run:
        body = self.config.trigger.body(self.marker)
        for attempt in range(1, TRIGGER_TRIES + 1):
            try:
                run = self.client.trigger_run(job.id, body)
            except AmbiguousTrigger as lost:
                self.emit(f"The trigger request for job {job.id} got no usable answer ({lost}); checking whether "
                          "dbt Cloud created the run before trying again, so no duplicate run is started.")
                found = self._find_marked_run(job.id)
                if found is not None:
                    self._adopted = True
                    self._notes.append(f"The trigger answer was lost ({lost}); dbtgate found the run it had "
                                       f"created ({found.id}) by its marker and waited on it instead of "
                                       "triggering a second one.")
                    self.emit(f"Found run {found.id} created by this gate; adopting it: {found.href}")
                    return found
                if attempt == TRIGGER_TRIES:
                    raise ApiFailure(f"Could not trigger job {job.id}: {TRIGGER_TRIES} trigger requests got no "
                                     f"usable answer and no run was created (last: {lost}).",
                                     kind="unavailable") from None
                continue
            self.emit(f"Triggered run {run.id} of job \"{job.name}\" ({run.status_humanized}): {run.href}")
            return run
        raise AssertionError("unreachable")

    def _find_marked_run(self, job_id: int) -> Run | None:
        marker = self.marker.strip()
        return self._find_run(job_id, lambda run: marker in run.cause)

    def _find_run(self, job_id: int, matches: Callable[[Run], bool]) -> Run | None:
        """Look for a run the gate may have created, a few times while dbt Cloud catches up."""
        for pause in RECONCILE_WAITS:
            self.clock.sleep(pause)
            for run in self.client.list_runs(job_id, limit=25):
                if matches(run):
                    return run
        return None

    # ---- wait ---------------------------------------------------------------------------------------------
    def _wait(self, run: Run, deadline: float) -> Run | None:
        """Poll until the run is terminal; None when the deadline passes first."""
        seen_at = self.clock.monotonic()
        grace_until = seen_at + NEW_RUN_404_GRACE
        history = self._history(run)
        warned_unknown = False
        while True:
            self._run = run
            waited = self.clock.monotonic() - seen_at
            state = self._poll_state(run, waited, history)
            self.progress.observe(run, waited, state.progress, state.total_steps)
            if run.is_terminal:
                return run
            if run.status is None and not warned_unknown:
                warned_unknown = True
                self.emit(f"Run {run.id} reports status code {run.status_code}, which dbtgate does not know; it is "
                          "not treated as success. Waiting for dbt Cloud to mark the run complete.")
            now = self.clock.monotonic()
            if now >= deadline:
                return None
            delay = self.policy.next_delay(state)
            self.clock.sleep(min(delay, max(0.0, deadline - now)))
            if self.clock.monotonic() >= deadline:
                # One last look so a run that just finished is reported as it is, not as a timeout.
                self.client.deadline = self.clock.monotonic() + min(10.0, self.config.api_timeout)
                run = self.client.get_run(run.id, POLL_INCLUDE)
                self._run = run
                self.progress.observe(run, self.clock.monotonic() - seen_at)
                return run if run.is_terminal else None
            run = self.client.get_run(run.id, POLL_INCLUDE, not_found_grace_until=grace_until)

    def _poll_state(self, run: Run, waited: float, history: float | None) -> PollState:
        return poll_state(run, waited, history, total_steps=self._total_steps(),
                          rate_limited=self.client.rate_limited_recently())

    def _total_steps(self) -> int | None:
        """Steps a run of this job will have: the setup steps dbt Cloud adds, then each command."""
        commands = self.config.trigger.steps_override or (self._job.execute_steps if self._job else ())
        return len(commands) + 2 if commands else None

    def _history(self, run: Run) -> float | None:
        """Typical duration of this job's runs, for the polling policy. Best effort: one list call."""
        job_id = run.job_id or self.config.job_id
        if job_id is None:
            return None
        try:
            return expected_duration(self.client.list_runs(job_id, limit=10, statuses=(10, 20), include=()))
        except ApiFailure:
            return None

    # ---- endings ------------------------------------------------------------------------------------------
    def _cancel(self, budget: float, why: str) -> tuple[bool, str]:
        run = self._run
        if run is None:
            return False, ""
        self.client.deadline = self.clock.monotonic() + budget
        self.client.api_timeout = min(self.client.api_timeout, max(1.0, budget - 1.0))
        try:
            cancelled = self.client.cancel_run(run.id)
        except (ApiFailure, DeadlineExceeded) as error:
            return False, (f"dbtgate tried to cancel run {run.id} ({why}) but dbt Cloud did not confirm it: "
                           f"{error}. Check the run and cancel it by hand if it is still running: {run.href}")
        self._run = cancelled
        return True, f"dbtgate cancelled run {run.id} ({why}) so it stops spending warehouse time."

    def _timed_out(self, detail: str) -> GateResult:
        run = self._run
        if run is None:
            return self._result(Outcome.API_ERROR, "dbt Cloud did not answer before the timeout; no run was "
                                "triggered", detail=detail)
        limit = format_seconds(self.config.timeout)
        if self.config.cancel_on_timeout:
            sent, note = self._cancel(TIMEOUT_CANCEL_BUDGET, f"the gate's timeout of {limit} ran out")
        else:
            why = "it was not triggered by this gate" if self.config.run_id else "cancel_on_timeout is false"
            sent, note = False, f"Run {run.id} was left running because {why}; dbtgate stopped waiting after {limit}."
        headline = f"Run {run.id} did not finish within the timeout of {limit}"
        return self._result(Outcome.TIMEOUT, headline, cancel_sent=sent, cancel_note=note, detail=detail)

    def _interrupted(self, interrupted: Interrupted) -> GateResult:
        name = str(interrupted)
        if self._run is not None and self.config.cancel_on_interrupt and not self._run.is_terminal:
            sent, note = self._cancel(CLEANUP_BUDGET, f"the workflow was cancelled ({name})")
        elif self._run is not None and not self._run.is_terminal:
            sent, note = False, (f"Run {self._run.id} was left running because cancel_on_interrupt is off "
                                 f"({'a run this gate did not trigger' if self.config.run_id else 'as configured'}).")
        else:
            sent, note = False, ""
        target = f"run {self._run.id}" if self._run is not None else "the trigger"
        return self._result(Outcome.INTERRUPTED, f"Interrupted by {name} while waiting on {target}",
                            cancel_sent=sent, cancel_note=note, signum=interrupted.signum)

    def _api_failed(self, failure: ApiFailure) -> GateResult:
        run = self._run
        sent, note = False, ""
        if run is not None and not run.is_terminal and self.config.cancel_on_timeout and failure.kind == "unavailable":
            # The gate can no longer watch this run: giving up on it is a timeout in all but name, so the same
            # setting decides whether it is cancelled rather than left burning warehouse money unobserved.
            sent, note = self._cancel(CLEANUP_BUDGET, "dbt Cloud kept failing and the gate cannot watch the run")
        target = f" while waiting on run {run.id}" if run is not None else ""
        return self._result(Outcome.API_ERROR, f"dbt Cloud could not be used{target}", detail=str(failure),
                            cancel_sent=sent, cancel_note=note)

    def _artifacts(self, run: Run) -> ArtifactReport | None:
        wants_files = self.config.get_artifacts
        if not wants_files and run.succeeded:
            return None
        self.client.deadline = self.clock.monotonic() + ARTIFACT_BUDGET
        report = collect_artifacts(self.client, run.id,
                                   directory=self.config.artifacts_dir if wants_files else None,
                                   fetch_catalog=self.config.fetch_catalog and wants_files,
                                   extra=self.config.extra_artifacts if wants_files else ())
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
            outcome=outcome, exit_code=exit_code_for(outcome, self.config.failure_on_error, signum),
            headline=headline, run=run, job=job, adopted=self._adopted, reused=self._reused,
            attempts=tuple(self._attempts) + ((run,) if run is not None else ()), cancel_sent=cancel_sent,
            cancel_note=cancel_note, detail=detail, waited_seconds=self.clock.monotonic() - self._started,
            artifacts=artifacts, notes=tuple(self._notes),
        )

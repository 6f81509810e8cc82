"""What one gate knows as it goes — the one mutable record — and the result it comes to.

Every part of the gate (trigger, wait, retry, the endings) reads and writes the run through this record, so that
whichever way the gate ends, the result names the run as last seen and everything done to it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from dbtgate.clock import Clock
from dbtgate.cloud.interface import CloudApi
from dbtgate.cloud.models import Job, Run, RunStatus
from dbtgate.config import GateConfig
from dbtgate.outcome import ExitStatus, Outcome, exit_status_for
from dbtgate.watch.progress import format_seconds

if TYPE_CHECKING:   # the artifacts module is imported when a run has ended, not on the way to the first request
    from dbtgate.artifacts import ArtifactReport

# After SIGINT the runner sends SIGTERM 7.5 s later and kills the step 2.5 s after that. Finding and cancelling the
# run gets this much of it (every request is hard-bounded by its deadline), which leaves time to write the report.
CLEANUP_BUDGET = 4.0
# When the gate's own timeout runs out, cancelling the run (or finding one whose trigger answer was lost) and
# downloading artifacts of a run that has just finished may take this much longer: the documented bound of the
# whole gate is `timeout` + CANCEL_BUDGET.
CANCEL_BUDGET = 15.0


@dataclass(frozen=True)
class GateResult:
    outcome: Outcome
    exit_code: ExitStatus
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


def outcome_of(run: Run) -> Outcome:
    """A finished run's outcome. Only status 10 is success; an unknown status is never success."""
    if run.status is RunStatus.SUCCESS:
        return Outcome.SUCCESS
    if run.status is RunStatus.CANCELLED:
        return Outcome.CANCELLED
    return Outcome.ERROR


class Tools(NamedTuple):
    """What a gate works with, fixed for its whole life."""

    config: GateConfig
    client: CloudApi
    clock: Clock
    emit: Callable[[str], None]
    marker: str                         # " [dbtgate:xxxxxxxx]", appended to the cause of a run this gate triggers

    @property
    def owns_runs(self) -> bool:
        """The gate starts the runs it waits on (not run_id, not latest_run): it may cancel them unasked."""
        return self.config.run_id is None and not self.config.latest_run


class GateState:
    """The one mutable record of a gate: the job, the run as last seen, and what was done to get it."""

    def __init__(self, tools: Tools) -> None:
        self.tools = tools
        self.started = tools.clock.monotonic()
        self.deadline = self.started + tools.config.timeout
        self.job: Job | None = None
        self.run: Run | None = None
        self.adopted = False
        self.reused = False
        self.attempts: list[Run] = []       # finished runs that were retried, oldest first
        self.notes: list[str] = []
        # Set while a POST that may create a run is unanswered: if the gate gives up then, it must look for the run
        # (by the cause marker, or by `retrying_run_id`) so that it is never left running unobserved.
        self.may_have_created: Callable[[Run], bool] | None = None

    # ---- time ---------------------------------------------------------------------------------------------------
    @property
    def hard_end(self) -> float:
        """The documented bound of the whole gate: `timeout` + CANCEL_BUDGET, whatever happens at the end."""
        return self.deadline + CANCEL_BUDGET

    def left(self, budget: float, end: float | None = None) -> float:
        """`budget` seconds from now, but never past `end` (the hard end by default); at least a moment."""
        now = self.tools.clock.monotonic()
        return max(0.5, min(budget, (end if end is not None else self.hard_end) - now))

    # ---- what is known ------------------------------------------------------------------------------------------
    def see(self, run: Run) -> None:
        """The run as last seen: a signal or an error from here on is reported (and cancelled) with it."""
        self.run = run

    def note(self, text: str) -> None:
        self.notes.append(text)

    def job_name(self, run: Run | None = None) -> str:
        run = run or self.run
        if self.job is not None and self.job.name:
            return self.job.name
        if run is not None and run.job_name:
            return run.job_name
        return f"job {run.job_id if run else self.tools.config.job_id}"

    # ---- the result ---------------------------------------------------------------------------------------------
    def result(self, outcome: Outcome, headline: str, *, cancel_sent: bool = False, cancel_note: str = "",
               detail: str = "", artifacts: ArtifactReport | None = None, signum: int | None = None) -> GateResult:
        run, job = self.run, self.job
        if job is None and run is not None and run.job_name:
            job = Job(id=run.job_id or 0, name=run.job_name)
        return GateResult(
            outcome=outcome, exit_code=exit_status_for(outcome, self.tools.config.failure_on_error, signum),
            headline=headline, run=run, job=job, adopted=self.adopted, reused=self.reused,
            attempts=tuple(self.attempts) + ((run,) if run is not None else ()), cancel_sent=cancel_sent,
            cancel_note=cancel_note, detail=detail, waited_seconds=self.tools.clock.monotonic() - self.started,
            artifacts=artifacts, notes=tuple(self.notes),
        )


def finished_headline(outcome: Outcome, run: Run, job_name: str) -> str:
    took = f" in {format_seconds(run.duration_seconds)}" if run.duration_seconds is not None else ""
    verb = {Outcome.SUCCESS: "succeeded", Outcome.CANCELLED: "was cancelled"}.get(
        outcome, "failed" if run.status is not None else f"ended with unknown status {run.status_code}")
    return f"Run {run.id} of \"{job_name}\" {verb}{took}"

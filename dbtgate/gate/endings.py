"""Every way a gate ends other than "the run finished": the timeout, a signal, dbt Cloud failing, fail_fast.

One `finish()` does what each ending needs, in the same order: look for a run that a lost answer may have created
(so it is reported and can be cancelled), decide whether this ending may cancel the run (`cancel_rule`), cancel it
within the ending's budget, and write the result. A signal that arrives meanwhile only shortens the way out: the
ending becomes `interrupted`, with the run it concerns.
"""

from __future__ import annotations

import contextlib
from enum import StrEnum
from typing import NamedTuple

from dbtgate.errors import ApiError, DeadlineExceeded
from dbtgate.gate.cancel import CancelAttempt, cancel_run, find_created_run
from dbtgate.gate.state import CANCEL_BUDGET, CLEANUP_BUDGET, GateResult, GateState
from dbtgate.outcome import Outcome
from dbtgate.signals import Interrupted
from dbtgate.watch.progress import format_seconds
from dbtgate.watch.watcher import Watch


class Ending(StrEnum):
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"
    API_FAILED = "api_failed"
    FAILED_FAST = "failed_fast"


class Cause(NamedTuple):
    """What brought the ending about: the error text, the signal, the API failure, or fail_fast's watch."""

    detail: str = ""
    signal: Interrupted | None = None
    failure: ApiError | None = None
    watch: Watch | None = None


class _Signalled(Exception):
    """A signal that arrived while an ending was looking for a run: turn to the interrupted ending."""

    def __init__(self, interrupted: Interrupted) -> None:
        super().__init__(str(interrupted))
        self.interrupted = interrupted


def cancel_rule(state: GateState, ending: Ending, cause: Cause) -> str:
    """Why this ending must not cancel the run ("" when it may). Cancelling a run this gate did not start is
    opt-in (cancel_on_timeout / cancel_on_interrupt: true); one it started is cancelled unless told otherwise."""
    config, run = state.tools.config, state.run
    if run is None or (run.is_terminal and ending is not Ending.TIMEOUT):
        return "there is no run in flight"
    foreign = "it was not triggered by this gate" if config.run_id else "cancel_on_timeout is false"
    if ending is Ending.TIMEOUT:
        return "" if config.cancel_on_timeout else foreign
    if ending is Ending.API_FAILED:
        # Whatever dbt Cloud failed or refused, the gate stops watching a run that is going on: giving up on it is a
        # timeout in all but name, so the same setting decides, rather than leaving it burning unobserved.
        return "" if config.cancel_on_timeout else foreign
    if ending is Ending.INTERRUPTED:
        return "" if config.cancel_on_interrupt else (
            f"cancel_on_interrupt is off ({'a run this gate did not trigger' if config.run_id else 'as configured'})")
    # fail_fast stops a run this gate started; one it did not start only with consent.
    if state.tools.owns_runs or config.cancel_on_timeout:
        return ""
    return "this gate did not trigger it (set cancel_on_timeout: true to let dbtgate cancel it)"


NO_CAUSE = Cause()


def finish(state: GateState, ending: Ending, cause: Cause = NO_CAUSE) -> GateResult:
    """End the gate this way: orphan search, the cancel this ending allows, and the result."""
    if ending is Ending.INTERRUPTED:
        assert cause.signal is not None
        return _interrupted(state, cause.signal)
    if ending is not Ending.FAILED_FAST:
        try:
            _find_orphan(state, min(state.tools.clock.monotonic() + CANCEL_BUDGET / 2, state.hard_end))
        except _Signalled as signalled:
            return _interrupted(state, signalled.interrupted)
    run = state.run
    if run is None:
        return _nothing_to_cancel(state, ending, cause)
    why_not = cancel_rule(state, ending, cause)
    done = (_cancel_for(state, ending, cause) if not why_not else
            CancelAttempt(False, _left_running(state, ending, why_not)))
    if done.signal is not None:
        after = " after the timeout" if ending is Ending.TIMEOUT else ""
        return state.result(Outcome.INTERRUPTED, f"Interrupted by {done.signal} while cancelling run {run.id}{after}",
                            cancel_note=done.note, detail=_detail(cause), signum=done.signal.signum)
    if ending is Ending.FAILED_FAST:
        return _failed_fast(state, cause, done)
    if ending is Ending.TIMEOUT:
        limit = format_seconds(state.tools.config.timeout)
        return state.result(Outcome.TIMEOUT, f"Run {run.id} did not finish within the timeout of {limit}",
                            cancel_sent=done.sent, cancel_note=done.note, detail=cause.detail)
    return state.result(Outcome.API_ERROR, f"dbt Cloud could not be used while waiting on run {run.id}",
                        detail=_detail(cause), cancel_sent=done.sent, cancel_note=done.note)


def salvage(state: GateState, interrupted: Interrupted) -> GateResult:
    """The result after a signal when no more requests can be made: whatever run is known, and why."""
    run = state.run
    note = (f"dbtgate was stopped by {interrupted} before it could confirm that run {run.id} was cancelled; check "
            f"it and cancel it by hand if it is still running: {run.href}"
            if run is not None and not run.is_terminal else "")
    target = f"run {run.id}" if run is not None else "the trigger"
    return state.result(Outcome.INTERRUPTED, f"Interrupted by {interrupted} while waiting on {target}",
                        cancel_note=note, signum=interrupted.signum)


def clean_up_before(state: GateState, budget: float) -> None:
    """A stop that is not ours (KeyboardInterrupt in a library, an orchestrator's task timeout): still cancel the
    run this gate started, within `budget`, and let the caller's exception go on."""
    with contextlib.suppress(BaseException):
        end = state.tools.clock.monotonic() + budget
        _find_orphan(state, end)
        run = state.run
        if run is not None and not run.is_terminal and state.tools.config.cancel_on_interrupt:
            cancel_run(state, run, state.left(budget, end), "the caller stopped the gate")


# ---- the parts ------------------------------------------------------------------------------------------------
def _cancel_for(state: GateState, ending: Ending, cause: Cause) -> CancelAttempt:
    run = state.run
    assert run is not None
    if ending is Ending.TIMEOUT:
        why = f"the gate's timeout of {format_seconds(state.tools.config.timeout)} ran out"
        return cancel_run(state, run, state.left(CANCEL_BUDGET), why)
    if ending is Ending.API_FAILED:
        return cancel_run(state, run, state.left(CLEANUP_BUDGET),
                          "dbt Cloud kept failing and the gate cannot watch the run")
    assert cause.watch is not None
    first = cause.watch.failures[0]
    return cancel_run(state, run, state.left(CANCEL_BUDGET),
                      f"fail_fast: {first.resource_type or 'node'} {first.name} failed")


def _left_running(state: GateState, ending: Ending, why_not: str) -> str:
    run = state.run
    assert run is not None
    if ending is Ending.TIMEOUT:
        limit = format_seconds(state.tools.config.timeout)
        return f"Run {run.id} was left running because {why_not}; dbtgate stopped waiting after {limit}."
    if ending is Ending.FAILED_FAST:
        return f"fail_fast: run {run.id} was left running because {why_not}."
    if ending is Ending.API_FAILED and not run.is_terminal:
        return (f"Run {run.id} was left running because {why_not}; dbtgate could no longer watch it. Check it in "
                f"dbt Cloud: {run.href}")
    return ""   # a run already finished: nothing to say


def _detail(cause: Cause) -> str:
    return str(cause.failure) if cause.failure is not None else cause.detail


def _nothing_to_cancel(state: GateState, ending: Ending, cause: Cause) -> GateResult:
    config = state.tools.config
    if ending is Ending.TIMEOUT and config.latest_run:
        return state.result(Outcome.TIMEOUT, "No run to gate on was found within the timeout of "
                            f"{format_seconds(config.timeout)}", detail=cause.detail)
    if ending is Ending.TIMEOUT:
        return state.result(Outcome.API_ERROR, "dbt Cloud did not answer before the timeout; no run of this gate "
                            "was found", detail=cause.detail)
    return state.result(Outcome.API_ERROR, "dbt Cloud could not be used", detail=_detail(cause))


def _interrupted(state: GateState, interrupted: Interrupted) -> GateResult:
    clock = state.tools.clock
    end = clock.monotonic() + CLEANUP_BUDGET  # the runner sends SIGTERM 7.5 s after SIGINT
    with contextlib.suppress(_Signalled):  # a second signal only shortens the way out
        _find_orphan(state, clock.monotonic() + CLEANUP_BUDGET / 2)
    run = state.run
    sent, note = False, ""
    if run is not None and not run.is_terminal:
        why_not = cancel_rule(state, Ending.INTERRUPTED, Cause(signal=interrupted))
        if why_not:
            note = f"Run {run.id} was left running because {why_not}."
        else:
            done = cancel_run(state, run, state.left(CLEANUP_BUDGET, end),
                              f"the workflow was cancelled ({interrupted})")
            sent, note = done.sent, done.note
    target = f"run {run.id}" if run is not None else "the trigger"
    return state.result(Outcome.INTERRUPTED, f"Interrupted by {interrupted} while waiting on {target}",
                        cancel_sent=sent, cancel_note=note, signum=interrupted.signum)


def _failed_fast(state: GateState, cause: Cause, done: CancelAttempt) -> GateResult:
    """fail_fast saw a node fail while the run goes on. The failed nodes come from the log, since the run has not
    written its results."""
    run, watch = state.run, cause.watch
    assert run is not None and watch is not None
    shown = watch.failures[:3]
    names = ", ".join(f"{f.resource_type + ' ' if f.resource_type else ''}{f.name}" for f in shown)
    more = f" and {len(watch.failures) - 3} more" if len(watch.failures) > 3 else ""
    state.note(f"dbtgate stopped waiting at the first failed node because of fail_fast ({names}{more}); the rest "
               "of the run was not waited for.")
    from dbtgate.artifacts import ArtifactReport, NodeIssue  # the report's types: off the start-up path

    failed = tuple(NodeIssue(unique_id=f.unique_id, name=f.name, resource_type=f.resource_type,
                             status="error" if f.resource_type == "model" else "fail", message=f.message,
                             execution_time=None, file_path=f.file) for f in watch.failures)
    return state.result(Outcome.ERROR, f"Run {run.id} of \"{state.job_name(run)}\" failed at {names}{more} "
                        "(fail_fast)", cancel_sent=done.sent, cancel_note=done.note,
                        artifacts=ArtifactReport(directory=None, failed=failed))


def _find_orphan(state: GateState, end: float) -> None:
    """If a POST that may have created a run went unanswered, find that run (so it is reported and can be
    cancelled). Best effort before `end`; a signal meanwhile is raised as `_Signalled` so the caller turns to the
    interrupted ending, with the run if it was found."""
    matches, state.may_have_created = state.may_have_created, None
    if matches is None or (state.run is not None and matches(state.run)):
        return
    marker = state.tools.marker.strip()
    try:
        found = find_created_run(state, matches, deadline=end, waits=(0.0, 1.0))
    except (ApiError, DeadlineExceeded):
        found = None
    except Interrupted as interrupted:
        state.note("A request that may have created a run got no answer, and a signal cut the search for it short; "
                   f"if a run appears in dbt Cloud with \"{marker}\" in its cause, it was started by this gate.")
        raise _Signalled(interrupted) from None
    if found is not None:
        state.see(found)
        state.note(f"Run {found.id} was created by this gate although its answer never arrived; dbtgate found it "
                   "by its marker.")
    else:
        state.note("A request that may have created a run got no answer, and no such run was found; if one appears "
                   f"in dbt Cloud with \"{marker}\" in its cause, it was started by this gate.")

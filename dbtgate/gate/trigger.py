"""Getting the run to wait on when the gate starts it: trigger exactly once (adopting a run whose answer was
lost), reuse one already in flight, and retry a failed run from its point of failure.

A POST that may create a run sets `state.may_have_created` until its answer is known, so that every ending can
look for that run (endings.py) instead of leaving it unobserved.
"""

from __future__ import annotations

from collections.abc import Sequence

from dbtgate.cloud.models import Job, Run, RunStatus, humanize_status
from dbtgate.errors import AmbiguousTrigger, ApiError, ApiErrorKind, ConfigError, DeadlineExceeded
from dbtgate.gate.cancel import cancel_run, find_created_run
from dbtgate.gate.find import same_commit
from dbtgate.gate.state import CANCEL_BUDGET, GateState, outcome_of
from dbtgate.outcome import Outcome
from dbtgate.parsers import FailFast, dbt_command

TRIGGER_TRIES = 3
# What decides what a run builds. A run in flight is reused only if every one of these is what this gate would
# send (unset on both sides counts as equal): a run with other steps, schema, target, threads or commit builds
# something else, and reporting its result as ours would be a false green.
BUILD_FIELDS = ("git_sha", "git_branch", "github_pull_request_id", "gitlab_merge_request_id", "azure_pull_request_id",
                "non_native_pull_request_id", "schema_override", "dbt_version_override", "threads_override",
                "target_name_override", "generate_docs_override", "timeout_seconds_override", "steps_override")
IN_FLIGHT = (RunStatus.QUEUED, RunStatus.STARTING, RunStatus.RUNNING)
# The dbt commands that run nodes and so stop at dbt's --fail-fast (a global flag: any position is accepted).
FAIL_FAST_VERBS = frozenset({"build", "run", "test", "seed", "snapshot"})


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
        if key == "git_sha" and isinstance(seen, str) and isinstance(value, str) and same_commit(seen, value):
            continue  # a short sha matches its full form
        if seen != value:
            return f"{key} is {_short(seen)}, this gate wants {_short(value)}"
    return ""


def _short(value: object) -> str:
    return "unset" if value in (None, "", []) else repr(value)[:80]


def find_reusable(state: GateState, job: Job) -> Run | None:
    """A queued or running run of the job that builds exactly what this gate would trigger, or None."""
    tools = state.tools
    wanted = tools.config.trigger.body()
    wanted.pop("cause")
    for candidate in tools.client.list_runs(job.id, limit=25, statuses=IN_FLIGHT, deadline=state.deadline):
        mismatch = reuse_mismatch(wanted, candidate, job.id)
        if mismatch:
            tools.emit(f"Run {candidate.id} of job {job.id} is not reused: {mismatch}.")
            continue
        state.reused = True
        state.note(f"Run {candidate.id} was already {humanize_status(candidate.status_code).lower()} with the same "
                   "settings, so dbtgate waited on it instead of queueing another (reuse_existing_run).")
        tools.emit(f"Reusing run {candidate.id} already in flight: {candidate.href}")
        state.see(candidate)
        return candidate
    return None


def prefer_older(state: GateState, job: Job, mine: Run) -> Run:
    """reuse_existing_run, just after this gate triggered `mine`: a second look at the job's runs in flight.

    Two gates started at the same moment both look, both find nothing to reuse, and both trigger. What is
    guaranteed: each gate looks again after its trigger, and when it sees an older run in flight with the same
    settings (the lowest id: one order every gate agrees on), it waits on that run instead and cancels the one it
    has just started, saying which run was kept — so two gates that see each other's runs converge on the older
    one, and a run is never waited on by nobody. What is not: without a lock in dbt Cloud, a gate whose second
    look comes before the other's run is listed keeps its own, and both runs go on. The look is best effort: if it
    fails, or the cancel of `mine` is not confirmed, this gate keeps its own run."""
    tools = state.tools
    wanted = tools.config.trigger.body()
    wanted.pop("cause")
    try:
        in_flight = tools.client.list_runs(job.id, limit=25, statuses=IN_FLIGHT, deadline=state.deadline)
    except (ApiError, DeadlineExceeded):
        return mine
    older = [run for run in in_flight if run.id < mine.id and not reuse_mismatch(wanted, run, job.id)]
    if not older:
        return mine
    kept = min(older, key=lambda run: run.id)
    done = cancel_run(state, mine, state.left(CANCEL_BUDGET),
                      f"run {kept.id}, triggered by another gate at the same moment with the same settings, is kept")
    if done.signal is not None:
        state.note(done.note)
        raise done.signal
    if not done.sent:
        state.note(f"Run {kept.id} was triggered with the same settings at the same moment as run {mine.id} "
                   f"(reuse_existing_run); dbtgate could not cancel run {mine.id}, so it waits on it. {done.note}")
        return mine
    state.reused = True
    state.note(f"Another gate triggered run {kept.id} of job {job.id} with the same settings at the same moment "
               f"(reuse_existing_run). dbtgate kept run {kept.id}, the older one, and cancelled run {mine.id}, which "
               "it had just triggered, so the job runs once.")
    tools.emit(f"Run {kept.id} was triggered at the same moment with the same settings; waiting on it and "
               f"cancelling run {mine.id}: {kept.href}")
    state.see(kept)
    return kept


def with_dbt_fail_fast(commands: Sequence[str], job: Job, *, overridden: bool = False) -> tuple[str, ...]:
    """fail_fast: dbt — the commands with dbt's own --fail-fast on each that runs nodes (build, run, test, seed,
    snapshot); a ConfigError when there is none, since the flag would then stop nothing. `overridden`: the commands
    are the user's steps_override, not the job's."""
    changed: list[str] = []
    stoppable = 0
    for command in commands:
        words = command.split()
        verb = dbt_command(words[1:]) if words[:1] == ["dbt"] else ""
        if verb in FAIL_FAST_VERBS:
            stoppable += 1
            if "--fail-fast" not in words and "-x" not in words:
                command = f"{command} --fail-fast"
        changed.append(command)
    if not stoppable:
        listed = ", ".join(repr(command) for command in commands) or "none"
        whose, fix = (("steps_override has", "Add a dbt build, run, test, seed or snapshot command to it, or use "
                       "fail_fast: true") if overridden else
                      (f"job {job.id} has", "Use fail_fast: true, or give steps_override"))
        raise ConfigError([f"fail_fast: dbt adds dbt's --fail-fast to the commands that build models or run tests "
                           f"(dbt build, run, test, seed, snapshot), and {whose} none (its commands: {listed}). "
                           f"{fix}."])
    return tuple(changed)


def trigger_once(state: GateState, job: Job) -> Run:
    """POST the trigger; on a lost answer, look for the run by this gate's marker before trying again, so no
    duplicate run is ever started."""
    tools = state.tools
    body = tools.config.trigger.body(tools.marker)
    if tools.config.fail_fast is FailFast.DBT:
        override = tools.config.trigger.steps_override
        steps = with_dbt_fail_fast(override or job.execute_steps, job, overridden=bool(override))
        body["steps_override"] = list(steps)
        state.note("fail_fast: dbt — the run was triggered with dbt's own --fail-fast (through steps_override: "
                   + "; ".join(f'"{step}"' for step in steps) + "). dbt stops at the first failed model or test "
                   "and reports the nodes it did not run as skipped.")
    marker = tools.marker.strip()

    def is_ours(run: Run) -> bool:
        return marker in run.cause

    state.may_have_created = is_ours
    for attempt in range(1, TRIGGER_TRIES + 1):
        try:
            run = tools.client.trigger_run(job.id, body, deadline=state.deadline)
        except AmbiguousTrigger as lost:
            tools.emit(f"The trigger request for job {job.id} got no usable answer ({lost}); checking whether "
                       "dbt Cloud created the run before trying again, so no duplicate run is started.")
            found = find_created_run(state, is_ours, deadline=state.deadline)
            if found is not None:
                state.adopted = True
                state.note(f"The trigger answer was lost ({lost}); dbtgate found the run it had created "
                           f"({found.id}) by its marker and waited on it instead of triggering a second one.")
                state.see(found)
                state.may_have_created = None
                tools.emit(f"Found run {found.id} created by this gate; adopting it: {found.href}")
                return found
            if lost.answered:
                # dbt Cloud answered with a run it could not describe: the run exists. Sending the trigger again
                # would start the job twice; the ending looks for the run once more and says how to find it.
                raise ApiError(f"dbt Cloud answered the trigger of job {job.id}, but the answer could not be read "
                               f"({lost}) and no run carrying this gate's marker \"{marker}\" was found; dbtgate did "
                               "not trigger again, which could start the job twice.",
                               kind=ApiErrorKind.UNAVAILABLE) from None
            if attempt == TRIGGER_TRIES:
                raise ApiError(f"Could not trigger job {job.id}: {TRIGGER_TRIES} trigger requests got no usable "
                               "answer and no run carrying this gate's marker was found (last: "
                               f"{lost}).", kind=ApiErrorKind.UNAVAILABLE) from None
            continue
        except ApiError:
            # dbt Cloud answered and refused (a 400, 401, 403, 404): no run was created, so there is none to find,
            # and a refused token or job is bad input, not an outage.
            state.may_have_created = None
            raise
        state.see(run)
        state.may_have_created = None
        tools.emit(f"Triggered run {run.id} of job \"{job.name}\" ({humanize_status(run.status_code)}): {run.href}")
        return run
    raise AssertionError("unreachable")


def should_rerun(state: GateState, run: Run) -> bool:
    """rerun_attempts: the run failed, retries are left, and dbt Cloud says it can be retried."""
    if outcome_of(run) is not Outcome.ERROR or len(state.attempts) >= state.tools.config.rerun_attempts:
        return False
    if not run.can_retry:
        reason = run.retry_not_supported_reason or "dbt Cloud says it cannot be retried"
        state.note(f"Run {run.id} was not retried from the point of failure: {reason}.")
        state.tools.emit(f"Run {run.id} cannot be retried from the point of failure ({reason}).")
        return False
    return True


def retry_once(state: GateState, failed: Run) -> Run | None:
    """POST runs/{id}/retry/ once and check that what comes back retries *that* run; a lost answer is reconciled
    by `retrying_run_id`. None (and a note) when dbt Cloud refused or answered with some other run: that run is
    cancelled, since this gate started it, and the failed run's outcome stands."""
    tools = state.tools
    state.attempts.append(failed)
    tools.emit(f"Run {failed.id} failed; retrying from the point of failure (attempt {len(state.attempts) + 1} of "
               f"{tools.config.rerun_attempts + 1}).")
    job_id = failed.job_id or tools.config.job_id

    def is_retry(run: Run) -> bool:
        return run.retrying_run_id == failed.id and run.job_id == job_id

    state.may_have_created = is_retry
    try:
        retry = tools.client.retry_run(failed.id, deadline=state.deadline)
    except AmbiguousTrigger as lost:
        found = find_created_run(state, is_retry, deadline=state.deadline)
        if found is None:
            raise ApiError(f"The retry of run {failed.id} got no usable answer ({lost}) and no retry run was "
                           "found; not retrying blindly, so no duplicate run is started.",
                           kind=ApiErrorKind.UNAVAILABLE) from None
        retry = found
    except ApiError as refused:
        if refused.kind.loses_the_run:
            raise
        # dbt Cloud said no (e.g. 400 with retry_not_supported_reason): the failed run's outcome stands.
        state.may_have_created = None
        state.attempts.pop()
        state.see(failed)
        state.note(f"dbt Cloud refused to retry run {failed.id}: {refused}")
        return None
    state.may_have_created = None
    if not is_retry(retry):
        state.see(failed)
        state.note(f"dbt Cloud answered the retry of run {failed.id} with run {retry.id}, which is not a retry of "
                   f"it (retrying_run_id {retry.retrying_run_id}, job {retry.job_id}); dbtgate did not take its "
                   f"result as run {failed.id}'s.")
        state.attempts.pop()
        if not retry.is_terminal:
            done = cancel_run(state, retry, state.left(CANCEL_BUDGET), "it is not the retry dbtgate asked for")
            state.note(done.note)
            if done.signal is not None:
                raise done.signal
        return None
    state.see(retry)
    tools.emit(f"Retry run {retry.id} started: {retry.href}")
    return retry

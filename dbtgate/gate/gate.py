"""The gate, as the product's story: which job → which run → wait → retry → decide.

Everything here is plain control flow over a `CloudApi` and a `Clock`; it never sleeps or reads the environment
itself, so the whole decision logic runs in tests on a virtual clock. How a run is triggered, reused or retried is
trigger.py's; finding jobs and latest runs is find.py's; every ending but "the run finished" is endings.py's.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING

from dbtgate.clock import Clock
from dbtgate.cloud.interface import CloudApi
from dbtgate.cloud.models import Job, Run, humanize_status
from dbtgate.config import GateConfig
from dbtgate.errors import ApiError, ApiErrorKind, ConfigError, DeadlineExceeded
from dbtgate.gate import endings
from dbtgate.gate.endings import Cause, Ending
from dbtgate.gate.find import LatestRunQuery, find_job_by_name, staleness, wait_for_latest_run
from dbtgate.gate.state import (
    CANCEL_BUDGET,
    CLEANUP_BUDGET,
    GateResult,
    GateState,
    Tools,
    finished_headline,
    outcome_of,
)
from dbtgate.gate.trigger import find_reusable, prefer_older, retry_once, should_rerun, trigger_once
from dbtgate.logs import get_logger
from dbtgate.outcome import Outcome
from dbtgate.parsers import FailFast
from dbtgate.signals import Interrupted
from dbtgate.watch.progress import format_seconds
from dbtgate.watch.watcher import RunWatcher, Watch

if TYPE_CHECKING:
    from dbtgate.artifacts import ArtifactReport, NodeIssue

log = get_logger("dbtgate")

ARTIFACT_BUDGET = 60.0
GIVEN_RUN_404_GRACE = 10.0     # seconds a given run_id may 404 before it is called wrong (a new run's race)


class Gate:
    def __init__(self, config: GateConfig, client: CloudApi, clock: Clock, *,
                 emit: Callable[[str], None] | None = None, marker: str | None = None) -> None:
        self.tools = Tools(config, client, clock, emit or (lambda line: log.info(line)),
                           f" [dbtgate:{marker or secrets.token_hex(4)}]")
        self.watcher = RunWatcher(client, clock, emit=self.tools.emit, interval=config.interval,
                                  api_timeout=config.api_timeout)
        self.state = GateState(self.tools)

    def run(self) -> GateResult:
        self.state = state = GateState(self.tools)
        try:
            return self._story(state)
        except Interrupted as interrupted:
            # A signal during an ending (a cancel, the artifact download): report what is known, with its run.
            return endings.salvage(state, interrupted)
        except BaseException:
            # Used as a library, a stop arrives as KeyboardInterrupt, an orchestrator's task timeout or SystemExit,
            # none of them ours: still cancel the run this gate started, then let the caller's exception go on.
            endings.clean_up_before(state, CLEANUP_BUDGET)
            raise

    def salvage(self, interrupted: Interrupted) -> GateResult:
        """The result after a signal that arrived outside `run()` (while it was being set up or returning)."""
        return endings.salvage(self.state, interrupted)

    def _story(self, state: GateState) -> GateResult:
        config = self.tools.config
        try:
            obtained = self._obtain(state)
            if isinstance(obtained, GateResult):
                return obtained
            if not config.wait:
                return state.result(Outcome.NOT_WAITED, f"Triggered run {obtained.id} without waiting")
            watch = self._wait(state, obtained)
            while watch.run is not None and not watch.failed_fast and should_rerun(state, watch.run):
                retry = retry_once(state, watch.run)
                if retry is None:
                    break
                watch = self._wait(state, retry)
            if watch.failed_fast:
                return endings.finish(state, Ending.FAILED_FAST, Cause(watch=watch))
            if watch.run is None:
                return endings.finish(state, Ending.TIMEOUT)
            # Inside the try: a signal while artifacts download must still be reported with the run it concerns.
            return self._decide(state, watch.run, watch)
        except DeadlineExceeded as exceeded:
            return endings.finish(state, Ending.TIMEOUT, Cause(detail=str(exceeded)))
        except ConfigError as problem:
            return state.result(Outcome.CONFIG_ERROR, str(problem))
        except ApiError as failure:
            if failure.kind.is_mistake and state.run is None and state.may_have_created is None:
                return self._mistake(state, failure)   # nothing was started: it is bad input, not an outage
            return endings.finish(state, Ending.API_FAILED, Cause(failure=failure))
        except Interrupted as interrupted:
            return endings.finish(state, Ending.INTERRUPTED, Cause(signal=interrupted))
        except Exception as error:  # a bug must not leave a run burning unobserved, nor skip the report
            log.exception("unexpected error")
            bug = ApiError(f"dbtgate hit an unexpected error: {error.__class__.__name__}: {error}",
                           kind=ApiErrorKind.UNAVAILABLE)
            return endings.finish(state, Ending.API_FAILED, Cause(failure=bug))

    # ---- which job, which run -----------------------------------------------------------------------------------
    def _obtain(self, state: GateState) -> Run | GateResult:
        """The run to wait on: given (run_id), the job's latest (latest_run), one in flight (reuse_existing_run),
        or a new one; or a result already (no latest run, or a stale one)."""
        config, client = self.tools.config, self.tools.client
        if config.run_id is not None:
            # The id often comes from a trigger seconds ago (wait_for_job: false), and a brand-new run can 404 for a
            # few seconds: look again for a while before calling the id wrong.
            grace = self.tools.clock.monotonic() + GIVEN_RUN_404_GRACE
            state.see(client.get_run(config.run_id, ("run_steps", "job", "trigger"), deadline=state.deadline,
                                     not_found_grace_until=grace, missing_is_final=True))
            assert state.run is not None
            self.tools.emit(f"Waiting on existing run {state.run.id}: {state.run.href}")
            return state.run
        state.job = job = client.get_job(self._job_id(state), deadline=state.deadline)
        if config.latest_run:
            return self._latest(state, job)
        if not config.reuse_existing_run:
            return trigger_once(state, job)
        # Reuse a run in flight; else trigger, then look once more for a gate that triggered at the same moment.
        return find_reusable(state, job) or prefer_older(state, job, trigger_once(state, job))

    def _job_id(self, state: GateState) -> int:
        config = self.tools.config
        if config.job_id is not None:
            return config.job_id
        assert config.job_name is not None
        job = find_job_by_name(self.tools.client, config.job_name, project_id=config.project_id,
                               environment_id=config.environment_id, deadline=state.deadline)
        self.tools.emit(f"Job {config.job_name!r} is job {job.id} (project {job.project_id}, environment "
                        f"{job.environment_id}).")
        return job.id

    def _latest(self, state: GateState, job: Job) -> Run | GateResult:
        """latest_run: the job's newest run (for the commit/PR when given), triggering nothing."""
        config = self.tools.config
        query = LatestRunQuery.for_config(job.id, config)
        run = wait_for_latest_run(self.tools.client, self.tools.clock, query, deadline=state.deadline,
                                  interval=config.interval, emit=self.tools.emit)
        if run is None:
            return state.result(Outcome.TIMEOUT, f"No run of {query.describe()} appeared within the timeout of "
                                f"{format_seconds(config.timeout)}", detail=(
                                    "latest_run triggers nothing: check that the job runs for this commit (e.g. "
                                    "dbt Cloud's CI job on pull requests), or trigger it instead."))
        state.see(run)
        self.tools.emit(f"Latest run of {query.describe()}: run {run.id} ({humanize_status(run.status_code)}): "
                        f"{run.href}")
        if config.max_age is not None:
            why = staleness(run, config.max_age, self.tools.clock.wall())
            if why:
                return state.result(Outcome.STALE, f"The latest run of {query.describe()}, run {run.id}, is too "
                                    f"old: {why}", detail="Run the job again (or raise max_age) and re-run this "
                                    "workflow.")
        return run

    def _mistake(self, state: GateState, failure: ApiError) -> GateResult:
        """A wrong token, id or URL found at the first call: bad input (exit 2) naming the input to fix. A 404 for
        the job asks which of the ids is wrong: the account (not one this token can use) or the job."""
        config, clock = self.tools.config, self.tools.clock
        detail = str(failure)
        if failure.kind is ApiErrorKind.NOT_FOUND and config.run_id is None:
            try:
                usable = self.tools.client.account_ids(deadline=min(state.hard_end,
                                                                    clock.monotonic() + 2 * config.api_timeout))
            except (ApiError, DeadlineExceeded):
                usable = []
            if usable and config.account_id not in usable:
                shown = ", ".join(str(account) for account in usable[:10])
                detail = (f"input `dbt_cloud_account_id`: {config.account_id} is not an account this token can use "
                          f"(it can use {shown}). Set it to the number after /deploy/ in your dbt Cloud URLs.")
        if failure.kind is ApiErrorKind.NOT_FOUND and config.run_id is not None:
            detail += (f" dbtgate looked again for up to {GIVEN_RUN_404_GRACE:.0f} s (within the timeout), since a "
                       "new run can be invisible at first.")
        return state.result(Outcome.CONFIG_ERROR, detail)

    # ---- wait and decide ----------------------------------------------------------------------------------------
    def _wait(self, state: GateState, run: Run) -> Watch:
        """Watch the run to its end, the deadline, or (fail_fast) its first failed node; the state always knows
        the run as last seen."""
        config = self.tools.config
        commands = config.trigger.steps_override or (state.job.execute_steps if state.job else ())
        return self.watcher.wait(run, deadline=state.deadline, commands=commands, seen=state.see,
                                 fail_fast=config.fail_fast is FailFast.GATE,
                                 stops_itself=config.fail_fast is FailFast.DBT)

    def _decide(self, state: GateState, run: Run, watch: Watch) -> GateResult:
        outcome = outcome_of(run)
        return state.result(outcome, finished_headline(outcome, run, state.job_name(run)),
                            artifacts=self._artifacts(state, run, watch))

    def _artifacts(self, state: GateState, run: Run, watch: Watch) -> ArtifactReport | None:
        # Imported once the run has ended: off the path to the first request, which every action run pays for.
        from dbtgate.artifacts import collect_artifacts, result_steps

        config = self.tools.config
        wants_files = config.get_artifacts
        if not wants_files and run.succeeded and config.junit_xml is None:  # the JUnit report lists every node
            return None
        # Never past the documented bound of the whole gate (timeout + CANCEL_BUDGET).
        deadline = min(self.tools.clock.monotonic() + ARTIFACT_BUDGET, state.deadline + CANCEL_BUDGET)
        report = collect_artifacts(self.tools.client, run.id, workspace=config.workspace,
                                   directory=config.artifacts_dir if wants_files else None,
                                   fetch_catalog=config.fetch_catalog and wants_files,
                                   extra=config.extra_artifacts if wants_files else (),
                                   max_bytes=config.max_artifact_size, deadline=deadline, secrets=(config.token,),
                                   steps=result_steps(run.steps, run_failed=not run.succeeded),
                                   from_log=logged_failures(run, watch))
        if wants_files:
            for path in report.missing:
                log.warning(f"Run {run.id} produced no {path}; nothing to download (a warning, not a failure).")
        return report


def logged_failures(run: Run, watch: Watch) -> tuple[NodeIssue, ...]:
    """The failed nodes the run's failed steps logged, as the watcher read them (with dbt's message and file when
    the closing summary gave them): what the results lack on Fusion runs (no message; error results can be left
    out)."""
    from dbtgate.artifacts import NodeIssue

    failed_steps = {step.index for step in run.steps if step.failed}
    return tuple(NodeIssue(unique_id="", name=f.name, resource_type=f.resource_type, status=f.status,
                           message=f.message if f.explained else "", execution_time=f.seconds,
                           file_path=f.file if f.explained else "")
                 for f in watch.failures if f.step in failed_steps)

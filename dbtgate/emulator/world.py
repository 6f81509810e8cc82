"""The emulated dbt Cloud account: jobs, runs and how they progress with time.

A run's whole life is derived from a few facts (when it was created, what it runs, how it ends, when someone
cancelled it) plus the job's queue: runs of one job execute one after another. Nothing ticks in the background;
every read computes the state at "now" on the emulator's clock, so a virtual clock can jump hours in one call.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dbtgate.clock import Clock
from dbtgate.emulator import content
from dbtgate.emulator.content import NodeResult
from dbtgate.emulator.scenario import JobSpec, Scenario

QUEUED, STARTING, RUNNING, SUCCESS, ERROR, CANCELLED = 1, 2, 3, 10, 20, 30
HUMANIZED = {QUEUED: "Queued", STARTING: "Starting", RUNNING: "Running", SUCCESS: "Success", ERROR: "Error",
             CANCELLED: "Cancelled"}
CANCELLED_BY_USER = "Cancelled by user."
LOG_TAIL_LINES = 1000


@dataclass(frozen=True)
class PlannedStep:
    name: str
    command: str | None          # None for the setup steps
    duration: float
    results: tuple[NodeResult, ...] = ()
    fails: bool = False


@dataclass
class RunRecord:
    id: int
    job: JobSpec
    created: float
    trigger: dict[str, Any]
    steps: tuple[PlannedStep, ...]
    outcome: str
    timeout_seconds: int
    git_sha: str
    git_branch: str
    retry_of: int | None = None
    cancelled_at: float | None = None
    # Filled in by the job's schedule on every read.
    dequeued: float | None = None
    started: float | None = None
    finished: float = 0.0
    final_status: int = SUCCESS
    final_message: str | None = None
    blocked_by_id: int | None = field(default=None)

    @property
    def executed_steps(self) -> tuple[PlannedStep, ...]:
        """The steps that run before the run ends on its own (through the failing one)."""
        for position, step in enumerate(self.steps):
            if step.fails:
                return self.steps[: position + 1]
        return self.steps


def _timestamp(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, UTC).isoformat(sep=" ")


def _hms(seconds: float) -> str:
    whole = max(0, int(seconds))
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def _humanize_seconds(seconds: float) -> str:
    whole = max(0, int(seconds))
    parts = [(whole // 3600, "hour"), (whole % 3600 // 60, "minute"), (whole % 60, "second")]
    words = [f"{n} {unit}{'s' if n != 1 else ''}" for n, unit in parts if n]
    return ", ".join(words) or "0 seconds"


class World:
    """All state of one emulated account. Thread-safe: the HTTP server calls it from many threads."""

    def __init__(self, scenario: Scenario, clock: Clock, base_url: str = "", epoch: float | None = None) -> None:
        self.scenario = scenario
        self.clock = clock
        self.base_url = base_url
        self._clock_origin = clock.monotonic()
        # Emulated wall time starts at a fixed, recognisable moment unless told otherwise: reproducible output.
        self._epoch = epoch if epoch is not None else datetime(2026, 11, 2, 9, 0, tzinfo=UTC).timestamp()
        self._runs: dict[int, RunRecord] = {}
        self._next_run_id = scenario.first_run_id
        self._lock = threading.RLock()

    # ---- time ---------------------------------------------------------------------------------------------
    def now(self) -> float:
        """Emulated epoch seconds: the clock's elapsed time times the scenario's time scale."""
        return self._epoch + (self.clock.monotonic() - self._clock_origin) * self.scenario.time_scale

    def elapsed(self) -> float:
        """Emulated seconds since the emulator started (what fault windows are measured in)."""
        return self.now() - self._epoch

    # ---- commands -----------------------------------------------------------------------------------------
    def trigger(self, job: JobSpec, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            attempt = sum(1 for run in self._runs.values() if run.job.id == job.id)
            commands = tuple(body.get("steps_override") or job.execute_steps)
            generate_docs = body.get("generate_docs_override")
            if generate_docs is None:
                generate_docs = job.generate_docs
            timeout = body.get("timeout_seconds_override")
            record = self._new_run(job, body, commands, job.outcome_for(attempt), bool(generate_docs),
                                   int(timeout) if timeout is not None else job.timeout_seconds, attempt=attempt)
            return self.run_json(record.id, frozenset({"trigger", "job"}))

    def rerun(self, job: JobSpec) -> dict[str, Any]:
        """Retry the job's latest run from its failed step if it can be retried, else start a fresh run."""
        with self._lock:
            runs = self._job_runs(job.id)
            attempt = len(runs)
            latest = runs[-1] if runs else None
            outcome = job.outcome_for(attempt)
            if latest is not None and self._retry_refusal(latest) is None:
                failed = next(i for i, step in enumerate(latest.steps) if step.fails)
                remaining = [step.command for step in latest.steps[failed + 1:] if step.command]
                commands = ("dbt retry", *remaining)
                body = {**latest.trigger, "cause": f"Retry of run {latest.id} from the point of failure"}
                record = self._new_run(job, body, commands, outcome, False, latest.timeout_seconds,
                                       retry_of=latest.id, attempt=attempt)
            else:
                body = {"cause": "Rerun via API"}
                record = self._new_run(job, body, job.execute_steps, outcome, job.generate_docs, job.timeout_seconds,
                                       attempt=attempt)
            return self.run_json(record.id, frozenset({"trigger", "job"}))

    def cancel(self, run_id: int) -> dict[str, Any] | None:
        with self._lock:
            record = self._runs.get(run_id)
            if record is None:
                return None
            self._schedule(record.job.id)
            now = self.now()
            if record.finished > now and record.cancelled_at is None:
                record.cancelled_at = now
            return self.run_json(run_id, frozenset({"trigger", "job"}))

    # ---- reads --------------------------------------------------------------------------------------------
    def has_run(self, run_id: int) -> bool:
        with self._lock:
            return run_id in self._runs

    def run_job_id(self, run_id: int) -> int | None:
        with self._lock:
            record = self._runs.get(run_id)
            return record.job.id if record else None

    def finished_elapsed(self, run_id: int) -> float | None:
        """When the run finished (or will finish, if nothing changes), in emulated seconds since the start."""
        with self._lock:
            record = self._runs[run_id]
            self._schedule(record.job.id)
            return record.finished - self._epoch

    def run_ids(self) -> list[int]:
        with self._lock:
            return sorted(self._runs)

    def run_json(self, run_id: int, include: frozenset[str] = frozenset()) -> dict[str, Any]:
        with self._lock:
            record = self._runs[run_id]
            self._schedule(record.job.id)
            return self._render_run(record, self.now(), include)

    def list_runs(self, *, job_id: int | None, statuses: set[int] | None, order_by: str, limit: int, offset: int,
                  include: frozenset[str]) -> tuple[list[dict[str, Any]], int]:
        with self._lock:
            for job in {run.job.id for run in self._runs.values()}:
                self._schedule(job)
            now = self.now()
            rows = [(record, self._status_at(record, now)) for record in self._runs.values()
                    if job_id is None or record.job.id == job_id]
            if statuses is not None:
                rows = [(record, status) for record, status in rows if status in statuses]
            descending = order_by.startswith("-")
            key = order_by.lstrip("-")

            def sort_key(row: tuple[RunRecord, int]) -> tuple[float, int]:
                record, status = row
                if key == "finished_at":
                    finished = record.finished if status in (SUCCESS, ERROR, CANCELLED) else float("inf")
                    return (finished, record.id)
                if key == "created_at":
                    return (record.created, record.id)
                return (float(record.id), record.id)

            rows.sort(key=sort_key, reverse=descending)
            page = rows[offset: offset + limit]
            return [self._render_run(record, now, include) for record, _ in page], len(rows)

    def artifact_paths(self, run_id: int, step: int | None) -> list[str]:
        with self._lock:
            source = self._artifact_step(run_id, step)
            return self._paths_of(*source) if source is not None else []

    @staticmethod
    def _paths_of(record: RunRecord, planned: PlannedStep) -> list[str]:
        paths = ["manifest.json"]
        if planned.results:
            paths.append("run_results.json")
            paths.extend(f"compiled/{content.PACKAGE}/{content.NODES_BY_ID[r.unique_id].original_file_path}"
                         for r in planned.results if r.unique_id in content.NODES_BY_ID
                         and content.NODES_BY_ID[r.unique_id].resource_type == "model")
        if any(s.command == "dbt docs generate" for s in record.executed_steps):
            paths.append("catalog.json")
        return paths

    def artifact(self, run_id: int, path: str, step: int | None) -> dict[str, Any] | str | None:
        with self._lock:
            source = self._artifact_step(run_id, step)
            if source is None or path not in self._paths_of(*source):
                return None
            record, planned = source
            generated = _timestamp(record.finished) or ""
            generated_iso = generated.replace(" ", "T")
            if path == "run_results.json":
                return content.run_results_json(planned.command or "", list(planned.results), generated_iso,
                                                planned.duration)
            if path == "manifest.json":
                return content.manifest_json(generated_iso)
            if path == "catalog.json":
                return content.catalog_json(generated_iso)
            return f"-- compiled SQL for {path}\nselect 1 as id\n"

    # ---- internals ----------------------------------------------------------------------------------------
    def _new_run(self, job: JobSpec, body: dict[str, Any], commands: tuple[str, ...], outcome: str,
                 generate_docs: bool, timeout_seconds: int, retry_of: int | None = None, attempt: int = 0
                 ) -> RunRecord:
        run_id = self._next_run_id
        self._next_run_id += 1
        trigger = {key: value for key, value in body.items() if value is not None}
        record = RunRecord(
            id=run_id, job=job, created=self.now(), trigger=trigger,
            steps=self._plan_steps(job, commands, outcome, generate_docs, job.run_seconds_for(attempt)),
            outcome=outcome,
            timeout_seconds=timeout_seconds, git_sha=str(body.get("git_sha") or "4e041f69021cbdd0a4f78d50bb961054dd73"),
            git_branch=str(body.get("git_branch") or "main"), retry_of=retry_of,
        )
        self._runs[run_id] = record
        return record

    @staticmethod
    def _plan_steps(job: JobSpec, commands: tuple[str, ...], outcome: str, generate_docs: bool,
                    run_seconds: float) -> tuple[PlannedStep, ...]:
        steps = [PlannedStep(name, None, job.setup_seconds) for name in content.SETUP_STEPS]
        all_commands = list(commands) + (["dbt docs generate"] if generate_docs else [])
        building = [i for i, command in enumerate(all_commands) if content.builds_nodes(command)]
        failing = (building[-1] if building else len(all_commands) - 1) if outcome == "error" else None
        warnings = {r.unique_id: r for r in job.warnings}
        for index, command in enumerate(all_commands):
            fails = index == failing
            overrides = dict(warnings)
            if fails:
                overrides.update({r.unique_id: r for r in job.failures})
            results = tuple(content.node_results(command, overrides)) if content.builds_nodes(command) else ()
            steps.append(PlannedStep(content.step_name(command), command, run_seconds, results, fails))
        return tuple(steps)

    def _job_runs(self, job_id: int) -> list[RunRecord]:
        return sorted((r for r in self._runs.values() if r.job.id == job_id), key=lambda r: r.id)

    def _schedule(self, job_id: int) -> None:
        """Lay the job's runs end to end: each starts when it is due and the previous run has finished."""
        previous_end = float("-inf")
        previous_id: int | None = None
        for record in self._job_runs(job_id):
            due = record.created + record.job.queue_seconds
            record.blocked_by_id = previous_id if previous_end > due else None
            dequeued = max(due, previous_end)
            if record.cancelled_at is not None and record.cancelled_at < dequeued:
                record.dequeued = record.started = None
                record.finished, record.final_status, record.final_message = (
                    record.cancelled_at, CANCELLED, CANCELLED_BY_USER)
            else:
                record.dequeued = dequeued
                record.started = dequeued + record.job.start_seconds
                self._settle(record, record.started)
            previous_end, previous_id = record.finished, record.id

    @staticmethod
    def _settle(record: RunRecord, started: float) -> None:
        work = sum(step.duration for step in record.executed_steps)
        status = {"success": SUCCESS, "error": ERROR, "cancelled": CANCELLED}[record.outcome]
        message: str | None = None
        if record.outcome == "cancelled":
            work = work / 2
            message = CANCELLED_BY_USER
        elif record.outcome == "error":
            failing = record.executed_steps[-1]
            bad = [r for r in failing.results if r.status in {"error", "fail"}]
            message = (f"{len(bad)} of {len(failing.results)} nodes failed in `{failing.command}`" if bad else
                       f"`{failing.command}` failed")
        if record.timeout_seconds and work > record.timeout_seconds:
            work, status = float(record.timeout_seconds), CANCELLED
            message = (f"This run timed out after running for {_humanize_seconds(record.timeout_seconds)}, "
                       f"the job's timeout of {record.timeout_seconds} seconds.")
        end = started + work
        if record.cancelled_at is not None and record.cancelled_at < end:
            end, status, message = record.cancelled_at, CANCELLED, CANCELLED_BY_USER
        record.finished, record.final_status, record.final_message = end, status, message

    @staticmethod
    def _status_at(record: RunRecord, now: float) -> int:
        if record.finished <= now:
            return record.final_status
        if record.started is not None and record.started <= now:
            return RUNNING
        if record.dequeued is not None and record.dequeued <= now:
            return STARTING
        return QUEUED

    def _retry_refusal(self, record: RunRecord) -> str | None:
        """Why a run cannot be retried from the point of failure, or None when it can."""
        status = self._status_at(record, self.now())
        if status != ERROR:
            return "RETRY_NOT_FAILED_RUN"
        if not record.job.retryable:
            return "RETRY_UNSUPPORTED_CMD"
        if self._job_runs(record.job.id)[-1].id != record.id:
            return "RETRY_NOT_LATEST_RUN"
        if not record.executed_steps[-1].results:
            return "RETRY_NO_RUN_RESULTS"
        return None

    def _artifact_step(self, run_id: int, step: int | None) -> tuple[RunRecord, PlannedStep] | None:
        record = self._runs.get(run_id)
        if record is None or not record.job.artifacts:
            return None
        self._schedule(record.job.id)
        now = self.now()
        if record.finished > now or record.started is None:
            return None
        elapsed = record.started
        done: list[tuple[int, PlannedStep]] = []
        for index, planned in enumerate(record.executed_steps, start=1):
            elapsed += planned.duration
            if elapsed <= record.finished + 1e-9 and planned.command and planned.command != "dbt deps":
                done.append((index, planned))
        if step is not None:
            chosen = [pair for pair in done if pair[0] == step]
        else:
            # dbt Cloud serves the last step's artifacts; a failed parse leaves none.
            chosen = [pair for pair in done if pair[1].results or pair[1].command in ("dbt parse", "dbt compile")]
            chosen = chosen[-1:]
        if not chosen or (chosen[0][1].fails and not chosen[0][1].results):
            return None
        return record, chosen[0][1]

    def _render_steps(self, record: RunRecord, now: float, debug_logs: bool) -> list[dict[str, Any]]:
        if record.started is None or record.started > now:
            return []
        rendered = []
        begin = record.started
        for index, planned in enumerate(record.executed_steps, start=1):
            if begin > now or begin >= record.finished:
                break
            end = min(begin + planned.duration, record.finished)
            complete = end >= begin + planned.duration - 1e-9
            if end <= now:
                status = (ERROR if planned.fails else SUCCESS) if complete else record.final_status
            else:
                status = RUNNING
            if planned.command is None:
                timed = content.setup_step_log(planned.name, begin)
            else:
                timed = content.command_log_lines(planned.command, list(planned.results), begin, planned.duration)
                if planned.fails and not planned.results:
                    moment = begin + planned.duration
                    timed[-1:] = [(moment, f"{timed[-1][1][:10]}Encountered an error:"),
                                  (moment, f"{timed[-1][1][:10]}Compilation Error in model orders "
                                           "(models/marts/orders.sql)")]
            # A running or cut-short step shows the lines that have happened by now.
            lines = [text for moment, text in timed if moment <= min(now, end) + 1e-9] or [timed[0][1]]
            if status == CANCELLED:
                lines.append("Cancelled by user." if record.final_message == CANCELLED_BY_USER else
                             (record.final_message or ""))
            logs = "\n".join(lines[-LOG_TAIL_LINES:]) + "\n"
            step_duration = max(0.0, min(end, now) - begin)
            rendered.append({
                "id": record.id * 100 + index, "run_id": record.id, "account_id": self.scenario.account_id,
                "index": index, "status": status, "status_humanized": HUMANIZED[status],
                "status_color": {SUCCESS: "green", ERROR: "red", CANCELLED: "gray"}.get(status, "blue"),
                "name": planned.name, "logs": logs,
                "debug_logs": ("\n".join(f"{line} [debug]" for line in lines) + "\n") if debug_logs else None,
                "log_path": None, "debug_log_path": None, "truncated_debug_logs": None, "log_level": "info",
                "log_location": "db", "created_at": _timestamp(begin), "updated_at": _timestamp(min(end, now)),
                "started_at": _timestamp(begin), "finished_at": _timestamp(end) if end <= now else None,
                "duration": _hms(step_duration), "duration_humanized": _humanize_seconds(step_duration),
            })
            begin = end
        return rendered

    def job_json(self, job: JobSpec) -> dict[str, Any]:
        created = _timestamp(self._epoch - 86400 * 30)
        return {
            "id": job.id, "account_id": self.scenario.account_id, "project_id": job.project_id,
            "environment_id": job.environment_id, "name": job.name, "description": "",
            "dbt_version": None, "raw_dbt_version": "latest", "deferring_environment_id": None,
            "deferring_job_definition_id": None, "execute_steps": list(job.execute_steps),
            "execution": {"timeout_seconds": job.timeout_seconds}, "generate_docs": job.generate_docs,
            "generate_sources": False, "run_generate_sources": False, "is_deferrable": False, "job_type": "other",
            "lifecycle_webhooks": False, "lifecycle_webhooks_url": None, "run_compare_changes": False,
            "compare_changes_flags": "--select state:modified", "run_failure_count": 0, "run_lint": False,
            "errors_on_lint_failure": True, "cost_optimization_features": [],
            "settings": {"threads": 4, "target_name": "default"}, "state": 1, "triggers_on_draft_pr": False,
            "triggers": {"github_webhook": False, "schedule": False, "git_provider_webhook": None, "on_merge": None,
                         "custom_branch_only": None},
            "job_completion_trigger_condition": None, "created_at": created, "updated_at": created,
            "account": None, "project": None, "environment": None, "fusion_readiness": None,
            "schedule": None,
        }

    def _render_run(self, record: RunRecord, now: float, include: frozenset[str]) -> dict[str, Any]:
        status = self._status_at(record, now)
        finished = status in (SUCCESS, ERROR, CANCELLED)
        started = record.started if record.started is not None and record.started <= now else None
        dequeued = record.dequeued if record.dequeued is not None and record.dequeued <= now else None
        end = record.finished if finished else now
        queued_for = (dequeued if dequeued is not None else end) - record.created
        ran_for = (end - started) if started is not None else 0.0
        refusal = self._retry_refusal(record) if finished else None
        account = self.scenario.account_id
        project = record.job.project_id
        trigger = {
            "id": record.id + 500_000, "cause": record.trigger.get("cause", ""),
            "job_definition_id": record.job.id, "cause_humanized": record.trigger.get("cause", ""),
            "cause_category": "api", "created_at": _timestamp(record.created),
            "updated_at": _timestamp(record.created),
            **{key: value for key, value in record.trigger.items() if key != "cause"},
        }
        data: dict[str, Any] = {
            "id": record.id, "trigger_id": record.id + 500_000, "account_id": account,
            "environment_id": record.job.environment_id, "project_id": project,
            "job_definition_id": record.job.id, "status": status, "dbt_version": "1.9.4",
            "git_branch": record.git_branch, "git_sha": record.git_sha,
            "status_message": record.final_message if finished else None,
            "owner_thread_id": None, "executed_by_thread_id": f"scheduler-run-0-{record.id}" if started else None,
            "deferring_run_id": None, "artifacts_saved": finished and record.job.artifacts,
            "artifact_s3_path": f"emulator/runs/{record.id}/artifacts/target" if finished else None,
            "has_docs_generated": finished and any(s.command == "dbt docs generate" for s in record.steps),
            "has_sources_generated": False, "notifications_sent": finished,
            "blocked_by": [record.blocked_by_id] if status == QUEUED and record.blocked_by_id else [],
            "created_at": _timestamp(record.created), "updated_at": _timestamp(min(now, record.finished)),
            "dequeued_at": _timestamp(dequeued), "started_at": _timestamp(started),
            "finished_at": _timestamp(record.finished) if finished else None,
            "last_checked_at": _timestamp(now) if started else None,
            "last_heartbeat_at": _timestamp(min(now, record.finished)) if started else None,
            "should_start_at": None,
            "trigger": trigger if "trigger" in include else None,
            "job": self.job_json(record.job) if "job" in include else None,
            "environment": None,
            "run_steps": self._render_steps(record, now, "debug_logs" in include) if "run_steps" in include else [],
            "status_humanized": HUMANIZED.get(status, "Unknown"),
            "in_progress": not finished, "is_complete": finished, "is_success": status == SUCCESS,
            "is_error": status == ERROR, "is_cancelled": status == CANCELLED,
            "duration": _hms(end - record.created), "queued_duration": _hms(queued_for),
            "run_duration": _hms(ran_for), "duration_humanized": _humanize_seconds(end - record.created),
            "queued_duration_humanized": _humanize_seconds(queued_for),
            "run_duration_humanized": _humanize_seconds(ran_for),
            "created_at_humanized": _humanize_seconds(now - record.created) + " ago",
            "finished_at_humanized": (_humanize_seconds(now - record.finished) + " ago") if finished else None,
            "retrying_run_id": record.retry_of, "can_retry": finished and refusal is None,
            "retry_not_supported_reason": refusal, "job_id": record.job.id, "is_running": None,
            "href": f"{self.base_url}/deploy/{account}/projects/{project}/runs/{record.id}/",
            "used_repo_cache": None,
        }
        return data

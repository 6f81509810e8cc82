"""The emulated dbt Cloud account: jobs, runs and how they progress with time.

A run's whole life is derived from a few facts (when it was created, what it runs, how it ends, when someone
cancelled it) plus the job's queue: runs of one job execute one after another. Nothing ticks in the background;
every read computes the state at "now" on the emulator's clock, so a virtual clock can jump hours in one call.
What each dbt command prints and produces comes from dbtgate.emulator.project, computed once when the run is
created (relative to the step's start) and rendered up to "now" on each read.
"""

from __future__ import annotations

import hashlib
import math
import random
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from dbtgate.clock import Clock
from dbtgate.emulator import project as dbt
from dbtgate.emulator.project import NodeResult, Project, RunShape, StepLog
from dbtgate.emulator.scenario import JobSpec, Scenario, is_fusion_version

QUEUED, STARTING, RUNNING, SUCCESS, ERROR, CANCELLED = 1, 2, 3, 10, 20, 30
HUMANIZED = {QUEUED: "Queued", STARTING: "Starting", RUNNING: "Running", SUCCESS: "Success", ERROR: "Error",
             CANCELLED: "Cancelled"}
CANCELLED_BY_USER = "Cancelled by user."
LOG_TAIL_LINES = dbt.TAIL_LINES
# What dbt Cloud keeps of a step's logs in the run object (docs.getdbt.com, deploy/run-visibility, "Log size limits"):
# a running step shows its last 1,000 lines or 0.5 MB, whichever is smaller; a finished step whose last 1,000 lines
# are over 0.5 MB has its logs left out ("" with log_location "empty", the legacy spec's value for it).
LOG_MAX_BYTES = 512 * 1024
TRIGGER_FIELDS = ("git_branch", "git_sha", "azure_pull_request_id", "github_pull_request_id",
                  "gitlab_merge_request_id", "non_native_pull_request_id", "schema_override", "dbt_version_override",
                  "threads_override", "target_name_override", "generate_docs_override", "timeout_seconds_override",
                  "steps_override")
SETUP_STEPS = ("Clone git repository", "Create profile from connection Snowflake")
MAX_TIMEOUT_SECONDS = 10 ** 9


class RetryRefused(Exception):
    """dbt Cloud would refuse to retry this run; `reason` is its retry_not_supported_reason value."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class RunFilters:
    """The extra filters of GET runs/ (all optional). Ranges are (from, to), either end open with None."""

    pk: int | None = None
    pk__in: frozenset[int] | None = None
    id__gt: int | None = None
    project_id: int | None = None
    environment_id: int | None = None
    created_at__range: tuple[datetime | str | None, datetime | str | None] | None = None
    finished_at__range: tuple[datetime | str | None, datetime | str | None] | None = None
    project_id__in: frozenset[int] | None = None
    dbt_version: str | None = None
    dbt_version__in: frozenset[str] | None = None
    deferring_run_id: int | None = None
    has_docs_generated: bool | None = None
    has_sources_generated: bool | None = None
    deleted_only: bool = False           # state=deleted: the emulated account deletes no runs


@dataclass(frozen=True)
class JobFilters:
    """The extra filters of GET jobs/ the spec lists (all optional)."""

    pk: int | None = None
    project_id__in: frozenset[int] | None = None
    dbt_version__in: frozenset[str] | None = None
    is_fusion_ready: bool | None = None
    is_system: bool = False
    triggers_schedule: bool | None = None


@dataclass(frozen=True)
class PlannedStep:
    name: str
    command: str | None          # None for the setup steps
    log: StepLog
    results: tuple[NodeResult, ...] = ()
    fails: bool = False

    @property
    def duration(self) -> float:
        return self.log.duration


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
    project: Project
    colour: bool = False
    queue_seconds: float = 0.0
    finalize_seconds: float = 0.0
    retry_of: int | None = None
    history: bool = False
    cancelled_at: float | None = None
    threads: int = 4
    dbt_version: str = dbt.DBT_VERSION
    cause_category: str = "api"
    # Filled in by the job's schedule on every read.
    dequeued: float | None = None
    started: float | None = None
    steps_end: float = 0.0
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

    @property
    def failed_step(self) -> int | None:
        return next((i for i, step in enumerate(self.steps) if step.fails), None)


def _timestamp(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, UTC).isoformat(sep=" ")


def _hms(seconds: float) -> str:
    whole = max(0, int(seconds))
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


_UNITS = ((365 * 86400, "year"), (30 * 86400, "month"), (7 * 86400, "week"), (86400, "day"), (3600, "hour"),
          (60, "minute"), (1, "second"))


def _humanize(seconds: float, smallest: int) -> str:
    """Django's timesince, as dbt Cloud prints it: the largest unit and the next one if non-zero."""
    whole = max(0, int(seconds))
    units = [u for u in _UNITS if u[0] >= smallest]
    for position, (size, name) in enumerate(units):
        count = whole // size
        if count:
            words = [f"{count} {name}{'s' if count != 1 else ''}"]
            if position + 1 < len(units):
                next_size, next_name = units[position + 1]
                rest = (whole - count * size) // next_size
                if rest:
                    words.append(f"{rest} {next_name}{'s' if rest != 1 else ''}")
            return ", ".join(words)
    return f"0 {units[-1][1]}s"


def _humanize_seconds(seconds: float) -> str:
    """A duration: "37 seconds", "2 minutes, 5 seconds", "1 day, 3 hours"."""
    return _humanize(seconds, 1)


def _timesince(seconds: float) -> str:
    """A moment in the past: "0 minutes", "3 months, 3 weeks" (to which dbt Cloud adds " ago")."""
    return _humanize(seconds, 60)


def _size_limited(logs: str, running: bool) -> tuple[str, str]:
    """A step's `logs` within dbt Cloud's limits, and its log_location: a running step's tail is cut to the newest
    LOG_MAX_BYTES (whole lines); a finished step over the limit has its logs left out ("", location "empty")."""
    data = logs.encode()
    if len(data) <= LOG_MAX_BYTES:
        return logs, "db"
    if not running:
        return "", "empty"
    cut = data[-LOG_MAX_BYTES:]
    newline = cut.find(b"\n")
    return (cut[newline + 1:] if 0 <= newline < len(cut) - 1 else cut).decode("utf-8", "ignore"), "db"


def _parse_moment(value: datetime | str | None) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def _cron_humanized(cron: str) -> str:
    fields = cron.split()
    if len(fields) == 5 and fields[2:] == ["*", "*", "*"] and fields[0].isdigit() and fields[1].isdigit():
        return f"At {int(fields[1]):02d}:{int(fields[0]):02d}"
    if len(fields) == 5 and fields[1:] == ["*", "*", "*", "*"] and fields[0].isdigit():
        return f"At {int(fields[0])} minutes past the hour"
    return f"Custom cron schedule ({cron})"


def _next_cron(cron: str, after: float) -> float | None:
    fields = cron.split()
    if len(fields) != 5 or not fields[0].isdigit():
        return None
    moment = datetime.fromtimestamp(after, UTC).replace(second=0, microsecond=0)
    if fields[1].isdigit():
        candidate = moment.replace(hour=int(fields[1]), minute=int(fields[0]))
        step = timedelta(days=1)
    else:
        candidate = moment.replace(minute=int(fields[0]))
        step = timedelta(hours=1)
    while candidate.timestamp() <= after:
        candidate += step
    return candidate.timestamp()


def _safe_timeout(value: Any, default: int) -> int:
    """Any timeout the body carries, never raising: non-numbers fall back, negatives mean none, huge is capped."""
    if value is None:
        return default
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return default
    if math.isnan(number) or number <= 0:
        return 0
    return int(min(number, MAX_TIMEOUT_SECONDS))


def _safe_threads(value: Any, default: int) -> int:
    try:
        threads = int(value)
    except (TypeError, ValueError, OverflowError):
        return default
    return threads if 1 <= threads <= 64 else default


class World:
    """All state of one emulated account. Thread-safe: the HTTP server calls it from many threads."""

    def __init__(self, scenario: Scenario, clock: Clock, base_url: str = "", epoch: float | None = None) -> None:
        self.scenario = scenario
        self.clock = clock
        self.base_url = base_url
        self._clock_origin = clock.monotonic()
        # The calendar starts at the clock's date (history runs lie in the days before it), so a client comparing
        # timestamps with its own date (max_age) sees runs of the age the scenario gives them, whatever the year.
        # `epoch` pins it instead, for output that must be the same on every run (the committed example).
        self._epoch = epoch if epoch is not None else clock.wall().timestamp()
        self._runs: dict[int, RunRecord] = {}
        self._next_run_id = scenario.first_run_id
        self._lock = threading.RLock()
        for job in scenario.jobs:
            self._make_history(job)

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
            attempt = self._attempt(job)
            steps = body.get("steps_override")
            commands = tuple(str(s) for s in steps) if isinstance(steps, list) and steps else job.execute_steps
            generate_docs = body.get("generate_docs_override")
            if generate_docs is None:
                generate_docs = job.generate_docs
            timeout = _safe_timeout(body.get("timeout_seconds_override"), job.timeout_seconds)
            record = self._new_run(job, body, commands, job.outcome_for(attempt), bool(generate_docs), timeout,
                                   attempt=attempt)
            return self.run_json(record.id, frozenset({"trigger", "job"}))

    def rerun(self, job: JobSpec) -> dict[str, Any]:
        """Act on the job's latest run: retry it from its failed step if it can be, else start a plain new run."""
        with self._lock:
            runs = self._job_runs(job.id)
            latest = runs[-1] if runs else None
            if latest is not None:
                self._schedule(job.id)
                if self._retry_refusal(latest) is None:
                    return self._retry(latest)
            attempt = self._attempt(job)
            record = self._new_run(job, {"cause": "Rerun via API"}, job.execute_steps, job.outcome_for(attempt),
                                   job.generate_docs, job.timeout_seconds, attempt=attempt)
            return self.run_json(record.id, frozenset({"trigger", "job"}))

    def retry_run(self, run_id: int) -> dict[str, Any]:
        """POST runs/{id}/retry/: retry that run from its failed step; RetryRefused(reason) when dbt Cloud would not.

        KeyError for an unknown run.
        """
        with self._lock:
            record = self._runs[run_id]
            self._schedule(record.job.id)
            reason = self._retry_refusal(record)
            if reason is not None:
                raise RetryRefused(reason)
            return self._retry(record)

    def retry_details(self, run_id: int) -> dict[str, Any]:
        """GET runs/{id}/retry/: the failed step's command and the commands it skipped (RunFailureDetailsResponse).

        RetryRefused("RETRY_NOT_FAILED_RUN") for a run that has not failed; KeyError for an unknown run.
        """
        with self._lock:
            record = self._runs[run_id]
            self._schedule(record.job.id)
            failed = record.failed_step
            if self._status_at(record, self.now()) != ERROR or failed is None:
                raise RetryRefused("RETRY_NOT_FAILED_RUN")
            return {"failed_step": record.steps[failed].command,
                    "skipped_steps": [s.command for s in record.steps[failed + 1:] if s.command]}

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
        """The runs created since the emulator started (not the pre-populated history)."""
        with self._lock:
            return sorted(run_id for run_id, record in self._runs.items() if not record.history)

    def run_json(self, run_id: int, include: frozenset[str] = frozenset()) -> dict[str, Any]:
        with self._lock:
            record = self._runs[run_id]
            self._schedule(record.job.id)
            return self._render_run(record, self.now(), include)

    def list_runs(self, *, job_id: int | None, statuses: set[int] | None, order_by: str, limit: int, offset: int,
                  include: frozenset[str], filters: RunFilters | None = None) -> tuple[list[dict[str, Any]], int]:
        with self._lock:
            for job in {run.job.id for run in self._runs.values()}:
                self._schedule(job)
            now = self.now()
            rows = [(record, self._status_at(record, now)) for record in self._runs.values()
                    if job_id is None or record.job.id == job_id]
            if statuses is not None:
                rows = [(record, status) for record, status in rows if status in statuses]
            if filters is not None:
                rows = [(record, status) for record, status in rows if self._matches(record, status, filters, now)]
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
            page = rows[max(0, offset): max(0, offset) + max(0, limit)]
            return [self._render_run(record, now, include) for record, _ in page], len(rows)

    @staticmethod
    def _matches(record: RunRecord, status: int, filters: RunFilters, now: float) -> bool:
        if filters.pk is not None and record.id != filters.pk:
            return False
        if filters.pk__in is not None and record.id not in filters.pk__in:
            return False
        if filters.id__gt is not None and record.id <= filters.id__gt:
            return False
        if filters.project_id is not None and record.job.project_id != filters.project_id:
            return False
        if filters.environment_id is not None and record.job.environment_id != filters.environment_id:
            return False
        if filters.project_id__in is not None and record.job.project_id not in filters.project_id__in:
            return False
        if filters.dbt_version is not None and record.dbt_version != filters.dbt_version:
            return False
        if filters.dbt_version__in is not None and record.dbt_version not in filters.dbt_version__in:
            return False
        if filters.deferring_run_id is not None or filters.deleted_only:
            return False                  # no run of the emulated account defers to another or is deleted
        finished = status in (SUCCESS, ERROR, CANCELLED)
        if filters.has_docs_generated is not None and filters.has_docs_generated != (
                finished and any(s.command == "dbt docs generate" for s in record.executed_steps)):
            return False
        if filters.has_sources_generated is not None and filters.has_sources_generated:
            return False                  # has_sources_generated is always false (as the run object says)
        for bounds, moment in ((filters.created_at__range, record.created),
                               (filters.finished_at__range,
                                record.finished if status in (SUCCESS, ERROR, CANCELLED) else None)):
            if bounds is None:
                continue
            low, high = (_parse_moment(bounds[0]), _parse_moment(bounds[1]))
            # Timestamps are shown to the microsecond: compare at that precision.
            if moment is None or (low is not None and moment < low - 1e-6) or (
                    high is not None and moment > high + 1e-6):
                return False
        return True

    def list_jobs(self, project_id: int | None = None, environment_id: int | None = None,
                  name_contains: str | None = None, limit: int = 100, offset: int = 0,
                  order_by: str = "id", filters: JobFilters | None = None) -> tuple[list[dict[str, Any]], int]:
        """GET jobs/: the scenario's jobs, filtered (name case-insensitively), ordered by id or name, one page."""
        more = filters or JobFilters()
        with self._lock:
            jobs = [job for job in self.scenario.jobs
                    if (project_id is None or job.project_id == project_id)
                    and (environment_id is None or job.environment_id == environment_id)
                    and (not name_contains or name_contains.lower() in job.name.lower())
                    and (more.pk is None or job.id == more.pk)
                    and (more.project_id__in is None or job.project_id in more.project_id__in)
                    and (more.dbt_version__in is None or job.dbt_version in more.dbt_version__in)
                    and (more.is_fusion_ready is None or more.is_fusion_ready == job.fusion)
                    and (more.triggers_schedule is None or more.triggers_schedule == bool(job.cron))
                    and not more.is_system]      # the emulated account has no system jobs
            key = order_by.lstrip("-")
            jobs.sort(key=lambda job: (job.name.lower(), job.id) if key == "name" else (job.id, job.id),
                      reverse=order_by.startswith("-"))
            page = jobs[max(0, offset): max(0, offset) + max(0, limit)]
            return [self.job_json(job) for job in page], len(jobs)

    def artifact_paths(self, run_id: int, step: int | None) -> list[str]:
        with self._lock:
            found = self._target(run_id, step)
            return list(found[1]) if found is not None else []

    def _target(self, run_id: int, step: int | None
                ) -> tuple[RunRecord, dict[str, tuple[PlannedStep, float]]] | None:
        """The run's target/ directory after step `step` (default: the last step that ran), path → the step that
        wrote the file and when it began. dbt Cloud saves each step's target/, which the steps share: a later
        command's file replaces an earlier one (so without `step` you get the LAST step's run_results.json — with
        "Generate docs on run", the docs step's), and a step keeps what the steps before it wrote."""
        record = self._runs.get(run_id)
        if record is None or not record.job.artifacts:
            return None
        self._schedule(record.job.id)
        now = self.now()
        if record.finished > now or record.started is None:
            return None
        done = [(index, planned, begin) for index, planned, begin, end in self._step_windows(record)
                if end >= begin + planned.duration - 1e-4 and planned.command]
        if not done:
            return None
        upto = done[-1][0] if step is None else step
        chosen = [entry for entry in done if entry[0] == upto]
        if not chosen or (chosen[0][1].fails and not chosen[0][1].results):
            return None      # a step that never ran, a setup step, or a failed parse: no artifacts
        files: dict[str, tuple[PlannedStep, float]] = {}
        for index, planned, begin in done:
            if index > upto:
                break
            verb = dbt.verb_of(planned.command or "")
            if verb in ("deps", "") or (planned.fails and not planned.results):
                continue
            files["manifest.json"] = (planned, begin)
            if planned.log.sources or verb == "source":
                files["sources.json"] = (planned, begin)
            if planned.results or dbt.builds_nodes(planned.command or ""):
                files["run_results.json"] = (planned, begin)   # dbt writes one even when nothing was selected
                nodes = record.project.nodes
                for r in planned.log.runs:
                    if nodes[r.index].resource_type == "model" and r.status != "skipped":
                        files[f"compiled/{record.project.name}/{nodes[r.index].original_file_path}"] = (planned, begin)
            if verb == "docs":
                files["catalog.json"] = (planned, begin)
        if not files:
            return None
        first: tuple[str, ...] = ("manifest.json", "run_results.json", "sources.json", "catalog.json")
        ordered: dict[str, tuple[PlannedStep, float]] = {path: files[path] for path in first if path in files}
        ordered.update(sorted((path, where) for path, where in files.items() if path not in ordered))
        return record, ordered

    def cloud_env(self, record: RunRecord) -> dict[str, str]:
        """The DBT_CLOUD_* variables dbt Cloud sets for a run, as dbt records them in metadata.env."""
        trigger = record.trigger
        pull = next(((key, trigger[key]) for key in ("github_pull_request_id", "gitlab_merge_request_id",
                                                       "azure_pull_request_id", "non_native_pull_request_id")
                     if trigger.get(key) is not None), None)
        category = {"github_pull_request_id": "github_pull_request", "gitlab_merge_request_id": "gitlab_merge_request",
                    "azure_pull_request_id": "azure_pull_request"}.get(pull[0], "other") if pull else (
            "scheduled" if record.cause_category == "scheduled" else "other")
        env = {
            "DBT_CLOUD_PROJECT_ID": str(record.job.project_id),
            "DBT_CLOUD_JOB_ID": str(record.job.id),
            "DBT_CLOUD_RUN_ID": str(record.id),
            "DBT_CLOUD_ACCOUNT_ID": str(self.scenario.account_id),
            "DBT_CLOUD_ENVIRONMENT_ID": str(record.job.environment_id),
            "DBT_CLOUD_ENVIRONMENT_TYPE": "production",
            "DBT_CLOUD_INVOCATION_CONTEXT": "ci" if pull else "prod",
            "DBT_CLOUD_RUN_REASON_CATEGORY": category,
            "DBT_CLOUD_RUN_REASON": "scheduled" if record.cause_category == "scheduled"
            else str(trigger.get("cause", "")),
            "DBT_CLOUD_GIT_BRANCH": record.git_branch,
            "DBT_CLOUD_GIT_SHA": record.git_sha,
        }
        if pull:
            env["DBT_CLOUD_PR_ID"] = str(pull[1])
        return env

    def artifact(self, run_id: int, path: str, step: int | None) -> dict[str, Any] | str | None:
        with self._lock:
            found = self._target(run_id, step)
            if found is None or path not in found[1]:
                return None
            record, files = found
            planned, began = files[path]
            env = self.cloud_env(record)
            generated_iso = dbt._iso(began + planned.duration)
            if path == "run_results.json":
                return self._fusion_or_core_results(record, planned, began, env)
            if path == "sources.json":
                return dbt.sources_json(record.project, planned.log, began, record.id, env)
            if path == "manifest.json":
                invocation = dbt.invocation_id(record.id, planned.log.command)
                return dbt.manifest_json(record.project, generated_iso, invocation, env=env)
            if path == "catalog.json":
                return dbt.catalog_json(record.project, generated_iso)
            return f"-- compiled SQL for {path}\nselect 1 as id\n"

    def _fusion_or_core_results(self, record: RunRecord, planned: PlannedStep, began: float,
                                env: dict[str, str]) -> dict[str, Any]:
        results = dbt.run_results_json(record.project, planned.log, began, record.id, env, record.threads)
        if planned.log.fusion is not None:
            return dbt.fusion_run_results(results, planned.log.fusion)
        return results

    def job_artifact(self, job_id: int, path: str) -> dict[str, Any] | str | None:
        """GET jobs/{id}/artifacts/{path}: the file from the job's latest successful run that has it."""
        with self._lock:
            self._schedule(job_id)
            now = self.now()
            for record in reversed(self._job_runs(job_id)):
                if self._status_at(record, now) == SUCCESS:
                    found = self.artifact(record.id, path, None)
                    if found is not None:
                        return found
            return None

    def step_json(self, step_id: int, include: frozenset[str]) -> dict[str, Any] | None:
        """GET steps/{id}/: one step of a run (its id is the run id * 100 + its index), None when there is none."""
        run_id, index = divmod(step_id, 100)
        with self._lock:
            record = self._runs.get(run_id)
            if record is None:
                return None
            self._schedule(record.job.id)
            steps = self._render_steps(record, self.now(), "debug_logs" in include)
            return next((step for step in steps if step["index"] == index), None)

    # ---- internals ----------------------------------------------------------------------------------------
    def _attempt(self, job: JobSpec) -> int:
        return sum(1 for run in self._runs.values() if run.job.id == job.id and not run.history)

    def _retry(self, latest: RunRecord) -> dict[str, Any]:
        job = latest.job
        failed = latest.failed_step
        assert failed is not None
        remaining = [step.command for step in latest.steps[failed + 1:] if step.command]
        only = frozenset(r.unique_id for r in latest.steps[failed].results if r.status in ("error", "fail", "skipped"))
        body = {**latest.trigger, "cause": f"Retry of run {latest.id} from the point of failure"}
        attempt = self._attempt(job)
        # dbt retry reruns the failed step's command with its flags: --fail-fast stays on.
        retry = "dbt retry --fail-fast" if dbt.fails_fast(latest.steps[failed].command or "") else "dbt retry"
        record = self._new_run(job, body, (retry, *remaining), job.outcome_for(attempt), False,
                               latest.timeout_seconds, retry_of=latest.id, attempt=attempt,
                               only=only or None, cause_category="rerun")
        return self.run_json(record.id, frozenset({"trigger", "job"}))

    def _make_history(self, job: JobSpec) -> None:
        """`history: N`: N finished runs, one a day before the emulator starts, around the job's median duration."""
        for k in range(job.history):
            rng = random.Random(f"history:{job.id}:{job.seed}:{k}")
            created = self._epoch - (job.history - k) * 86400 + rng.uniform(0, 600)
            outcome = "error" if rng.random() < 0.15 else "success"
            body = {"cause": "Triggered by the schedule"}
            self._new_run(job, body, job.execute_steps, outcome, job.generate_docs, job.timeout_seconds,
                          created=created, history=True, attempt=k)

    def _new_run(self, job: JobSpec, body: dict[str, Any], commands: tuple[str, ...], outcome: str,
                 generate_docs: bool, timeout_seconds: int, retry_of: int | None = None, attempt: int = 0,
                 created: float | None = None, history: bool = False, only: frozenset[str] | None = None,
                 cause_category: str = "api") -> RunRecord:
        run_id = self._next_run_id
        self._next_run_id += 1
        trigger = {key: value for key, value in body.items() if value is not None}
        rng = random.Random(f"run:{job.id}:{job.seed}:{run_id}")
        branch = str(body.get("git_branch") or "main")
        sha = str(body.get("git_sha") or hashlib.sha1(f"{job.project_id}:{branch}:{job.seed}".encode(),
                                                      usedforsecurity=False).hexdigest())
        spec = job.project
        threads = _safe_threads(body.get("threads_override"), spec.threads if spec else 4)
        project = dbt.project_for(spec)
        queue = rng.uniform(*job.queue_range) if job.queue_range else job.queue_seconds
        finalize = rng.uniform(*job.finalize_seconds)
        record = RunRecord(
            id=run_id, job=job, created=self.now() if created is None else created, trigger=trigger,
            steps=self._plan_steps(job, project, commands, outcome, generate_docs, attempt, run_id, rng, threads,
                                   only, sha, branch, self._fusion_of(job, body)),
            outcome=outcome, timeout_seconds=timeout_seconds, git_sha=sha, git_branch=branch, project=project,
            colour=bool(spec and spec.colour), queue_seconds=queue, finalize_seconds=finalize, retry_of=retry_of,
            history=history, threads=threads, dbt_version=self._run_version(job, body),
            cause_category="scheduled" if history else cause_category,
        )
        self._runs[run_id] = record
        return record

    @staticmethod
    def _fusion_of(job: JobSpec, body: dict[str, Any]) -> str | None:
        """The Fusion version a run executes on (the job's engine, or a Fusion dbt_version_override), else None."""
        override = body.get("dbt_version_override")
        if override is not None:
            if is_fusion_version(str(override)):
                return str(override) if str(override).startswith("2.") else job.fusion_version
            return None
        return job.fusion_version if job.fusion else None

    @staticmethod
    def _run_version(job: JobSpec, body: dict[str, Any]) -> str:
        """The run's dbt_version: the override, else the job's version (a release track such as "latest" shows the
        dbt release it resolved to)."""
        version = str(body.get("dbt_version_override") or job.dbt_version)
        return dbt.DBT_VERSION if version in ("latest", "versionless") else version

    @staticmethod
    def _plan_steps(job: JobSpec, project: Project, commands: tuple[str, ...], outcome: str, generate_docs: bool,
                    attempt: int, run_id: int, rng: random.Random, threads: int, only: frozenset[str] | None,
                    sha: str, branch: str, fusion: str | None = None) -> tuple[PlannedStep, ...]:
        spec = job.project
        factor = 1.0
        if job.duration_spread:
            factor *= rng.lognormvariate(0.0, job.duration_spread)
        if job.slow_runs and rng.random() < job.slow_runs:
            factor *= 2.0
        if spec is None or (spec.models <= 0 and job.duration_median is None):
            target: float | None = job.run_seconds_for(attempt) * factor
        elif job.duration_median is not None:
            target = job.duration_median * factor
        else:
            target = None
        steps = [PlannedStep(name, None, dbt.setup_step(name, job.setup_seconds, sha, branch))
                 for name in SETUP_STEPS]
        if project.packages and not any(c.split()[:2] == ["dbt", "deps"] for c in commands):
            steps.append(PlannedStep(dbt.step_name("dbt deps"), "dbt deps",
                                     dbt.command_step(project, "dbt deps", RunShape(f"{run_id}", target=None),
                                                      fusion=fusion)))
        all_commands = list(commands) + (["dbt docs generate"] if generate_docs else [])
        building = [i for i, command in enumerate(all_commands) if dbt.builds_nodes(command)]
        failing: int | None = None
        if outcome == "error":
            freshness = [i for i, c in enumerate(all_commands) if dbt.verb_of(c) == "source"]
            if job.failure_node_type == "source" and freshness:
                failing = freshness[0]
            else:
                failing = building[-1] if building else len(all_commands) - 1
        warnings = {r.unique_id: r for r in job.warnings}
        explicit = {r.unique_id: r for r in job.failures
                    if project.find(r.unique_id) is not None} if (job.explicit_failures or spec is None) else {}
        colour = bool(spec and spec.colour)
        seed = f"{job.id}:{job.seed}:{run_id}"
        for index, command in enumerate(all_commands):
            fails = index == failing
            step_target = target if dbt.builds_nodes(command) or spec is None else None
            # Node times vary from run to run, node by node (not by one factor for the whole run: that would make
            # a previous run's timings a sharper forecast than any real project's), and so does the failing node.
            jitter = f"{job.id}:{job.seed}:{run_id}:{dbt.without_fail_fast(command)}"
            shape = RunShape(seed=f"{seed}:{index}", factor=factor, target=step_target, threads=threads,
                             jitter_seed=jitter)
            selection = only if dbt.verb_of(command) == "retry" else None
            if fails and dbt.builds_nodes(command):
                failing_ids = frozenset(explicit)
                if not failing_ids:
                    node_type = job.failure_node_type if job.failure_node_type != "source" else "test"
                    picked = dbt.pick_failure(project, command, jitter, job.failure_at, node_type,
                                              threads, selection)
                    if picked is None and node_type == "test":
                        picked = dbt.pick_failure(project, command, jitter, job.failure_at, "model",
                                                  threads, selection)
                    failing_ids = frozenset({picked} if picked else set())
                shape = RunShape(seed=shape.seed, factor=factor, target=step_target, threads=threads,
                                 failing=failing_ids, failures=explicit, jitter_seed=jitter)
            log = dbt.command_step(project, command, shape, only=selection, warnings=warnings, colour=colour,
                                   fusion=fusion,
                                   fails=fails, run_id=run_id)
            results = log.results(project)
            steps.append(PlannedStep(dbt.step_name(command), command, log, results, fails or log.fails))
            if fails or log.fails:
                # The steps after a failing one never run, but a retry needs their commands.
                steps.extend(PlannedStep(dbt.step_name(c), c, dbt.placeholder(c)) for c in all_commands[index + 1:])
                break
        return tuple(steps)

    def _job_runs(self, job_id: int) -> list[RunRecord]:
        return sorted((r for r in self._runs.values() if r.job.id == job_id), key=lambda r: r.id)

    def _schedule(self, job_id: int) -> None:
        """Lay the job's runs end to end: each starts when it is due and the previous run has finished."""
        previous_end = float("-inf")
        previous_id: int | None = None
        for record in self._job_runs(job_id):
            due = record.created + record.queue_seconds
            record.blocked_by_id = previous_id if previous_end > due else None
            dequeued = max(due, previous_end)
            if record.cancelled_at is not None and record.cancelled_at < dequeued:
                record.dequeued = record.started = None
                record.steps_end = record.cancelled_at
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
        gap = record.finalize_seconds
        if record.outcome == "cancelled":
            work, gap = work / 2, 0.0
            message = CANCELLED_BY_USER
        elif record.outcome == "error":
            failing = record.executed_steps[-1]
            bad = [r for r in failing.results if r.status in {"error", "fail"}]
            message = (f"{len(bad)} of {len(failing.results)} nodes failed in `{failing.command}`" if bad else
                       f"`{failing.command}` failed")
        if record.timeout_seconds and work > record.timeout_seconds:
            work, status, gap = float(record.timeout_seconds), CANCELLED, 0.0
            message = (f"This run timed out after running for {_humanize_seconds(record.timeout_seconds)}, "
                       f"which exceeded the configured timeout of {record.timeout_seconds} seconds.")
        steps_end = started + work
        end = steps_end + gap
        if record.cancelled_at is not None and record.cancelled_at < end:
            end, status, message = record.cancelled_at, CANCELLED, CANCELLED_BY_USER
            steps_end = min(steps_end, end)
        record.steps_end = steps_end
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
        """Why a run cannot be retried from the point of failure (dbt Cloud's enum value), or None when it can."""
        status = self._status_at(record, self.now())
        if status != ERROR:
            return "RETRY_NOT_FAILED_RUN"       # also while it is still queued or running
        if not record.job.retryable:
            return "RETRY_UNSUPPORTED_CMD"
        if self._job_runs(record.job.id)[-1].id != record.id:
            return "RETRY_NOT_LATEST_RUN"
        if not record.executed_steps[-1].results:
            return "RETRY_NO_RUN_RESULTS"
        return None

    def _step_windows(self, record: RunRecord) -> list[tuple[int, PlannedStep, float, float]]:
        """(1-based index, step, begin, end) of the steps that began before the run ended."""
        windows: list[tuple[int, PlannedStep, float, float]] = []
        if record.started is None:
            return windows
        begin = record.started
        for index, planned in enumerate(record.executed_steps, start=1):
            if begin >= record.steps_end or begin > record.finished:
                break
            end = min(begin + planned.duration, record.steps_end)
            windows.append((index, planned, begin, end))
            begin = end
        return windows

    def _render_steps(self, record: RunRecord, now: float, debug_logs: bool) -> list[dict[str, Any]]:
        if record.started is None or record.started > now:
            return []
        rendered = []
        for index, planned, begin, end in self._step_windows(record):
            if begin > now:
                break
            complete = end >= begin + planned.duration - 1e-4
            if end <= now:
                status = (ERROR if planned.fails else SUCCESS) if complete else record.final_status
            else:
                status = RUNNING
            upto = planned.duration if complete and end <= now else min(now, end) - begin
            colour = record.colour and planned.command is not None
            logs = dbt.render(planned.log, begin, upto, colour)
            if not logs:
                logs = dbt.render(planned.log, begin, 0.0, colour)
            if status == CANCELLED:
                logs += ("Cancelled by user." if record.final_message == CANCELLED_BY_USER else
                         (record.final_message or "")) + "\n"
            logs, location = _size_limited(logs, status == RUNNING)
            debug = dbt.render_debug(planned.log, begin, upto, project=record.project,
                                     run_id=record.id) if debug_logs else None
            tail = "\n".join(debug.splitlines()[-LOG_TAIL_LINES:]) + "\n" if debug else dbt.render_debug(
                planned.log, begin, upto, LOG_TAIL_LINES, record.project, record.id)
            step_duration = max(0.0, min(end, now) - begin)
            rendered.append({
                "id": record.id * 100 + index, "run_id": record.id, "account_id": self.scenario.account_id,
                "index": index, "status": status, "status_humanized": HUMANIZED[status],
                "status_color": {SUCCESS: "green", ERROR: "red", CANCELLED: "gray"}.get(status, "blue"),
                "name": planned.name, "logs": logs,
                "debug_logs": debug,
                "truncated_debug_logs": tail,
                "log_path": None, "debug_log_path": None, "log_level": "info",
                "log_location": location, "log_archive_type": "scribe",
                "created_at": _timestamp(begin), "updated_at": _timestamp(min(end, now)),
                "started_at": _timestamp(begin), "finished_at": _timestamp(end) if end <= now else None,
                "duration": _hms(step_duration), "duration_humanized": _humanize_seconds(step_duration),
                "run_step_command": None, "run_step_invocation": None,
            })
        return rendered

    def account_json(self) -> dict[str, Any]:
        """The emulated account as GET accounts/ and accounts/{id}/ show it (the spec's AccountResponse)."""
        created = datetime.fromtimestamp(self._epoch - 86400 * 365, UTC).isoformat(sep=" ")
        return {
            "id": self.scenario.account_id, "name": "Emulated account", "plan": "enterprise", "state": 1,
            "run_slots": 5, "developer_seats": 10, "it_seats": 1, "explorer_seats": 0, "analyst_seats": 0,
            "read_only_seats": 5, "locked": False, "lock_reason": None, "lock_cause": None, "unlocked_at": None,
            "pending_cancel": False, "billing_email_address": None, "pod_memory_request_mebibytes": 600,
            "develop_pod_memory_request_mebibytes": 600, "run_duration_limit_seconds": 86400, "queue_limit": 50,
            "enterprise_login_slug": None, "business_critical": False, "starter_repo_url": None,
            "git_auth_level": "team", "identifier": f"act{self.scenario.account_id}", "trial_end_date": None,
            "static_subdomain": f"ab{self.scenario.account_id:03d}", "vanity_subdomain": None,
            "run_locked_until": None, "docs_job_id": None, "freshness_job_id": None, "copilot_locked_until": None,
            "agent_credit_locked": False, "account_migration_events": [], "groups": [],
            "created_at": created, "updated_at": created,
        }

    def job_json(self, job: JobSpec) -> dict[str, Any]:
        created = datetime.fromtimestamp(self._epoch - 86400 * 30, UTC).isoformat()
        threads = job.project.threads if job.project else 4
        next_run = _next_cron(job.cron, self.now()) if job.cron else None
        return {
            "id": job.id, "account_id": self.scenario.account_id, "project_id": job.project_id,
            "environment_id": job.environment_id, "name": job.name, "description": "",
            "dbt_version": job.dbt_version if job.dbt_version not in ("latest", "versionless") else None,
            "raw_dbt_version": job.dbt_version, "deferring_environment_id": None,
            "deferring_job_definition_id": None, "execute_steps": list(job.execute_steps),
            "execution": {"timeout_seconds": job.timeout_seconds}, "generate_docs": job.generate_docs,
            "generate_sources": False, "run_generate_sources": False, "is_deferrable": False, "job_type": "other"
            if not job.cron else "scheduled",
            "lifecycle_webhooks": False, "lifecycle_webhooks_url": None, "run_compare_changes": False,
            "compare_changes_flags": "--select state:modified", "run_failure_count": 0, "run_lint": False,
            "errors_on_lint_failure": True, "cost_optimization_features": [],
            "settings": {"threads": threads, "target_name": dbt.TARGET}, "state": 1, "triggers_on_draft_pr": False,
            "triggers": {"github_webhook": False, "schedule": bool(job.cron), "git_provider_webhook": False,
                         "on_merge": False, "custom_branch_only": False},
            "job_completion_trigger_condition": None, "created_at": created, "updated_at": created,
            "account": None, "project": None, "environment": None, "fusion_readiness": None,
            "schedule": {"cron": job.cron, "date": {"type": "custom_cron", "cron": job.cron},
                         "time": {"type": "at_exact_hours"}} if job.cron else None,
            "cron_humanized": _cron_humanized(job.cron) if job.cron else None,
            "next_run": _timestamp(next_run) if next_run else None,
            "next_run_humanized": (_timesince(next_run - self.now()) if next_run else None),
        }

    def _render_run(self, record: RunRecord, now: float, include: frozenset[str]) -> dict[str, Any]:
        status = self._status_at(record, now)
        finished = status in (SUCCESS, ERROR, CANCELLED)
        started = record.started if record.started is not None and record.started <= now else None
        dequeued = record.dequeued if record.dequeued is not None and record.dequeued <= now else None
        end = record.finished if finished else now
        queued_for = (started if started is not None else end) - record.created
        ran_for = (end - started) if started is not None else 0.0
        refusal = self._retry_refusal(record)
        account = self.scenario.account_id
        project = record.job.project_id
        cause = str(record.trigger.get("cause", ""))
        # The trigger as the API sends it: every field of the spec's RunTrigger, null when the trigger did not set it.
        trigger = {
            "id": record.id + 500_000, "cause": cause, "job_definition_id": record.job.id,
            **{key: record.trigger.get(key) for key in TRIGGER_FIELDS},
            "cause_category": record.cause_category, "cause_humanized": cause,
            "created_at": _timestamp(record.created), "updated_at": _timestamp(record.created),
        }
        data: dict[str, Any] = {
            "id": record.id, "trigger_id": record.id + 500_000, "account_id": account,
            "environment_id": record.job.environment_id, "project_id": project,
            "job_definition_id": record.job.id, "status": status, "dbt_version": record.dbt_version,
            "git_branch": record.git_branch if started is not None else None,
            "git_sha": record.git_sha if started is not None else None,
            "status_message": record.final_message if finished else None,
            "owner_thread_id": None, "executed_by_thread_id": f"scheduler-run-0-{record.id}" if started else None,
            "deferring_run_id": None, "artifacts_saved": finished and record.job.artifacts,
            "artifact_s3_path": f"emulator/runs/{record.id}/artifacts/target" if finished else None,
            "has_docs_generated": finished and any(s.command == "dbt docs generate" for s in record.executed_steps),
            "has_sources_generated": False, "notifications_sent": finished,
            "blocked_by": [record.blocked_by_id] if status == QUEUED and record.blocked_by_id else [],
            "scribe_enabled": True,
            "created_at": _timestamp(record.created), "updated_at": _timestamp(min(now, record.finished)),
            "dequeued_at": _timestamp(dequeued), "started_at": _timestamp(started),
            "finished_at": _timestamp(record.finished) if finished else None,
            "last_checked_at": _timestamp(min(now, record.finished)) if started else None,
            "last_heartbeat_at": _timestamp(min(now, record.steps_end)) if started else None,
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
            "created_at_humanized": _timesince(now - record.created) + " ago",
            "finished_at_humanized": (_timesince(now - record.finished) + " ago") if finished else None,
            "retrying_run_id": record.retry_of, "can_retry": refusal is None,
            "retry_not_supported_reason": refusal, "job_id": record.job.id, "is_running": None,
            "href": f"{self.base_url}/deploy/{account}/projects/{project}/runs/{record.id}/",
            "used_repo_cache": None,
        }
        return data

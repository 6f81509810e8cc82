"""What dbt Cloud tells us, as typed values: run statuses, runs, steps, jobs.

The HTTP layer hands raw JSON to `Run.from_api` / `Job.from_api`; nothing past that point touches a dict.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any


class RunStatus(IntEnum):
    QUEUED = 1
    STARTING = 2
    RUNNING = 3
    SUCCESS = 10
    ERROR = 20
    CANCELLED = 30

    @property
    def humanized(self) -> str:
        return self.name.capitalize()


TERMINAL_STATUSES = frozenset({RunStatus.SUCCESS, RunStatus.ERROR, RunStatus.CANCELLED})

_DURATION = re.compile(r"^(\d+):([0-5]\d):([0-5]\d)$")


def parse_api_duration(text: str | None) -> int | None:
    """dbt Cloud's "HH:MM:SS" (hours may exceed 24) as seconds; None when absent or unparseable."""
    if not text:
        return None
    match = _DURATION.match(text.strip())
    if not match:
        return None
    hours, minutes, seconds = (int(part) for part in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def parse_api_timestamp(text: str | None) -> datetime | None:
    """dbt Cloud timestamps ("2024-05-27 10:42:16.179903+00:00", space separator) as aware UTC datetimes."""
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def iso_utc(moment: datetime | None) -> str:
    """ISO-8601 UTC with a Z, to the second, or "" for None (the `finished_at` output of an unfinished run)."""
    if moment is None:
        return ""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


@dataclass(frozen=True)
class RunStep:
    index: int
    name: str
    status_code: int
    status_humanized: str
    logs: str
    duration_seconds: int | None
    id: int | None = None       # the step's own id (GET steps/{id}/ reads this step alone)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> RunStep:
        code = _int_or_none(data.get("status")) or 0
        return cls(
            index=_int_or_none(data.get("index")) or 0,
            name=_str(data.get("name")),
            status_code=code,
            status_humanized=humanize_status(code),
            logs=_str(data.get("logs")),
            duration_seconds=parse_api_duration(data.get("duration")),
            id=_int_or_none(data.get("id")),
        )

    @property
    def failed(self) -> bool:
        return self.status_code == RunStatus.ERROR


def engine_of(dbt_version: str) -> str:
    """Which engine a dbt version names: "fusion" (latest-fusion, 2.x), "dbt-core" (1.x), or "" (e.g. "latest")."""
    version = dbt_version.strip().lower()
    if "fusion" in version or version.startswith("2."):
        return "fusion"
    return "dbt-core" if version.startswith("1.") else ""


def humanize_status(code: int) -> str:
    try:
        return RunStatus(code).humanized
    except ValueError:
        return f"Unknown ({code})"


@dataclass(frozen=True)
class Run:
    id: int
    job_id: int | None
    status_code: int
    status_humanized: str
    status_message: str
    href: str
    git_sha: str
    git_branch: str
    cause: str
    job_name: str
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    duration_seconds: int | None
    queued_duration_seconds: int | None
    run_duration_seconds: int | None
    blocked_by: tuple[int, ...] = ()
    steps: tuple[RunStep, ...] = ()
    is_complete: bool = False
    can_retry: bool = False
    retry_not_supported_reason: str = ""
    retrying_run_id: int | None = None
    project_id: int | None = None
    dbt_version: str = ""           # the run's dbt version ("1.10", "latest", "latest-fusion", "2.0.0-preview.N")
    # What the run was triggered with (git_sha, *_override, steps_override, ...), from `trigger`; empty when the
    # API did not include it.
    trigger_fields: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Run:
        run_id = _int_or_none(data.get("id"))
        if run_id is None:
            raise ValueError("the run object has no integer 'id'")
        code = _int_or_none(data.get("status"))
        trigger = _dict(data.get("trigger"))
        job = _dict(data.get("job"))
        raw_steps = _list(data.get("run_steps"))
        blocked = _list(data.get("blocked_by"))
        return cls(
            id=run_id,
            job_id=_int_or_none(data.get("job_definition_id")) or _int_or_none(data.get("job_id")),
            status_code=code if code is not None else 0,
            # From the code, never dbt Cloud's text: a status_humanized that reads "Success" on an errored run must
            # not reach an output or a headline.
            status_humanized=humanize_status(code or 0),
            status_message=_str(data.get("status_message")),
            href=_str(data.get("href")),
            git_sha=_str(data.get("git_sha")),
            git_branch=_str(data.get("git_branch")),
            cause=_str(trigger.get("cause")) if trigger else "",
            job_name=_str(job.get("name")) if job else "",
            created_at=parse_api_timestamp(data.get("created_at")),
            started_at=parse_api_timestamp(data.get("started_at")),
            finished_at=parse_api_timestamp(data.get("finished_at")),
            duration_seconds=parse_api_duration(data.get("duration")),
            queued_duration_seconds=parse_api_duration(data.get("queued_duration")),
            run_duration_seconds=parse_api_duration(data.get("run_duration")),
            blocked_by=tuple(b for b in blocked if isinstance(b, int)),
            steps=tuple(RunStep.from_api(s) for s in raw_steps if isinstance(s, dict)),
            is_complete=data.get("is_complete") is True,
            can_retry=data.get("can_retry") is True,
            retry_not_supported_reason=_str(data.get("retry_not_supported_reason")),
            retrying_run_id=_int_or_none(data.get("retrying_run_id")),
            project_id=_int_or_none(data.get("project_id")),
            dbt_version=_str(data.get("dbt_version")) or (_str(job.get("dbt_version")) if job else ""),
            trigger_fields=dict(trigger),
        )

    @property
    def status(self) -> RunStatus | None:
        """The known status, or None for a code this version of dbtgate does not know."""
        try:
            return RunStatus(self.status_code)
        except ValueError:
            return None

    @property
    def is_terminal(self) -> bool:
        # An unknown code only counts as finished when dbt Cloud itself says the run is complete; it is then
        # treated as a failure, never as success.
        status = self.status
        return status in TERMINAL_STATUSES if status is not None else self.is_complete

    @property
    def succeeded(self) -> bool:
        return self.status is RunStatus.SUCCESS

    @property
    def engine_hint(self) -> str:
        """"fusion" when the run's dbt version names the Fusion engine (dbt 2.x), "dbt-core" for 1.x, "" unknown."""
        return engine_of(self.dbt_version)

    @property
    def failed_step(self) -> RunStep | None:
        return next((step for step in self.steps if step.failed), None)


@dataclass(frozen=True)
class Job:
    id: int
    name: str
    execute_steps: tuple[str, ...] = ()
    timeout_seconds: int = 0
    project_id: int | None = None
    environment_id: int | None = None

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Job:
        job_id = _int_or_none(data.get("id"))
        if job_id is None:
            raise ValueError("the job object has no integer 'id'")
        execution = _dict(data.get("execution"))
        steps = _list(data.get("execute_steps"))
        return cls(
            id=job_id,
            name=_str(data.get("name")),
            execute_steps=tuple(s for s in steps if isinstance(s, str)),
            timeout_seconds=(_int_or_none(execution.get("timeout_seconds")) or 0) if execution else 0,
            project_id=_int_or_none(data.get("project_id")),
            environment_id=_int_or_none(data.get("environment_id")),
        )

"""What dbt Cloud tells us, as typed values: run statuses, runs, steps, jobs.

The one place where API values become models. The HTTP layer hands raw JSON to `Run.from_api` / `Job.from_api`;
nothing past that point touches a dict. Each field has one rule (`api_id`, `api_int`, `api_text`,
`parse_api_timestamp`, `parse_api_duration`): accepted, coerced (101.0 → 101), unknown, or — for the id that says
what the answer is about — `BadAnswer`. Any JSON value in any field gives a model or BadAnswer, nothing else
(tests/cloud/test_models_total.py proves it with hypothesis).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any

from dbtgate.errors import BadAnswer
from dbtgate.escape import plain


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

_DURATION = re.compile(r"^(\d{1,9}):([0-5]\d):([0-5]\d)$")
# dbt Cloud's ids are 64-bit database keys: anything past that is not an id, whatever JSON allows.
MAX_ID = 2 ** 63 - 1
# No run lasts ten years: a longer duration is a broken value, and an unbounded one would overflow what reads it.
MAX_DURATION = 10 * 366 * 24 * 3600
# A trigger field whose value is neither a scalar nor a list of scalars: kept as this, so it matches nothing.
UNREADABLE = "(a value dbtgate cannot read)"


# ---- the rules, one per kind of field ---------------------------------------------------------------------------
# Every value from the API passes through one of these. Each is total: any JSON value gives the typed value, or
# "unknown" (None, "", 0), or — for an id, without which the answer is about nothing — BadAnswer.
def api_int(value: Any, *, low: int = 0, high: int = MAX_ID) -> int | None:
    """An integer in [low, high]: ints as they are, whole floats coerced (101.0 → 101); None for anything else
    (bools, strings, fractions, NaN, infinities, numbers out of range)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        if not value.is_integer():   # NaN and the infinities are not integers either
            return None
        value = int(value)
    return value if isinstance(value, int) and low <= value <= high else None


def api_id(value: Any, what: str) -> int:
    """A positive 64-bit id, or BadAnswer naming the field: an answer whose id cannot be read is about nothing."""
    found = api_int(value, low=1)
    if found is None:
        raise BadAnswer(f"{what} is not a usable id ({_short(value)})")
    return found


def api_text(value: Any) -> str:
    """Text as text, without the controls that reorder what a reader sees; "" for anything that is not a string."""
    return plain(value) if isinstance(value, str) else ""


def parse_api_duration(value: Any) -> int | None:
    """dbt Cloud's "HH:MM:SS" (hours may exceed 24), or a number of seconds, as whole seconds; None when absent,
    unreadable, negative or past ten years."""
    if isinstance(value, str):
        match = _DURATION.match(value.strip())
        if not match:
            return None
        hours, minutes, seconds = (int(part) for part in match.groups())
        total: int | None = hours * 3600 + minutes * 60 + seconds
    elif isinstance(value, float):
        total = int(value) if math.isfinite(value) and value >= 0 else None   # 5.7 s reads as 5 s
    else:
        total = api_int(value)
    return total if total is not None and total <= MAX_DURATION else None


def parse_api_timestamp(value: Any) -> datetime | None:
    """dbt Cloud timestamps ("2024-05-27 10:42:16.179903+00:00", space separator) as aware UTC datetimes; None when
    absent, not a string, unreadable, or outside what a datetime holds once made UTC (year 1 at +01:00)."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def iso_utc(moment: datetime | None) -> str:
    """ISO-8601 UTC with a Z, to the second, or "" for None (the `finished_at` output of an unfinished run)."""
    if moment is None:
        return ""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _scalar_or_list(value: Any) -> Any:
    """A trigger field as dbtgate compares and prints it: a scalar, or a list of scalars; anything deeper becomes
    UNREADABLE (it equals nothing a gate would send, and printing it cannot recurse)."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list) and all(item is None or isinstance(item, str | bool | int | float) for item in value):
        return list(value)
    return UNREADABLE


def _short(value: Any) -> str:
    if isinstance(value, dict | list):
        return f"a JSON {'object' if isinstance(value, dict) else 'list'}"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10 ** 30:
        return "a number too large to be an id"
    return repr(value)[:40]


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


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
    def from_api(cls, data: Any) -> RunStep:
        if not isinstance(data, dict):
            raise BadAnswer(f"a run step is {_short(data)}, not an object")
        code = api_int(data.get("status")) or 0
        return cls(
            index=api_int(data.get("index")) or 0,
            name=api_text(data.get("name")),
            status_code=code,
            status_humanized=humanize_status(code),
            logs=api_text(data.get("logs")),
            duration_seconds=parse_api_duration(data.get("duration")),
            id=api_int(data.get("id"), low=1),
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
    def from_api(cls, data: Any) -> Run:
        """The run, or BadAnswer when the answer is not a run object or its id cannot be read. Every other field
        that cannot be read is unknown (a date None, a status 0 — never success), so one odd value does not stop
        the gate from watching and reporting a run it may have started."""
        if not isinstance(data, dict):
            raise BadAnswer(f"the run is {_short(data)}, not an object")
        run_id = api_id(data.get("id"), "the run's id")
        code = api_int(data.get("status"))
        trigger = _dict(data.get("trigger"))
        job = _dict(data.get("job"))
        steps = []
        for raw in _list(data.get("run_steps")):
            try:
                steps.append(RunStep.from_api(raw))
            except BadAnswer:
                continue   # one unreadable step is left out of the table; the run is still the run
        return cls(
            id=run_id,
            job_id=api_int(data.get("job_definition_id"), low=1) or api_int(data.get("job_id"), low=1),
            status_code=code if code is not None else 0,
            # From the code, never dbt Cloud's text: a status_humanized that reads "Success" on an errored run must
            # not reach an output or a headline.
            status_humanized=humanize_status(code or 0),
            status_message=api_text(data.get("status_message")),
            href=api_text(data.get("href")),
            git_sha=api_text(data.get("git_sha")),
            git_branch=api_text(data.get("git_branch")),
            cause=api_text(trigger.get("cause")),
            job_name=api_text(job.get("name")),
            created_at=parse_api_timestamp(data.get("created_at")),
            started_at=parse_api_timestamp(data.get("started_at")),
            finished_at=parse_api_timestamp(data.get("finished_at")),
            duration_seconds=parse_api_duration(data.get("duration")),
            queued_duration_seconds=parse_api_duration(data.get("queued_duration")),
            run_duration_seconds=parse_api_duration(data.get("run_duration")),
            blocked_by=tuple(b for b in (api_int(v, low=1) for v in _list(data.get("blocked_by"))) if b),
            steps=tuple(steps),
            is_complete=data.get("is_complete") is True,
            can_retry=data.get("can_retry") is True,
            retry_not_supported_reason=api_text(data.get("retry_not_supported_reason")),
            retrying_run_id=api_int(data.get("retrying_run_id"), low=1),
            project_id=api_int(data.get("project_id"), low=1),
            dbt_version=api_text(data.get("dbt_version")) or (api_text(job.get("dbt_version")) if job else ""),
            trigger_fields={str(key): _scalar_or_list(value) for key, value in trigger.items()},
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
    def from_api(cls, data: Any) -> Job:
        """The job, or BadAnswer when the answer is not a job object or its id cannot be read."""
        if not isinstance(data, dict):
            raise BadAnswer(f"the job is {_short(data)}, not an object")
        execution = _dict(data.get("execution"))
        return cls(
            id=api_id(data.get("id"), "the job's id"),
            name=api_text(data.get("name")),
            execute_steps=tuple(api_text(s) for s in _list(data.get("execute_steps")) if isinstance(s, str)),
            timeout_seconds=api_int(execution.get("timeout_seconds")) or 0,
            project_id=api_int(data.get("project_id"), low=1),
            environment_id=api_int(data.get("environment_id"), low=1),
        )

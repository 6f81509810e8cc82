"""What the rest of dbtgate needs of dbt Cloud, as Protocols: the gate asks `CloudApi`, the watcher only a
`RunReader`. `DbtCloudClient` is the implementation; the polling benchmark drives the watcher with an in-process
stand-in that implements `RunReader` over the emulator's World.

Every call takes its own `deadline` (a value of the clock's `monotonic()`): budgets belong to the call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from dbtgate.cloud.models import Job, Run, RunStep
from dbtgate.cloud.transport import Sink

RUN_INCLUDE = ("run_steps", "job", "trigger")


class RunReader(Protocol):
    bytes_received: int

    def get_run(self, run_id: int, include: Sequence[str] = ..., *, deadline: float,
                not_found_grace_until: float | None = None, missing_is_final: bool = False) -> Run: ...

    def list_runs(self, job_id: int, *, deadline: float, limit: int = 10, statuses: Sequence[int] | None = None,
                  include: Sequence[str] = ("trigger",), offset: int = 0) -> list[Run]: ...

    def get_run_step(self, step_id: int, *, deadline: float) -> RunStep: ...

    def rate_limited_recently(self, window: float = 300.0) -> bool: ...


class CloudApi(RunReader, Protocol):
    base_url: str
    account_id: int

    def get_job(self, job_id: int, *, deadline: float) -> Job: ...

    def account_ids(self, *, deadline: float) -> list[int]: ...

    def list_jobs(self, *, deadline: float, project_id: int | None = None, environment_id: int | None = None,
                  limit: int = 100, offset: int = 0) -> list[Job]: ...

    def trigger_run(self, job_id: int, body: dict[str, Any], *, deadline: float) -> Run: ...

    def retry_run(self, run_id: int, *, deadline: float) -> Run: ...

    def cancel_run(self, run_id: int, *, deadline: float) -> Run: ...

    def download_artifact(self, run_id: int, path: str, sink: Sink, *, deadline: float, max_bytes: int,
                          step: int | None = None) -> int | None: ...

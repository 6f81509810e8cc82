"""dbtgate as a Python library: the same gate as the action and the CLI, for Airflow, Dagster, Prefect, dlt and
scripts.

    import dbtgate

    result = dbtgate.run_job(account_id=12345, job_id=67890, token=os.environ["DBT_CLOUD_API_TOKEN"],
                             url="https://ab123.us1.dbt.com", timeout="45m")
    print(result.run_url, result.failed_nodes)

Every option is an input of the action (same names, same validation, same defaults but one: artifacts are only
saved when `artifacts_dir` is given). A run that does not succeed raises `RunFailed` carrying the result (unless
`raise_on_failure=False`); bad options raise `ConfigError` before anything is triggered. Nothing here configures
logging or prints: progress goes to the `dbtgate` logger of the standard `logging` module, or to `on_progress`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from dbtgate.artifacts import NodeIssue
from dbtgate.clock import Clock, SystemClock
from dbtgate.cloud.client import connect
from dbtgate.cloud.models import Run
from dbtgate.config import parse_config
from dbtgate.errors import ApiError, ConfigError, DeadlineExceeded
from dbtgate.gate.gate import Gate
from dbtgate.gate.state import GateResult
from dbtgate.inputs import DEFAULT_URL, INPUT_NAMES
from dbtgate.logs import library_redaction
from dbtgate.outcome import Outcome

__all__ = ["ConfigError", "RunFailed", "RunResult", "cancel_run", "latest_run", "run_job", "wait_for_run"]

_log = logging.getLogger("dbtgate")


@dataclass(frozen=True)
class RunResult:
    """What the gate found: the run as last seen, how it ended for the gate, and why."""

    outcome: str                         # success, error, cancelled, timeout, stale, not_waited, api_error, ...
    headline: str                        # one sentence: which run, what happened
    run: Run | None
    failed_nodes: tuple[NodeIssue, ...]  # failed and erroring nodes, with dbt's message and the node's file
    warned_nodes: tuple[NodeIssue, ...]
    artifacts_dir: Path | None           # where run_results.json etc. were saved (None: not saved)
    detail: str = ""                     # the API error, or what dbtgate did about cancelling
    exit_code: int = 0                   # what the CLI would exit with

    @property
    def succeeded(self) -> bool:
        return self.outcome in (Outcome.SUCCESS, Outcome.NOT_WAITED)

    @property
    def run_id(self) -> int | None:
        return self.run.id if self.run is not None else None

    @property
    def run_url(self) -> str:
        return self.run.href if self.run is not None else ""

    @property
    def finished_at(self) -> datetime | None:
        return self.run.finished_at if self.run is not None and self.run.is_terminal else None


class RunFailed(Exception):
    """The run did not succeed (error, cancellation, timeout, staleness, or dbt Cloud could not be used)."""

    def __init__(self, result: RunResult) -> None:
        super().__init__(failure_message(result))
        self.result = result


MESSAGE_NODES = 5  # failed nodes named in the message; RunResult.failed_nodes has them all


def failure_message(result: RunResult) -> str:
    """What an orchestrator's log shows for a failure: what happened and why (the API error, dbt Cloud's status
    message), which nodes failed with dbt's message, and the link — the result carries the rest."""
    lines = [result.headline.rstrip(".") + (f": {result.detail}" if result.detail else ".")]
    if result.run is not None and result.run.status_message and result.run.status_message not in result.detail:
        lines.append(f"dbt Cloud says: {result.run.status_message}")
    for node in result.failed_nodes[:MESSAGE_NODES]:
        where = f" ({node.file_path})" if node.file_path else ""
        said = f": {' '.join(node.message.split())}" if node.message else ""
        lines.append(f"- {node.resource_type} {node.name} {node.status}{where}{said}")
    if len(result.failed_nodes) > MESSAGE_NODES:
        lines.append(f"- …and {len(result.failed_nodes) - MESSAGE_NODES} more (RunFailed.result.failed_nodes)")
    if result.run_url:
        lines.append(f"Run: {result.run_url}")
    return "\n".join(lines)


def run_job(*, account_id: int, token: str, job_id: int | None = None, job_name: str | None = None,
            url: str = DEFAULT_URL, timeout: str | float = "2h", raise_on_failure: bool = True,
            on_progress: Callable[[str], None] | None = None, **options: Any) -> RunResult:
    """Trigger the job (by id, or by exact name) and wait for its run. `options` are the action's other inputs:
    cause, git_sha, git_branch, github_pull_request_id, schema_override, steps_override (a list), fail_fast,
    rerun_attempts, reuse_existing_run, wait_for_job, cancel_on_timeout, artifacts_dir, ..."""
    return _gate({"dbt_cloud_job_id": job_id, "dbt_cloud_job_name": job_name, **options},
                 account_id=account_id, token=token, url=url, timeout=timeout, raise_on_failure=raise_on_failure,
                 on_progress=on_progress)


def wait_for_run(run_id: int, *, account_id: int, token: str, url: str = DEFAULT_URL,
                 timeout: str | float = "2h", raise_on_failure: bool = True,
                 on_progress: Callable[[str], None] | None = None, **options: Any) -> RunResult:
    """Wait on a run started elsewhere. It is not cancelled at the timeout unless `cancel_on_timeout=True`."""
    return _gate({"run_id": run_id, **options}, account_id=account_id, token=token, url=url, timeout=timeout,
                 raise_on_failure=raise_on_failure, on_progress=on_progress)


def latest_run(*, account_id: int, token: str, job_id: int | None = None, job_name: str | None = None,
               git_sha: str | None = None, max_age: str | float | None = None, url: str = DEFAULT_URL,
               timeout: str | float = "2h", raise_on_failure: bool = True,
               on_progress: Callable[[str], None] | None = None, **options: Any) -> RunResult:
    """Gate on the job's latest run (for `git_sha` / a pull request id when given) without triggering anything:
    wait for it if it is in flight (or has not appeared yet), and fail with outcome `stale` when it is older than
    `max_age`."""
    return _gate({"dbt_cloud_job_id": job_id, "dbt_cloud_job_name": job_name, "latest_run": True,
                  "git_sha": git_sha, "max_age": max_age, **options}, account_id=account_id, token=token, url=url,
                 timeout=timeout, raise_on_failure=raise_on_failure, on_progress=on_progress)


def cancel_run(run_id: int, *, account_id: int, token: str, url: str = DEFAULT_URL,
               api_timeout: float = 30.0) -> Run:
    """Cancel a run (e.g. from an Airflow task's on_kill); the run as dbt Cloud returns it."""
    config = _config({"run_id": run_id, "api_timeout": api_timeout}, account_id=account_id, token=token, url=url,
                     timeout="10m")
    clock = SystemClock()
    client = connect(config, clock)
    return client.cancel_run(run_id, deadline=clock.monotonic() + 3 * config.api_timeout)


# ---- one path into the gate -----------------------------------------------------------------------------------
def _config(options: Mapping[str, Any], *, account_id: int, token: str, url: str, timeout: str | float) -> Any:
    unknown = sorted(set(options) - set(INPUT_NAMES))
    if unknown:
        raise TypeError(f"unknown option(s) {', '.join(unknown)}; dbtgate's options are the action's inputs: "
                        f"{', '.join(INPUT_NAMES)}")
    raw = {"dbt_cloud_url": url, "dbt_cloud_token": token, "dbt_cloud_account_id": str(account_id),
           "timeout": str(timeout)}
    for name, value in options.items():
        if value is None:
            continue
        if isinstance(value, bool):
            raw[name] = "true" if value else "false"
        elif isinstance(value, list | tuple):
            raw[name] = "\n".join(str(item) for item in value)
        else:
            raw[name] = str(value)
    # A library call saves artifacts only where it is told to: an Airflow worker's working directory is nobody's.
    raw.setdefault("get_artifacts", "true" if "artifacts_dir" in raw else "false")
    labels = {name: f"option `{name}`" for name in INPUT_NAMES}
    return parse_config(raw, {}, labels)


def _gate(options: Mapping[str, Any], *, account_id: int, token: str, url: str, timeout: str | float,
          raise_on_failure: bool, on_progress: Callable[[str], None] | None, clock: Clock | None = None) -> RunResult:
    config = _config(options, account_id=account_id, token=token, url=url, timeout=timeout)
    clock = clock or SystemClock()
    client = connect(config, clock)
    progress = on_progress or _log.info
    # A server that echoes the token must not get it into the caller's logs (Airflow's, Dagster's) either.
    with library_redaction(config.token) as redactor:

        def emit(line: str) -> None:
            progress(str(redactor.scrub(line)))

        # A KeyboardInterrupt or an orchestrator's task timeout during the gate cancels the run it started, then
        # goes on.
        try:
            gate_result = Gate(config, client, clock, emit=emit).run()
        except (ApiError, DeadlineExceeded) as error:  # the gate reports these itself; this is belt and braces
            raise RunFailed(RunResult("api_error", str(error), None, (), (), None, exit_code=3)) from error
    if gate_result.outcome is Outcome.CONFIG_ERROR:  # e.g. a job name that matches no job, or several
        raise ConfigError([gate_result.headline])
    result = _result(gate_result)
    if raise_on_failure and not result.succeeded:
        raise RunFailed(result)
    return result


def _result(result: GateResult) -> RunResult:
    report = result.artifacts
    saved = report is not None and bool(report.saved) and report.directory is not None
    return RunResult(
        outcome=result.outcome.value, headline=result.headline, run=result.run,
        failed_nodes=report.failed if report else (), warned_nodes=report.warned if report else (),
        artifacts_dir=Path(str(report.directory)) if saved and report is not None else None,
        detail=" ".join(part for part in (result.detail, result.cancel_note) if part), exit_code=result.exit_code)

"""The step outputs: their names and meaning (action.yml and README are generated from OUTPUTS), their values for
a result, and the same fields as JSON for scripts (`--json`).
"""

from __future__ import annotations

import json

from dbtgate.artifacts import NodeIssue
from dbtgate.cloud.models import Run, iso_utc
from dbtgate.config import GateConfig
from dbtgate.gate.state import GateResult

# Every output the action sets, in the order it sets them. action.yml and README are generated from this.
OUTPUTS: tuple[tuple[str, str], ...] = (
    ("run_id", "Id of the dbt Cloud run (empty if none was triggered)."),
    ("status", "dbt Cloud's status as last seen: Success, Error, Cancelled, or Queued/Running when not waiting or "
               "timed out."),
    ("outcome", "success, error, cancelled, timeout, not_waited, interrupted, api_error, stale (latest_run older "
                "than max_age) or config_error."),
    ("finished_at", "When the run finished, ISO-8601 UTC; empty while unfinished."),
    ("run_url", "Link to the run in dbt Cloud."),
    ("git_sha", "The commit the run checked out."),
    ("job_id", "Id of the job."),
    ("job_name", "Name of the job."),
    ("duration_seconds", "Total run duration (queue included) in seconds."),
    ("status_message", "dbt Cloud's status message (e.g. the timeout or error message)."),
    ("failed_nodes", "JSON list of the unique ids of failed and erroring nodes (resource_type.name for a node known "
                     "only from the log, e.g. under fail_fast before dbt wrote its results)."),
    ("artifacts_dir", "Folder the artifacts were saved in, relative to the workspace (empty when none were saved)."),
    ("run_ids", "JSON list of every run waited on, retries included, oldest first."),
    ("attempts", "How many runs were waited on (1 + reruns from the point of failure)."),
    ("exit_code", "The step's exit code: 0 passed, 1 run failed, 2 bad input, 3 API failed."),
)
def status_output(result: GateResult) -> str:
    """dbt Cloud's status as last seen — but never "Success" when the step fails (e.g. interrupted while reading the
    artifacts of a run that succeeded): a workflow that checks `status == 'Success'` must not go on."""
    run = result.run
    if run is None:
        return ""
    if run.succeeded and result.exit_code != 0:
        return f"Success (but the gate ended with {result.outcome.value})"
    return run.status_humanized


def outputs_for(result: GateResult, config: GateConfig) -> dict[str, str]:
    run = result.run
    failed = result.artifacts.failed if result.artifacts else ()
    saved_dir = result.artifacts.directory if result.artifacts and result.artifacts.saved else None
    return {
        "run_id": str(run.id) if run else "",
        "status": status_output(result),
        "outcome": result.outcome.value,
        "finished_at": iso_utc(run.finished_at) if run and run.is_terminal else "",
        "run_url": run.href if run else "",
        "git_sha": run.git_sha if run else "",
        "job_id": str(run.job_id or config.job_id or "") if run else str(config.job_id or ""),
        "job_name": result.job.name if result.job else "",
        "duration_seconds": str(run.duration_seconds) if run and run.duration_seconds is not None else "",
        "status_message": run.status_message if run else "",
        "failed_nodes": json.dumps([node_id(node) for node in failed]),
        "artifacts_dir": str(saved_dir) if saved_dir else "",
        "run_ids": json.dumps([attempt.id for attempt in result.attempts]),
        "attempts": str(len(result.attempts)),
        "exit_code": str(result.exit_code),
    }


def run_json(run: Run) -> dict[str, object]:
    """The run for scripts (`--json`): the same field names as the outputs where they overlap."""
    return {"run_id": run.id, "job_id": run.job_id, "status": run.status_humanized, "status_code": run.status_code,
            "status_message": run.status_message, "finished": run.is_terminal,
            "finished_at": iso_utc(run.finished_at) if run.is_terminal else "", "run_url": run.href,
            "git_sha": run.git_sha, "git_branch": run.git_branch, "duration_seconds": run.duration_seconds,
            "steps": [{"index": s.index, "name": s.name, "status": s.status_humanized} for s in run.steps]}


def node_id(node: NodeIssue) -> str:
    """A node's unique id; a node known only from dbt's log (fail_fast, before dbt wrote its results, without a
    manifest to look it up in) is `resource_type.name`, since the log prints names, not ids."""
    return node.unique_id or f"{node.resource_type or 'node'}.{node.name}"

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
    ("queued_seconds", "Seconds the run waited in dbt Cloud's queue before it started."),
    ("ran_seconds", "Seconds the run ran, from its start to its end (queue excluded)."),
    ("status_message", "dbt Cloud's status message (e.g. the timeout or error message)."),
    ("failed_nodes", "JSON list of the unique ids of failed and erroring nodes (resource_type.name for a node known "
                     "only from the log, e.g. under fail_fast before dbt wrote its results; the first ones, if more "
                     "would pass GitHub's 1 MB output limit: the summary and junit_xml have them all)."),
    ("node_counts", 'JSON object from run_results.json: resource type → status → count, e.g. {"model": '
                    '{"success": 40, "error": 1}, "test": {"pass": 80, "fail": 2}}; {} when it was not read.'),
    ("artifacts_dir", "Folder the artifacts were saved in, relative to the workspace (empty when none were saved)."),
    ("run_ids", "JSON list of every run waited on, retries included, oldest first."),
    ("attempts", "How many runs were waited on (1 + reruns from the point of failure)."),
    ("exit_code", "The step's exit code: 0 passed, 1 run failed, 2 bad input, 3 API failed."),
)
# What each output's value is, for the README (outputs are strings; JSON ones are read with fromJSON()).
OUTPUT_TYPES: dict[str, str] = {
    "run_id": "number", "status": "text", "outcome": "text", "finished_at": "text (ISO-8601)", "run_url": "text",
    "git_sha": "text", "job_id": "number", "job_name": "text", "duration_seconds": "number",
    "queued_seconds": "number", "ran_seconds": "number", "status_message": "text",
    "failed_nodes": "JSON list", "node_counts": "JSON object", "artifacts_dir": "text", "run_ids": "JSON list",
    "attempts": "number", "exit_code": "number",
}
# GitHub keeps at most 1 MB of outputs per job, counted as UTF-16: dbtgate's own stay within half of it, so the
# job's other steps keep the rest.
OUTPUT_BUDGET = 512 * 1024


def utf16_size(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass"))


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
    values = {
        "run_id": str(run.id) if run else "",
        "status": status_output(result),
        "outcome": result.outcome.value,
        "finished_at": iso_utc(run.finished_at) if run and run.is_terminal else "",
        "run_url": run.href if run else "",
        "git_sha": run.git_sha if run else "",
        "job_id": str(run.job_id or config.job_id or "") if run else str(config.job_id or ""),
        "job_name": result.job.name if result.job else "",
        "duration_seconds": str(run.duration_seconds) if run and run.duration_seconds is not None else "",
        "queued_seconds": _seconds(run.queued_duration_seconds if run else None),
        "ran_seconds": _seconds(run.run_duration_seconds if run else None),
        "status_message": run.status_message if run else "",
        "failed_nodes": "[]",
        "node_counts": json.dumps(node_counts(result), sort_keys=True),
        "artifacts_dir": str(saved_dir) if saved_dir else "",
        "run_ids": json.dumps([attempt.id for attempt in result.attempts]),
        "attempts": str(len(result.attempts)),
        "exit_code": str(result.exit_code),
    }
    values["failed_nodes"] = _fitting_list([node_id(node) for node in failed],
                                           OUTPUT_BUDGET - sum(utf16_size(v) for v in values.values()))
    return values


def _seconds(value: int | None) -> str:
    return str(value) if value is not None else ""


def node_counts(result: GateResult) -> dict[str, dict[str, int]]:
    """resource type → status → count, over every result of run_results.json."""
    counts: dict[str, dict[str, int]] = {}
    for node in result.artifacts.nodes if result.artifacts else ():
        by_status = counts.setdefault(node.resource_type or "unknown", {})
        by_status[node.status or "unknown"] = by_status.get(node.status or "unknown", 0) + 1
    return counts


def _fitting_list(items: list[str], budget: int) -> str:
    """The JSON list of as many leading items as fit `budget` (UTF-16 bytes); valid JSON whatever is cut."""
    text = json.dumps(items)
    if utf16_size(text) <= budget:
        return text
    kept: list[str] = []
    used = utf16_size("[]")
    for item in items:
        cost = utf16_size(json.dumps(item) + ", ")
        if used + cost > budget:
            break
        kept.append(item)
        used += cost
    return json.dumps(kept)


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

"""Where a gate result goes: step outputs, the job summary, annotations and the failing step's log.

One function, `publish`, serves the action and the CLI, on every path that got this far: success, failure,
timeout, interruption and API failure all leave outputs and a summary behind.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from dbtgate.artifacts import NodeIssue
from dbtgate.cloud.models import Run, iso_utc
from dbtgate.config import GateConfig
from dbtgate.escape import md
from dbtgate.gate.gate import GateResult
from dbtgate.github import Workflow, append_file, format_outputs
from dbtgate.outcome import Outcome
from dbtgate.report.summary import render_summary

MAX_NODE_ANNOTATIONS = 10
CONSOLE_LOG_LINES = 60
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
    ("failed_nodes", "JSON list of the unique ids of failed and erroring nodes."),
    ("artifacts_dir", "Folder the artifacts were saved in, relative to the workspace (empty when none were saved)."),
    ("run_ids", "JSON list of every run waited on, retries included, oldest first."),
    ("attempts", "How many runs were waited on (1 + reruns from the point of failure)."),
    ("exit_code", "The step's exit code: 0 passed, 1 run failed, 2 bad input, 3 API failed."),
)
TITLES = {Outcome.ERROR: "dbt Cloud run failed", Outcome.CANCELLED: "dbt Cloud run cancelled",
          Outcome.TIMEOUT: "dbt Cloud run timed out", Outcome.INTERRUPTED: "dbtgate interrupted",
          Outcome.API_ERROR: "dbt Cloud API failed", Outcome.STALE: "dbt Cloud run too old",
          Outcome.CONFIG_ERROR: "dbtgate: bad input"}


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
        "failed_nodes": json.dumps([node.unique_id for node in failed]),
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


def annotation_path(node: NodeIssue, project_dir: str) -> str | None:
    if not node.file_path:
        return None
    return f"{project_dir.strip('/')}/{node.file_path}" if project_dir.strip("/") else node.file_path


def publish(result: GateResult, config: GateConfig, *, workflow: Workflow, env: Mapping[str, str],
            summary_file: str | Path | None = None, output_file: str | Path | None = None) -> None:
    # Redacted like every other text that leaves the process: a server that echoes the token must not get it into
    # an output or the summary.
    append_file(output_file or env.get("GITHUB_OUTPUT"), format_outputs(outputs_for(result, config)),
                workflow.redactor)
    append_file(summary_file or env.get("GITHUB_STEP_SUMMARY"),
                render_summary(result, project_dir=config.project_dir), workflow.redactor)
    run = result.run
    if run is not None and run.failed_step is not None and run.failed_step.logs:
        lines = run.failed_step.logs.rstrip("\n").splitlines()
        # In GitHub the log sits in a collapsed group; on a terminal only its end is worth the screen.
        shown = lines if workflow.github else lines[-CONSOLE_LOG_LINES:]
        cut = f" (last {len(shown)} of {len(lines)} lines)" if len(shown) < len(lines) else ""
        with workflow.group(f"Log of the failing step: {run.failed_step.name}{cut}"):
            workflow.untrusted("\n".join(shown))
    if result.exit_code != 0 or result.outcome not in (Outcome.SUCCESS, Outcome.NOT_WAITED):
        _annotate(result, config, workflow)


def _annotate(result: GateResult, config: GateConfig, workflow: Workflow) -> None:
    run = result.run
    parts = [result.headline + "."]
    if run is not None and run.status_message:
        parts.append(f"dbt Cloud says: {run.status_message}")
    if result.detail:
        parts.append(result.detail)
    if result.cancel_note:
        parts.append(result.cancel_note)
    if run is not None and run.href:
        parts.append(f"Run: {run.href}")
    title = TITLES.get(result.outcome, "dbt Cloud run did not succeed")
    if result.exit_code == 0:
        workflow.warning(" ".join(parts), title=f"{title} (failure_on_error is false)")
    else:
        workflow.error(" ".join(parts), title=title)
    report = result.artifacts
    if report is None:
        return
    for node in report.failed[:MAX_NODE_ANNOTATIONS]:
        workflow.error(node.message or f"{node.resource_type} {node.name} ended with status {node.status}",
                       title=f"dbt {node.resource_type} {node.name} {node.status}",
                       file=annotation_path(node, config.project_dir))
    if len(report.failed) > MAX_NODE_ANNOTATIONS:
        workflow.error(f"…and {len(report.failed) - MAX_NODE_ANNOTATIONS} more failed nodes; see the job summary "
                       "and run_results.json.", title="More dbt nodes failed")
    for node in report.warned[:MAX_NODE_ANNOTATIONS]:
        workflow.warning(node.message or f"{node.resource_type} {node.name} warned",
                         title=f"dbt {node.resource_type} {node.name} warn",
                         file=annotation_path(node, config.project_dir))


def config_error_outputs() -> dict[str, str]:
    return {"outcome": "config_error", "exit_code": "2"}


def write_config_error(env: Mapping[str, str], problems: list[str], workflow: Workflow,
                       summary_file: str | Path | None = None, output_file: str | Path | None = None) -> None:
    for problem in problems:
        workflow.error(problem, title="dbtgate: bad input")
    lines = ["## ⚙️ dbtgate was configured wrong — nothing was triggered", ""]
    lines += [f"- {md(p)}" for p in problems]
    append_file(summary_file or env.get("GITHUB_STEP_SUMMARY"), "\n".join(lines) + "\n", workflow.redactor)
    append_file(output_file or env.get("GITHUB_OUTPUT"), format_outputs(config_error_outputs()), workflow.redactor)

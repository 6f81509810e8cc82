"""Annotations: the error (or warning) that heads the workflow run's page, and one per failed or warned node,
pointing at the node's file in the repository.
"""

from __future__ import annotations

from dbtgate.artifacts import NodeIssue
from dbtgate.config import GateConfig
from dbtgate.gate.state import GateResult
from dbtgate.github import Workflow
from dbtgate.outcome import Outcome

MAX_NODE_ANNOTATIONS = 10
TITLES = {Outcome.ERROR: "dbt Cloud run failed", Outcome.CANCELLED: "dbt Cloud run cancelled",
          Outcome.TIMEOUT: "dbt Cloud run timed out", Outcome.INTERRUPTED: "dbtgate interrupted",
          Outcome.API_ERROR: "dbt Cloud API failed", Outcome.STALE: "dbt Cloud run too old",
          Outcome.CONFIG_ERROR: "dbtgate: bad input"}


def annotation_path(node: NodeIssue, project_dir: str) -> str | None:
    if not node.file_path:
        return None
    return f"{project_dir.strip('/')}/{node.file_path}" if project_dir.strip("/") else node.file_path


def annotate(result: GateResult, config: GateConfig, workflow: Workflow) -> None:
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

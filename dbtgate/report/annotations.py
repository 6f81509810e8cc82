"""Annotations: the error (or warning) that heads the workflow run's page, and one per failed or warned node,
pointing at the node's file in the repository.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import PurePosixPath

from dbtgate.artifacts import NodeIssue
from dbtgate.config import GateConfig
from dbtgate.gate.state import GateResult
from dbtgate.github import Workflow
from dbtgate.outcome import Outcome

# GitHub shows at most 10 error and 10 warning annotations per step (50 per job) and drops the rest without a word
# (actions/toolkit docs/problem-matchers.md, "Limitations"). The headline and the "N more" line count too; the
# summary lists every node.
STEP_LIMIT = 10
TITLES = {Outcome.ERROR: "dbt Cloud run failed", Outcome.CANCELLED: "dbt Cloud run cancelled",
          Outcome.TIMEOUT: "dbt Cloud run timed out", Outcome.INTERRUPTED: "dbtgate interrupted",
          Outcome.API_ERROR: "dbt Cloud API failed", Outcome.STALE: "dbt Cloud run too old",
          Outcome.CONFIG_ERROR: "dbtgate: bad input"}


def annotation_path(node: NodeIssue, project_dir: str) -> str | None:
    """The node's file for `file=`, relative to the repository: the manifest's path only when it is relative,
    inside the project (no `..`, no drive, no backslash) and printable — a path dbt Cloud chose must not point an
    annotation at a file outside the dbt project. None otherwise (the annotation goes without a file)."""
    path = node.file_path
    if not path or "\\" in path or not path.isprintable() or re.match(r"[A-Za-z]:", path):
        return None
    relative = PurePosixPath(path)
    if relative.is_absolute() or ".." in relative.parts:
        return None
    base = project_dir.strip("/")
    return f"{base}/{relative}" if base else str(relative)


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
    _nodes(report.failed, workflow.error, STEP_LIMIT - workflow.annotations.get("error", 0), config,
           more="failed nodes", more_title="More dbt nodes failed")
    _nodes(report.warned, workflow.warning, STEP_LIMIT - workflow.annotations.get("warning", 0), config,
           more="nodes warned", more_title="More dbt nodes warned")


def _nodes(nodes: tuple[NodeIssue, ...], emit: Callable[..., None], budget: int, config: GateConfig, *,
           more: str, more_title: str) -> None:
    """One annotation per node while the step's budget lasts; when they do not all fit, the last one left says how
    many more there are."""
    if budget <= 0 or not nodes:
        return
    shown = nodes if len(nodes) <= budget else nodes[:budget - 1]
    for node in shown:
        said = "warned" if node.status == "warn" else f"ended with status {node.status}"
        emit(node.message or f"{node.resource_type} {node.name} {said}",
             title=f"dbt {node.resource_type} {node.name} {node.status}",
             file=annotation_path(node, config.project_dir))
    if len(shown) < len(nodes):
        emit(f"…and {len(nodes) - len(shown)} more {more}; see the job summary and run_results.json.",
             title=more_title)


def annotate_problems(problems: list[str], workflow: Workflow) -> None:
    """Bad input: one error per problem while they fit the step's limit; the summary lists them all."""
    budget = STEP_LIMIT - workflow.annotations.get("error", 0)
    shown = problems if len(problems) <= budget else problems[:max(0, budget - 1)]
    for problem in shown:
        workflow.error(problem, title="dbtgate: bad input")
    if len(shown) < len(problems) and budget > 0:
        workflow.error(f"…and {len(problems) - len(shown)} more problems; see the job summary.",
                       title="dbtgate: bad input")

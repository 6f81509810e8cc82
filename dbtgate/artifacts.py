"""Run artifacts: download them for later steps, and read failed and warning nodes out of run_results.json.

A missing artifact (a `dbt parse` job, a run that failed before dbt ran) is a warning, never a failure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from dbtgate.client import ApiFailure, DbtCloudClient, DeadlineExceeded

FAILED_STATUSES = frozenset({"error", "fail", "runtime error"})
WARN_STATUSES = frozenset({"warn"})


@dataclass(frozen=True)
class NodeIssue:
    unique_id: str
    name: str
    resource_type: str
    status: str
    message: str
    execution_time: float | None
    file_path: str            # original_file_path from manifest.json, "" when unknown


@dataclass(frozen=True)
class ArtifactReport:
    directory: Path | None
    saved: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    failed: tuple[NodeIssue, ...] = ()
    warned: tuple[NodeIssue, ...] = ()


def node_issues(run_results: Any, manifest: Any) -> tuple[list[NodeIssue], list[NodeIssue]]:
    """(failed, warned) nodes from run_results.json, with file paths from manifest.json when it has them."""
    if not isinstance(run_results, dict) or not isinstance(run_results.get("results"), list):
        return [], []
    nodes = manifest.get("nodes", {}) if isinstance(manifest, dict) else {}
    nodes = nodes if isinstance(nodes, dict) else {}
    failed: list[NodeIssue] = []
    warned: list[NodeIssue] = []
    for result in run_results["results"]:
        if not isinstance(result, dict):
            continue
        status = str(result.get("status") or "").lower()
        if status not in FAILED_STATUSES | WARN_STATUSES:
            continue
        unique_id = str(result.get("unique_id") or "")
        found = nodes.get(unique_id)
        node: dict[str, Any] = found if isinstance(found, dict) else {}
        parts = unique_id.split(".")
        timing = result.get("execution_time")
        issue = NodeIssue(
            unique_id=unique_id,
            name=str(node.get("name") or (parts[2] if len(parts) > 2 else unique_id)),
            resource_type=str(node.get("resource_type") or (parts[0] if parts else "")),
            status=status,
            message=str(result.get("message") or ""),
            execution_time=float(timing) if isinstance(timing, int | float) else None,
            file_path=str(node.get("original_file_path") or ""),
        )
        (warned if status in WARN_STATUSES else failed).append(issue)
    return failed, warned


def _safe_relative(path: str) -> PurePosixPath | None:
    candidate = PurePosixPath(path)
    if candidate.is_absolute() or ".." in candidate.parts or not candidate.parts:
        return None
    return candidate


def collect_artifacts(client: DbtCloudClient, run_id: int, *, directory: Path | None, fetch_catalog: bool,
                      extra: tuple[str, ...]) -> ArtifactReport:
    """Fetch run_results.json and manifest.json (and more), save them under `directory` when given."""
    wanted = ["run_results.json", "manifest.json"]
    if fetch_catalog:
        wanted.append("catalog.json")
    wanted.extend(path for path in extra if path not in wanted)
    saved: list[str] = []
    missing: list[str] = []
    problems: list[str] = []
    parsed: dict[str, Any] = {}
    for path in wanted:
        relative = _safe_relative(path)
        if relative is None:
            problems.append(f"{path}: not a relative artifact path; skipped")
            continue
        try:
            content = client.get_artifact(run_id, path)
        except (ApiFailure, DeadlineExceeded) as error:
            problems.append(f"{path}: could not be downloaded ({error})")
            continue
        if content is None:
            missing.append(path)
            continue
        if path.endswith(".json") and path in ("run_results.json", "manifest.json"):
            try:
                parsed[path] = json.loads(content)
            except ValueError:
                problems.append(f"{path}: not valid JSON")
        if directory is not None:
            target = directory.joinpath(*relative.parts)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content)
                saved.append(path)
            except OSError as error:
                problems.append(f"{path}: could not be written to {target} ({error.strerror})")
    failed, warned = node_issues(parsed.get("run_results.json"), parsed.get("manifest.json"))
    return ArtifactReport(directory=directory, saved=tuple(saved), missing=tuple(missing),
                          problems=tuple(problems), failed=tuple(failed), warned=tuple(warned))

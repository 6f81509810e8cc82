"""Run artifacts: download them for later steps, and read failed and warning nodes out of run_results.json.

A missing artifact (a `dbt parse` job, a run that failed before dbt ran) is a warning, never a failure.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, cast

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
    directory: PurePosixPath | None   # relative to the workspace when inside it (what a later step can use)
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


# run_results.json and manifest.json are read (for the failed nodes and their files) only up to this size; a larger
# file is still saved, but reading it whole would cost several times its size in memory.
PARSE_LIMIT = 64 * 1024 * 1024


def _safe_relative(path: str) -> PurePosixPath | None:
    candidate = PurePosixPath(path)
    if candidate.is_absolute() or ".." in candidate.parts or not candidate.parts or "\x00" in path:
        return None
    return candidate


def open_inside(root: Path, relative: PurePosixPath) -> BinaryIO:
    """Open `root/relative` for writing (truncated), creating folders, without following any symlink below `root`.

    Each folder is opened relative to its parent with O_NOFOLLOW, so a `target` that is a symlink (or a folder
    swapped for one) fails instead of sending the write elsewhere; no path that dbt Cloud chose leaves `root`.
    """
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
    folder = os.open(root, flags)
    try:
        for part in relative.parts[:-1]:
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o755, dir_fd=folder)
            inner = os.open(part, flags, dir_fd=folder)
            os.close(folder)
            folder = inner
        handle = os.open(relative.parts[-1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0),
                         0o644, dir_fd=folder)
    finally:
        os.close(folder)
    return os.fdopen(handle, "wb")


class RedactingWriter:
    """A binary file that replaces each secret with *** as it is written, also across chunk boundaries: a server
    that echoes the token into run_results.json must not get it onto the runner's disk for a later step to read."""

    def __init__(self, handle: BinaryIO, secrets: tuple[bytes, ...]) -> None:
        self._handle = handle
        self._secrets = tuple(secret for secret in secrets if secret)
        self._keep = max((len(secret) for secret in self._secrets), default=1) - 1
        self._pending = b""

    def write(self, chunk: bytes) -> int:
        data = self._pending + chunk
        for secret in self._secrets:
            data = data.replace(secret, b"***")
        # Hold back what could be the start of a secret that the next chunk completes.
        cut = max(0, len(data) - self._keep)
        self._handle.write(data[:cut])
        self._pending = data[cut:]
        return len(chunk)

    def close(self) -> None:
        self._handle.write(self._pending)
        self._pending = b""
        self._handle.close()


def _redacting_open(root: Path, where: PurePosixPath, secrets: tuple[bytes, ...]) -> BinaryIO:
    return cast(BinaryIO, RedactingWriter(open_inside(root, where), secrets))


def artifact_root(directory: Path, workspace: Path) -> tuple[Path, PurePosixPath]:
    """(a folder trusted as it is, the path below it that dbtgate creates without following symlinks).

    Inside the workspace, the workspace is the trusted root (so a symlinked `target/` in the checkout is refused);
    a folder the CLI user named elsewhere is trusted itself.
    """
    base = workspace.absolute()
    absolute = directory if directory.is_absolute() else base / directory
    if absolute.is_relative_to(base):
        return base, PurePosixPath(absolute.relative_to(base).as_posix())
    absolute.mkdir(parents=True, exist_ok=True)
    return absolute, PurePosixPath(".")


def collect_artifacts(client: DbtCloudClient, run_id: int, *, workspace: Path, directory: Path | None,
                      fetch_catalog: bool, extra: tuple[str, ...], max_bytes: int, deadline: float,
                      secrets: tuple[str, ...] = ()) -> ArtifactReport:
    """Stream run_results.json and manifest.json (and more) into `directory` (to a scratch folder when it is None:
    the report still needs the failed nodes), then read only what the report needs."""
    wanted = ["run_results.json", "manifest.json"]
    if fetch_catalog:
        wanted.append("catalog.json")
    wanted.extend(path for path in extra if path not in wanted)
    saved: list[str] = []
    missing: list[str] = []
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="dbtgate-artifacts-") as scratch:
        root, base = (artifact_root(directory, workspace) if directory is not None
                      else (Path(scratch), PurePosixPath(".")))
        files: dict[str, Path] = {}
        for path in wanted:
            relative = _safe_relative(path)
            if relative is None:
                problems.append(f"{path}: not a relative artifact path; skipped")
                continue
            where = base / relative
            try:
                opener = functools.partial(_redacting_open, root, where, tuple(x.encode() for x in secrets if x))
                size = client.download_artifact(run_id, path, opener,
                                                deadline=deadline, max_bytes=max_bytes)
            except (ApiFailure, DeadlineExceeded) as error:
                problems.append(f"{path}: could not be downloaded ({error})")
                continue
            except OSError as error:
                problems.append(f"{path}: could not be written to {where} ({error.strerror or error})")
                continue
            if size is None:
                missing.append(path)
                continue
            files[path] = root / where
            if directory is not None:
                saved.append(path)
        run_results = _read_json(files.get("run_results.json"), "run_results.json", problems)
        failed, warned = node_issues(run_results, None)
        if failed or warned:
            # The manifest only adds file paths for annotations: read it only when a node needs one.
            failed, warned = node_issues(run_results, _read_json(files.get("manifest.json"), "manifest.json",
                                                                 problems))
    shown = None if directory is None else (PurePosixPath(base) if root == workspace.absolute() else
                                            PurePosixPath(root.as_posix()))
    return ArtifactReport(directory=shown, saved=tuple(saved), missing=tuple(missing),
                          problems=tuple(problems), failed=tuple(failed), warned=tuple(warned))


def _read_json(path: Path | None, name: str, problems: list[str]) -> Any:
    if path is None:
        return None
    try:
        if path.stat().st_size > PARSE_LIMIT:
            problems.append(f"{name}: larger than {PARSE_LIMIT // (1024 * 1024)} MB; saved but not read for the "
                            "summary")
            return None
        with path.open("rb") as handle:
            return json.load(handle)
    except (OSError, ValueError, RecursionError):
        problems.append(f"{name}: not valid JSON")
        return None

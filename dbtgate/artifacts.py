"""Run artifacts: download them for later steps, and read failed and warning nodes out of run_results.json.

A missing artifact (a `dbt parse` job, a run that failed before dbt ran) is a warning, never a failure.
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import json
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, cast

from dbtgate.cloud.interface import CloudApi
from dbtgate.errors import ApiError, DeadlineExceeded

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
class NodeResult:
    """One entry of run_results.json, whatever its status: what the JUnit report and node_counts are made of."""

    unique_id: str
    resource_type: str
    status: str
    execution_time: float | None
    message: str              # dbt's message, cut at NODE_MESSAGE_LIMIT characters


NODE_MESSAGE_LIMIT = 4096  # 20,000 nodes stay a few MB in memory; a failed node's full message is in NodeIssue


@dataclass(frozen=True)
class ArtifactReport:
    directory: PurePosixPath | None   # relative to the workspace when inside it (what a later step can use)
    saved: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    failed: tuple[NodeIssue, ...] = ()
    warned: tuple[NodeIssue, ...] = ()
    nodes: tuple[NodeResult, ...] = ()  # every result, in run_results.json's order (empty when it was not read)


def node_issues(run_results: Any, manifest: Any) -> tuple[list[NodeIssue], list[NodeIssue]]:
    """(failed, warned) nodes from run_results.json, with file paths from manifest.json when it has them."""
    if not isinstance(run_results, dict) or not isinstance(run_results.get("results"), list):
        return [], []
    nodes = manifest.get("nodes", {}) if isinstance(manifest, dict) else {}
    nodes = nodes if isinstance(nodes, dict) else {}
    failed: list[NodeIssue] = []
    warned: list[NodeIssue] = []
    for result in run_results["results"]:
        issue = _issue(result, nodes)
        if issue is not None:
            (warned if issue.status in WARN_STATUSES else failed).append(issue)
    return failed, warned


def _issue(result: Any, nodes: dict[str, Any]) -> NodeIssue | None:
    """A failed or warned result as a NodeIssue (None for the others), named from its manifest node when known."""
    if not isinstance(result, dict):
        return None
    status = str(result.get("status") or "").lower()
    if status not in FAILED_STATUSES | WARN_STATUSES:
        return None
    unique_id = str(result.get("unique_id") or "")
    found = nodes.get(unique_id)
    node: dict[str, Any] = found if isinstance(found, dict) else {}
    parts = unique_id.split(".")
    timing = result.get("execution_time")
    return NodeIssue(
        unique_id=unique_id,
        name=str(node.get("name") or (parts[2] if len(parts) > 2 else unique_id)),
        resource_type=str(node.get("resource_type") or (parts[0] if parts else "")),
        status=status,
        message=str(result.get("message") or ""),
        execution_time=float(timing) if isinstance(timing, int | float) and not isinstance(timing, bool) else None,
        file_path=str(node.get("original_file_path") or ""),
    )


# Reading run_results.json and manifest.json: a 20,000-node project has a manifest of some 300 MB and run results of
# some 100 MB, and json.load() costs several times a file's size in memory. Both are read incrementally instead: the
# `results` array one element at a time, and from the manifest only the nodes a failed or warned result names. No
# single JSON value (one result, one node) may exceed this; a larger one is skipped with a problem noted.
VALUE_LIMIT = 64 * 1024 * 1024
CHUNK = 1024 * 1024
_SPACE = re.compile(r"[ \t\n\r]*")
_DELIMITERS = frozenset(" \t\n\r,:]}")


class JsonStream:
    """A JSON document read from a binary file a chunk at a time, walked by hand at the top levels and parsed by
    the C decoder (`raw_decode`) below them, so memory holds one chunk and one value, never the document."""

    def __init__(self, handle: BinaryIO, chunk: int = CHUNK, limit: int = VALUE_LIMIT) -> None:
        self._handle = handle
        self._chunk = chunk
        self._limit = limit
        self._text = codecs.getincrementaldecoder("utf-8")("replace")
        self._decoder = json.JSONDecoder()
        self._buffer = ""
        self._pos = 0
        self._eof = False

    def _fill(self, at_least: int = 0) -> bool:
        if self._eof:
            return False
        data = self._handle.read(max(self._chunk, at_least))
        self._buffer = self._buffer[self._pos:] + self._text.decode(data, final=not data)
        self._pos = 0
        self._eof = not data
        return True

    def peek(self) -> str:
        """The next character that is not whitespace ("" at the end)."""
        while True:
            self._pos = _SPACE.match(self._buffer, self._pos).end()  # type: ignore[union-attr]
            if self._pos < len(self._buffer):
                return self._buffer[self._pos]
            if not self._fill():
                return ""

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise ValueError(f"expected {char!r}")
        self._pos += 1

    def value(self) -> Any:
        """The next JSON value, parsed whole (it must fit in `limit` characters)."""
        self.peek()
        wanted = 0
        while True:
            try:
                found, end = self._decoder.raw_decode(self._buffer, self._pos)
            except ValueError:
                found, end = None, -1
            # A value that ends at the buffer's end, or a number cut inside ("0." of "0.5"), may go on in the next
            # chunk: it is complete only when a delimiter follows it (or the document ends).
            if end != -1 and (self._eof or (end < len(self._buffer) and self._buffer[end] in _DELIMITERS)):
                self._pos = end
                return found
            if len(self._buffer) - self._pos > self._limit:
                raise ValueError(f"a value larger than {self._limit // (1024 * 1024)} MB")
            wanted = max(self._chunk, 2 * wanted)   # grow the read so a big value is parsed O(log n) times
            if not self._fill(wanted):
                raise ValueError("the document ends inside a value")

    def members(self) -> Iterator[str]:
        """The keys of the object that comes next; the caller reads (or skips) each key's value before the next."""
        self.expect("{")
        if self.peek() == "}":
            self._pos += 1
            return
        while True:
            key = self.value()
            if not isinstance(key, str):
                raise ValueError("an object key that is not a string")
            self.expect(":")
            yield key
            following = self.peek()
            self._pos += 1
            if following == "}":
                return
            if following != ",":
                raise ValueError("expected ',' or '}'")

    def elements(self) -> Iterator[None]:
        """The elements of the array that comes next; the caller reads (or skips) each before the next."""
        self.expect("[")
        if self.peek() == "]":
            self._pos += 1
            return
        while True:
            yield None
            following = self.peek()
            self._pos += 1
            if following == "]":
                return
            if following != ",":
                raise ValueError("expected ',' or ']'")

    def skip(self, depth: int = 0) -> None:
        """Pass over the next value; containers near the top are walked, so a huge one is never held whole."""
        kind = self.peek()
        if depth < 2 and kind == "{":
            for _ in self.members():
                self.skip(depth + 1)
        elif depth < 2 and kind == "[":
            for _ in self.elements():
                self.skip(depth + 1)
        else:
            self.value()


def stream_results(path: Path) -> Iterator[Any]:
    """Each element of run_results.json's top-level `results` array, one at a time."""
    with path.open("rb") as handle:
        stream = JsonStream(handle)
        for key in stream.members():
            if key != "results":
                stream.skip()
                continue
            for _ in stream.elements():
                yield stream.value()
            return


@functools.cache
def _node_key() -> re.Pattern[bytes]:
    """Compiled on first use, not at import: this module is imported on the way to the first request."""
    return re.compile(rb'"((?:model|test|seed|snapshot|unit_test|analysis|operation|sql_operation|source)'
                      rb'\.[^"\\]{1,1000})"[ \t\n\r]*:[ \t\n\r]*\{')


def manifest_nodes(path: Path, wanted: set[str], chunk: int = 8 * CHUNK) -> dict[str, Any]:
    """The manifest's node objects for the unique ids in `wanted`, found without parsing the rest.

    A node is the object value of its unique id as a key (`"model.x.y": {`); `parent_map`, `child_map` and
    `disabled` map ids to lists, and a quoted id inside a string is escaped, so the bytes are searched for that
    pattern (at C speed: the pattern starts with a literal, so no look-behind) and only a wanted id's object is
    decoded — and kept only when its `unique_id` agrees."""
    found: dict[str, Any] = {}
    if not wanted:
        return found
    with path.open("rb") as handle, path.open("rb") as reader:
        offset, tail = 0, b""
        keep = 1100   # a key cut at a chunk boundary is found in the next window
        while len(found) < len(wanted):
            data = handle.read(chunk)
            if not data:
                break
            window = tail + data
            base = offset - len(tail)
            for match in _node_key().finditer(window):
                if match.start() > 0 and window[match.start() - 1] == 0x5C:
                    continue   # \" : a quoted id inside a string, not a key
                unique_id = match.group(1).decode("utf-8", "replace")
                if unique_id in wanted and unique_id not in found:
                    reader.seek(base + match.end() - 1)
                    try:
                        node = JsonStream(reader, chunk=64 * 1024).value()
                    except ValueError:
                        continue
                    if isinstance(node, dict) and node.get("unique_id", unique_id) == unique_id:
                        found[unique_id] = node
            offset += len(data)
            tail = window[-keep:]
    return found


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


def collect_artifacts(client: CloudApi, run_id: int, *, workspace: Path, directory: Path | None,
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
            except (ApiError, DeadlineExceeded) as error:
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
        nodes: list[NodeResult] = []
        failed, warned = _read_issues(files.get("run_results.json"), problems, nodes)
        if (failed or warned) and files.get("manifest.json") is not None:
            # The manifest only adds file paths for annotations: read it only when a node needs one, and then only
            # the nodes needed.
            failed, warned = _with_files(failed, warned, files["manifest.json"], problems)
    shown = None if directory is None else (PurePosixPath(base) if root == workspace.absolute() else
                                            PurePosixPath(root.as_posix()))
    return ArtifactReport(directory=shown, saved=tuple(saved), missing=tuple(missing),
                          problems=tuple(problems), failed=tuple(failed), warned=tuple(warned),
                          nodes=tuple(nodes))


def _read_issues(path: Path | None, problems: list[str], nodes: list[NodeResult] | None = None
                 ) -> tuple[list[NodeIssue], list[NodeIssue]]:
    """(failed, warned) from run_results.json, read once; every entry is also appended to `nodes` when given."""
    failed: list[NodeIssue] = []
    warned: list[NodeIssue] = []
    if path is None:
        return failed, warned
    try:
        for result in stream_results(path):
            node = node_result(result) if nodes is not None else None
            if node is not None and nodes is not None:
                nodes.append(node)
            issue = _issue(result, {})
            if issue is not None:
                (warned if issue.status in WARN_STATUSES else failed).append(issue)
    except (OSError, ValueError, RecursionError) as error:
        problems.append(f"run_results.json: not valid JSON ({error}); the nodes read before that are kept")
    return failed, warned


def node_result(result: Any) -> NodeResult | None:
    """One run_results.json entry (None for one without a unique_id); the resource type is the id's first part."""
    if not isinstance(result, dict) or not isinstance(result.get("unique_id"), str) or not result["unique_id"]:
        return None
    unique_id = result["unique_id"]
    timing = result.get("execution_time")
    return NodeResult(
        unique_id=unique_id, resource_type=unique_id.split(".", 1)[0],
        status=str(result.get("status") or "").lower(),
        execution_time=float(timing) if isinstance(timing, int | float) and not isinstance(timing, bool) else None,
        message=str(result.get("message") or "")[:NODE_MESSAGE_LIMIT])


def _with_files(failed: list[NodeIssue], warned: list[NodeIssue], manifest: Path,
                problems: list[str]) -> tuple[list[NodeIssue], list[NodeIssue]]:
    try:
        nodes = manifest_nodes(manifest, {issue.unique_id for issue in failed + warned})
    except OSError as error:
        problems.append(f"manifest.json: could not be read ({error.strerror or error})")
        return failed, warned

    def named(issue: NodeIssue) -> NodeIssue:
        node = nodes.get(issue.unique_id)
        if not isinstance(node, dict):
            return issue
        return NodeIssue(issue.unique_id, str(node.get("name") or issue.name),
                         str(node.get("resource_type") or issue.resource_type), issue.status, issue.message,
                         issue.execution_time, str(node.get("original_file_path") or ""))

    return [named(issue) for issue in failed], [named(issue) for issue in warned]

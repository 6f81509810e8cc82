"""Run artifacts: download them for later steps, and read failed and warning nodes out of run_results.json.

A missing artifact (a `dbt parse` job, a run that failed before dbt ran) is a warning, never a failure.
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import json
import math
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, NamedTuple, cast

from dbtgate.cloud.interface import CloudApi
from dbtgate.cloud.models import RunStep, api_text
from dbtgate.errors import ApiError, DeadlineExceeded
from dbtgate.escape import encoded_pattern
from dbtgate.parsers import dbt_command

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


class NodeResult(NamedTuple):
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
    # Every value by the same rules as the API's (cloud/models.py): text only from strings, numbers only when
    # finite — a 401-digit execution_time or a name that is an object must not turn a finished run into an error.
    status = api_text(result.get("status")).lower()
    if status not in FAILED_STATUSES | WARN_STATUSES:
        return None
    unique_id = api_text(result.get("unique_id"))
    found = nodes.get(unique_id)
    node: dict[str, Any] = found if isinstance(found, dict) else {}
    parts = unique_id.split(".")
    return NodeIssue(
        unique_id=unique_id,
        name=api_text(node.get("name")) or (parts[2] if len(parts) > 2 else unique_id),
        resource_type=api_text(node.get("resource_type")) or (parts[0] if parts else ""),
        status=status,
        message=api_text(result.get("message")),
        execution_time=_seconds(result.get("execution_time")),
        file_path=api_text(node.get("original_file_path")),
    )


def _seconds(value: Any) -> float | None:
    """A node's execution_time: a finite, non-negative number of seconds, or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, int) and value > 10 ** 12:   # float() of a 400-digit integer overflows; no node runs that long
        return None
    seconds = float(value)
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


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


def stream_results(path: Path, which: list[str] | None = None) -> Iterator[Any]:
    """Each element of run_results.json's top-level `results` array, one at a time; `args.which` (the command that
    wrote the file, which dbt puts after the results) is appended to `which` when asked for."""
    with path.open("rb") as handle:
        stream = JsonStream(handle)
        for key in stream.members():
            if key == "results":
                for _ in stream.elements():
                    yield stream.value()
                if which is None:
                    return
            elif key == "args" and which is not None:
                args = stream.value()
                command = args.get("which") if isinstance(args, dict) else None
                if isinstance(command, str):
                    which.append(command)
            else:
                stream.skip()


@functools.cache
def _node_key() -> re.Pattern[bytes]:
    """Compiled on first use, not at import: this module is imported on the way to the first request."""
    return re.compile(rb'"((?:model|test|seed|snapshot|unit_test|analysis|operation|sql_operation|source)'
                      rb'\.[^"\\]{1,1000})"[ \t\n\r]*:[ \t\n\r]*\{')


def manifest_keys(handle: BinaryIO, chunk: int = 8 * CHUNK) -> Iterator[tuple[str, int]]:
    """Each node key of a manifest (`"model.x.y": {`) with the file offset of its object's `{`, read a chunk at a
    time at C speed (the pattern starts with a literal, so no look-behind). `parent_map`, `child_map` and
    `disabled` map ids to lists, and a quoted id inside a string is escaped, so neither is taken for a key."""
    offset, tail = 0, b""
    keep = 1100   # a key cut at a chunk boundary is found in the next window
    while True:
        data = handle.read(chunk)
        if not data:
            return
        window = tail + data
        base = offset - len(tail)
        for match in _node_key().finditer(window):
            if match.start() > 0 and window[match.start() - 1] == 0x5C:
                continue   # \" : a quoted id inside a string, not a key
            if match.end() > len(tail):   # a key wholly inside the kept tail was yielded with the last window
                yield match.group(1).decode("utf-8", "replace"), base + match.end() - 1
        offset += len(data)
        tail = window[-keep:]


def manifest_nodes(path: Path, wanted: set[str], chunk: int = 8 * CHUNK) -> dict[str, Any]:
    """The manifest's node objects for the unique ids in `wanted`, found without parsing the rest: only a wanted
    id's object is decoded — and kept only when its `unique_id` agrees."""
    found: dict[str, Any] = {}
    if not wanted:
        return found
    with path.open("rb") as handle, path.open("rb") as reader:
        for unique_id, start in manifest_keys(handle, chunk):
            if unique_id in wanted and unique_id not in found:
                reader.seek(start)
                try:
                    node = JsonStream(reader, chunk=64 * 1024).value()
                except (ValueError, RecursionError):
                    continue   # a node nested past the decoder's depth is not read; the issue keeps its id
                if isinstance(node, dict) and node.get("unique_id", unique_id) == unique_id:
                    found[unique_id] = node
                    if len(found) == len(wanted):
                        break
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
                    except (ValueError, RecursionError):
                        continue   # a node nested past the decoder's depth is not read; the issue keeps its id
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
        # Each secret as a reader of the file decodes it: JSON escapes (json.load turns \u005f back into _) and URL
        # encoding, in any mix (escape.encoded_pattern). An encoded character takes at most 6 bytes.
        self._patterns = tuple(re.compile(encoded_pattern(secret.decode("utf-8", "replace")).encode("utf-8"))
                               for secret in secrets if secret)
        self._keep = max((6 * len(secret) for secret in secrets if secret), default=1) - 1
        self._pending = b""

    def write(self, chunk: bytes) -> int:
        data = self._pending + chunk
        for pattern in self._patterns:
            data = pattern.sub(b"***", data)
        # Hold back what could be the start of a secret that the next chunk completes.
        cut = max(0, len(data) - self._keep)
        self._handle.write(data[:cut])
        self._pending = data[cut:]
        return len(chunk)

    def close(self) -> None:
        try:
            self._handle.write(self._pending)
            self._pending = b""
        finally:
            self._handle.close()   # a full disk fails the write (or this flush): the file is closed either way


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
                      secrets: tuple[str, ...] = (), steps: ResultSteps | None = None,
                      from_log: Sequence[NodeIssue] = ()) -> ArtifactReport:
    """Stream run_results.json and manifest.json (and more) into `directory` (to a scratch folder when it is None:
    the report still needs the failed nodes), then read only what the report needs.

    `steps` says which step's artifacts to take (see `result_steps`): without it dbt Cloud serves the last step's,
    which after "Generate docs on run" is the docs step's run_results.json, where every node is `success`.
    `from_log` are the failed nodes the step logs show (unique_id ""): they fill in what the results lack — Fusion's
    run_results.json has no message, and can leave error results out."""
    steps = steps or ResultSteps(None, ())
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
                size = client.download_artifact(run_id, path, opener, deadline=deadline, max_bytes=max_bytes,
                                                step=steps.saved)
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
        failed, warned = _read_issues(files.get("run_results.json"), problems, steps.saved, nodes)
        for other in steps.read:
            if other != steps.saved:
                more = _other_step_issues(client, run_id, other, Path(scratch), deadline, max_bytes, problems)
                failed, warned = _merged(failed, more[0]), _merged(warned, more[1])
        failed = with_log_failures(failed, from_log)
        if (failed or warned) and files.get("manifest.json") is not None:
            # The manifest only adds file paths for annotations: read it only when a node needs one, and then only
            # the nodes needed.
            failed, warned = _with_files(failed, warned, files["manifest.json"], problems)
    shown = None if directory is None else (PurePosixPath(base) if root == workspace.absolute() else
                                            PurePosixPath(root.as_posix()))
    return ArtifactReport(directory=shown, saved=tuple(saved), missing=tuple(missing),
                          problems=tuple(problems), failed=tuple(failed), warned=tuple(warned),
                          nodes=tuple(nodes))


def _read_issues(path: Path | None, problems: list[str], step: int | None = None,
                 nodes: list[NodeResult] | None = None) -> tuple[list[NodeIssue], list[NodeIssue]]:
    """(failed, warned) from run_results.json, read once; every entry is also appended to `nodes` when given."""
    failed: list[NodeIssue] = []
    warned: list[NodeIssue] = []
    if path is None:
        return failed, warned
    which: list[str] = []
    first = len(nodes) if nodes is not None else 0
    try:
        for result in stream_results(path, which):
            node = node_result(result) if nodes is not None else None
            if node is not None and nodes is not None:
                nodes.append(node)
            issue = _issue(result, {})
            if issue is not None:
                (warned if issue.status in WARN_STATUSES else failed).append(issue)
    except (OSError, ValueError, RecursionError) as error:
        problems.append(f"run_results.json: not valid JSON ({error}); the nodes read before that are kept")
    if which and which[0] not in RESULT_COMMANDS:
        # dbt-core #3171/#4448: `dbt docs generate` writes a run_results.json that lists every node as success.
        where = f" of step {step}" if step is not None else ""
        problems.append(f"run_results.json{where} was written by `dbt {which[0]}`, not by a command that runs "
                        "nodes, so its results were not read as the run's")
        if nodes is not None:
            del nodes[first:]
        return [], []
    return failed, warned


class ResultSteps(NamedTuple):
    """Which steps' run_results.json say how the run's nodes went: `saved` is the step whose artifacts are
    downloaded for later steps (the first failed step, else the last build/run/test/seed/snapshot step); `read`
    are every step whose failed and warned nodes are reported (each failed step, then that last step)."""

    saved: int | None
    read: tuple[int, ...]


# The commands whose run_results.json says how nodes ran: as args.which writes them, and as a step names them
# ("dbt source freshness" is `source` in the step's name and `freshness` in args.which).
RESULT_COMMANDS = frozenset({"build", "run", "test", "seed", "snapshot", "retry", "freshness", "source",
                             "run-operation", "clone", "compile"})
# Commands that run the project's nodes: the last of these decides a run's results ("source freshness" does not).
NODE_COMMANDS = frozenset({"build", "run", "test", "seed", "snapshot", "retry", "run-operation", "clone"})
_STEP_INVOCATION = re.compile(r"`dbt\s([^`]{0,500})`")


def step_command(step_name: str) -> str:
    """The dbt command a run step invokes: "build" from "Invoke dbt with `dbt build --select x`", and from
    "`dbt --warn-error build`" (global flags come first); "" when the step runs no dbt command."""
    found = _STEP_INVOCATION.search(step_name)
    if found is None:
        return ""
    return dbt_command(found.group(1).split())


def result_steps(steps: Sequence[RunStep], run_failed: bool = True) -> ResultSteps:
    """The steps whose results count (see ResultSteps); no step at all when the run's steps are unknown. On a run
    that succeeded, a failed step did not decide it (dbt Cloud's "Run source freshness" step may fail without
    failing the run): only the last step that ran nodes counts."""
    runs_nodes = [step for step in steps if step_command(step.name) in RESULT_COMMANDS]
    failed = [step.index for step in runs_nodes if step.failed] if run_failed else []
    builds = [step for step in runs_nodes if step_command(step.name) in NODE_COMMANDS] or runs_nodes
    last = builds[-1].index if builds else None
    saved = failed[0] if failed else last
    return ResultSteps(saved, tuple(dict.fromkeys([*failed, *([last] if last is not None else [])])))


def _other_step_issues(client: CloudApi, run_id: int, step: int, scratch: Path, deadline: float, max_bytes: int,
                       problems: list[str]) -> tuple[list[NodeIssue], list[NodeIssue]]:
    """The failed and warned nodes of another step's run_results.json (read, not saved)."""
    target = scratch / f"step-{step}-run_results.json"
    try:
        size = client.download_artifact(run_id, "run_results.json", lambda: target.open("wb"), deadline=deadline,
                                        max_bytes=max_bytes, step=step)
    except (ApiError, DeadlineExceeded, OSError) as error:
        problems.append(f"run_results.json of step {step}: could not be downloaded ({error})")
        return [], []
    return _read_issues(target, problems, step) if size is not None else ([], [])


def _merged(first: list[NodeIssue], more: list[NodeIssue]) -> list[NodeIssue]:
    seen = {issue.unique_id for issue in first}
    return first + [issue for issue in more if issue.unique_id not in seen]


def node_result(result: Any) -> NodeResult | None:
    """One run_results.json entry (None for one without a unique_id); the resource type is the id's first part."""
    # By the same rules as `_issue`: text only from strings, a time only when finite (a 401-digit execution_time
    # must not turn a finished run into an error).
    unique_id = api_text(result.get("unique_id")) if isinstance(result, dict) else ""
    if not unique_id:
        return None
    return NodeResult(
        unique_id=unique_id, resource_type=unique_id.split(".", 1)[0],
        status=api_text(result.get("status")).lower(), execution_time=_seconds(result.get("execution_time")),
        message=api_text(result.get("message"))[:NODE_MESSAGE_LIMIT])


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
        return NodeIssue(issue.unique_id, api_text(node.get("name")) or issue.name,
                         api_text(node.get("resource_type")) or issue.resource_type, issue.status, issue.message,
                         issue.execution_time, api_text(node.get("original_file_path")))

    failed, warned = [named(issue) for issue in failed], [named(issue) for issue in warned]
    unknown = {(issue.resource_type, issue.name) for issue in failed if not issue.unique_id}
    if unknown:
        try:
            ids = manifest_unique_ids(manifest, unknown)
        except OSError:
            ids = {}
        failed = [replace(issue, unique_id=ids.get((issue.resource_type, issue.name), "")) if not issue.unique_id
                  else issue for issue in failed]
    return failed, warned


# What dbt writes as a message when it has none to give (Fusion's run_results.json: the status word).
_NO_MESSAGE = frozenset({"", "error", "fail", "warn", "skipped", "succeeded", "success", "pass"})


def with_log_failures(failed: list[NodeIssue], from_log: Sequence[NodeIssue]) -> list[NodeIssue]:
    """The failed nodes, completed from the log: dbt's message and file where the results give none, and the
    failed nodes the results leave out. A node neither gives a message for says so, never an empty cell."""
    logged = {(issue.resource_type, issue.name): issue for issue in from_log}
    done: list[NodeIssue] = []
    for issue in failed:
        seen = logged.pop((issue.resource_type, issue.name), None)
        if issue.message.strip().lower() in _NO_MESSAGE:
            message = seen.message if seen is not None and seen.message else NO_MESSAGE
            issue = replace(issue, message=message, file_path=issue.file_path or (seen.file_path if seen else ""))
        done.append(issue)
    done += [replace(issue, message=issue.message or NO_MESSAGE) for issue in logged.values()]
    return done


NO_MESSAGE = "dbt gave no message for this node in its results or its log; see the step's log in dbt Cloud"


def manifest_unique_ids(path: Path, wanted: set[tuple[str, str]], chunk: int = 8 * CHUNK) -> dict[tuple[str, str], str]:
    """(resource type, name) → unique id, from the manifest's node keys alone (a log names nodes, not ids)."""
    found: dict[tuple[str, str], str] = {}
    with path.open("rb") as handle:
        for unique_id, _ in manifest_keys(handle, chunk):
            parts = unique_id.split(".")
            if len(parts) > 2 and (parts[0], parts[2]) in wanted:
                found.setdefault((parts[0], parts[2]), unique_id)
                if len(found) == len(wanted):
                    break
    return found

"""Reading dbt's console log as dbt Cloud serves it (`run_steps[].logs`): pure functions, no I/O.

Two engines print two formats, both read here into the same `LogScan`: dbt-core 1.x (below) and the Fusion engine
(dbt 2.0, see `_scan_fusion`). `scan` tells them apart by the log's banner and, for a log cut before its banner,
by the shape of its node lines or the job's dbt version; a log that is neither says so (`engine == "unknown"`).

The text is untrusted: every line is cut to MAX_LINE characters and at most MAX_LINES lines (the newest) are read,
and every pattern runs in linear time on a line, so no log can keep the gate busy.

What real logs look like (reference/dbt-core-run, dbt 1.12): every line starts `HH:MM:SS` (UTC) and two spaces,
with `ESC[0m` before it and coloured status words when colours are on (dbt's default, even into a file). Nodes are
numbered "N of M" in *dispatch* order: N on a START (or SKIP) line is a start index, not a count of nodes done.
With several threads the result lines (OK, PASS, WARN n, FAIL n, ERROR, SKIP) arrive out of order, so the newest
line's N says little; what is done is the set of numbers that have a result line. dbt Cloud keeps the last 1,000
lines of a step: on a big project the "Running with dbt=" header and the first nodes are gone. A failed node's file
and message come only in the closing summary ("[ERROR]: in model x (path)" and the lines under it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

MAX_LINE = 2000         # characters of one line that are read (dbt's node lines are under 200)
MAX_LINES = 20_000      # the newest lines of one log that are read (dbt Cloud serves at most 1,000 per step)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_STAMP = re.compile(r"^(\d\d):(\d\d):(\d\d)(?:\.\d+)?\s\s?(.*)$")
_NODE = re.compile(r"^(\d+) of (\d+) (START|OK|PASS|WARN|ERROR|FAIL|SKIP)\b\s*(.*)$")
_SUMMARY = re.compile(r"^\[(ERROR|WARNING)\]: in (\w+) (\S+)(?: \((.+)\))?\s*$")
_TOOK = re.compile(r"\bin (\d+(?:\.\d+)?)s$")
_THREADS = re.compile(r"^Concurrency: (\d+) threads?")
RESULT_WORDS = frozenset({"OK", "PASS", "WARN", "ERROR", "FAIL", "SKIP"})
FAILED_WORDS = frozenset({"ERROR", "FAIL"})   # WARN is not a failure, nor is SKIP (it follows one)


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


@dataclass(frozen=True)
class NodeLine:
    """One "N of M" line: a START, or a result (OK, PASS, WARN, ERROR, FAIL, SKIP)."""

    number: int
    total: int
    word: str                 # START | OK | PASS | WARN | ERROR | FAIL | SKIP
    resource_type: str        # model | seed | snapshot | test | source | "" when the text does not say
    name: str                 # the node's name (schema-qualified relations lose the schema)
    at: int | None            # seconds of the UTC day the line was printed
    detail: str = ""          # what the bracket said, e.g. "FAIL 3", "ERROR", "OK in 0.49s"
    took: float | None = None  # the node's execution time when the line gives it apart from `detail` (Fusion)

    @property
    def key(self) -> tuple[str, str]:
        return self.resource_type, self.name

    @property
    def outcome(self) -> str:
        """What the bracket said without the timing: "ERROR", "FAIL 3", "ERROR STALE"."""
        return _TOOK.sub("", self.detail).strip() or self.word

    @property
    def seconds(self) -> float | None:
        """The node's execution time from "[OK in 0.49s]"; None on START and SKIP lines."""
        if self.took is not None:
            return self.took
        found = _TOOK.search(self.detail)
        return float(found.group(1)) if found else None


@dataclass(frozen=True)
class Problem:
    """A block of the closing summary: "[ERROR]: in test x (path)" and the message under it."""

    level: str                # ERROR | WARNING
    resource_type: str
    name: str
    path: str
    message: str


@dataclass(frozen=True)
class LogScan:
    total: int                                # M, 0 when no node line was seen
    results: tuple[NodeLine, ...]             # the first result line of each number, in log order
    starts: tuple[NodeLine, ...]              # START lines whose node has no result yet (in flight)
    header: bool                              # "Running with dbt=" is in the log (it was not cut off)
    finished: bool                            # the closing summary began: the step's work is over
    first_at: int | None                      # time of day of the first and last timestamped lines
    last_at: int | None
    lowest_dispatch: int | None               # the smallest N on a START or SKIP line still in the log
    threads: int | None
    problems: tuple[Problem, ...] = ()
    engine: str = "dbt-core"                  # dbt-core | fusion | unknown (no line of either was recognised)

    @property
    def done(self) -> int:
        """Nodes done. Without the header the log was cut: every node dispatched before the lowest N still in the
        log started before the cut, and all but at most `threads` of them (still running) are done; counted done.
        A log whose closing summary began has all its nodes done."""
        numbers = {line.number for line in self.results}
        if self.finished and self.total:
            return self.total
        if self.engine != "dbt-core":
            return len(numbers)   # Fusion prints a line per finished node and no dispatch numbers
        if not self.header and numbers | {line.number for line in self.starts}:
            # Nodes are dispatched in number order: with no START left in the log, every number up to the
            # highest seen was dispatched before the cut.
            upto = self.lowest_dispatch or max(numbers | {line.number for line in self.starts}) + 1
            in_flight = {line.number for line in self.starts}
            numbers |= {n for n in range(1, upto) if n not in in_flight}
        return min(len(numbers), self.total) if self.total else len(numbers)

    @property
    def failures(self) -> tuple[NodeLine, ...]:
        return tuple(line for line in self.results if line.word in FAILED_WORDS)

    def problem_for(self, line: NodeLine) -> Problem | None:
        return next((p for p in self.problems if p.level == "ERROR" and p.name == line.name), None)


def _seconds(match: re.Match[str]) -> int:
    return int(match.group(1)) * 3600 + int(match.group(2)) * 60 + int(match.group(3))


def describe_node(text: str) -> tuple[str, str]:
    """(resource type, name) from the text between the status word and the dots, e.g. ("model", "stg_events") from
    "created sql table model main_staging.stg_events"; ("", last word) when the text is not one dbt prints."""
    words = text.split()
    if not words:
        return "", ""
    last = words[-1]
    if len(words) >= 3 and words[-2] == "of" and words[-3] == "freshness":
        return "source", last.rsplit(".", 1)[-1]
    if len(words) >= 2 and words[-2] in ("model", "file"):
        return ("model" if words[-2] == "model" else "seed"), last.rsplit(".", 1)[-1]
    if words[0] in ("snapshotted", "snapshot"):
        return "snapshot", last.rsplit(".", 1)[-1]
    if words[0] == "relation":
        return "model", last.rsplit(".", 1)[-1]
    if (words[0] in ("test", "unit_test") and len(words) >= 2) or len(words) == 1:
        return "test", last           # "START test x", "SKIP test x", and a result's bare "PASS x", "FAIL 3 x"
    return "", last.rsplit(".", 1)[-1]


def scan(logs: str, engine_hint: str = "") -> LogScan:
    """Everything the watcher needs from one step's log, in one pass. `engine_hint` ("fusion" or "dbt-core", from
    the job's dbt version) decides for a log whose banner was cut off and whose lines say neither."""
    lines = [strip_ansi(line[:MAX_LINE]) for line in logs.splitlines()[-MAX_LINES:]]
    engine = _engine(lines, engine_hint)
    if engine == "fusion":
        return _scan_fusion(lines)
    scanned = _scan_core(lines)
    if engine == "unknown" and not scanned.results and not scanned.starts:
        return replace(scanned, engine="unknown")
    return scanned


def _engine(lines: list[str], hint: str) -> str:
    for line in lines:
        if "Fusion version:" in line or "dbt-fusion " in line:
            return "fusion"
        if "Running with dbt=" in line:
            return "dbt-core"
    for line in lines:
        stamped = _STAMP.match(line)
        text = _FUSION_LEVEL.sub("", stamped.group(4)) if stamped else line
        if _NODE.match(text.strip()):
            return "dbt-core"
        if _fusion_node(text) is not None:
            return "fusion"
    return hint if hint in ("fusion", "dbt-core") else "unknown"


def _split_bracket(rest: str) -> tuple[str, str]:
    """("created sql table model x", "OK in 0.49s") from "created sql table model x ..... [OK in 0.49s]", without
    a backtracking pattern (a line of spaces made one take minutes)."""
    stripped = rest.rstrip()
    if not stripped.endswith("]"):
        return rest, ""
    opening = stripped.rfind("[")
    if opening == -1:
        return rest, ""
    detail = stripped[opening + 1:-1]
    if "[" in detail or "]" in detail:
        return rest, ""
    return stripped[:opening].rstrip().rstrip(".").rstrip(), detail.strip()


def _scan_core(lines: list[str]) -> LogScan:
    """A dbt-core log, in one pass."""
    total = 0
    results: dict[int, NodeLine] = {}
    order: list[int] = []
    starts: dict[int, NodeLine] = {}
    header = finished = False
    first_at: int | None = None
    last_at: int | None = None
    lowest: int | None = None
    threads: int | None = None
    problems: list[Problem] = []
    open_problem: list[str] | None = None       # [level, type, name, path, message lines...]
    for raw in lines:
        stamped = _STAMP.match(raw)
        if stamped is None:
            if open_problem is not None and raw.strip():
                open_problem.append(raw.strip())   # an untimestamped continuation of an error message
            continue
        at = _seconds(stamped)
        first_at = at if first_at is None else first_at
        last_at = at
        text = stamped.group(4).rstrip()
        if open_problem is not None:
            summary_line = _SUMMARY.match(text)
            if summary_line is None and text.strip() and not text.strip().startswith("compiled code at") and \
                    not text.startswith("Done."):
                message = text.strip()
                if message.startswith("[WARNING]: "):
                    message = message[len("[WARNING]: "):]
                open_problem.append(message)
                continue
            problems.append(_problem(open_problem))
            open_problem = None
        node = _NODE.match(text)
        if node is not None:
            number, of, word, rest = int(node.group(1)), int(node.group(2)), node.group(3), node.group(4)
            total = max(total, of)
            body, detail = _split_bracket(rest)
            if word != "START" and body.split()[:1] and body.split()[0].isdigit():
                body = body.split(None, 1)[1] if len(body.split()) > 1 else ""  # "FAIL 3 name": drop the count
            if word in ("ERROR",) and body.startswith("STALE "):
                body = body[len("STALE "):]
            kind, name = describe_node(body)
            line = NodeLine(number, of, word, kind, name, at, detail)
            if word in ("START", "SKIP"):
                lowest = number if lowest is None else min(lowest, number)
            if word == "START":
                if number not in results:
                    starts[number] = line
            elif number not in results:
                results[number] = line
                order.append(number)
                starts.pop(number, None)
            continue
        if text.startswith("Running with dbt="):
            header = True
        elif text.startswith(("Finished running", "Done.")):
            finished = True
        elif (found := _THREADS.match(text)) is not None:
            threads = int(found.group(1))
        summary = _SUMMARY.match(text)
        if summary is not None:
            open_problem = [summary.group(1), summary.group(2), summary.group(3), summary.group(4) or ""]
    if open_problem is not None:
        problems.append(_problem(open_problem))
    return LogScan(total=total, results=tuple(results[n] for n in order), starts=tuple(starts.values()),
                   header=header, finished=finished, first_at=first_at, last_at=last_at, lowest_dispatch=lowest,
                   threads=threads, problems=tuple(problems))


def _problem(parts: list[str]) -> Problem:
    level, kind, name, path, *message = parts
    return Problem(level, kind, name, path, "\n".join(message)[:2000])


# ---- Fusion (dbt 2.0) -------------------------------------------------------------------------------------------
# What Fusion prints (dbt-labs/dbt-fusion, crates/dbt-common/src/tracing/formatters/: node.rs, layout.rs,
# invocation.rs; the fixtures in tests/fixtures/fusion cite each source): one line per finished node, the action
# right-aligned in 10 columns, a bracketed duration, the resource type padded to 5, the relation, and in
# parentheses the materialization or (tests) the YAML location; no "N of M", no START lines on the console. dbt
# Cloud prefixes each line with its time and a level ("04:00:14      INFO  ..."). The run closes with "Test
# Failures", "Errors and Warnings" and "Execution Summary" blocks. The format is still changing, so nothing here
# relies on column widths: words and brackets only.
_FUSION_LEVEL = re.compile(r"^\s*(?:INFO|WARN|WARNING|ERROR|DEBUG|TRACE)\b ?")
_FUSION_WORDS = {"Succeeded": "OK", "Reused": "OK", "Finished": "OK", "Passed": "PASS", "Warned": "WARN",
                 "Failed": "ERROR", "Stale": "ERROR", "Skipped": "SKIP", "Cancelled": "SKIP"}
_FUSION_TESTS = frozenset({"test", "unit_test"})
_FUSION_TOTAL = re.compile(r"^Summary: (\d+) total\b")
_FUSION_TEST_FAILED = re.compile(r"^Test failed \((.{0,200}?)\): (\S+)$")
_FUSION_ERROR = re.compile(r"^(?:\[error\](?: \[[^\]]*\])?:?|error:(?: dbt\d+:)?)\s*(.*)$")
_FUSION_IN_NODE = re.compile(r"\bin (model|seed|snapshot|test|source|unit_test) ([\w.]+)(?: \(([^()]*)\))?")
_FUSION_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?$")


def _fusion_node(text: str) -> tuple[str, str, str, str, str] | None:
    """(action, duration, resource type, relation, what the parentheses say) of a node line, or None."""
    stripped = text.strip()
    action, _, rest = stripped.partition(" ")
    if action not in _FUSION_WORDS:
        return None
    rest = rest.lstrip()
    close = rest.find("]")
    if not rest.startswith("[") or close == -1:
        return None
    parts = rest[close + 1:].split(None, 1)
    if len(parts) != 2:
        return None
    kind, remainder = parts
    paren = ""
    if remainder.endswith(")") and " (" in remainder:
        opening = remainder.rfind(" (")
        remainder, paren = remainder[:opening], remainder[opening + 2:-1]
    return action, rest[1:close].strip(), kind, remainder.strip(), paren


def _fusion_seconds(text: str) -> float | None:
    """"1.12s", "5m42s", "23h10m" as seconds; None for "-------" (skipped) and ">24h"."""
    found = _FUSION_DURATION.match(text.strip())
    if found is None or not any(found.groups()):
        return None
    hours, minutes, seconds = found.groups()
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds or 0)


def _project_path(path: str) -> str:
    """A node's file in the project from a compiled path: "target/run/jaffle_shop/models/x.sql" → "models/x.sql"."""
    parts = path.split("/")
    if len(parts) > 3 and parts[0] == "target" and parts[1] in ("run", "compiled"):
        return "/".join(parts[3:])
    return path.split(":", 1)[0] if path.endswith(tuple("0123456789")) and ":" in path else path


def _scan_fusion(lines: list[str]) -> LogScan:
    results: list[NodeLine] = []
    test_files: dict[str, str] = {}
    problems: list[Problem] = []
    header = finished = False
    total = 0
    first_at: int | None = None
    last_at: int | None = None
    section = ""
    open_problem: list[str] | None = None
    for raw in lines:
        stamped = _STAMP.match(raw)
        at: int | None = None
        if stamped is None:
            if open_problem is not None and raw.strip():
                open_problem.append(raw.strip())   # a message continues on lines of its own
                continue
            text = raw.rstrip()                    # Fusion run locally: no time or level on its lines
        else:
            at = _seconds(stamped)
            first_at = at if first_at is None else first_at
            last_at = at
            text = _FUSION_LEVEL.sub("", stamped.group(4)).rstrip()
        plain = text.strip()
        if open_problem is not None:
            problems.append(_fusion_problem(open_problem, test_files))
            open_problem = None
        if "Fusion version:" in plain or plain.startswith("dbt-fusion "):
            header = True
            continue
        if plain.startswith("=") and plain.endswith("="):
            section = plain.strip("= ")
            finished = finished or section == "Execution Summary"
            continue
        node = _fusion_node(text)
        if node is not None and section == "":
            action, duration, kind, relation, paren = node
            word = _FUSION_WORDS[action]
            if action == "Failed" and kind in _FUSION_TESTS:
                word = "FAIL"
            name = relation.rsplit(".", 1)[-1]
            if kind in _FUSION_TESTS and paren:
                test_files[name] = _project_path(paren)
            results.append(NodeLine(len(results) + 1, 0, word, kind, name, at, action,
                                    took=_fusion_seconds(duration) if word != "SKIP" else None))
            continue
        if plain.startswith("Finished '"):
            finished = True
        elif (found := _FUSION_TOTAL.match(plain)) is not None:
            total = int(found.group(1))
        elif (failed := _FUSION_TEST_FAILED.match(plain)) is not None:
            name = failed.group(2)
            problems.append(Problem("ERROR", "test", name, test_files.get(name, ""),
                                    f"Test failed ({failed.group(1)})"))
        elif (error := _FUSION_ERROR.match(plain)) is not None:
            open_problem = [error.group(1)]
    if open_problem is not None:
        problems.append(_fusion_problem(open_problem, test_files))
    return LogScan(total=max(total, len(results)) if finished else 0, results=tuple(results), starts=(),
                   header=header, finished=finished, first_at=first_at, last_at=last_at, lowest_dispatch=None,
                   threads=None, problems=tuple(problems), engine="fusion")


def _fusion_problem(lines: list[str], test_files: dict[str, str]) -> Problem:
    """An entry of "Errors and Warnings": its node from "... in model x (path)" when the message names one."""
    message = "\n".join(lines)[:2000]
    found = _FUSION_IN_NODE.search(lines[0])
    if found is None:
        return Problem("ERROR", "", "", "", message)
    kind, name, path = found.group(1), found.group(2).rsplit(".", 1)[-1], found.group(3) or ""
    return Problem("ERROR", kind, name, _project_path(path) if path else test_files.get(name, ""), message)

"""Reading dbt's console log as dbt Cloud serves it (`run_steps[].logs`): pure functions, no I/O.

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
from dataclasses import dataclass

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_STAMP = re.compile(r"^(\d\d):(\d\d):(\d\d)(?:\.\d+)?\s\s?(.*)$")
_NODE = re.compile(r"^(\d+) of (\d+) (START|OK|PASS|WARN|ERROR|FAIL|SKIP)\b\s*(.*)$")
_BRACKET = re.compile(r"\s*\.*\s*\[([^\[\]]*)\]\s*$")
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

    @property
    def done(self) -> int:
        """Nodes done. Without the header the log was cut: every node dispatched before the lowest N still in the
        log started before the cut, and all but at most `threads` of them (still running) are done; counted done.
        A log whose closing summary began has all its nodes done."""
        numbers = {line.number for line in self.results}
        if self.finished and self.total:
            return self.total
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


def scan(logs: str) -> LogScan:
    """Everything the watcher needs from one step's log, in one pass."""
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
    for raw in strip_ansi(logs).splitlines():
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
            bracket = _BRACKET.search(rest)
            detail = bracket.group(1).strip() if bracket else ""
            body = rest[: bracket.start()] if bracket else rest
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

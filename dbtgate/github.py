"""GitHub's workflow commands and file commands, and the one channel that keeps untrusted text harmless.

The runner obeys a workflow command on any line of the step's stdout or stderr that starts (after blanks) with
`::`, and a legacy command wherever `##[` appears in a line. Text from dbt Cloud (job and step names, status texts,
links, error messages, logs) can contain both, and a newline to start a line of its own. So:

- `Workflow` is the only writer of real commands; the data and properties it puts in them are escaped.
- Everything else reaches the log through a `GuardedStream`, which defuses every physical line
  (`defuse`) — log lines in any format, `--json` output, plain-text messages — and redacts the token.
- Long untrusted text shown on purpose (the failing step's log) is printed between `::stop-commands::TOKEN` and
  `::TOKEN::`, with a random token it cannot guess.
- Files the runner reads (outputs, summary) are redacted of the token too.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from dbtgate.escape import command_data, command_property, defuse
from dbtgate.logs import Redactor


def command(name: str, message: str = "", **properties: str | int | None) -> str:
    props = ",".join(f"{key}={command_property(str(value))}" for key, value in properties.items()
                     if value is not None and value != "")
    return f"::{name}{' ' + props if props else ''}::{command_data(message)}"


class GuardedStream:
    """A text stream for everything that is not a deliberate workflow command: each line is redacted, then defused.

    Lines are passed on whole (a partial line waits for its newline or a flush), so a command cannot be assembled
    from pieces written separately.
    """

    def __init__(self, raw: TextIO, redactor: Redactor) -> None:
        self.raw = raw
        self.redactor = redactor
        self._partial = ""

    def write(self, text: str) -> int:
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            self.raw.write(self._clean(line) + "\n")
        return len(text)

    def flush(self) -> None:
        if self._partial:
            self.raw.write(self._clean(self._partial))
            self._partial = ""
        self.raw.flush()

    def _clean(self, line: str) -> str:
        # A lone CR would start a new line for the runner too.
        return " ".join(defuse(str(self.redactor.scrub(part))) for part in line.split("\r"))

    def isatty(self) -> bool:
        return False


class Workflow:
    """Prints workflow commands to one stream (stdout in the action); every text in them is redacted.

    Outside GitHub Actions (`github=False`) the same calls print plain "error: ..." lines instead, defused.
    """

    def __init__(self, stream: TextIO, *, github: bool = True, redactor: Redactor | None = None) -> None:
        self.stream = stream
        self.github = github
        self.redactor = redactor or Redactor()
        # Annotations printed so far, by kind: GitHub shows 10 errors and 10 warnings per step and drops the rest
        # silently, so the reporter spends what is left (report/annotations.py).
        self.annotations: dict[str, int] = {"error": 0, "warning": 0}

    def redact(self, text: str) -> str:
        return str(self.redactor.scrub(text))

    def _print(self, line: str) -> None:
        self.stream.write(self.redact(line) + "\n")
        self.stream.flush()

    def add_mask(self, secret: str) -> None:
        if not self.github:
            return
        for line in secret.splitlines() or [secret]:
            if line.strip():
                # The one line that must carry the secret itself: it tells the runner what to hide.
                self.stream.write(f"::add-mask::{line}\n")
                self.stream.flush()

    def error(self, message: str, *, title: str | None = None, file: str | None = None,
              line: int | None = None) -> None:
        self._annotation("error", message, title=title, file=file, line=line)

    def warning(self, message: str, *, title: str | None = None, file: str | None = None) -> None:
        self._annotation("warning", message, title=title, file=file)

    def _annotation(self, kind: str, message: str, *, title: str | None, file: str | None = None,
                    line: int | None = None) -> None:
        self.annotations[kind] = self.annotations.get(kind, 0) + 1
        if self.github:
            self._print(command(kind, message, title=title, file=file, line=line))
        else:
            where = f" ({file})" if file else ""
            self._print(defuse(" ".join(f"{kind}: {title + ': ' if title else ''}{message}{where}".splitlines())))

    @contextmanager
    def group(self, name: str) -> Iterator[None]:
        self._print(command("group", name) if self.github else defuse(f"----- {' '.join(name.split())} -----"))
        try:
            yield
        finally:
            self._print("::endgroup::" if self.github else "-----")

    def untrusted(self, text: str) -> None:
        """Print text from dbt Cloud verbatim, with workflow commands switched off around it."""
        if not self.github:
            for line in text.rstrip("\n").replace("\r", "\n").splitlines():
                self._print(defuse(line))
            return
        token = secrets.token_hex(16)
        self._print(f"::stop-commands::{token}")
        for line in text.replace("\r", "\n").splitlines():
            self._print(defuse(line))  # belt and braces: harmless even if the runner stopped reading commands
        self._print(f"::{token}::")


def format_outputs(outputs: Mapping[str, str]) -> str:
    """The GITHUB_OUTPUT text for these outputs: every value as a heredoc with a random delimiter it cannot contain."""
    chunks = []
    for name, value in outputs.items():
        if not name or "=" in name or "<" in name or "\n" in name:
            raise ValueError(f"bad output name {name!r}")
        # The runner's own form is ghadelimiter_<uuid4>; any unguessable suffix does (and uuid costs start-up time).
        delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
        while delimiter in value:
            delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
        chunks.append(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
    return "".join(chunks)


def append_file(path: str | Path | None, text: str, redactor: Redactor | None = None) -> None:
    """Append (never truncate) to a runner file such as GITHUB_OUTPUT or GITHUB_STEP_SUMMARY, redacted."""
    if not path:
        return
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(str(redactor.scrub(text)) if redactor is not None else text)

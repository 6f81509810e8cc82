"""GitHub's workflow commands and file commands, with the escaping that keeps untrusted text harmless.

Text from dbt Cloud (step logs, node names, error messages) can contain `::` sequences; printed raw it could run
workflow commands in the job. Everything untrusted goes through `escape_data`/`escape_property`, or is printed
between `::stop-commands::TOKEN` and `::TOKEN::`.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(name: str, message: str = "", **properties: str | int | None) -> str:
    props = ",".join(f"{key}={escape_property(str(value))}" for key, value in properties.items()
                     if value is not None and value != "")
    return f"::{name}{' ' + props if props else ''}::{escape_data(message)}"


class Workflow:
    """Prints workflow commands to one stream (stdout in the action).

    Outside GitHub Actions (`github=False`) the same calls print plain "error: ..." lines instead.
    """

    def __init__(self, stream: TextIO, *, github: bool = True) -> None:
        self.stream = stream
        self.github = github

    def _print(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()

    def add_mask(self, secret: str) -> None:
        if not self.github:
            return
        for line in secret.splitlines() or [secret]:
            if line.strip():
                self._print(f"::add-mask::{line}")

    def error(self, message: str, *, title: str | None = None, file: str | None = None,
              line: int | None = None) -> None:
        self._annotation("error", message, title=title, file=file, line=line)

    def warning(self, message: str, *, title: str | None = None, file: str | None = None) -> None:
        self._annotation("warning", message, title=title, file=file)

    def _annotation(self, kind: str, message: str, *, title: str | None, file: str | None = None,
                    line: int | None = None) -> None:
        if self.github:
            self._print(command(kind, message, title=title, file=file, line=line))
        else:
            where = f" ({file})" if file else ""
            self._print(f"{kind}: {title + ': ' if title else ''}{message}{where}")

    @contextmanager
    def group(self, name: str) -> Iterator[None]:
        self._print(command("group", name) if self.github else f"----- {name} -----")
        try:
            yield
        finally:
            self._print("::endgroup::" if self.github else "-----")

    def untrusted(self, text: str) -> None:
        """Print text from dbt Cloud verbatim, with workflow commands switched off around it."""
        if not self.github:
            self._print(text.rstrip("\n"))
            return
        token = secrets.token_hex(16)
        self._print(f"::stop-commands::{token}")
        for line in text.splitlines():
            self._print(line)
        self._print(f"::{token}::")


def format_outputs(outputs: Mapping[str, str]) -> str:
    """The GITHUB_OUTPUT text for these outputs: every value as a heredoc with a random delimiter it cannot contain."""
    chunks = []
    for name, value in outputs.items():
        if not name or "=" in name or "<" in name or "\n" in name:
            raise ValueError(f"bad output name {name!r}")
        delimiter = f"ghadelimiter_{uuid.uuid4()}"
        while delimiter in value:
            delimiter = f"ghadelimiter_{uuid.uuid4()}"
        chunks.append(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
    return "".join(chunks)


def append_file(path: str | Path | None, text: str) -> None:
    """Append (never truncate) to a runner file such as GITHUB_OUTPUT or GITHUB_STEP_SUMMARY."""
    if not path:
        return
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(text)

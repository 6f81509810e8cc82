"""Logging through structlog: readable lines in a terminal or CI log, JSON with --log-format json.

A processor redacts the token (and any Authorization header) from every event before it is rendered, so even a
debug line that carried a header or an exception text cannot leak it.

structlog (with the asyncio it pulls in) costs ~45 ms to import, and nothing is logged before the first request
to dbt Cloud, so it is imported and configured on the first log call rather than at start-up: the action pays
it after the run is already triggering, not before.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any, TextIO

from dbtgate.escape import escaped_forms

REDACTED = "***"


class Redactor:
    """Replaces each secret, and the forms it takes once escaped for where it is written, with ***.

    Text is escaped before it is written (Markdown in the summary turns `dbtc_x` into `dbtc\\_x`, HTML and workflow
    commands have their own escapes), and an escaped secret no longer matches the raw one: real dbt Cloud tokens
    (`dbtc_…`, `dbtu_…`) all contain a `_`. So every escaped form is redacted too.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets: list[str] = []
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str) -> None:
        if not secret:
            return
        for form in escaped_forms(secret):
            if form not in self.secrets:
                self.secrets.append(form)
        self.secrets.sort(key=len, reverse=True)  # the longest form first, so no shorter one cuts it in two

    def scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self.secrets:
                value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, dict):
            return {k: (REDACTED if str(k).lower() == "authorization" else self.scrub(v)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.scrub(v) for v in value)
        if isinstance(value, BaseException):
            return self.scrub(repr(value))
        return value

    def __call__(self, logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        return {key: (REDACTED if key.lower() == "authorization" else self.scrub(value))
                for key, value in event.items()}


def one_line(logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A structlog processor: one event, one physical line. Values (often text from dbt Cloud) lose their line
    breaks, so no value can start a line of its own — where the runner would read it as a workflow command."""
    return {key: _flatten(value) for key, value in event.items()}


def _flatten(value: Any) -> Any:
    if isinstance(value, str) and ("\n" in value or "\r" in value):
        return " ⏎ ".join(part for part in value.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    return value


@dataclass
class _Settings:
    stream: TextIO
    fmt: str
    debug: bool
    redactor: Redactor


_pending: _Settings | None = None
_configured = False  # set once dbtgate's CLI/action configured structlog; a library caller never does
# Library use: the tokens the Python API was given, redacted from every line dbtgate sends to `logging`.
LIBRARY_REDACTOR = Redactor()


def configure(stream: TextIO, *, fmt: str = "console", debug: bool = False,
              redactor: Redactor | None = None) -> Redactor:
    """Say where and how to log; applied (and structlog imported) when the first line is logged."""
    global _pending
    redactor = redactor or Redactor()
    _pending = _Settings(stream, fmt, debug, redactor)
    return redactor


def _apply_pending() -> None:
    global _pending, _configured
    settings, _pending = _pending, None
    if settings is None:
        return
    _configured = True
    import structlog

    renderer: Any
    if settings.fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False, pad_event_to=0)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="%H:%M:%S", utc=True),
            structlog.processors.format_exc_info,
            settings.redactor,
            one_line,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG if settings.debug else logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(file=settings.stream),
        cache_logger_on_first_use=False,
    )


class LazyLogger:
    """A structlog logger that comes into being on first use (see the module docstring).

    Used as a library (`import dbtgate`), dbtgate configures nothing global: its lines go to the standard `logging`
    module under the same names, where the caller's own handlers (Airflow's, Dagster's) decide what to show.
    """

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        _apply_pending()
        if not _configured:
            return getattr(_StdlibLogger(self._name), attribute)
        import structlog

        return getattr(structlog.get_logger(self._name), attribute)


class _StdlibLogger:
    """structlog's calling convention (`log.info("event", key=value)`) onto a standard `logging` logger."""

    def __init__(self, name: str) -> None:
        self._logger = logging.getLogger(name)

    def _log(self, level: int, event: str, exc_info: bool = False, **values: Any) -> None:
        if self._logger.isEnabledFor(level):
            details = " ".join(f"{key}={value!r}" for key, value in values.items())
            line = LIBRARY_REDACTOR.scrub(_flatten(f"{event} {details}".rstrip()))
            self._logger.log(level, "%s", line, exc_info=exc_info)

    def debug(self, event: str, **values: Any) -> None:
        self._log(logging.DEBUG, event, **values)

    def info(self, event: str, **values: Any) -> None:
        self._log(logging.INFO, event, **values)

    def warning(self, event: str, **values: Any) -> None:
        self._log(logging.WARNING, event, **values)

    def error(self, event: str, **values: Any) -> None:
        self._log(logging.ERROR, event, **values)

    def exception(self, event: str, **values: Any) -> None:
        self._log(logging.ERROR, event, exc_info=True, **values)


def get_logger(name: str) -> LazyLogger:
    return LazyLogger(name)

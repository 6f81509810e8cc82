"""How a gate can end, and the one rule from that ending to the process's exit status."""

from __future__ import annotations

import signal
from enum import IntEnum, StrEnum


class Outcome(StrEnum):
    SUCCESS = "success"
    ERROR = "error"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    NOT_WAITED = "not_waited"
    INTERRUPTED = "interrupted"
    API_ERROR = "api_error"
    STALE = "stale"                 # latest_run: the run is older than max_age
    CONFIG_ERROR = "config_error"   # bad input, also when found only by asking dbt Cloud (a job name, no such job)

    @property
    def passes(self) -> bool:
        """The pipeline may go on (whatever failure_on_error says)."""
        return self in (Outcome.SUCCESS, Outcome.NOT_WAITED)


class ExitStatus(IntEnum):
    SUCCESS = 0        # the run succeeded, was triggered without waiting, or failure_on_error is false
    RUN_FAILED = 1     # error, cancelled, timed out, stale
    BAD_CONFIG = 2     # you configured me wrong: nothing was triggered
    API_FAILED = 3     # dbt Cloud could not be used
    SIGINT = 128 + signal.SIGINT
    SIGTERM = 128 + signal.SIGTERM


def exit_status_for(outcome: Outcome, failure_on_error: bool, signum: int | None = None) -> ExitStatus:
    """Outcome → exit status. The one place that decides whether the pipeline may continue."""
    if outcome.passes:
        return ExitStatus.SUCCESS
    if outcome is Outcome.INTERRUPTED:
        return ExitStatus.SIGTERM if signum == signal.SIGTERM else ExitStatus.SIGINT
    if outcome is Outcome.API_ERROR:
        return ExitStatus.API_FAILED
    if outcome is Outcome.CONFIG_ERROR:
        return ExitStatus.BAD_CONFIG
    return ExitStatus.RUN_FAILED if failure_on_error else ExitStatus.SUCCESS

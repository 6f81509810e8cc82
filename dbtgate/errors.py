"""Every error dbtgate raises on purpose, under one root.

    DbtgateError
    ├── ConfigError          bad input, found before anything was triggered (or by asking dbt Cloud: a job name
    │                        that matches no job). Exit 2.
    ├── ApiError(kind)       dbt Cloud could not be used: auth, not found, refused, unavailable, too large, TLS.
    │   └── AmbiguousTrigger a POST that may have created a run got no usable answer: the run may exist.
    └── DeadlineExceeded     the time the call was given ran out.

A signal is not an error: `signals.Interrupted` is a BaseException so that no `except Exception` swallows it.
"""

from __future__ import annotations

from enum import StrEnum


class DbtgateError(Exception):
    """The root: whatever dbtgate raises on purpose is one of these."""


class ConfigError(DbtgateError):
    """Bad input: every problem found, each naming the input and how to fix it. Nothing was triggered."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = problems if isinstance(problems, list) else [problems]
        super().__init__("\n".join(self.problems))


class ApiErrorKind(StrEnum):
    AUTH = "auth"                 # 401/403: the token, its permissions, or the wrong regional host
    NOT_FOUND = "not_found"       # 404: an id that is not in this account
    REJECTED = "rejected"         # another 4xx: dbt Cloud refused the request as sent
    UNAVAILABLE = "unavailable"   # 5xx, time-outs, lost connections that persisted: an outage
    TOO_LARGE = "too_large"       # an answer past dbtgate's size limit
    TLS = "tls"                   # no trusted TLS connection
    NO_SUCH_HOST = "no_such_host"  # the URL's host name does not exist
    NOT_DBT_CLOUD = "not_dbt_cloud"  # the host answers, but not as dbt Cloud's API does (an HTML 404)

    @property
    def is_mistake(self) -> bool:
        """A configuration mistake (a wrong token, id or URL), not an outage: retrying cannot help. Found at the
        first call, it is bad input (exit 2), naming the input to fix."""
        return self in (ApiErrorKind.AUTH, ApiErrorKind.NOT_FOUND, ApiErrorKind.NO_SUCH_HOST,
                        ApiErrorKind.NOT_DBT_CLOUD)

    @property
    def loses_the_run(self) -> bool:
        """After this failure the gate can no longer watch a run in flight (as opposed to a refused request)."""
        return self in (ApiErrorKind.UNAVAILABLE, ApiErrorKind.TOO_LARGE)


class ApiError(DbtgateError):
    """dbt Cloud could not be used. Exit 3."""

    def __init__(self, message: str, *, kind: ApiErrorKind, status: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status


class AmbiguousTrigger(ApiError):
    """The trigger (or retry) request was sent but its answer was lost: the run may or may not exist."""

    def __init__(self, message: str) -> None:
        super().__init__(message, kind=ApiErrorKind.UNAVAILABLE)


class DeadlineExceeded(DbtgateError):
    """The time a call was given (the gate's timeout, or a cleanup budget) ran out while talking to dbt Cloud."""

"""When to try a request again: what one HTTP attempt came to, the verdict on it, and the backoff.

Pure functions and values, tested without a network. A POST that may have created a run is never retried blindly:
only a request that certainly did not reach dbt Cloud (no connection, or a 429, which rejects before any work)
is sent again; anything else that went wrong after sending it is ambiguous.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class Verdict(StrEnum):
    OK = "ok"
    RETRY = "retry"
    FAIL = "fail"
    AMBIGUOUS = "ambiguous"     # a POST whose answer was lost: the run may exist


class AttemptFailure(StrEnum):
    """Why an attempt brought no usable answer."""

    CONNECT = "connect"                    # never connected: the request did not reach dbt Cloud
    READ_TIMEOUT = "read_timeout"
    CONNECTION_LOST = "connection_lost"
    BAD_BODY = "bad_body"                  # an answer that is not what was asked for
    TOO_LARGE = "too_large"
    TLS = "tls"
    NO_SUCH_HOST = "no_such_host"          # the resolver says the name does not exist: a typo, not an outage


@dataclass(frozen=True)
class Attempt:
    """What one HTTP attempt came to, reduced to what the retry policy needs."""

    status: int | None = None       # HTTP status, None when no response arrived
    failure: AttemptFailure | None = None
    retry_after: float | None = None
    detail: str = ""                # what was wrong with a bad body, or how large a too-large one was
    size: int = 0                   # bytes of body read


def classify(attempt: Attempt, *, idempotent: bool) -> Verdict:
    """What to do after an attempt: OK, RETRY, FAIL or (for a non-idempotent POST) AMBIGUOUS.

    A POST is retried only when it certainly did not reach dbt Cloud (no connection, or 429 which rejects it
    before work). Anything else that went wrong after sending it is ambiguous: the run may have been created.
    """
    if attempt.failure in (AttemptFailure.TLS, AttemptFailure.NO_SUCH_HOST):
        return Verdict.FAIL
    if attempt.failure == AttemptFailure.TOO_LARGE:
        # A huge answer to a POST still means the POST arrived: the run may exist.
        return Verdict.FAIL if idempotent else Verdict.AMBIGUOUS
    if attempt.failure == AttemptFailure.CONNECT or attempt.status == 429:
        return Verdict.RETRY
    if attempt.failure in (AttemptFailure.READ_TIMEOUT, AttemptFailure.CONNECTION_LOST, AttemptFailure.BAD_BODY):
        return Verdict.RETRY if idempotent else Verdict.AMBIGUOUS
    if attempt.status is None:
        return Verdict.RETRY if idempotent else Verdict.AMBIGUOUS
    if 200 <= attempt.status < 300:
        return Verdict.OK
    if attempt.status >= 500:
        return Verdict.RETRY if idempotent else Verdict.AMBIGUOUS
    return Verdict.FAIL


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, honouring Retry-After, bounded by attempts and by the caller's deadline."""

    base: float = 1.0
    factor: float = 2.0
    max_delay: float = 30.0
    max_attempts: int = 8
    jitter: float = 0.25  # ± this fraction of the delay, so many gates do not retry in lockstep

    def delay(self, attempt_number: int, retry_after: float | None, rand: Callable[[], float]) -> float:
        if retry_after is not None and retry_after >= 0:
            return min(retry_after, 300.0)
        raw = min(self.max_delay, self.base * self.factor ** (attempt_number - 1))
        return max(0.0, raw * (1 + self.jitter * (2 * rand() - 1)))


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - (now if now is not None else time.time()))

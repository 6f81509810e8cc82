"""When a request is tried again: the verdict on each kind of attempt, the backoff, Retry-After."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dbtgate.cloud.models import Run
from dbtgate.cloud.retry import Attempt, RetryPolicy, classify, parse_retry_after


def run(status: int, **more: Any) -> Run:
    return Run.from_api({"id": 1, "status": status, "job_definition_id": 2, **more})


# ---- retry policy ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("attempt", "read", "post"), [
    (Attempt(status=200), "ok", "ok"),
    (Attempt(status=503), "retry", "ambiguous"),
    (Attempt(status=502), "retry", "ambiguous"),
    (Attempt(status=500), "retry", "ambiguous"),
    (Attempt(status=429), "retry", "retry"),
    (Attempt(failure="connect"), "retry", "retry"),
    (Attempt(failure="read_timeout"), "retry", "ambiguous"),
    (Attempt(failure="connection_lost"), "retry", "ambiguous"),
    (Attempt(failure="bad_body"), "retry", "ambiguous"),
    (Attempt(failure="tls"), "fail", "fail"),
    (Attempt(status=400), "fail", "fail"),
    (Attempt(status=401), "fail", "fail"),
    (Attempt(status=403), "fail", "fail"),
    (Attempt(status=404), "fail", "fail"),
])
def test_classify(attempt: Attempt, read: str, post: str) -> None:
    assert classify(attempt, idempotent=True) == read
    assert classify(attempt, idempotent=False) == post


@given(st.integers(min_value=1, max_value=50), st.floats(min_value=0, max_value=1))
def test_backoff_is_bounded_and_jittered(attempt: int, rand: float) -> None:
    policy = RetryPolicy()
    delay = policy.delay(attempt, None, lambda: rand)
    nominal = min(policy.max_delay, policy.base * policy.factor ** (attempt - 1))
    assert nominal * (1 - policy.jitter) - 1e-9 <= delay <= nominal * (1 + policy.jitter) + 1e-9


def test_backoff_grows_and_retry_after_wins() -> None:
    policy = RetryPolicy(jitter=0)
    assert [policy.delay(n, None, lambda: 0.5) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    assert policy.delay(1, 42.0, lambda: 0.5) == 42.0
    assert policy.delay(1, 9999.0, lambda: 0.5) == 300.0


def test_retry_after_formats() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None

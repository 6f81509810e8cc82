"""The pure core, without a network or a clock that moves by itself: retry policy, outcome, polling, progress."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dbtgate.cloud.client import Attempt, RetryPolicy, classify, parse_retry_after
from dbtgate.cloud.models import Run, iso_utc, parse_api_duration, parse_api_timestamp
from dbtgate.gate.gate import outcome_of
from dbtgate.outcome import ExitStatus, Outcome, exit_status_for
from dbtgate.watch.progress import ProgressReporter
from dbtgate.watch.schedule import expected_duration


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


# ---- outcome and exit code ------------------------------------------------------------------------------------
def test_only_status_10_is_success() -> None:
    assert outcome_of(run(10)) is Outcome.SUCCESS
    assert outcome_of(run(20)) is Outcome.ERROR
    assert outcome_of(run(30)) is Outcome.CANCELLED
    unknown = run(99, is_complete=True)
    assert unknown.is_terminal and outcome_of(unknown) is Outcome.ERROR
    assert not run(99).is_terminal, "an unknown code is not finished until dbt Cloud says it is complete"
    assert not run(99, is_success=True).succeeded


@pytest.mark.parametrize(("outcome", "strict", "lenient"), [
    (Outcome.SUCCESS, 0, 0), (Outcome.NOT_WAITED, 0, 0), (Outcome.ERROR, 1, 0), (Outcome.CANCELLED, 1, 0),
    (Outcome.TIMEOUT, 1, 0), (Outcome.API_ERROR, 3, 3)])
def test_exit_codes(outcome: Outcome, strict: int, lenient: int) -> None:
    assert exit_status_for(outcome, True) == strict
    assert exit_status_for(outcome, False) == lenient


def test_interrupted_exit_codes() -> None:
    assert exit_status_for(Outcome.INTERRUPTED, True, 15) == 143
    assert exit_status_for(Outcome.INTERRUPTED, False, 2) == 130
    assert ExitStatus.BAD_CONFIG == 2


# ---- models ---------------------------------------------------------------------------------------------------
def test_api_durations_and_timestamps() -> None:
    assert parse_api_duration("00:00:37") == 37 and parse_api_duration("27:01:02") == 97262
    assert parse_api_duration("") is None and parse_api_duration("1 minute") is None
    moment = parse_api_timestamp("2024-05-27 10:42:16.179903+00:00")
    assert iso_utc(moment) == "2024-05-27T10:42:16Z"
    assert iso_utc(parse_api_timestamp("2024-05-27 12:42:16+02:00")) == "2024-05-27T10:42:16Z"
    assert parse_api_timestamp(None) is None and iso_utc(None) == ""


def test_the_sample_run_from_the_wild_parses() -> None:
    import json
    from pathlib import Path

    from tests.conftest import SHARED
    sample = SHARED / "reference" / "sample-run-response.json"
    if not sample.exists():
        pytest.skip("../shared/reference/sample-run-response.json is absent")
    parsed = Run.from_api(json.loads(Path(sample).read_text())["data"])
    assert parsed.id == 1234567 and parsed.succeeded and parsed.duration_seconds == 37
    assert parsed.status_message == "" and parsed.cause == ""


# ---- polling (the policy itself: tests/test_polling.py) ---------------------------------------------------
def test_expected_duration_is_the_median_of_finished_runs() -> None:
    history = [run(10, run_duration="00:10:00"), run(20, run_duration="00:02:00"), run(10, run_duration="00:12:00"),
               run(30, run_duration="00:00:05")]
    assert expected_duration(history) == 600
    assert expected_duration([]) is None


# ---- progress -------------------------------------------------------------------------------------------------
def test_progress_prints_changes_and_heartbeats_not_every_poll() -> None:
    lines: list[str] = []
    reporter = ProgressReporter(lines.append, heartbeat_seconds=120)
    for second in range(0, 100, 10):
        reporter.observe(run(1), second)
    assert len(lines) == 1 and "Queued" in lines[0]
    reporter.observe(run(3, run_steps=[{"index": 3, "name": "Invoke dbt with `dbt build`", "status": 3}]), 100)
    assert "step 3: Invoke dbt with `dbt build`" in lines[-1]
    for second in range(110, 400, 10):
        reporter.observe(run(3, run_steps=[{"index": 3, "name": "x", "status": 3}]), second)
    assert 3 <= len(lines) <= 5, lines
    assert "still Running" in lines[-1]
    reporter.observe(run(1, blocked_by=[5]), 500)
    assert "behind run 5" in lines[-1]


def test_a_blank_href_is_rebuilt_from_the_project() -> None:
    from dbtgate.clock import VirtualClock
    from dbtgate.cloud.client import DbtCloudClient
    client = DbtCloudClient("https://ab123.us1.dbt.com", "t", 7, clock=VirtualClock())
    linked = client._run({"id": 5, "status": 10, "project_id": 3, "href": ""})
    assert linked.href == "https://ab123.us1.dbt.com/deploy/7/projects/3/runs/5/"
    assert client._run({"id": 5, "status": 10, "project_id": 3, "href": "https://x/y"}).href == "https://x/y"

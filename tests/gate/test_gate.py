"""The reliability matrix (tests/fault_matrix.py): outcome, exit code, runs created, cancel, and no token leak."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fault_matrix import CASES, Case, run_case


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_fault_case(case: Case, tmp_path: Path) -> None:
    observed = run_case(case, tmp_path)
    assert (observed.outcome, observed.exit_code) == (case.outcome, case.exit_code), observed.log
    assert observed.runs_created == case.runs_created, "a fault must never create a second run"
    assert observed.cancel_sent == case.cancel_sent
    if case.cancel_sent:
        run_id = observed.emulator.log.cancels()[0]
        assert f"dbtgate cancelled run {run_id}" in observed.summary or "did not confirm" in observed.summary, (
            "the summary says what dbtgate did about the run it cancelled")
    else:
        assert "dbtgate cancelled run" not in observed.summary
    assert not observed.token_leaked
    fired = observed.emulator.faults.fired()
    assert all(count > 0 for count in fired), f"a declared fault was never produced: {case.faults} {fired}"
    if case.exit_code != 0:
        # Every non-zero exit has exactly one headline ::error:: naming the run (when there is one) and its link.
        headlines = [line for line in observed.log.splitlines()
                     if line.startswith("::error title=") and "file=" not in line]
        assert len(headlines) == 1, observed.log
        if observed.outputs.get("run_id"):
            assert observed.outputs["run_id"] in headlines[0] and observed.outputs["run_url"] in headlines[0]


def test_every_fault_kind_is_in_the_matrix() -> None:
    from dbtgate.emulator.scenario import FAULT_KINDS
    used = {fault["kind"] for case in CASES for fault in case.faults}
    assert used == set(FAULT_KINDS)


def test_retry_after_is_honoured(tmp_path: Path) -> None:
    case = next(c for c in CASES if c.name == "poll-429-retry-after")
    observed = run_case(case, tmp_path)
    polls = observed.emulator.log.of("get_run")
    limited = [i for i, entry in enumerate(polls) if entry.status == 429]
    assert limited, "the fault was not produced"
    for index in limited:
        assert polls[index + 1].at - polls[index].at >= 7.0


def test_lost_trigger_is_adopted_not_repeated(tmp_path: Path) -> None:
    case = next(c for c in CASES if c.name == "trigger-response-lost")
    observed = run_case(case, tmp_path)
    assert len(observed.emulator.log.of("trigger")) == 1
    assert observed.emulator.log.of("list_runs"), "dbtgate must look for the run before anything else"
    assert "Adopted" in observed.summary


def test_persistent_poll_failure_ends_with_the_last_error(tmp_path: Path) -> None:
    case = next(c for c in CASES if c.name == "poll-503-forever")
    observed = run_case(case, tmp_path)
    assert "kept failing" in observed.log and "HTTP 503" in observed.log
    assert observed.virtual_seconds < 600, "retries must give up, not loop until the timeout"


def test_midway_401_names_the_host(tmp_path: Path) -> None:
    observed = run_case(next(c for c in CASES if c.name == "poll-401-midway"), tmp_path)
    assert f"dbt Cloud at {observed.emulator.url.split('://')[1]} answered 401" in observed.log


def test_debug_output_shows_requests_without_the_token(tmp_path: Path) -> None:
    observed = run_case(next(c for c in CASES if c.name == "baseline-success"), tmp_path)
    requests_logged = [line for line in observed.log.splitlines() if "dbt Cloud request" in line]
    assert requests_logged, "debug logging is on in the matrix: every exchange must be logged"
    assert all("auth='Token ***'" in line and "Authorization" not in line for line in requests_logged)
    assert not observed.token_leaked


def test_the_client_never_logs_the_token_even_without_dbtgates_log_setup(capsys: object) -> None:
    """A library user gets structlog's default configuration, which prints debug lines and redacts nothing."""
    import structlog

    from dbtgate.clock import VirtualClock
    from dbtgate.cloud.client import DbtCloudClient
    from dbtgate.emulator import Emulator
    from tests.conftest import TOKEN, scenario

    structlog.reset_defaults()
    import dbtgate.logs
    dbtgate.logs._pending = None
    with Emulator(scenario()) as emulator:
        DbtCloudClient(emulator.url, TOKEN, 1, clock=VirtualClock()).get_job(1, deadline=60.0)
    printed = capsys.readouterr()  # type: ignore[attr-defined]
    assert "dbt Cloud request" in printed.out + printed.err, "the debug line must have been printed"
    assert TOKEN not in printed.out + printed.err


def test_the_redactor_scrubs_nested_values_and_headers() -> None:
    from dbtgate.logs import Redactor
    redactor = Redactor(["s3cret"])
    event = redactor(None, "info", {"event": "x s3cret y", "headers": {"Authorization": "Token s3cret"},
                                    "nested": ["s3cret", ("a", "s3cret")], "error": ValueError("bad s3cret"),
                                    "authorization": "Bearer s3cret"})
    assert "s3cret" not in repr(event)
    assert event["headers"]["Authorization"] == "***" and event["authorization"] == "***"

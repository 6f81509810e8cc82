"""Outcome → exit status: the one rule, and that only status 10 is success."""

from __future__ import annotations

from typing import Any

import pytest

from dbtgate.cloud.models import Run
from dbtgate.gate.state import outcome_of
from dbtgate.outcome import ExitStatus, Outcome, exit_status_for


def run(status: int, **more: Any) -> Run:
    return Run.from_api({"id": 1, "status": status, "job_definition_id": 2, **more})


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

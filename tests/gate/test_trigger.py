"""Recover and reuse: rerun from failure, adopt a run in flight, wait on a run started elsewhere (issue 8).

In-process over real HTTP against the emulator, on a virtual clock shared by both.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from dbtgate.clock import VirtualClock
from dbtgate.cloud.models import Job
from dbtgate.emulator import Emulator
from dbtgate.errors import ConfigError
from dbtgate.gate.trigger import with_dbt_fail_fast
from tests.conftest import TOKEN, EmulatorFactory
from tests.fault_matrix import Case, Observed, run_case

JOBS: list[dict[str, Any]] = [
    {"id": 3, "name": "Flaky then fixed", "outcomes": ["error", "success"], "run_seconds": 30},
    {"id": 2, "name": "Always failing", "outcome": "error", "run_seconds": 30},
    {"id": 8, "name": "Not retryable", "outcome": "error", "run_seconds": 30, "retryable": False},
    {"id": 6, "name": "Cancelled elsewhere", "outcome": "cancelled", "run_seconds": 30},
    {"id": 4, "name": "Long backfill", "run_seconds": 3600},
]


def gate(job_id: int, inputs: dict[str, str] | None = None, faults: list[dict[str, Any]] | None = None,
         **expect: Any) -> Observed:
    case = Case("recover", "", faults or [], job_id, expect.get("outcome", "success"), 0, 1, False,
                inputs or {}, jobs=JOBS)
    return run_case(case)


def test_an_error_then_a_successful_rerun() -> None:
    seen = gate(3, {"rerun_attempts": "2"})
    assert (seen.outcome, seen.exit_code) == ("success", 0)
    run_ids = json.loads(seen.outputs["run_ids"])
    assert len(run_ids) == 2 and seen.outputs["attempts"] == "2" and seen.outputs["run_id"] == str(run_ids[-1])
    # The retry of *that* run (runs/{id}/retry/), never jobs/{id}/rerun/, which acts on the job's latest run.
    assert len(seen.emulator.log.of("trigger")) == 1 and len(seen.emulator.log.of("retry")) == 1
    assert seen.emulator.log.of("rerun") == []
    assert seen.emulator.log.of("retry")[0].path.endswith(f"/runs/{run_ids[0]}/retry/")
    assert "### Attempts (2)" in seen.summary
    for run_id in run_ids:
        assert f"[{run_id}](" in seen.summary


def test_an_error_that_stays_an_error_through_every_attempt() -> None:
    seen = gate(2, {"rerun_attempts": "2"})
    assert (seen.outcome, seen.exit_code) == ("error", 1)
    assert seen.outputs["attempts"] == "3" and len(seen.emulator.log.of("retry")) == 2


def test_no_rerun_without_rerun_attempts() -> None:
    seen = gate(3)
    assert seen.outcome == "error" and seen.emulator.log.of("retry") == []


def test_a_run_that_cannot_be_retried_is_not() -> None:
    seen = gate(8, {"rerun_attempts": "3"})
    assert seen.outcome == "error" and seen.emulator.log.of("retry") == []
    assert "RETRY\\_UNSUPPORTED\\_CMD" in seen.summary


def test_a_cancelled_run_is_not_retried() -> None:
    seen = gate(6, {"rerun_attempts": "3"})
    assert seen.outcome == "cancelled" and seen.emulator.log.of("retry") == []


def test_a_lost_rerun_answer_is_adopted_not_repeated() -> None:
    seen = gate(3, {"rerun_attempts": "1"}, faults=[{"kind": "lose_trigger_response", "endpoint": "retry"}])
    assert seen.outcome == "success"
    assert len(seen.emulator.log.of("retry")) == 1 and len(seen.emulator.world.run_ids()) == 2


def _start_run(emulator: Emulator, job_id: int, **body: Any) -> int:
    response = requests.post(f"{emulator.url}/api/v2/accounts/1/jobs/{job_id}/run/", json={"cause": "elsewhere",
                             **body}, headers={"Authorization": f"Token {TOKEN}"}, timeout=5)
    run_id: int = response.json()["data"]["id"]
    return run_id


def _gate_on(emulator: Emulator, clock: VirtualClock, inputs: dict[str, str]) -> Observed:
    from tests.fault_matrix import run_gate
    return run_gate(emulator, clock, inputs)


def test_a_matching_run_in_flight_is_reused(emulator_factory: EmulatorFactory) -> None:
    clock = VirtualClock()
    emulator = emulator_factory(jobs=JOBS, clock=clock)
    existing = _start_run(emulator, 4, git_sha="abc1234")
    seen = _gate_on(emulator, clock, {"dbt_cloud_job_id": "4", "reuse_existing_run": "true", "git_sha": "abc1234"})
    assert seen.outcome == "success" and seen.outputs["run_id"] == str(existing)
    assert len(emulator.log.of("trigger")) == 1, "no second run"
    assert "Reused" in seen.summary and f"Run {existing} was already" in seen.summary


def test_a_non_matching_run_in_flight_is_not_reused(emulator_factory: EmulatorFactory) -> None:
    clock = VirtualClock()
    emulator = emulator_factory(jobs=JOBS, clock=clock)
    existing = _start_run(emulator, 4, git_sha="abc1234")
    seen = _gate_on(emulator, clock, {"dbt_cloud_job_id": "4", "reuse_existing_run": "true", "git_sha": "fff9999",
                                      "timeout": "5h"})
    assert seen.outputs["run_id"] != str(existing)
    assert len(emulator.log.of("trigger")) == 2
    assert f"Run {existing} of job 4 is not reused: git_sha is 'abc1234', this gate wants 'fff9999'" in seen.log


def test_waiting_on_an_existing_run_that_succeeds_or_fails(emulator_factory: EmulatorFactory) -> None:
    clock = VirtualClock()
    emulator = emulator_factory(jobs=JOBS, clock=clock)
    good, bad = _start_run(emulator, 4), _start_run(emulator, 2)
    ok = _gate_on(emulator, clock, {"run_id": str(good), "timeout": "5h"})
    assert (ok.outcome, ok.exit_code, ok.outputs["run_id"]) == ("success", 0, str(good))
    failed = _gate_on(emulator, clock, {"run_id": str(bad)})
    assert (failed.outcome, failed.exit_code) == ("error", 1)
    assert len(emulator.log.of("trigger")) == 2, "waiting triggers nothing"


def test_a_given_run_id_that_404s_in_its_first_seconds_is_waited_on(emulator_factory: EmulatorFactory) -> None:
    # The id from a trigger seconds ago (wait_for_job: false in an earlier step) can 404 for a few reads.
    clock = VirtualClock()
    emulator = emulator_factory(jobs=JOBS, clock=clock, faults=[{"kind": "not_found_new_run", "polls": 2}])
    fresh = _start_run(emulator, 4)
    seen = _gate_on(emulator, clock, {"run_id": str(fresh), "timeout": "5h"})
    assert (seen.outcome, seen.exit_code, seen.outputs["run_id"]) == ("success", 0, str(fresh)), seen.summary
    assert len(emulator.log.of("trigger")) == 1


def test_a_triggered_run_that_404s_until_the_timeout_is_a_timeout_not_a_wrong_id(
        emulator_factory: EmulatorFactory) -> None:
    # Only a run id the user gave is called wrong when it never appears; this gate's own new run is a timeout.
    clock = VirtualClock()
    emulator = emulator_factory(jobs=JOBS, clock=clock, faults=[{"kind": "not_found_new_run", "polls": 50}])
    seen = _gate_on(emulator, clock, {"dbt_cloud_job_id": "4", "timeout": "10s"})
    assert (seen.outcome, seen.exit_code) == ("timeout", 1), seen.summary
    assert "run\\_id" not in seen.summary


def test_waiting_on_an_existing_run_past_the_timeout_does_not_cancel_it(emulator_factory: EmulatorFactory) -> None:
    clock = VirtualClock()
    emulator = emulator_factory(jobs=JOBS, clock=clock)
    running = _start_run(emulator, 4)
    seen = _gate_on(emulator, clock, {"run_id": str(running), "timeout": "10m"})
    assert (seen.outcome, seen.exit_code) == ("timeout", 1)
    assert emulator.log.cancels() == []
    assert "not triggered by this gate" in seen.summary
    cancelling = _gate_on(emulator, clock, {"run_id": str(running), "timeout": "10m", "cancel_on_timeout": "true"})
    assert cancelling.outcome == "timeout" and emulator.log.cancels() == [running]


def test_dbts_fail_fast_goes_on_each_command_that_runs_nodes_once() -> None:
    job = Job(id=5, name="nightly")
    assert with_dbt_fail_fast(["dbt deps", "dbt source freshness", "dbt --debug build --select +orders", "dbt test -x",
                               "dbt run-operation grant", "dbt docs generate", "dbt snapshot"], job) == (
        "dbt deps", "dbt source freshness", "dbt --debug build --select +orders --fail-fast", "dbt test -x",
        "dbt run-operation grant", "dbt docs generate", "dbt snapshot --fail-fast")
    with pytest.raises(ConfigError) as caught:
        with_dbt_fail_fast(["dbt deps", "dbt docs generate"], job)
    assert "job 5" in str(caught.value) and "'dbt docs generate'" in str(caught.value)
    with pytest.raises(ConfigError):
        with_dbt_fail_fast([], job)


def test_dbts_fail_fast_finds_the_command_behind_global_options_with_values() -> None:
    job = Job(id=5, name="nightly")
    assert with_dbt_fail_fast(["dbt --target prod build", "dbt --log-format json run --select x",
                               "dbt --log-level debug source freshness"], job) == (
        "dbt --target prod build --fail-fast", "dbt --log-format json run --select x --fail-fast",
        "dbt --log-level debug source freshness")
    with pytest.raises(ConfigError) as caught:
        with_dbt_fail_fast(["dbt docs generate"], job, overridden=True)
    assert "steps_override has none" in str(caught.value) and "job 5" not in str(caught.value)

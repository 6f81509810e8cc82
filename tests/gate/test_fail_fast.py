"""Decide at the first failure (issue 14 §1): fail_fast cancels the dbt run at its first failed node and fails now.

In-process over real HTTP against the emulator's real-shaped runs, on a virtual clock shared by both.
"""

from __future__ import annotations

import json
import re
from typing import Any

from dbtgate.clock import VirtualClock
from dbtgate.emulator import Emulator
from tests.conftest import scenario
from tests.fault_matrix import Observed, run_gate

BIG: dict[str, Any] = {"project": {"models": 60, "seed": 3, "threads": 4}, "duration": 1800, "run_seconds": 1800}
JOBS: list[dict[str, Any]] = [
    {"id": 20, "name": "Big build, model fails early", "outcome": "error",
     "failure": {"at": 0.2, "node_type": "model"}, **BIG},
    {"id": 21, "name": "Big build, test fails early", "outcome": "error",
     "failure": {"at": 0.2, "node_type": "test"}, **BIG},
    {"id": 22, "name": "Big build that passes", "outcome": "success", **BIG},
    {"id": 23, "name": "Only docs", "execute_steps": ["dbt deps", "dbt docs generate"], **BIG},
    {"id": 24, "name": "Big build, fails once", "outcomes": ["error", "success"],
     "failure": {"at": 0.2, "node_type": "model"}, **BIG},
    {"id": 7, "name": "Warnings", "run_seconds": 30,
     "warnings": [{"node": "unique_customers_customer_id", "message": "Got 2 results, configured to warn if != 0"}]},
]


def gate(inputs: dict[str, str], faults: list[dict[str, Any]] | None = None, before: Any = None) -> Observed:
    clock = VirtualClock()
    with Emulator(scenario(faults, JOBS), clock=clock) as emulator:
        if before is not None:
            inputs = {**inputs, **before(emulator)}
        return run_gate(emulator, clock, {"interval": "60", **inputs})


def test_fail_fast_cancels_at_the_first_failed_model_and_fails_now() -> None:
    seen = gate({"dbt_cloud_job_id": "20", "fail_fast": "true"})
    run_id = int(seen.outputs["run_id"])
    assert (seen.outcome, seen.exit_code) == ("error", 1)
    assert seen.emulator.log.cancels() == [run_id]
    assert "(fail\\_fast)" in seen.summary.splitlines()[2], "the failing node and fail_fast in the headline"
    assert "cancelled run" in seen.summary and "because of fail\\_fast" in seen.summary
    failed = json.loads(seen.outputs["failed_nodes"])
    assert len(failed) >= 1 and "ERROR" not in failed[0]
    # One annotation per failed node and one headline; skips caused by the failure are not failures.
    node_annotations = [line for line in seen.log.splitlines()
                        if line.startswith("::error title=dbt ") and not line.startswith("::error title=dbt Cloud")]
    assert len(node_annotations) == len(failed)
    assert "failed at" in seen.summary


def test_fail_fast_on_a_failing_test_stops_early_too() -> None:
    without = gate({"dbt_cloud_job_id": "21"})
    with_it = gate({"dbt_cloud_job_id": "21", "fail_fast": "true"})
    assert without.outcome == with_it.outcome == "error"
    assert with_it.virtual_seconds < without.virtual_seconds / 2, (with_it.virtual_seconds,
                                                                     without.virtual_seconds)


def test_without_fail_fast_the_failure_is_logged_as_it_happens_and_the_gate_waits_for_the_end() -> None:
    seen = gate({"dbt_cloud_job_id": "20"})
    assert (seen.outcome, seen.exit_code) == ("error", 1) and seen.emulator.log.cancels() == []
    lines = seen.log.splitlines()
    first_logged = next(i for i, line in enumerate(lines) if re.search(r"Run \d+: model \S+ errored", line))
    ended = next(i for i, line in enumerate(lines) if re.search(r"Run \d+: Error \(after", line))
    assert first_logged < ended, "the failed node was reported before the run ended"


def test_a_warning_is_not_a_failure() -> None:
    seen = gate({"dbt_cloud_job_id": "7", "fail_fast": "true"})
    assert (seen.outcome, seen.exit_code) == ("success", 0) and seen.emulator.log.cancels() == []


def test_a_passing_run_is_untouched_by_fail_fast() -> None:
    seen = gate({"dbt_cloud_job_id": "22", "fail_fast": "true"})
    assert (seen.outcome, seen.exit_code) == ("success", 0) and seen.emulator.log.cancels() == []


def test_a_fail_fast_cancel_is_not_retried() -> None:
    seen = gate({"dbt_cloud_job_id": "20", "fail_fast": "true", "rerun_attempts": "2"})
    assert seen.outcome == "error"
    assert seen.emulator.log.of("retry") == [] and seen.emulator.log.of("rerun") == []
    assert seen.outputs["attempts"] == "1"


def test_fail_fast_on_a_run_it_did_not_trigger_cancels_only_with_consent() -> None:
    def start(emulator: Emulator) -> dict[str, str]:
        import requests
        reply = requests.post(f"{emulator.url}/api/v2/accounts/1/jobs/20/run/", json={"cause": "elsewhere"},
                              headers={"Authorization": f"Token {emulator.token}"}, timeout=10)
        return {"run_id": str(reply.json()["data"]["id"])}
    seen = gate({"fail_fast": "true"}, before=start)
    assert (seen.outcome, seen.exit_code) == ("error", 1)
    assert seen.emulator.log.cancels() == [], "a run this gate did not trigger is not cancelled without consent"
    assert "left running" in seen.summary
    consented = gate({"fail_fast": "true", "cancel_on_timeout": "true"}, before=start)
    assert consented.emulator.log.cancels() == [int(consented.outputs["run_id"])]


def test_fail_fast_with_a_cancel_that_never_answers_still_reports() -> None:
    seen = gate({"dbt_cloud_job_id": "20", "fail_fast": "true", "api_timeout": "1"},
                faults=[{"kind": "slow", "endpoint": "cancel", "delay": 2.0, "count": 0}])
    assert (seen.outcome, seen.exit_code) == ("error", 1)
    assert seen.outputs["run_id"] and "did not confirm" in seen.summary


def test_a_dbt_cloud_that_refuses_the_step_endpoint_is_followed_through_the_run() -> None:
    """GET steps/{id}/ answered 404 must not end the watch of a run that goes on (review of issue 22): fail_fast
    falls back to the run's own logs and still stops at the first failed node."""
    seen = gate({"dbt_cloud_job_id": "20", "fail_fast": "true"},
                faults=[{"kind": "http_error", "endpoint": "get_step", "status": 404, "count": 0}])
    assert (seen.outcome, seen.exit_code) == ("error", 1), seen.summary
    assert "(fail\\_fast)" in seen.summary and seen.emulator.log.cancels() == [int(seen.outputs["run_id"])]


def test_a_refusal_while_watching_never_leaves_this_gate_s_run_burning_unobserved() -> None:
    """A 403 in the middle of the wait ends the gate (dbt Cloud refused it), but the run it started is cancelled
    (or the summary says it was left running and how to find it), as after an outage."""
    seen = gate({"dbt_cloud_job_id": "22"},
                faults=[{"kind": "http_error", "endpoint": "get_run", "status": 403, "after": 3, "count": 0}])
    assert seen.exit_code in (2, 3) and seen.outcome in ("api_error", "config_error")
    run_id = int(seen.outputs["run_id"])
    assert seen.emulator.log.cancels() == [run_id] or "left running" in seen.summary


# ---- fail_fast: dbt — dbt's own --fail-fast, added through steps_override ---------------------------------------
def test_fail_fast_dbt_triggers_with_dbts_flag_and_dbt_stops_the_run_itself() -> None:
    without = gate({"dbt_cloud_job_id": "20"})
    seen = gate({"dbt_cloud_job_id": "20", "fail_fast": "dbt"})
    assert (seen.outcome, seen.exit_code) == ("error", 1), seen.summary
    [trigger] = seen.emulator.log.of("trigger")
    assert trigger.body["steps_override"] == ["dbt build --fail-fast"]
    assert seen.emulator.log.cancels() == [], "dbt stopped itself: nothing to cancel"
    assert seen.virtual_seconds < without.virtual_seconds / 2, (seen.virtual_seconds, without.virtual_seconds)
    # The failed model is reported from the run's results, as any failed run; the summary says how it was run.
    assert json.loads(seen.outputs["failed_nodes"]) == json.loads(without.outputs["failed_nodes"])
    assert "dbt build --fail-fast" in seen.summary and "fail\\_fast: dbt" in seen.summary


def test_fail_fast_dbt_reads_the_status_alone_while_the_run_goes() -> None:
    """No step log while waiting (the bytes fail_fast: true spends): the run object at fail_fast's pace, logs once at
    the end for the summary."""
    seen = gate({"dbt_cloud_job_id": "22", "fail_fast": "dbt"})
    assert (seen.outcome, seen.exit_code) == ("success", 0), seen.summary
    assert seen.emulator.log.of("get_step") == []
    reads = [e for e in seen.emulator.log.of("get_run") if e.run_id == int(seen.outputs["run_id"])]
    with_logs = [e for e in reads if "run_steps" in "".join(e.query.get("include_related", []))]
    assert len(with_logs) <= 2 < len(reads), (len(with_logs), len(reads))
    assert seen.emulator.log.of("trigger")[0].body["steps_override"] == ["dbt build --fail-fast"]


def test_fail_fast_dbt_on_a_job_with_nothing_to_stop_is_bad_input_before_any_trigger() -> None:
    seen = gate({"dbt_cloud_job_id": "23", "fail_fast": "dbt"})
    assert (seen.outcome, seen.exit_code) == ("config_error", 2)
    assert seen.emulator.log.of("trigger") == []
    assert "fail\\_fast" in seen.summary and "dbt deps" in seen.summary


def test_fail_fast_dbt_keeps_the_users_steps_override() -> None:
    seen = gate({"dbt_cloud_job_id": "22", "fail_fast": "dbt",
                 "steps_override": "dbt seed\ndbt run-operation grant\ndbt build -x --select tag:daily"})
    assert seen.emulator.log.of("trigger")[0].body["steps_override"] == [
        "dbt seed --fail-fast", "dbt run-operation grant", "dbt build -x --select tag:daily"]


def test_fail_fast_dbt_then_a_retry_runs_every_node_dbt_did_not_run() -> None:
    """dbt reports the nodes --fail-fast never started as skipped, so the retry from the point of failure runs them
    too: a green after the retry means the whole selection was built, not only the failed node."""
    plain = gate({"dbt_cloud_job_id": "24", "rerun_attempts": "1"})
    seen = gate({"dbt_cloud_job_id": "24", "fail_fast": "dbt", "rerun_attempts": "1"})
    assert (seen.outcome, seen.exit_code, seen.outputs["attempts"]) == ("success", 0, "2"), seen.summary
    [first, retry] = json.loads(seen.outputs["run_ids"])
    world = seen.emulator.world
    stopped = world.run_json(first, frozenset({"run_steps"}))
    assert "--fail-fast" in " ".join(step["name"] for step in stopped["run_steps"])
    retried = {r.unique_id for step in world._runs[retry].steps for r in step.results}
    plain_retried = {r.unique_id for step in plain.emulator.world._runs[json.loads(plain.outputs["run_ids"])[1]].steps
                     for r in step.results}
    assert len(retried) > 3 * len(plain_retried) > 0, (len(retried), len(plain_retried))

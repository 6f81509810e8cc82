"""The gate on the dbt platform as users run it (issue 20): Fusion runs, and a docs step after the build.

In-process over real HTTP against the emulator, on a virtual clock shared by both.
"""

from __future__ import annotations

import json
from typing import Any

from dbtgate.clock import VirtualClock
from dbtgate.emulator import Emulator
from tests.conftest import scenario
from tests.fault_matrix import Observed, run_gate

BUILD: dict[str, Any] = {"project": {"models": 40, "seed": 5, "threads": 4}, "duration": 900, "run_seconds": 900}
FUSION_MODEL = {"id": 30, "name": "Fusion build, model fails", "dbt_version": "latest-fusion", "outcome": "error",
                "failure": {"at": 0.3, "node_type": "model"}, **BUILD}
FUSION_TEST = {"id": 31, "name": "Fusion build, test fails", "dbt_version": "latest-fusion", "outcome": "error",
               "failure": {"at": 0.3, "node_type": "test"}, **BUILD}
FUSION_OK = {"id": 32, "name": "Fusion build that passes", "dbt_version": "latest-fusion", "outcome": "success",
             **BUILD}
DOCS_AFTER = {"id": 33, "name": "Build with docs, test fails", "outcome": "error", "generate_docs": True,
              "failure": {"at": 0.5, "node_type": "test"}, **BUILD}
DOCS_STEP = {"id": 34, "name": "Build then docs generate, model fails", "outcome": "error",
             "execute_steps": ["dbt build", "dbt docs generate"], "failure": {"at": 0.5, "node_type": "model"},
             **BUILD}
WARNED_DOCS = {"id": 35, "name": "Build with a warning, then docs", "outcome": "success", "generate_docs": True,
               "warnings": [{"node": "unique_customers_customer_id",
                             "message": "Got 2 results, configured to warn if != 0"}], "run_seconds": 120}
JOBS = [FUSION_MODEL, FUSION_TEST, FUSION_OK, DOCS_AFTER, DOCS_STEP, WARNED_DOCS]


def gate(inputs: dict[str, str]) -> Observed:
    clock = VirtualClock()
    with Emulator(scenario(None, JOBS), clock=clock) as emulator:
        return run_gate(emulator, clock, {"interval": "60", **inputs})


def failed_rows(seen: Observed) -> list[str]:
    """The summary's failed-node table rows."""
    lines = seen.summary.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("### Failed nodes"))
    return [line for line in lines[start + 3:] if line.startswith("| ")]


def test_a_failing_fusion_run_reports_its_failed_model_with_dbt_s_message() -> None:
    seen = gate({"dbt_cloud_job_id": "30"})
    assert (seen.outcome, seen.exit_code) == ("error", 1)
    failed = json.loads(seen.outputs["failed_nodes"])
    assert failed and all(node.startswith("model.") for node in failed[:1]), failed
    rows = failed_rows(seen)
    assert rows and all("| — |" not in row for row in rows), "every failed node has a message, never an empty cell"
    assert "Database Error" in rows[0] or "error" in rows[0].lower()


def test_fail_fast_works_on_fusion_runs_as_on_dbt_core_runs() -> None:
    for job in ("30", "31"):
        without = gate({"dbt_cloud_job_id": job})
        fast = gate({"dbt_cloud_job_id": job, "fail_fast": "true"})
        assert fast.outcome == "error" and fast.emulator.log.cancels() == [int(fast.outputs["run_id"])]
        assert "(fail\\_fast)" in fast.summary
        # Decided while the run was still going (it was cancelled), before the run's own end.
        assert fast.virtual_seconds < without.virtual_seconds, (job, fast.virtual_seconds, without.virtual_seconds)
        assert "log format is unknown" not in fast.log


def test_a_fusion_run_s_failed_node_is_reported_live() -> None:
    seen = gate({"dbt_cloud_job_id": "30", "interval": "10"})
    live = [line for line in seen.log.splitlines() if " errored" in line and "Run 7" in line]
    assert live and "model " in live[0], seen.log


def test_a_passing_fusion_run_passes_without_a_format_warning() -> None:
    seen = gate({"dbt_cloud_job_id": "32"})
    assert (seen.outcome, seen.exit_code) == ("success", 0)
    assert "log format is unknown" not in seen.log


def test_generate_docs_on_run_does_not_hide_a_failed_test() -> None:
    """The last step of such a run is `dbt docs generate`, whose run_results.json lists every node as success:
    the failed node comes from the build step (dbt-core #3171, #4448)."""
    seen = gate({"dbt_cloud_job_id": "33"})
    assert (seen.outcome, seen.exit_code) == ("error", 1)
    failed = json.loads(seen.outputs["failed_nodes"])
    assert failed and failed[0].startswith("test."), failed
    saved = json.loads((seen.workdir / "target" / "run_results.json").read_text())
    assert saved["args"]["which"] == "build", "the saved run_results.json is the build step's"


def test_generate_docs_on_run_does_not_hide_a_warning_of_a_successful_run() -> None:
    """A run that succeeds runs its docs step last: its run_results.json (every node `success`) must not be the
    one the warnings are read from, nor the one saved for later steps."""
    seen = gate({"dbt_cloud_job_id": "35"})
    assert (seen.outcome, seen.exit_code) == ("success", 0)
    assert "### Warnings (1)" in seen.summary and "unique\\_customers\\_customer\\_id" in seen.summary
    saved = json.loads((seen.workdir / "target" / "run_results.json").read_text())
    assert saved["args"]["which"] == "build"


def test_a_docs_generate_step_after_the_build_does_not_hide_a_failed_model() -> None:
    seen = gate({"dbt_cloud_job_id": "34"})
    assert (seen.outcome, seen.exit_code) == ("error", 1)
    failed = json.loads(seen.outputs["failed_nodes"])
    assert failed and failed[0].startswith("model."), failed

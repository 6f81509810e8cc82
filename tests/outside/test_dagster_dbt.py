"""dagster-dbt's dbt Cloud clients (PyPI: dagster-dbt) against the emulator over HTTPS, through trigger → wait →
artifacts → cancel: the current one (`dagster_dbt.cloud_v2`: the `DbtCloudWorkspace` resource, its
`DbtCloudWorkspaceClient`, and the `DbtCloudJobRunHandler` its `cli()` runs, which turns run_results.json and
manifest.json into Dagster asset events) and the legacy `DbtCloudClient` behind `dagster_dbt.cloud`'s
`DbtCloudClientResource` / `dbt_cloud_resource`.

Neither has a retry: no method calls `POST jobs/{id}/rerun/` or `POST runs/{id}/retry/` (a failed run is a
`Failure`, and a Dagster retry triggers a fresh run). Both take the full access URL, so they reach the emulator's
https://localhost:PORT unpatched; requests trusts its certificate through REQUESTS_CA_BUNDLE.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import TOKEN
from tests.outside.conftest import ENDLESS, INSTALL

cloud_v2 = pytest.importorskip("dagster_dbt.cloud_v2.resources", reason=f"dagster-dbt is not installed; {INSTALL}")
run_handler = pytest.importorskip("dagster_dbt.cloud_v2.run_handler", reason=INSTALL)
legacy = pytest.importorskip("dagster_dbt.cloud.resources", reason=INSTALL)
dagster = pytest.importorskip("dagster", reason=INSTALL)

# dagster marks the legacy client's output type as beta; that is dagster's notice, not a failure here.
pytestmark = pytest.mark.filterwarnings("ignore::dagster.BetaWarning")

@pytest.fixture
def emulator(tls_emulator: Any) -> Any:
    return tls_emulator


@pytest.fixture
def client(emulator: Any) -> Any:
    workspace = cloud_v2.DbtCloudWorkspace(
        credentials=cloud_v2.DbtCloudCredentials(account_id=1, access_url=emulator.url, token=TOKEN),
        project_id=1, environment_id=1, request_max_retries=0)
    return workspace.get_client()


@pytest.mark.parametrize(("job_id", "materialized", "failed_checks"), [(1, 8, set()), (3, 7, {
    "not_null_orders_order_id", "accepted_values_orders_status__placed__shipped__completed__return_pending__returned",
    "relationships_orders_customer_id__customer_id__ref_customers_"})])
def test_v2_run_handler_triggers_waits_and_turns_the_artifacts_into_asset_events(
        client: Any, emulator: Any, job_id: int, materialized: int, failed_checks: set[str]) -> None:
    handler = run_handler.DbtCloudJobRunHandler.run(job_id=job_id, args=["build"], client=client)
    [trigger] = emulator.log.of("trigger")
    assert trigger.body == {"steps_override": ["dbt build"], "cause": "Triggered by dagster."}
    run = handler.wait(timeout=60)
    assert run.id == handler.run_id and int(run.status) == (10 if job_id == 1 else 20)
    assert emulator.log.polls(run.id) >= 1
    paths = handler.list_run_artifacts()
    assert "run_results.json" in paths and "manifest.json" in paths
    # What DbtCloudWorkspace.cli() does with a finished run: run_results.json (its metadata.env.DBT_CLOUD_RUN_ID,
    # each node's timing) read against manifest.json's nodes, one Dagster event per model, seed and test.
    results = run_handler.DbtCloudJobRunResults.from_run_results_json(handler.get_run_results())
    assert results.run_id == run.id
    events = list(results.to_default_asset_events(client=client, manifest=handler.get_manifest()))
    assert sum(isinstance(event, dagster.AssetMaterialization) for event in events) == materialized
    checks = [event for event in events if isinstance(event, dagster.AssetCheckEvaluation)]
    assert len(checks) == 6 and {check.check_name for check in checks if not check.passed} == failed_checks
    assert "dbt build" in handler.get_run_logs()
    assert emulator.log.crashes == []


def test_v2_client_cancels_a_long_run(client: Any, emulator: Any) -> None:
    run = client.trigger_job_run(ENDLESS["id"])
    assert run["status"] in (1, 2, 3)
    assert client.cancel_run(run["id"])["status"] == 30
    assert emulator.log.cancels() == [run["id"]]
    assert client.poll_run(run["id"], poll_interval=0.01, poll_timeout=30)["status_humanized"] == "Cancelled"
    assert client.get_account_details()["id"] == 1
    assert emulator.log.crashes == []


def test_legacy_client_runs_polls_fetches_run_results_and_cancels(emulator: Any) -> None:
    """`run_job_and_poll` (trigger, poll `status_humanized`, fetch run_results.json), `cancel_run`, `get_runs`;
    the legacy client sends `Authorization: Bearer`."""
    client = legacy.DbtCloudResource(auth_token=TOKEN, account_id=1, dbt_cloud_host=f"{emulator.url}/",
                                     request_max_retries=0)
    output = client.run_job_and_poll(1, poll_interval=0.01, poll_timeout=60)
    assert output.run_details["status_humanized"] == "Success" and output.run_details["run_steps"]
    assert len(output.result["results"]) == 14
    assert client.list_run_artifacts(output.run_details["id"])[:2] == ["manifest.json", "run_results.json"]
    assert client.get_manifest(output.run_details["id"])["nodes"]

    run = client.run_job(ENDLESS["id"])
    client.cancel_run(run["id"])
    assert client.get_run(run["id"])["status_humanized"] == "Cancelled"
    assert [listed["id"] for listed in client.get_runs(job_id=ENDLESS["id"])] == [run["id"]]
    with pytest.raises(dagster.Failure, match="failed"):
        client.run_job_and_poll(2, poll_interval=0.01, poll_timeout=60)
    assert {entry.auth_scheme for entry in emulator.log.all()} == {"Bearer"}
    assert emulator.log.crashes == []

"""The Airflow provider for dbt Cloud (PyPI: apache-airflow-providers-dbt-cloud) against the emulator over HTTPS:
its `DbtCloudHook` through trigger → wait → artifacts → cancel → retry, its deferrable trigger (aiohttp, not
requests) waiting for the cancel, and its `DbtCloudRunJobOperator` retrying a failed run from the point of failure
the way Airflow retries a task (try 2 calls `jobs/{id}/rerun/`).

The connection is an `AIRFLOW_CONN_<ID>` variable in Airflow's JSON form. The hook builds every URL as
`https://{conn.host}/api/...` and ignores `conn.port` (a hidden field for this connection type), so the URI form
(`dbt-cloud://1:token@127.0.0.1:PORT`) would lose the port; in the JSON form `host` is "127.0.0.1:PORT" verbatim,
and the hook reaches the emulator without any patching. The emulator runs with TLS and requests trusts its CA
through REQUESTS_CA_BUNDLE. The hook's async path (the deferrable trigger's polls) uses aiohttp, which builds its
default SSL context once, when it is imported, from the CA paths in force then; each emulator makes a certificate
of its own, so no environment variable set by a fixture reaches that context. The test patches the one thing: the
`aiohttp.ClientSession` the hook opens gets a connector that trusts the emulator's certificate (a deployment
trusts dbt Cloud's public CA and needs nothing of the kind).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TOKEN
from tests.outside.conftest import ENDLESS, INSTALL

dbt_hooks = pytest.importorskip("airflow.providers.dbt.cloud.hooks.dbt",
                                reason=f"apache-airflow-providers-dbt-cloud is not installed; {INSTALL}")
dbt_operators = pytest.importorskip("airflow.providers.dbt.cloud.operators.dbt", reason=INSTALL)
dbt_triggers = pytest.importorskip("airflow.providers.dbt.cloud.triggers.dbt", reason=INSTALL)
aiohttp = pytest.importorskip("aiohttp", reason=INSTALL)    # the provider's own dependency
DbtCloudHook = dbt_hooks.DbtCloudHook
DbtCloudJobRunException = dbt_hooks.DbtCloudJobRunException

# The provider's own call into Airflow's provider registry, not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:ProvidersManager.hooks is deprecated")

CONN_ID = "dbt_cloud_emulator"


@pytest.fixture
def emulator(tls_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    emulator = tls_emulator
    context = ssl.create_default_context(cafile=str(emulator.ca_file))
    session = aiohttp.ClientSession

    def trusting_session(*args: Any, **kwargs: Any) -> Any:
        return session(*args, connector=aiohttp.TCPConnector(ssl=context), **kwargs)

    monkeypatch.setattr(dbt_hooks.aiohttp, "ClientSession", trusting_session)
    connection = {"conn_type": "dbt_cloud", "host": emulator.url.removeprefix("https://"), "login": "1",
                  "password": TOKEN}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(connection))
    return emulator


@pytest.fixture
def hook(emulator: Any) -> Any:
    return DbtCloudHook(CONN_ID)


class TaskInstance:
    """What an operator's `execute` reads of `context["ti"]` when no Airflow task runner is around."""

    def __init__(self, try_number: int) -> None:
        self.try_number, self.xcom = try_number, {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def test_hook_triggers_waits_and_fetches_the_artifacts(hook: Any, emulator: Any) -> None:
    run = hook.trigger_job_run(job_id=1, cause="Airflow").json()["data"]
    assert emulator.log.of("trigger")[0].body["cause"] == "Airflow"
    assert hook.wait_for_job_run_status(run["id"], check_interval=0, timeout=60) is True
    assert emulator.log.polls(run["id"]) >= 1
    # Annotated as a list of responses, list_job_run_artifacts returns one response.
    paths = hook.list_job_run_artifacts(run["id"]).json()["data"]
    assert "run_results.json" in paths and "manifest.json" in paths
    results = hook.get_job_run_artifact(run["id"], "run_results.json").json()
    assert results["results"] and {r["status"] for r in results["results"]} <= {"success", "pass"}
    both = asyncio.run(hook.get_job_run_artifacts_concurrently(run["id"], ["run_results.json", "manifest.json"]))
    assert both["run_results.json"] == results and "nodes" in both["manifest.json"]
    assert emulator.log.crashes == []


def test_hook_cancels_a_long_run_and_the_deferrable_trigger_sees_it(hook: Any, emulator: Any) -> None:
    run = hook.trigger_job_run(job_id=ENDLESS["id"], cause="Airflow, to cancel").json()["data"]
    assert hook.get_job_run_status(run["id"]) in (1, 2, 3)
    hook.cancel_job_run(run["id"])
    assert emulator.log.cancels() == [run["id"]]
    assert hook.wait_for_job_run_status(run["id"], expected_statuses=30, check_interval=0, timeout=60) is True
    trigger = dbt_triggers.DbtCloudRunJobTrigger(conn_id=CONN_ID, run_id=run["id"], end_time=time.time() + 60,
                                                 poll_interval=0, account_id=None)

    async def first_event() -> Any:
        return await anext(trigger.run())

    event = asyncio.run(first_event())
    assert event.payload["status"] == "cancelled" and event.payload["run_id"] == run["id"]
    assert emulator.log.crashes == []


def test_hook_retries_a_failed_run_from_the_point_of_failure(hook: Any, emulator: Any) -> None:
    failed = hook.trigger_job_run(job_id=3, cause="Airflow").json()["data"]
    with pytest.raises(DbtCloudJobRunException, match="terminal status ERROR"):
        hook.wait_for_job_run_status(failed["id"], check_interval=0, timeout=60)
    # retry_from_failure: the hook lists the job's latest run (order_by=-created_at, limit=1), sees it failed and
    # calls retry_failed_job_run, i.e. POST jobs/3/rerun/.
    retried = hook.trigger_job_run(job_id=3, cause="ignored on a retry", retry_from_failure=True).json()["data"]
    assert retried["retrying_run_id"] == failed["id"] and retried["trigger"]["cause_category"] == "rerun"
    assert [entry.run_id for entry in emulator.log.of("rerun")] == [retried["id"]]
    [listing] = emulator.log.of("list_runs")
    assert listing.query["order_by"] == ["-created_at"] and listing.query["job_definition_id"] == ["3"]
    assert hook.wait_for_job_run_status(retried["id"], check_interval=0, timeout=60) is True
    pages = hook.list_job_runs(job_definition_id=3, order_by="-id")
    runs = [run["id"] for page in pages for run in page.json()["data"]]
    assert runs == [retried["id"], failed["id"]]
    assert emulator.log.crashes == []


def test_operator_retries_the_task_from_the_point_of_failure(emulator: Any, tmp_path: Path) -> None:
    """DbtCloudRunJobOperator(retry_from_failure=True): try 1 triggers and fails; try 2 reruns from the failure.
    Then DbtCloudGetJobRunArtifactOperator writes run_results.json, and reuse_existing_run finds a live run
    (`status__in` as Python's str([1, 2, 3]), the filter of apache/airflow#40047) instead of triggering."""
    operators = dbt_operators

    def run_job(try_number: int, **options: Any) -> tuple[Any, TaskInstance]:
        task = operators.DbtCloudRunJobOperator(task_id="dbt", dbt_cloud_conn_id=CONN_ID, trigger_reason="Airflow",
                                                check_interval=0, **options)
        ti = TaskInstance(try_number)
        return task.execute({"ti": ti}), ti

    with pytest.raises(DbtCloudJobRunException):
        run_job(1, job_id=3, retry_from_failure=True)
    run_id, ti = run_job(2, job_id=3, retry_from_failure=True)
    [trigger] = emulator.log.of("trigger")
    [rerun] = emulator.log.of("rerun")
    assert rerun.run_id == run_id == ti.xcom["job_run_id"] and trigger.run_id != run_id
    assert ti.xcom["job_run_url"].endswith(f"/runs/{run_id}/")

    fetch = operators.DbtCloudGetJobRunArtifactOperator(task_id="artifact", dbt_cloud_conn_id=CONN_ID, run_id=run_id,
                                                        path="run_results.json",
                                                        output_file_name=str(tmp_path / "run_results.json"))
    written = json.loads(Path(fetch.execute({})).read_text())
    assert written["metadata"]["env"]["DBT_CLOUD_RUN_ID"] == str(run_id)

    live, _ = run_job(1, job_id=ENDLESS["id"], wait_for_termination=False)
    reused, _ = run_job(1, job_id=ENDLESS["id"], wait_for_termination=False, reuse_existing_run=True)
    assert reused == live and len(emulator.log.of("trigger")) == 2
    assert emulator.log.of("list_runs")[-1].query["status__in"] == ["[1, 2, 3]"]
    assert emulator.log.crashes == []

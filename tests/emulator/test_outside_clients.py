"""Clients nobody here wrote complete trigger → wait (→ artifacts) against the emulator over HTTPS: dbt-cloud-cli
and dbtc."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TOKEN, EmulatorFactory

CLI = shutil.which("dbt-cloud") or str(Path(sys.executable).parent / "dbt-cloud")
needs_cli = pytest.mark.skipif(not Path(CLI).exists(), reason="dbt-cloud-cli is not installed (pip install '.[test]')")


def run_cli(emulator_url: str, ca_file: Path, job_id: int) -> subprocess.CompletedProcess[str]:
    host = emulator_url.removeprefix("https://")
    env = {**os.environ, "DBT_CLOUD_HOST": host, "DBT_CLOUD_API_TOKEN": TOKEN, "DBT_CLOUD_ACCOUNT_ID": "1",
           "DBT_CLOUD_JOB_ID": str(job_id), "REQUESTS_CA_BUNDLE": str(ca_file)}
    return subprocess.run([CLI, "job", "run", "--wait"], env=env, capture_output=True, text=True, timeout=60)


@needs_cli
def test_dbt_cloud_cli_runs_a_job_to_success_over_https(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory(tls=True, time_scale=600)
    assert emulator.ca_file is not None
    result = run_cli(emulator.url, emulator.ca_file, 1)
    assert result.returncode == 0, result.stderr
    assert "SUCCESS" in result.stderr
    [trigger] = emulator.log.of("trigger")
    assert trigger.body["cause"] == "Triggered via API"
    assert emulator.log.polls(trigger.run_id or 0) >= 1


@needs_cli
def test_dbt_cloud_cli_sees_a_failing_job_fail(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory(tls=True, time_scale=600)
    assert emulator.ca_file is not None
    result = run_cli(emulator.url, emulator.ca_file, 2)
    assert result.returncode == 1
    assert "Job run failed with ERROR status" in result.stderr


# ---- dbtc (PyPI: dbtc), a Python client library: trigger → poll → list and fetch artifacts, in process ----------
try:
    from dbtc import dbtCloudClient
except ImportError as error:   # not installed, or its pandas/pyarrow/numpy stack does not import here
    dbtCloudClient = None
    DBTC_MISSING = f"dbtc cannot be imported ({error}); pip install '.[test]'"
else:
    DBTC_MISSING = ""


@pytest.fixture
def dbtc(emulator_factory: EmulatorFactory, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    if dbtCloudClient is None:
        pytest.skip(DBTC_MISSING)
    emulator = emulator_factory(tls=True, time_scale=600)
    assert emulator.ca_file is not None
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(emulator.ca_file))   # dbtc only speaks https
    # Both keys: dbtc's three sub-clients share one session, and the last one built sets its Authorization header.
    client = dbtCloudClient(api_key=TOKEN, service_token=TOKEN, host=emulator.url.removeprefix("https://"))
    return client, emulator


def test_dbtc_triggers_waits_and_fetches_the_artifacts(dbtc: tuple[Any, Any]) -> None:
    client, emulator = dbtc
    run = client.cloud.trigger_job(1, 1, {"cause": "dbtc"}, should_poll=True, poll_interval=0)
    assert run["status"]["is_success"] is True and run["data"]["status"] == 10, run
    run_id = run["data"]["id"]
    assert emulator.log.of("trigger")[0].body == {"cause": "dbtc"} and emulator.log.polls(run_id) >= 1
    paths = client.cloud.list_run_artifacts(1, run_id)["data"]
    assert "run_results.json" in paths and "manifest.json" in paths
    results = client.cloud.get_run_artifact(1, run_id, "run_results.json")
    assert results["results"] and not [r for r in results["results"] if r["status"] in ("error", "fail")]
    assert emulator.log.crashes == []


def test_dbtc_sees_a_failure_and_retries_it_from_the_point_of_failure(dbtc: tuple[Any, Any]) -> None:
    client, _ = dbtc
    failed = client.cloud.trigger_job(1, 3, {"cause": "dbtc"}, should_poll=True, poll_interval=0)
    assert failed["data"]["status"] == 20 and failed["data"]["can_retry"] is True
    retried = client.cloud.trigger_job_from_failure(1, 3, should_poll=True, poll_interval=0)
    assert retried["data"]["retrying_run_id"] == failed["data"]["id"] and retried["data"]["status"] == 10
    listed = client.cloud.list_runs(1, job_definition_id=3, order_by="-id")["data"]
    assert [run["id"] for run in listed] == [retried["data"]["id"], failed["data"]["id"]]

"""Clients nobody here wrote drive the emulator over HTTPS through the whole cycle: trigger → wait → artifacts →
cancel (a second, long run) → retry (a failed run retried from the point of failure), as far as each client goes.

These two are light and run in every CI run (`./dev test`): dbt-cloud-cli and dbtc, installed by the `test` extra.
The heavy ones (the Airflow provider's hook, dagster-dbt's dbt Cloud clients) are in tests/outside/, run by
`./dev outside` in their own virtualenv (docs/emulator.md, "Outside clients")."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BASE_JOBS, TOKEN, EmulatorFactory

CLI = shutil.which("dbt-cloud") or str(Path(sys.executable).parent / "dbt-cloud")

# A job that outlasts any test at any time scale: the run a client cancels.
ENDLESS = {"id": 8, "name": "Endless backfill", "run_seconds": 10**9}
JOBS = [*BASE_JOBS, ENDLESS]


class Cli:
    """dbt-cloud-cli as a user runs it: a subprocess configured by its environment variables."""

    def __init__(self, emulator_url: str, ca_file: Path) -> None:
        self.env = {**os.environ, "DBT_CLOUD_HOST": emulator_url.removeprefix("https://"),
                    "DBT_CLOUD_API_TOKEN": TOKEN, "DBT_CLOUD_ACCOUNT_ID": "1", "REQUESTS_CA_BUNDLE": str(ca_file)}

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([CLI, *args], env=self.env, capture_output=True, text=True, timeout=60)

    def json(self, *args: str) -> Any:
        result = self(*args)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)


@pytest.fixture
def cli(emulator_factory: EmulatorFactory) -> tuple[Cli, Any]:
    if not Path(CLI).exists():
        pytest.skip("dbt-cloud-cli is not installed (pip install '.[test]')")
    # `job run --wait` sleeps 5 s between polls: at this scale job 1 has finished by the first poll, so the wait
    # loop runs once and the test takes no 5 s nap. ENDLESS still runs for years of real time.
    emulator = emulator_factory(tls=True, time_scale=36_000, jobs=JOBS)
    assert emulator.ca_file is not None
    return Cli(emulator.url, emulator.ca_file), emulator


def test_dbt_cloud_cli_triggers_waits_fetches_artifacts_and_cancels(cli: tuple[Cli, Any]) -> None:
    """dbt-cloud-cli 0.9.1: `job run --wait`, `run list-artifacts`, `run get-artifact`, `run cancel`, `run get`.
    It has no retry: no command calls `POST jobs/{id}/rerun/` or `POST runs/{id}/retry/`."""
    run_cli, emulator = cli
    result = run_cli("job", "run", "--job-id", "1", "--wait")
    assert result.returncode == 0, result.stderr
    assert "SUCCESS" in result.stderr
    run = json.loads(result.stdout)["data"]
    [trigger] = emulator.log.of("trigger")
    assert trigger.body["cause"] == "Triggered via API" and trigger.run_id == run["id"]
    assert emulator.log.polls(run["id"]) >= 1 and run["status"] == 10

    paths = run_cli.json("run", "list-artifacts", "--run-id", str(run["id"]))["data"]
    assert "run_results.json" in paths and "manifest.json" in paths
    results = run_cli.json("run", "get-artifact", "--run-id", str(run["id"]), "--path", "run_results.json")
    assert results["results"] and {r["status"] for r in results["results"]} <= {"success", "pass"}

    long_run = run_cli.json("job", "run", "--job-id", str(ENDLESS["id"]), "--no-wait")["data"]
    assert long_run["status"] in (1, 2, 3)
    cancelled = run_cli.json("run", "cancel", "--run-id", str(long_run["id"]))["data"]
    assert cancelled["status"] == 30 and emulator.log.cancels() == [long_run["id"]]
    assert run_cli.json("run", "get", "--run-id", str(long_run["id"]))["data"]["status_humanized"] == "Cancelled"
    assert emulator.log.crashes == []


def test_dbt_cloud_cli_sees_a_failing_job_fail(cli: tuple[Cli, Any]) -> None:
    run_cli, _ = cli
    result = run_cli("job", "run", "--job-id", "2", "--wait")
    assert result.returncode == 1
    assert "Job run failed with ERROR status" in result.stderr


# ---- dbtc (PyPI: dbtc), a Python client library, in process ------------------------------------------------------
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
    emulator = emulator_factory(tls=True, time_scale=600, jobs=JOBS)
    assert emulator.ca_file is not None
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(emulator.ca_file))   # dbtc only speaks https
    # Both keys: dbtc's three sub-clients share one session, and the last one built sets its Authorization header.
    client = dbtCloudClient(api_key=TOKEN, service_token=TOKEN, host=emulator.url.removeprefix("https://"))
    return client, emulator


def test_dbtc_triggers_waits_fetches_the_artifacts_and_cancels(dbtc: tuple[Any, Any]) -> None:
    """dbtc 0.11.7: `trigger_job(should_poll=True)`, `list_run_artifacts`, `get_run_artifact`, `cancel_run`,
    `get_run`; its retry is the next test."""
    client, emulator = dbtc
    run = client.cloud.trigger_job(1, 1, {"cause": "dbtc"}, should_poll=True, poll_interval=0)
    assert run["status"]["is_success"] is True and run["data"]["status"] == 10, run
    run_id = run["data"]["id"]
    assert emulator.log.of("trigger")[0].body == {"cause": "dbtc"} and emulator.log.polls(run_id) >= 1
    paths = client.cloud.list_run_artifacts(1, run_id)["data"]
    assert "run_results.json" in paths and "manifest.json" in paths
    results = client.cloud.get_run_artifact(1, run_id, "run_results.json")
    assert results["results"] and not [r for r in results["results"] if r["status"] in ("error", "fail")]

    long_run = client.cloud.trigger_job(1, ENDLESS["id"], {"cause": "dbtc, to cancel"}, should_poll=False)
    cancelled = client.cloud.cancel_run(1, long_run["data"]["id"])
    assert cancelled["data"]["status"] == 30 and emulator.log.cancels() == [long_run["data"]["id"]]
    assert client.cloud.get_run(1, long_run["data"]["id"])["data"]["status_humanized"] == "Cancelled"
    assert emulator.log.crashes == []


def test_dbtc_sees_a_failure_and_retries_it_from_the_point_of_failure(dbtc: tuple[Any, Any]) -> None:
    """`trigger_job_from_failure`: `POST jobs/{id}/rerun/`. (`trigger_job(retries=N)` loops over the same call but
    sleeps its default 10 s before each poll of the rerun, with no way to pass a shorter interval: not tested.)"""
    client, emulator = dbtc
    failed = client.cloud.trigger_job(1, 3, {"cause": "dbtc"}, should_poll=True, poll_interval=0)
    assert failed["data"]["status"] == 20 and failed["data"]["can_retry"] is True
    retried = client.cloud.trigger_job_from_failure(1, 3, should_poll=True, poll_interval=0)
    assert retried["data"]["retrying_run_id"] == failed["data"]["id"] and retried["data"]["status"] == 10
    listed = client.cloud.list_runs(1, job_definition_id=3, order_by="-id")["data"]
    assert [run["id"] for run in listed] == [retried["data"]["id"], failed["data"]["id"]]
    assert [entry.run_id for entry in emulator.log.of("rerun")] == [retried["data"]["id"]]


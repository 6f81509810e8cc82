"""A client nobody here wrote completes trigger → wait against the emulator: dbt-cloud-cli over HTTPS."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TOKEN, EmulatorFactory

CLI = shutil.which("dbt-cloud") or str(Path(sys.executable).parent / "dbt-cloud")
pytestmark = pytest.mark.skipif(not Path(CLI).exists(), reason="dbt-cloud-cli is not installed (pip install '.[test]')")


def run_cli(emulator_url: str, ca_file: Path, job_id: int) -> subprocess.CompletedProcess[str]:
    host = emulator_url.removeprefix("https://")
    env = {**os.environ, "DBT_CLOUD_HOST": host, "DBT_CLOUD_API_TOKEN": TOKEN, "DBT_CLOUD_ACCOUNT_ID": "1",
           "DBT_CLOUD_JOB_ID": str(job_id), "REQUESTS_CA_BUNDLE": str(ca_file)}
    return subprocess.run([CLI, "job", "run", "--wait"], env=env, capture_output=True, text=True, timeout=60)


def test_dbt_cloud_cli_runs_a_job_to_success_over_https(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory(tls=True, time_scale=600)
    assert emulator.ca_file is not None
    result = run_cli(emulator.url, emulator.ca_file, 1)
    assert result.returncode == 0, result.stderr
    assert "SUCCESS" in result.stderr
    [trigger] = emulator.log.of("trigger")
    assert trigger.body["cause"] == "Triggered via API"
    assert emulator.log.polls(trigger.run_id or 0) >= 1


def test_dbt_cloud_cli_sees_a_failing_job_fail(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory(tls=True, time_scale=600)
    assert emulator.ca_file is not None
    result = run_cli(emulator.url, emulator.ca_file, 2)
    assert result.returncode == 1
    assert "Job run failed with ERROR status" in result.stderr

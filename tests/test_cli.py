"""The CLI and the standalone container (entrypoint.py with arguments), run as subprocesses as users run them."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from dbtgate.emulator import Emulator
from tests.conftest import TOKEN, EmulatorFactory
from tests.runner import ROOT, cli, parse_output_file


def dbt_env(emulator: Emulator) -> dict[str, str]:
    return {"DBT_CLOUD_API_TOKEN": TOKEN, "DBT_CLOUD_URL": emulator.url, "DBT_CLOUD_ACCOUNT_ID": "1"}


def test_help_lists_commands_and_exit_codes() -> None:
    top = cli("--help")
    assert top.returncode == 0
    for command in ("run", "wait", "status", "cancel", "emulator", "demo"):
        assert command in top.stdout
    run_help = cli("run", "--help")
    assert run_help.returncode == 0
    for flag in ("--job-id", "--git-sha", "--schema-override", "--steps-override", "--timeout", "--wait",
                 "--cancel-on-timeout", "--summary", "--json", "--log-format"):
        assert flag in run_help.stdout, flag
    assert "exit codes:" in run_help.stdout and "DBT_CLOUD_API_TOKEN" in run_help.stdout
    assert cli().returncode == 2


def test_run_with_env_vars_json_and_report_files(emulator_factory: EmulatorFactory, tmp_path: Path) -> None:
    emulator = emulator_factory(time_scale=600)
    summary, outputs = tmp_path / "summary.md", tmp_path / "out.txt"
    result = cli("run", "--job-id", "1", "--interval", "0.2", "--json", "--summary", str(summary),
                 "--output", str(outputs), "--artifacts-dir", str(tmp_path / "target"), env=dbt_env(emulator))
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    printed = payload["outputs"]
    assert printed["outcome"] == "success" and printed["status"] == "Success"
    assert payload["run"]["run_id"] == int(printed["run_id"]) and payload["run"]["finished"] is True
    assert [step["status"] for step in payload["run"]["steps"]] == ["Success"] * 3
    assert parse_output_file(outputs.read_text())["run_id"] == printed["run_id"]
    assert "## ✅" in summary.read_text()
    assert "Triggered run" in result.stderr and "::" not in result.stderr  # no workflow commands outside Actions
    assert TOKEN not in result.stdout + result.stderr + summary.read_text()


def test_a_failing_run_exits_1_with_a_plain_error(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory(time_scale=600)
    result = cli("run", "--job-id", "2", "--interval", "0.2", "--no-get-artifacts", env=dbt_env(emulator))
    assert result.returncode == 1
    assert "error: dbt Cloud run failed: Run 7" in result.stderr
    assert re.search(r"FAIL \d+ not_null_orders_order_id", result.stderr)  # the failing step's log


def test_fail_fast_dbt_from_the_cli_triggers_with_dbts_flag(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory(time_scale=600)
    result = cli("run", "--job-id", "2", "--fail-fast", "dbt", "--interval", "0.2", "--no-get-artifacts",
                 env=dbt_env(emulator))
    assert result.returncode == 1, result.stderr
    [trigger] = emulator.log.of("trigger")
    stoppable = [step for step in trigger.body["steps_override"]
                 if step.split()[1] in ("build", "run", "test", "seed", "snapshot")]
    assert stoppable and all(step.endswith("--fail-fast") for step in stoppable), trigger.body
    assert "{true,false,dbt}" in cli("run", "--help").stdout


def test_dbt_cloud_host_and_https(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory(tls=True, time_scale=600)
    env = {"DBT_CLOUD_API_TOKEN": TOKEN, "DBT_CLOUD_HOST": emulator.url.removeprefix("https://"),
           "DBT_CLOUD_ACCOUNT_ID": "1", "DBT_CLOUD_JOB_ID": "1", "REQUESTS_CA_BUNDLE": str(emulator.ca_file)}
    result = cli("run", "--interval", "0.2", "--no-get-artifacts", env=env)
    assert result.returncode == 0, result.stderr


def test_wait_status_and_cancel(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory(time_scale=1)
    triggered = cli("run", "--job-id", "4", "--no-wait", "--json", env=dbt_env(emulator))
    assert triggered.returncode == 0, triggered.stderr
    run_id = json.loads(triggered.stdout)["outputs"]["run_id"]
    status = cli("status", run_id, "--json", env=dbt_env(emulator))
    assert status.returncode == 0 and json.loads(status.stdout)["finished"] is False
    waited = cli("wait", run_id, "--timeout", "1s", "--interval", "0.2", env=dbt_env(emulator))
    assert waited.returncode == 1 and "did not finish within the timeout" in waited.stderr
    assert emulator.log.cancels() == [], "a run this gate did not trigger is not cancelled by default"
    cancelled = cli("cancel", run_id, "--json", env=dbt_env(emulator))
    assert cancelled.returncode == 0 and "Cancelled" in cancelled.stderr
    assert json.loads(cancelled.stdout)["status"] == "Cancelled"
    assert emulator.log.cancels() == [int(run_id)]
    after = cli("wait", run_id, "--interval", "0.2", env=dbt_env(emulator))
    assert after.returncode == 1 and "was cancelled" in after.stderr


def test_bad_flags_name_the_flag_and_exit_2(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory()
    result = cli("run", "--job-id", "abc", "--timeout", "forever", env=dbt_env(emulator))
    assert result.returncode == 2
    assert "--job-id (or DBT_CLOUD_JOB_ID): 'abc' is not a positive whole number" in result.stderr
    assert "--timeout" in result.stderr
    missing = cli("run", "--job-id", "1", env={"DBT_CLOUD_URL": emulator.url, "DBT_CLOUD_ACCOUNT_ID": "1"})
    assert missing.returncode == 2 and "--token (or DBT_CLOUD_API_TOKEN) is empty" in missing.stderr
    assert emulator.log.all() == []


def test_log_format_json(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory(time_scale=600)
    result = cli("run", "--job-id", "1", "--interval", "0.2", "--log-format", "json", "--no-get-artifacts",
                 env=dbt_env(emulator))
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert any(event["event"].startswith("Triggered run") for event in events)
    assert all({"level", "timestamp"} <= set(event) for event in events)


def test_container_standalone_mode_is_the_cli(emulator_factory: EmulatorFactory) -> None:
    """`docker run IMAGE run --account-id 1 --job-id 2`: the image's entrypoint with arguments."""
    emulator = emulator_factory(time_scale=600)
    result = cli("run", "--url", emulator.url, "--account-id", "1", "--job-id", "1", "--interval", "0.2",
                 "--no-get-artifacts", env={"DBT_CLOUD_API_TOKEN": TOKEN}, entry="entrypoint")
    assert result.returncode == 0, result.stderr
    inside_actions = cli("run", "--url", emulator.url, "--account-id", "1", "--job-id", "2", "--interval", "0.2",
                         "--no-get-artifacts", env={"DBT_CLOUD_API_TOKEN": TOKEN, "GITHUB_ACTIONS": "true"},
                         entry="entrypoint")
    assert inside_actions.returncode == 1
    assert inside_actions.stdout.startswith(f"::add-mask::{TOKEN}\n")
    assert "::error title=dbt Cloud run failed::" in inside_actions.stdout


def test_the_emulator_command_serves_until_ctrl_c(tmp_path: Path) -> None:
    process = subprocess.Popen([sys.executable, "-m", "dbtgate", "emulator", "--port", "0"], text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert process.stdout is not None
    first = process.stdout.readline()
    assert first.startswith("dbt Cloud emulator listening on http://127.0.0.1:")
    url = first.rsplit(" ", 1)[1].strip()
    token_line = process.stdout.readline()
    assert token_line.split()[-1] == "emulator-token"
    import requests
    jobs = requests.get(f"{url}/api/v2/accounts/1/jobs/", headers={"Authorization": "Token emulator-token"},
                        timeout=5)
    from dbtgate.emulator import load_scenario
    assert jobs.status_code == 200 and len(jobs.json()["data"]) == len(load_scenario().jobs)
    time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=10) == 0


def test_the_demo_gates_dbt_core_and_fusion_jobs(tmp_path: Path) -> None:
    result = cli("demo", "--out", str(tmp_path / "demo"), timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["job 1: exit 0", "job 2: exit 1", "job 6: exit 1", "job 7: exit 0"]
    failing = (tmp_path / "demo" / "job-2" / "summary.md").read_text()
    assert "not\\_null\\_orders\\_order\\_id" in failing
    assert (tmp_path / "demo" / "job-1" / "target" / "manifest.json").is_file()
    fusion = (tmp_path / "demo" / "job-6" / "summary.md").read_text()
    assert "### Failed nodes (1)" in fusion and "Database Error" in fusion, "Fusion's failed model, with dbt's message"
    docs_last = (tmp_path / "demo" / "job-7" / "summary.md").read_text()
    assert "### Warnings (1)" in docs_last, "the docs step after the build does not hide the warning"


def test_the_emulator_on_a_taken_port_says_what_to_do(emulator_factory: EmulatorFactory) -> None:
    taken = emulator_factory()
    result = cli("emulator", "--port", str(taken.port), env={})
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"cannot listen on 127.0.0.1:{taken.port}" in result.stderr and "--port 0" in result.stderr


def test_a_mistyped_flag_gets_the_command_s_usage_and_a_did_you_mean() -> None:
    result = cli("run", "--job-idd", "3")
    assert result.returncode == 2
    assert "usage: dbtgate run" in result.stderr and "did you mean --job-id?" in result.stderr


def test_run_help_speaks_in_flags_not_action_input_names() -> None:
    text = cli("run", "--help").stdout
    assert "dbt_cloud_job_name" not in text and "--job-name" in text
    assert "`dbtgate wait RUN_ID`" not in text or "RUN_ID" in text


def test_an_empty_job_id_points_at_dbtgate_wait_not_a_flag_run_does_not_have() -> None:
    result = cli("run", env={"DBT_CLOUD_API_TOKEN": TOKEN, "DBT_CLOUD_ACCOUNT_ID": "1"})
    assert result.returncode == 2 and "dbtgate wait RUN_ID" in result.stderr and "--run-id" not in result.stderr

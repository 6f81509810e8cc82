"""Bad input stops at the door: through the real CLI (`dbtgate.cli.main`) and the action, against the loopback
emulator, each case exits 2 naming the input and sends no request at all (issues #12 and #15)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from dbtgate.cli import main
from dbtgate.emulator import Emulator
from dbtgate.inputs import INPUTS
from tests.conftest import TOKEN, EmulatorFactory
from tests.runner import cli, run_step


def run_cli(emulator: Emulator, *args: str, **env: str) -> tuple[int, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    base = {"DBT_CLOUD_API_TOKEN": TOKEN, "DBT_CLOUD_URL": emulator.url, "DBT_CLOUD_ACCOUNT_ID": "1"}
    code = main(["run", "--job-id", "1", "--no-get-artifacts", *args], env={**base, **env}, stdout=stdout,
                stderr=stderr)
    return code, stdout.getvalue() + stderr.getvalue()


def run_action(emulator: Emulator, workspace: Path, **inputs: str) -> tuple[int, str]:
    """The action in-process: every declared input set, as the runner sets them (value, else default)."""
    values = {spec.name: spec.default for spec in INPUTS}
    values.update({"dbt_cloud_url": emulator.url, "dbt_cloud_token": TOKEN, "dbt_cloud_account_id": "1",
                   "dbt_cloud_job_id": "1", "get_artifacts": "false"}, **inputs)
    env = {"GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(workspace),
           **{f"INPUT_{name.upper()}": value for name, value in values.items()}}
    stdout = io.StringIO()
    code = main([], env=env, stdout=stdout)
    return code, stdout.getvalue()


@pytest.mark.parametrize(("args", "expected"), [
    (("--job-id", "١٢٣"), "--job-id (or DBT_CLOUD_JOB_ID): '١٢٣' is not a positive whole number, written with "
                          "the digits 0-9"),
    (("--account-id", str(2**63)), "--account-id (or DBT_CLOUD_ACCOUNT_ID): '9223372036854775808' is too large: "
                                   "dbt Cloud ids are 64-bit numbers"),
    (("--interval", "0.001"), "--interval: '0.001' is 0.001 s, below the minimum of 0.1 s"),
    (("--api-timeout", "0.001"), "--api-timeout: '0.001' is 0.001 s, below the minimum of 0.1 s"),
    (("--timeout", "inf"), "--timeout: 'inf' is not a duration"),
    (("--timeout", "nan"), "--timeout: 'nan' is not a duration"),
    (("--threads-override", "100000"), "--threads-override: '100000' is too large: dbtgate accepts at most 1,024"),
    (("--timeout-seconds-override", "-5"), "--timeout-seconds-override: '-5' is not a whole number of zero or more"),
    (("--timeout-seconds-override", "4294967296"), "--timeout-seconds-override: '4294967296' is too large"),
    (("--github-pull-request-id", str(2**64)), "--github-pull-request-id: '18446744073709551616' is too large"),
    (("--github-pull-request-id", "3", "--gitlab-merge-request-id", "4"),
     "--github-pull-request-id and --gitlab-merge-request-id are both set"),
    (("--azure-pull-request-id", "0"), "--azure-pull-request-id: '0' is not a positive whole number"),
    (("--token", "dbtc_abc\u201d"), "--token (or DBT_CLOUD_API_TOKEN) contains the character U+201D"),
    (("--token", "dbtc_\x1b[31mabc"), "--token (or DBT_CLOUD_API_TOKEN) contains the character U+001B"),
    (("--artifact", "../../etc/passwd"), "--artifact: '../../etc/passwd' must be a relative artifact path"),
    (("--artifacts-dir", "../outside"), "--artifacts-dir: '../outside' contains `..`"),
])
def test_the_cli_refuses_bad_input_before_any_request(emulator: Emulator, args: tuple[str, ...],
                                                      expected: str) -> None:
    code, output = run_cli(emulator, *args)
    assert code == 2, output
    assert expected in output
    assert emulator.log.all() == []


def test_a_url_with_credentials_is_refused_and_the_password_never_printed(emulator: Emulator) -> None:
    password = "hunter2-Pa55word"
    url = emulator.url.replace("http://", f"http://deploy:{password}@")
    code, output = run_cli(emulator, "--url", url)
    assert code == 2
    assert "--url (or DBT_CLOUD_URL): contains a user name or password" in output
    assert password not in output
    assert emulator.log.all() == []


@pytest.mark.parametrize(("port", "expected"), [("99999", "'99999'"), ("abc", "'abc'"), ("٨٠٨٠", "'٨٠٨٠'")])
def test_a_bad_port_is_refused(emulator: Emulator, port: str, expected: str) -> None:
    code, output = run_cli(emulator, "--url", f"http://127.0.0.1:{port}")
    assert code == 2 and f"has port {expected}, which is not a number from 1 to 65535" in output


@pytest.mark.parametrize(("inputs", "expected"), [
    ({"artifacts_dir": "/etc"}, "::error title=dbtgate%3A bad input::input `artifacts_dir`: '/etc' is outside the "
                                "workspace"),
    ({"artifacts_dir": "target/../../.."}, "input `artifacts_dir`: 'target/../../..' contains `..`"),
    ({"interval": "0.001"}, "input `interval`: '0.001' is 0.001 s, below the minimum"),
    ({"api_timeout": "0.001"}, "input `api_timeout`: '0.001' is 0.001 s, below the minimum"),
    ({"dbt_cloud_job_id": "１"}, "input `dbt_cloud_job_id`: '１' is not a positive whole number"),
    ({"dbt_cloud_token": "dbtc_ab€c"}, "input `dbt_cloud_token` contains the character U+20AC"),
    ({"timeout_seconds_override": str(2**31)}, "input `timeout_seconds_override`: '2147483648' is too large"),
    ({"non_native_pull_request_id": "7", "azure_pull_request_id": "8"},
     "input `azure_pull_request_id` and input `non_native_pull_request_id` are both set"),
])
def test_the_action_refuses_bad_input_before_any_request(emulator: Emulator, tmp_path: Path,
                                                         inputs: dict[str, str], expected: str) -> None:
    code, output = run_action(emulator, tmp_path, **inputs)
    assert code == 2, output
    assert expected in output
    assert emulator.log.all() == []


def test_the_migrated_api_timeout_5000_runs_with_a_warning_and_a_new_pr_id_reaches_dbt_cloud(
        emulator_factory: EmulatorFactory, tmp_path: Path) -> None:
    emulator = emulator_factory(time_scale=600)
    step = run_step({"dbt_cloud_url": emulator.url, "dbt_cloud_token": TOKEN, "dbt_cloud_account_id": "1",
                     "dbt_cloud_job_id": "1", "interval": "0.2", "timeout": "60", "get_artifacts": "false",
                     "api_timeout": "5000", "gitlab_merge_request_id": "42"}, tmp_path / "ws")
    assert step.exit_code == 0, step.log
    assert "::warning title=dbtgate input::input `api_timeout`: 5000 has no unit, so it was read as 5000 ms = 5 s" \
        in step.stdout
    assert emulator.log.of("trigger")[0].body["gitlab_merge_request_id"] == 42


def test_run_help_shows_the_new_inputs() -> None:
    shown = cli("run", "--help")
    assert shown.returncode == 0
    for flag in ("--gitlab-merge-request-id", "--azure-pull-request-id", "--non-native-pull-request-id"):
        assert flag in shown.stdout, flag
    assert "5000ms" in shown.stdout  # api_timeout's units are documented where people look

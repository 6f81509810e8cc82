"""The Docker action end to end, run as the runner runs it (see tests/runner.py), against the emulator."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dbtgate.emulator import Emulator
from tests.conftest import TOKEN, EmulatorFactory
from tests.runner import MalformedOutputFile, parse_output_file, run_step

FAST = 600.0  # emulated seconds per real second: a one-minute run takes a tenth of a second


def inputs(emulator: Emulator, job_id: int, **more: object) -> dict[str, object]:
    return {"dbt_cloud_url": emulator.url, "dbt_cloud_token": TOKEN, "dbt_cloud_account_id": "1",
            "dbt_cloud_job_id": str(job_id), "interval": "0.2", "timeout": "60", **more}


def assert_no_token(step: object) -> None:
    """The token appears nowhere but in the ::add-mask:: line that tells the runner to hide it."""
    for name in ("stdout", "stderr", "summary"):
        text = "\n".join(line for line in getattr(step, name).splitlines()
                         if line != f"::add-mask::{TOKEN}")
        assert TOKEN not in text, f"the token leaked into {name}"
    assert all(TOKEN not in value for value in step.outputs.values())  # type: ignore[attr-defined]


def test_success_sets_every_output_and_passes(emulator_factory: EmulatorFactory, tmp_path: Path) -> None:
    emulator = emulator_factory(time_scale=FAST)
    step = run_step(inputs(emulator, 1), tmp_path / "ws")
    assert step.exit_code == 0, step.log
    out = step.outputs
    assert out["outcome"] == "success" and out["status"] == "Success"
    run_id = int(out["run_id"])
    assert emulator.world.has_run(run_id)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", out["finished_at"])
    assert out["run_url"] == f"{emulator.url}/deploy/1/projects/1/runs/{run_id}/"
    assert out["job_name"] == "Production build" and out["job_id"] == "1"
    assert int(out["duration_seconds"]) > 60
    assert out["git_sha"]
    assert json.loads(out["failed_nodes"]) == []
    assert step.stdout.splitlines()[0] == f"::add-mask::{TOKEN}"
    assert step.commands("error") == []
    assert "## ✅" in step.summary and f"run \\#{run_id}" in step.summary
    assert (tmp_path / "ws" / "target" / "run_results.json").is_file()
    # Relative to the workspace: a later step on the host cannot use the container's /github/workspace/... path.
    assert out["artifacts_dir"] == "target"
    # The default cause is built from the workflow context and carries dbtgate's marker.
    cause = emulator.log.of("trigger")[0].body["cause"]
    assert cause.startswith("GitHub Actions: acme/analytics workflow deploy run 4242 @ 0123456")
    assert re.search(r" \[dbtgate:[0-9a-f]{8}\]$", cause)
    assert_no_token(step)


def test_error_fails_with_one_headline_and_node_annotations(emulator_factory: EmulatorFactory,
                                                            tmp_path: Path) -> None:
    emulator = emulator_factory(time_scale=FAST)
    step = run_step(inputs(emulator, 2, project_dir="transform"), tmp_path / "ws")
    assert step.exit_code == 1, step.log
    assert step.outputs["outcome"] == "error" and step.outputs["status"] == "Error"
    run_id = step.outputs["run_id"]
    headlines = [line for line in step.commands("error") if "title=dbt Cloud run failed" in line]
    assert len(headlines) == 1
    assert run_id in headlines[0] and step.outputs["run_url"] in headlines[0]
    node_errors = [line for line in step.commands("error") if "file=" in line]
    # The title's comma-free text and the file path are properties; the message keeps its comma (data).
    assert node_errors == ["::error title=dbt test not_null_orders_order_id fail,"
                           "file=transform/models/marts/schema.yml::Got 3 results, configured to fail if != 0"]
    assert json.loads(step.outputs["failed_nodes"]) == ["test.jaffle_shop.not_null_orders_order_id"]
    # The failing step's log is shown in a group with workflow commands switched off.
    assert re.search(r"::group::Log of the failing step: Invoke dbt with `dbt build`\n::stop-commands::[0-9a-f]{32}\n",
                     step.stdout)
    assert_no_token(step)


def test_cancelled_run_is_never_green(emulator_factory: EmulatorFactory, tmp_path: Path) -> None:
    emulator = emulator_factory(time_scale=FAST)
    step = run_step(inputs(emulator, 6), tmp_path / "ws")
    assert step.exit_code == 1
    assert step.outputs["outcome"] == "cancelled" and step.outputs["status"] == "Cancelled"
    assert step.outputs["finished_at"]
    assert emulator.log.cancels() == []  # dbt Cloud cancelled it; dbtgate had nothing to cancel


def test_timeout_cancels_the_run_and_reports_it(emulator_factory: EmulatorFactory, tmp_path: Path) -> None:
    emulator = emulator_factory(time_scale=60)  # the one-hour job takes a minute: far past the timeout
    step = run_step(inputs(emulator, 4, timeout="1.5s"), tmp_path / "ws")
    assert step.exit_code == 1, step.log
    assert step.outputs["outcome"] == "timeout"
    assert step.outputs["status"] == "Cancelled"  # as last seen: the answer to our cancel
    assert emulator.log.cancels() == [int(step.outputs["run_id"])]
    assert "dbtgate cancelled run" in step.summary
    assert any("title=dbt Cloud run timed out" in line for line in step.commands("error"))


def test_timeout_without_cancel_leaves_the_run_running(emulator_factory: EmulatorFactory, tmp_path: Path) -> None:
    emulator = emulator_factory(time_scale=60)
    step = run_step(inputs(emulator, 4, timeout="1s", cancel_on_timeout="false"), tmp_path / "ws")
    assert step.exit_code == 1
    assert step.outputs["outcome"] == "timeout" and step.outputs["status"] == "Running"
    assert step.outputs["finished_at"] == ""
    assert emulator.log.cancels() == []
    assert "cancel\\_on\\_timeout is false" in step.summary


def test_not_waiting_returns_at_once_with_the_run_id(emulator_factory: EmulatorFactory, tmp_path: Path) -> None:
    emulator = emulator_factory(time_scale=1)
    step = run_step(inputs(emulator, 4, wait_for_job="false"), tmp_path / "ws")
    assert step.exit_code == 0
    assert step.outputs["outcome"] == "not_waited" and step.outputs["status"] == "Queued"
    assert step.outputs["finished_at"] == ""
    assert emulator.log.polls(int(step.outputs["run_id"])) == 0


def test_failure_on_error_false_reports_but_passes(emulator_factory: EmulatorFactory, tmp_path: Path) -> None:
    emulator = emulator_factory(time_scale=FAST)
    step = run_step(inputs(emulator, 2, failure_on_error="no"), tmp_path / "ws")
    assert step.exit_code == 0
    assert step.outputs["outcome"] == "error"
    assert step.commands("error") == [] or all("file=" in line for line in step.commands("error"))
    assert any("failure_on_error is false" in line for line in step.commands("warning"))


def test_every_override_reaches_the_trigger_body(emulator_factory: EmulatorFactory, tmp_path: Path) -> None:
    emulator = emulator_factory(time_scale=FAST)
    step = run_step(inputs(
        emulator, 1, cause="Deploy PR 17", git_sha="abc1234", git_branch="feature/x", github_pull_request_id="17",
        schema_override="dbt_pr_17", dbt_version_override="1.9.0-latest", threads_override="8",
        target_name_override="ci", generate_docs_override="TRUE", timeout_seconds_override="900",
        steps_override="- dbt build --select state:modified+\n- dbt test"), tmp_path / "ws")
    assert step.exit_code == 0, step.log
    body = emulator.log.of("trigger")[0].body
    assert body["cause"].startswith("Deploy PR 17 [dbtgate:")
    expected = {"git_sha": "abc1234", "git_branch": "feature/x", "github_pull_request_id": 17,
                "schema_override": "dbt_pr_17", "dbt_version_override": "1.9.0-latest", "threads_override": 8,
                "target_name_override": "ci", "generate_docs_override": True, "timeout_seconds_override": 900,
                "steps_override": ["dbt build --select state:modified+", "dbt test"]}
    assert {key: body[key] for key in expected} == expected
    assert set(body) == set(expected) | {"cause"}


def test_bad_inputs_are_all_named_and_nothing_is_triggered(emulator_factory: EmulatorFactory,
                                                           tmp_path: Path) -> None:
    emulator = emulator_factory()
    step = run_step({"dbt_cloud_url": "ftp://nope", "dbt_cloud_token": "", "dbt_cloud_account_id": "abc",
                     "dbt_cloud_job_id": "-3", "timeout": "soon", "wait_for_job": "maybe",
                     "steps_override": "rm -rf /"}, tmp_path / "ws")
    assert step.exit_code == 2
    errors = "\n".join(step.commands("error"))
    for name in ("dbt_cloud_url", "dbt_cloud_token", "dbt_cloud_account_id", "dbt_cloud_job_id", "timeout",
                 "wait_for_job", "steps_override"):
        assert f"input `{name}`" in errors, name
    assert emulator.log.all() == []
    assert step.outputs["outcome"] == "config_error"
    assert "nothing was triggered" in step.summary


def test_wrong_host_401_says_which_host_and_what_to_do(emulator_factory: EmulatorFactory, tmp_path: Path) -> None:
    emulator = emulator_factory()
    step = run_step({**inputs(emulator, 1), "dbt_cloud_token": "not-the-token"}, tmp_path / "ws")
    assert (step.exit_code, step.outputs["outcome"]) == (2, "config_error"), "a wrong token is bad input"
    errors = "\n".join(step.commands("error"))
    host = emulator.url.split("://")[1]
    assert f"dbt Cloud at {host} answered 401 Invalid token." in errors
    assert "access URL" in errors and "Account information" in errors
    assert emulator.log.of("trigger") == []


def test_unknown_job_is_bad_input_before_any_trigger(emulator_factory: EmulatorFactory, tmp_path: Path) -> None:
    emulator = emulator_factory()
    step = run_step(inputs(emulator, 999), tmp_path / "ws")
    assert (step.exit_code, step.outputs["outcome"]) == (2, "config_error")
    assert "found no job 999 in account 1" in "\n".join(step.commands("error"))
    assert emulator.log.of("trigger") == []


def test_a_job_without_artifacts_still_passes_with_a_note(emulator_factory: EmulatorFactory,
                                                          tmp_path: Path) -> None:
    emulator = emulator_factory(time_scale=FAST)
    step = run_step(inputs(emulator, 5), tmp_path / "ws")
    assert step.exit_code == 0, step.log
    assert step.outputs["outcome"] == "success"
    assert "Not produced by this run" in step.summary
    assert not (tmp_path / "ws" / "target").exists() or not any((tmp_path / "ws" / "target").iterdir())


@pytest.mark.parametrize("text", ["name=value\nbroken line\n", "x<<EOF\nno end\n", "=v\n"])
def test_the_output_parser_rejects_what_the_runner_rejects(text: str) -> None:
    with pytest.raises(MalformedOutputFile):
        parse_output_file(text)


def test_the_output_parser_reads_heredocs_like_the_runner() -> None:
    assert parse_output_file("a=1\nb<<D\nline 1\nline 2\nD\n") == {"a": "1", "b": "line 1\nline 2"}


HOSTILE = "::error::injected\n::add-mask::x %0A <script>alert(1)</script> | `tick` ## heading [link](http://evil)"


def test_hostile_text_from_dbt_cloud_cannot_inject_anything(emulator_factory: EmulatorFactory,
                                                             tmp_path: Path) -> None:
    emulator = emulator_factory(time_scale=FAST, jobs=[{
        "id": 9, "name": "Evil | <b>job</b> ::warning::x", "outcome": "error", "run_seconds": 60,
        "failures": [{"node": "orders", "status": "error", "message": HOSTILE}]}])
    step = run_step(inputs(emulator, 9), tmp_path / "ws")
    assert step.exit_code == 1, step.log
    # Outside ::stop-commands:: blocks nothing but dbtgate's own commands appear, each on one line.
    for kind in ("error", "warning", "add-mask", "notice"):
        for line in step.commands(kind):
            assert "injected" not in line.split("::", 2)[1], line  # not in the command's name or properties
            assert not line.startswith("::error::injected") and not line.startswith("::add-mask::x")
    node_lines = [line for line in step.commands("error") if "file=models/marts/orders.sql" in line]
    assert len(node_lines) == 1 and "%0A" in node_lines[0] and "%250A" in node_lines[0]
    # The raw log does carry the text, but only inside a stop-commands block.
    blocks = re.findall(r"::stop-commands::([0-9a-f]{32})\n(.*?)\n::\1::", step.stdout, re.S)
    assert any("::error::injected" in body for _, body in blocks)
    # The summary shows the text, escaped: no HTML, no broken table, no link — except verbatim inside the fenced
    # log block, where Markdown shows it as literal text.
    outside_code = re.sub(r"(`{3,})text\n.*?\n\1", "", step.summary, flags=re.S)
    assert "<script>" not in outside_code and "&lt;script&gt;" in outside_code
    assert "[link](http://evil)" not in outside_code
    failed_row = next(line for line in step.summary.splitlines() if line.startswith("| orders"))
    assert len(re.findall(r"(?<!\\)\|", failed_row)) == 6, "a pipe in the message must not add a column"
    assert step.outputs["job_name"] == "Evil | <b>job</b> ::warning::x"  # outputs keep the exact value


def test_warnings_are_listed_separately_on_a_green_run(emulator_factory: EmulatorFactory, tmp_path: Path) -> None:
    emulator = emulator_factory(time_scale=FAST)
    step = run_step(inputs(emulator, 7), tmp_path / "ws")
    assert step.exit_code == 0 and step.outputs["outcome"] == "success"
    assert step.commands("error") == []
    assert "### Warnings (1)" in step.summary and "### Failed nodes" not in step.summary
    row = next(line for line in step.summary.splitlines() if line.startswith("| unique\\_customers\\_customer\\_id"))
    assert "| test | warn | Got 2 results, configured to warn if != 0 |" in row
    assert json.loads(step.outputs["failed_nodes"]) == []


def test_junit_xml_node_counts_and_timings(emulator_factory: EmulatorFactory, tmp_path: Path) -> None:
    """issue 23 §6: the report other CI systems read, written where the user asked, and the counts as outputs."""
    import xml.etree.ElementTree as ET

    emulator = emulator_factory(time_scale=FAST)
    step = run_step(inputs(emulator, 2, junit_xml="reports/dbt-junit.xml", get_artifacts="false"), tmp_path / "ws")
    assert step.exit_code == 1, step.log
    root = ET.parse(tmp_path / "ws" / "reports" / "dbt-junit.xml").getroot()
    failing = [case for case in root.iter("testcase") if case.find("failure") is not None]
    assert {(case.get("classname"), case.get("name")) for case in failing} == {
        ("dbt Cloud run", f"run {step.outputs['run_id']}"), ("test", "jaffle_shop.not_null_orders_order_id")}
    counts = json.loads(step.outputs["node_counts"])
    assert counts["test"]["fail"] == 1 and sum(counts["model"].values()) > 0
    assert int(root.get("tests") or 0) == 1 + sum(sum(by_status.values()) for by_status in counts.values())
    assert int(step.outputs["queued_seconds"]) >= 0 and int(step.outputs["ran_seconds"]) > 0
    assert not (tmp_path / "ws" / "target").exists(), "get_artifacts: false still saves nothing else"
    assert_no_token(step)

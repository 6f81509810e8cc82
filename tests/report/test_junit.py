"""issue 23 §6: the JUnit report other CI systems read, node_counts and the run's timings as outputs, the output
budget, and annotations that fit GitHub's per-step limits (issue 20 §4)."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from dbtgate.artifacts import ArtifactReport, NodeIssue, NodeResult, node_result
from dbtgate.cloud.models import Job, Run
from dbtgate.config import GateConfig, TriggerOptions, parse_config
from dbtgate.errors import ConfigError
from dbtgate.escape import xml_text
from dbtgate.gate.state import GateResult
from dbtgate.github import Workflow
from dbtgate.outcome import ExitStatus, Outcome
from dbtgate.report.annotations import STEP_LIMIT, annotate, annotate_problems
from dbtgate.report.junit import render_junit
from dbtgate.report.outputs import OUTPUT_BUDGET, OUTPUTS, outputs_for, utf16_size
from tests.runner import obeyed_commands

HOSTILE = "bad \x00\x01\x08\x0b\x1b[31mred\x1b[0m ]]> </failure><script>&amp; \"q\" 'a' \ud800 \ufffe end"
CONFIG = GateConfig(base_url="https://x.dbt.com", token="t" * 20, account_id=1, job_id=2, run_id=None,
                    trigger=TriggerOptions(cause="c"), project_dir="transform")


def _run(status: int = 20) -> Run:
    return Run.from_api({"id": 70, "job_definition_id": 2, "status": status, "href": "https://x.dbt.com/r/70/",
                         "status_message": HOSTILE, "queued_duration": "00:00:12", "run_duration": "00:04:01",
                         "duration": "00:04:13", "finished_at": "2026-01-01 10:00:00+00:00"})


def _nodes() -> tuple[NodeResult, ...]:
    results = [{"unique_id": "model.shop.orders", "status": "success", "execution_time": 1.5, "message": "OK"},
               {"unique_id": "model.shop.payments", "status": "error", "execution_time": 0.25, "message": HOSTILE},
               {"unique_id": "test.shop.not_null_orders_id", "status": "fail", "message": "Got 3 results"},
               {"unique_id": "test.shop.unique_orders_id", "status": "pass", "execution_time": 0.1},
               {"unique_id": "test.shop.accepted_values", "status": "warn", "message": "Got 1 result"},
               {"unique_id": "model.shop.customers", "status": "skipped", "message": "SKIP"},
               {"unique_id": "seed.shop.raw", "status": "success", "execution_time": True}, {"no": "id"}]
    return tuple(node for node in map(node_result, results) if node is not None)


def _result(outcome: Outcome = Outcome.ERROR, nodes: tuple[NodeResult, ...] | None = None,
            failed: int = 1, warned: int = 0, exit_code: int = 1) -> GateResult:
    issues = tuple(NodeIssue(f"model.shop.m{i}", f"m{i}", "model", "error", f"boom {i}", 1.0, f"models/m{i}.sql")
                   for i in range(failed))
    warns = tuple(NodeIssue(f"test.shop.w{i}", f"w{i}", "test", "warn", f"meh {i}", 1.0, "") for i in range(warned))
    payments = NodeIssue("model.shop.payments", "payments", "model", "error", HOSTILE, 0.25, "models/payments.sql")
    report = ArtifactReport(directory=None, failed=(*issues, payments), warned=warns,
                            nodes=_nodes() if nodes is None else nodes)
    return GateResult(outcome=outcome, exit_code=ExitStatus(exit_code), headline="Run 70 of \"Nightly\" failed",
                      run=_run(), job=Job(id=2, name="Nightly <build>"), artifacts=report)


def test_the_junit_report_has_a_testcase_per_node_and_one_for_the_run() -> None:
    document = render_junit(_result(), project_dir="transform")
    root = ET.fromstring(document.encode("utf-8"))  # well-formed, whatever dbt Cloud sent
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases] == [
        ("dbt Cloud run", "run 70"), ("model", "shop.orders"), ("model", "shop.payments"),
        ("test", "shop.not_null_orders_id"), ("test", "shop.unique_orders_id"), ("test", "shop.accepted_values"),
        ("model", "shop.customers"), ("seed", "shop.raw")]
    verdicts = {c.get("name"): [child.tag for child in c] for c in cases}
    assert verdicts == {"run 70": ["failure"], "shop.orders": [], "shop.payments": ["error"],
                        "shop.not_null_orders_id": ["failure"], "shop.unique_orders_id": [],
                        "shop.accepted_values": ["system-out"], "shop.customers": ["skipped"], "shop.raw": []}
    counts = (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped"))
    assert counts == ("8", "2", "1", "1")
    assert root.get("tests") == "8" and suite.get("time") == "241.000"
    assert cases[1].get("time") == "1.500" and cases[7].get("time") == "0"  # a boolean is no duration
    assert cases[2].get("file") == "transform/models/payments.sql"
    assert suite.get("name") == "dbt Cloud Nightly <build> run 70"
    error = cases[2].find("error")
    assert error is not None and error.get("type") == "error"
    assert error.text == "bad red ]]> </failure><script>&amp; \"q\" 'a'   end", "control characters and colours go"
    assert "<script>" not in document and "\x00" not in document and "\x1b" not in document


def test_xml_text_removes_exactly_what_xml_cannot_hold() -> None:
    assert xml_text("a\tb\nc\rd\x00e\x1fé\u2028😀\ufffe\uffff\ud800") == "a\tb\nc\rde" + "é\u2028😀"
    assert xml_text("\x1b[1;31mred\x1b[0m") == "red"
    unfiltered = ET.Element("failure")
    unfiltered.text = HOSTILE.replace("\ud800", "")
    with pytest.raises(ET.ParseError):  # without xml_text, ElementTree's own escaping writes a broken document
        ET.fromstring(ET.tostring(unfiltered, encoding="unicode"))


@pytest.mark.parametrize(("outcome", "tag"), [(Outcome.SUCCESS, None), (Outcome.NOT_WAITED, "skipped"),
                                              (Outcome.TIMEOUT, "error"), (Outcome.API_ERROR, "error"),
                                              (Outcome.STALE, "failure"), (Outcome.CANCELLED, "error")])
def test_the_run_testcase_is_green_only_when_the_gate_passed(outcome: Outcome, tag: str | None) -> None:
    result = GateResult(outcome=outcome, exit_code=ExitStatus(0 if tag in (None, "skipped") else 1),
                        headline="What happened", detail="401 Invalid token.")
    (case,) = ET.fromstring(render_junit(result)).iter("testcase")
    assert [child.tag for child in case] == ([tag] if tag else [])
    if tag in ("error", "failure"):
        assert "401 Invalid token." in (case[0].text or "")


def test_node_counts_and_timings_are_outputs_that_fit_githubs_limit() -> None:
    outputs = outputs_for(_result(), CONFIG)
    assert set(outputs) == {name for name, _ in OUTPUTS}
    assert json.loads(outputs["node_counts"]) == {"model": {"success": 1, "error": 1, "skipped": 1},
                                                  "test": {"fail": 1, "pass": 1, "warn": 1}, "seed": {"success": 1}}
    assert (outputs["queued_seconds"], outputs["ran_seconds"], outputs["duration_seconds"]) == ("12", "241", "253")
    huge = outputs_for(_result(failed=40_000), CONFIG)
    assert sum(utf16_size(value) for value in huge.values()) <= OUTPUT_BUDGET
    kept = json.loads(huge["failed_nodes"])
    assert 1000 < len(kept) < 40_001 and kept[:2] == ["model.shop.m0", "model.shop.m1"]
    assert json.loads(outputs_for(_result(nodes=()), CONFIG)["node_counts"]) == {}


def _annotations(result: GateResult, before: int = 0) -> list[str]:
    stream = io.StringIO()
    workflow = Workflow(stream)
    for _ in range(before):
        workflow.warning("api_timeout: read as milliseconds", title="dbtgate input")
    annotate(result, CONFIG, workflow)
    return obeyed_commands(stream.getvalue())


@pytest.mark.parametrize(("failed", "shown_nodes", "more"), [(8, 9, False), (9, 8, True), (30, 8, True)])
def test_errors_fit_ten_per_step_headline_and_more_line_included(failed: int, shown_nodes: int, more: bool) -> None:
    """9 failed nodes (8 + payments) fit beside the headline; 10 or more: 8 of them and a line saying how many more."""
    errors = [line for line in _annotations(_result(failed=failed)) if line.startswith("::error")]
    assert len(errors) <= STEP_LIMIT
    assert sum("file=" in line for line in errors) == shown_nodes
    assert any("title=More dbt nodes failed" in line for line in errors) is more
    if more:
        assert f"…and {failed + 1 - shown_nodes} more failed nodes" in errors[-1]


def test_warnings_share_the_step_budget_with_earlier_warnings() -> None:
    lines = _annotations(_result(warned=20, failed=0, outcome=Outcome.ERROR, exit_code=0), before=2)
    warnings = [line for line in lines if line.startswith("::warning")]
    assert len(warnings) == STEP_LIMIT  # 2 earlier + the headline (failure_on_error false) + 6 nodes + "N more"
    assert sum("title=dbt test w" in line for line in warnings) == 6
    assert "…and 14 more nodes warned" in warnings[-1]


def test_bad_input_with_many_problems_stays_within_ten_errors() -> None:
    stream = io.StringIO()
    annotate_problems([f"input `x{i}` is wrong" for i in range(15)], Workflow(stream))
    errors = obeyed_commands(stream.getvalue())
    assert len(errors) == STEP_LIMIT and "…and 6 more problems" in errors[-1]


def test_junit_xml_is_a_file_inside_the_workspace(tmp_path: Path) -> None:
    base = {"dbt_cloud_token": "t" * 20, "dbt_cloud_account_id": "1", "dbt_cloud_job_id": "2"}
    env = {"GITHUB_WORKSPACE": str(tmp_path)}
    config = parse_config({**base, "junit_xml": "reports/dbt.xml"}, env)
    assert config.junit_xml == tmp_path / "reports" / "dbt.xml"
    assert parse_config(base, env).junit_xml is None
    for bad in ("../dbt.xml", "/etc/dbt.xml", "reports/"):
        with pytest.raises(ConfigError) as error:
            parse_config({**base, "junit_xml": bad}, env)
        assert "junit_xml" in str(error.value), bad

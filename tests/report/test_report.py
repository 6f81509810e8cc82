"""Escaping of untrusted text, the output file format, and the job summary's content and size."""

from __future__ import annotations

import io
import re

from hypothesis import given
from hypothesis import strategies as st

from dbtgate.artifacts import ArtifactReport, NodeIssue, node_issues
from dbtgate.cloud.models import Job, Run
from dbtgate.escape import code_block, command_data, command_property, md
from dbtgate.gate.state import GateResult
from dbtgate.github import Workflow, format_outputs
from dbtgate.outcome import Outcome
from dbtgate.report.summary import SUMMARY_LIMIT, render_summary
from tests.runner import parse_output_file


def unescape(text: str) -> str:
    return (text.replace("%0D", "\r").replace("%0A", "\n").replace("%3A", ":").replace("%2C", ",")
            .replace("%25", "%"))


@given(st.text())
def test_escaped_data_is_one_line_and_reversible(text: str) -> None:
    escaped = command_data(text)
    assert "\n" not in escaped and "\r" not in escaped
    assert unescape(escaped) == text


@given(st.text())
def test_escaped_properties_cannot_end_the_property_list(text: str) -> None:
    escaped = command_property(text)
    assert not {":", ",", "\n", "\r"} & set(escaped)
    assert unescape(escaped) == text


@given(st.dictionaries(st.from_regex(r"[a-z_]{1,12}", fullmatch=True), st.text(), max_size=6))
def test_outputs_survive_the_runners_parser(outputs: dict[str, str]) -> None:
    cleaned = {k: v.replace("\r", "") for k, v in outputs.items()}
    assert parse_output_file(format_outputs(cleaned)) == cleaned


def test_an_output_value_cannot_fake_its_delimiter() -> None:
    hostile = "x\nghadelimiter_1\nevil=1"
    text = format_outputs({"a": hostile})
    assert parse_output_file(text) == {"a": hostile}


def test_untrusted_logs_cannot_run_commands() -> None:
    stream = io.StringIO()
    Workflow(stream).untrusted("::add-mask::nothing\n::error::fake\n::endgroup::")
    lines = stream.getvalue().splitlines()
    token = lines[0].removeprefix("::stop-commands::")
    assert len(token) == 32 and lines[-1] == f"::{token}::"
    # Inside the block the runner reads no command; the lines are defused as well, in case a runner did.
    assert lines[1:-1] == ["· ::add-mask::nothing", "· ::error::fake", "· ::endgroup::"]


@given(st.text())
def test_markdown_escaping_blocks_html_tables_and_lines(text: str) -> None:
    escaped = md(text)
    assert "\n" not in escaped and "<" not in escaped and ">" not in escaped
    assert re.search(r"(?<!\\)\|", escaped) is None, "an unescaped pipe would break a table"


@given(st.text())
def test_a_code_block_cannot_be_closed_from_inside(text: str) -> None:
    block = code_block(text)
    fence = block.split("text\n", 1)[0]
    inner = block[len(fence) + len("text\n"): -len(fence)]
    assert fence not in inner


def _result(outcome: Outcome = Outcome.ERROR, failed: int = 1, log_lines: int = 10,
            message: str = "boom") -> GateResult:
    steps = [{"index": 1, "name": "Clone git repository", "status": 10, "duration": "00:00:03"},
             {"index": 2, "name": "Invoke dbt with `dbt build`", "status": 20, "duration": "00:04:00",
              "logs": "\n".join(f"line {i} <script>alert(1)</script> | ::error::x" for i in range(log_lines))}]
    run = Run.from_api({"id": 70, "status": 20, "status_humanized": "Error", "href": "https://x.dbt.com/r/70/",
                        "git_sha": "abcdef1234567890", "git_branch": "main", "status_message": "it | broke",
                        "trigger": {"cause": "Deploy <b>now</b>"}, "run_steps": steps,
                        "finished_at": "2026-01-01 10:00:00+00:00", "duration": "00:04:10"})
    nodes = tuple(NodeIssue(f"model.p.m{i}", f"m{i}", "model", "error", message, 1.0, f"models/m{i}.sql")
                  for i in range(failed))
    return GateResult(outcome=outcome, exit_code=1, headline="Run 70 of \"Nightly\" failed", run=run,
                      job=Job(id=2, name="Nightly | build"),
                      artifacts=ArtifactReport(directory=None, failed=nodes,
                                               warned=(NodeIssue("test.p.t", "t", "test", "warn", "meh", 0.1, ""),)))


def test_the_summary_says_what_failed_in_a_parseable_table() -> None:
    text = render_summary(_result(), project_dir="transform")
    assert text.startswith("## ❌ dbt Cloud job Nightly \\| build failed — [run \\#70](https://x.dbt.com/r/70/)")
    rows = dict(re.findall(r"^\| (Run|Status|Outcome|Cause|Git|Finished at) \| (.*) \|$", text, re.M))
    assert rows["Status"] == "Error — it \\| broke"
    assert rows["Cause"] == "Deploy &lt;b&gt;now&lt;/b&gt;"
    assert rows["Outcome"] == "`error`" and rows["Finished at"] == "2026-01-01T10:00:00Z"
    assert "| m0<br><sub>transform/models/m0.sql</sub> | model | error | boom | 1.0s |" in text
    assert "### Warnings (1)" in text
    assert "<details><summary>Log of the failing step" in text
    assert "<script>" not in text.split("```text")[0], "HTML outside the log block must be escaped"


def test_the_summary_stays_under_one_mebibyte_and_says_so() -> None:
    huge = _result(failed=3000, log_lines=40_000, message="x" * 400)
    text = render_summary(huge)
    assert len(text.encode("utf-8")) <= SUMMARY_LIMIT
    assert "…and" in text and "more" in text
    assert re.search(r"last \d+ of 40000 lines", text)


def test_node_issues_from_run_results_and_manifest() -> None:
    results = {"results": [{"unique_id": "model.p.a", "status": "error", "message": "bad", "execution_time": 2},
                           {"unique_id": "test.p.b", "status": "fail", "message": "3 rows"},
                           {"unique_id": "test.p.c", "status": "warn", "message": "meh"},
                           {"unique_id": "model.p.d", "status": "success"}]}
    manifest = {"nodes": {"model.p.a": {"name": "a", "resource_type": "model", "original_file_path": "models/a.sql"}}}
    failed, warned = node_issues(results, manifest)
    assert [(n.name, n.file_path) for n in failed] == [("a", "models/a.sql"), ("b", "")]
    assert [n.unique_id for n in warned] == ["test.p.c"]
    assert node_issues(None, None) == ([], [])


def test_the_heading_names_the_job_once_whatever_is_known() -> None:
    """An API failure before any job was read said "dbt Cloud job dbt Cloud job could not be checked"."""
    nothing = GateResult(outcome=Outcome.API_ERROR, exit_code=3, headline="dbt Cloud answered 401")
    assert render_summary(nothing).splitlines()[0] == "## ⚠️ dbt Cloud job could not be checked"
    by_id = GateResult(outcome=Outcome.ERROR, exit_code=1, headline="Run 70 failed",
                       run=Run.from_api({"id": 70, "job_definition_id": 9, "status": 20}))
    assert render_summary(by_id).splitlines()[0] == "## ❌ dbt Cloud job 9 failed — run \\#70"
    assert render_summary(_result()).startswith("## ❌ dbt Cloud job Nightly \\| build failed")

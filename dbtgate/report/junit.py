"""The run as JUnit XML, the test report format GitLab (artifacts:reports:junit), Azure DevOps (PublishTestResults),
Jenkins (junit) and CircleCI (store_test_results) read: one testcase per node of run_results.json, and one for the
run itself, so a run that failed outside any node (a step, a timeout, the API) is never a green report.

Pure: `render_junit(result)` returns the document. Everything from dbt Cloud goes through `xml_text` (characters
XML cannot hold are removed) and ElementTree's escaping.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter

from dbtgate.artifacts import NodeResult
from dbtgate.escape import xml_text
from dbtgate.gate.state import GateResult
from dbtgate.outcome import Outcome
from dbtgate.report.annotations import annotation_path

ERROR_STATUSES = frozenset({"error", "runtime error", "partial success"})
FAILURE_STATUSES = frozenset({"fail"})
SKIPPED_STATUSES = frozenset({"skipped"})
RUN_CLASSNAME = "dbt Cloud run"


def _verdict(status: str) -> str:
    """passed, failure (a test that failed), error (a node that could not run) or skipped."""
    if status in ERROR_STATUSES:
        return "error"
    if status in FAILURE_STATUSES:
        return "failure"
    if status in SKIPPED_STATUSES:
        return "skipped"
    return "passed"


def _seconds(value: float | None) -> str:
    return f"{value:.3f}" if value is not None and value >= 0 else "0"


def render_junit(result: GateResult, *, project_dir: str = "") -> str:
    run = result.run
    job = result.job.name if result.job and result.job.name else (f"job {run.job_id}" if run and run.job_id else "")
    suite_name = " ".join(part for part in ("dbt Cloud", job, f"run {run.id}" if run else "") if part)
    files = {issue.unique_id: annotation_path(issue, project_dir)
             for issue in (result.artifacts.failed + result.artifacts.warned if result.artifacts else ())}
    suite = ET.Element("testsuite", name=xml_text(suite_name))
    properties = ET.SubElement(suite, "properties")
    for name, value in (("outcome", result.outcome.value), ("run_id", str(run.id) if run else ""),
                        ("run_url", run.href if run else ""), ("status", run.status_humanized if run else "")):
        if value:
            ET.SubElement(properties, "property", name=name, value=xml_text(value))
    verdicts = Counter([_run_case(suite, result)])
    nodes: tuple[NodeResult, ...] = result.artifacts.nodes if result.artifacts else ()
    for node in nodes:
        verdicts[_node_case(suite, node, files.get(node.unique_id))] += 1
    total = sum(node.execution_time or 0.0 for node in nodes)
    suite.attrib.update(tests=str(sum(verdicts.values())), failures=str(verdicts["failure"]),
                        errors=str(verdicts["error"]), skipped=str(verdicts["skipped"]),
                        time=_seconds(float(run.run_duration_seconds) if run and run.run_duration_seconds else total))
    suites = ET.Element("testsuites", name="dbtgate", tests=suite.attrib["tests"],
                        failures=suite.attrib["failures"], errors=suite.attrib["errors"],
                        skipped=suite.attrib["skipped"], time=suite.attrib["time"])
    suites.append(suite)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def _run_case(suite: ET.Element, result: GateResult) -> str:
    """The run itself: passed only when the gate passed on a finished run."""
    run = result.run
    case = ET.SubElement(suite, "testcase", classname=RUN_CLASSNAME, name=xml_text(f"run {run.id}" if run else "run"),
                         time=_seconds(run.run_duration_seconds if run else None))
    text = "\n".join(xml_text(part) for part in (
        result.headline, run.status_message if run else "", result.detail, result.cancel_note,
        run.href if run else "") if part)
    if result.outcome is Outcome.SUCCESS:
        return "passed"
    if result.outcome is Outcome.NOT_WAITED:
        ET.SubElement(case, "skipped", message="triggered, not waited for (wait_for_job: false)")
        return "skipped"
    kind = "failure" if result.outcome in (Outcome.ERROR, Outcome.STALE) else "error"
    element = ET.SubElement(case, kind, message=xml_text(result.headline), type=result.outcome.value)
    element.text = text
    return kind


def _node_case(suite: ET.Element, node: NodeResult, file: str | None) -> str:
    name = node.unique_id.split(".", 1)[1] if "." in node.unique_id else node.unique_id
    case = ET.SubElement(suite, "testcase", classname=xml_text(node.resource_type or "node"), name=xml_text(name),
                         time=_seconds(node.execution_time))
    if file:
        case.set("file", xml_text(file))
    verdict = _verdict(node.status)
    message = xml_text(node.message)
    if verdict == "passed":
        if node.status == "warn":
            ET.SubElement(case, "system-out").text = f"warn: {message}" if message else "warn"
        return verdict
    element = ET.SubElement(case, verdict, message=message.split("\n", 1)[0][:1000] or node.status)
    if verdict != "skipped":
        element.set("type", xml_text(node.status))
        element.text = message
    return verdict

"""Where a gate result goes: step outputs, the job summary, annotations and the failing step's log.

What each channel says is its own module's (outputs.py, summary.py, annotations.py); this one writes them.

One function, `publish`, serves the action and the CLI, on every path that got this far: success, failure,
timeout, interruption and API failure all leave outputs and a summary behind.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from dbtgate.config import GateConfig
from dbtgate.escape import md
from dbtgate.gate.state import GateResult
from dbtgate.github import Workflow, append_file, format_outputs
from dbtgate.outcome import Outcome
from dbtgate.report.annotations import annotate, annotate_problems
from dbtgate.report.junit import render_junit
from dbtgate.report.outputs import outputs_for
from dbtgate.report.summary import render_summary

CONSOLE_LOG_LINES = 60
def publish(result: GateResult, config: GateConfig, *, workflow: Workflow, env: Mapping[str, str],
            summary_file: str | Path | None = None, output_file: str | Path | None = None) -> None:
    # Redacted like every other text that leaves the process: a server that echoes the token must not get it into
    # an output or the summary.
    append_file(output_file or env.get("GITHUB_OUTPUT"), format_outputs(outputs_for(result, config)),
                workflow.redactor)
    append_file(summary_file or env.get("GITHUB_STEP_SUMMARY"),
                render_summary(result, project_dir=config.project_dir), workflow.redactor)
    if config.junit_xml is not None:
        write_junit(result, config, workflow)
    run = result.run
    if run is not None and run.failed_step is not None and run.failed_step.logs:
        lines = run.failed_step.logs.rstrip("\n").splitlines()
        # In GitHub the log sits in a collapsed group; on a terminal only its end is worth the screen.
        shown = lines if workflow.github else lines[-CONSOLE_LOG_LINES:]
        cut = f" (last {len(shown)} of {len(lines)} lines)" if len(shown) < len(lines) else ""
        with workflow.group(f"Log of the failing step: {run.failed_step.name}{cut}"):
            workflow.untrusted("\n".join(shown))
    if result.exit_code != 0 or result.outcome not in (Outcome.SUCCESS, Outcome.NOT_WAITED):
        annotate(result, config, workflow)


def write_junit(result: GateResult, config: GateConfig, workflow: Workflow) -> None:
    """The JUnit report (junit_xml): a file that cannot be written is a warning; the gate's verdict stands."""
    path = config.junit_xml
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(str(workflow.redactor.scrub(render_junit(result, project_dir=config.project_dir))),
                        "utf-8")
    except OSError as error:
        workflow.warning(f"junit_xml: could not write {path} ({error.strerror or error}); the outputs and the "
                         "summary are complete.", title="dbtgate: JUnit report not written")


def config_error_outputs() -> dict[str, str]:
    return {"outcome": "config_error", "exit_code": "2"}


def write_config_error(env: Mapping[str, str], problems: list[str], workflow: Workflow,
                       summary_file: str | Path | None = None, output_file: str | Path | None = None) -> None:
    annotate_problems(problems, workflow)
    lines = ["## ⚙️ dbtgate was configured wrong — nothing was triggered", ""]
    lines += [f"- {md(p)}" for p in problems]
    append_file(summary_file or env.get("GITHUB_STEP_SUMMARY"), "\n".join(lines) + "\n", workflow.redactor)
    append_file(output_file or env.get("GITHUB_OUTPUT"), format_outputs(config_error_outputs()), workflow.redactor)

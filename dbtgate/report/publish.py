"""Where a gate result goes: step outputs, the job summary, annotations and the failing step's log.

What each channel says is its own module's (outputs.py, summary.py, annotations.py); this one writes them.

One function, `publish`, serves the action and the CLI, on every path that got this far: success, failure,
timeout, interruption and API failure all leave outputs and a summary behind.

Each channel — outputs, summary, the failing step's log, annotations — is written on its own: one that cannot be
written (GITHUB_OUTPUT in a folder that is gone, a summary path that is a directory, a closed stdout) is skipped
with a warning in the others, and never changes the exit code, which is the gate's decision alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from pathlib import Path

from dbtgate.config import GateConfig
from dbtgate.escape import md
from dbtgate.gate.state import GateResult
from dbtgate.github import Workflow, append_file, format_outputs
from dbtgate.logs import get_logger
from dbtgate.outcome import Outcome
from dbtgate.report.annotations import annotate, annotate_problems
from dbtgate.report.outputs import outputs_for
from dbtgate.report.summary import render_summary

CONSOLE_LOG_LINES = 60
log = get_logger("dbtgate")


class _Channels:
    """Writes each channel alone and remembers the ones that failed, to say so in the others."""

    def __init__(self, workflow: Workflow) -> None:
        self.workflow = workflow
        self.failed: list[tuple[str, str]] = []     # (channel, what happened)

    def write(self, channel: str, where: str, action: Callable[[], None]) -> None:
        try:
            action()
        except OSError as error:
            self.failed.append((channel, f"dbtgate could not write the {channel}{f' to {where}' if where else ''} "
                                         f"({error.strerror or error})"))

    def warn(self, verdict: str) -> None:
        """A warning per failed channel, as an annotation and a log line (whichever of them still works)."""
        for channel, what in self.failed:
            message = f"{what}. {verdict} The other report channels were written."
            with contextlib.suppress(OSError):
                self.workflow.warning(message, title=f"dbtgate: {channel} not written")
            with contextlib.suppress(OSError):
                log.warning(message)


def publish(result: GateResult, config: GateConfig, *, workflow: Workflow, env: Mapping[str, str],
            summary_file: str | Path | None = None, output_file: str | Path | None = None) -> None:
    channels = _Channels(workflow)
    # Redacted like every other text that leaves the process: a server that echoes the token must not get it into
    # an output or the summary.
    outputs_path = output_file or env.get("GITHUB_OUTPUT")
    channels.write("step outputs", str(outputs_path or ""), lambda: append_file(
        outputs_path, format_outputs(outputs_for(result, config)), workflow.redactor))
    summary_path = summary_file or env.get("GITHUB_STEP_SUMMARY")
    channels.write("job summary", str(summary_path or ""), lambda: append_file(
        summary_path, render_summary(result, project_dir=config.project_dir), workflow.redactor))
    if config.junit_xml is not None:
        channels.write("JUnit XML", str(config.junit_xml), lambda: write_junit(result, config, workflow))
    run = result.run
    if run is not None and run.failed_step is not None and run.failed_step.logs:
        step = run.failed_step
        channels.write("log of the failing step", "", lambda: _failing_log(workflow, step.name, step.logs))
    if result.exit_code != 0 or result.outcome not in (Outcome.SUCCESS, Outcome.NOT_WAITED):
        channels.write("annotations", "", lambda: annotate(result, config, workflow))
    channels.warn(f"The gate's result stands: {result.outcome.value}, exit code {int(result.exit_code)}.")


def _failing_log(workflow: Workflow, name: str, logs: str) -> None:
    lines = logs.rstrip("\n").splitlines()
    # In GitHub the log sits in a collapsed group; on a terminal only its end is worth the screen.
    shown = lines if workflow.github else lines[-CONSOLE_LOG_LINES:]
    cut = f" (last {len(shown)} of {len(lines)} lines)" if len(shown) < len(lines) else ""
    with workflow.group(f"Log of the failing step: {name}{cut}"):
        workflow.untrusted("\n".join(shown))


def write_junit(result: GateResult, config: GateConfig, workflow: Workflow) -> None:
    """The JUnit report (junit_xml): a file that cannot be written is a warning; the gate's verdict stands."""
    path = config.junit_xml
    if path is None:
        return
    from dbtgate.report.junit import render_junit  # xml.etree only when a report is asked for: off the start-up path

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
    channels = _Channels(workflow)
    channels.write("annotations", "", lambda: annotate_problems(problems, workflow))
    lines = ["## ⚙️ dbtgate was configured wrong — nothing was triggered", ""]
    lines += [f"- {md(p)}" for p in problems]
    summary_path = summary_file or env.get("GITHUB_STEP_SUMMARY")
    channels.write("job summary", str(summary_path or ""), lambda: append_file(
        summary_path, "\n".join(lines) + "\n", workflow.redactor))
    outputs_path = output_file or env.get("GITHUB_OUTPUT")
    channels.write("step outputs", str(outputs_path or ""), lambda: append_file(
        outputs_path, format_outputs(config_error_outputs()), workflow.redactor))
    channels.warn("The gate's result stands: config_error, exit code 2.")

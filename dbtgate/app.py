"""The one code path: inputs → configuration → gate → report → exit status, for every face of dbtgate.

The Docker action (`run_action`), the CLI's `run` and `wait` (cli.py), the demo (demo.py) and the scripts all come
through `execute`; the Python API (api.py) through `gate_result`, which is the same gate without the report
files. Nothing here parses flags or knows about argparse; nothing below imports this module.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import TextIO, cast

from dbtgate.clock import Clock, SystemClock
from dbtgate.cloud.client import connect
from dbtgate.config import GateConfig, parse_config
from dbtgate.errors import ConfigError
from dbtgate.gate.gate import Gate
from dbtgate.gate.state import GateResult
from dbtgate.github import GuardedStream, Workflow
from dbtgate.inputs import INPUTS
from dbtgate.logs import Redactor, configure, get_logger
from dbtgate.outcome import ExitStatus, Outcome, exit_status_for
from dbtgate.signals import Interrupted, SignalGuard


def open_channel(commands: TextIO, logs: TextIO, token: str, *, github: bool, fmt: str = "console",
                 debug: bool = False) -> tuple[Workflow, Redactor, TextIO]:
    """The one way out of the process: a `Workflow` for dbtgate's own workflow commands (the token masked before
    anything else is printed), and a guarded stream for everything else, which structlog writes to. Every text is
    redacted of the token on both."""
    redactor = Redactor([token])
    workflow = Workflow(commands, github=github, redactor=redactor)
    if token and github:
        workflow.add_mask(token)
    guarded = cast(TextIO, GuardedStream(logs, redactor))
    configure(guarded, fmt=fmt, debug=debug, redactor=redactor)
    return workflow, redactor, guarded


def run_action(env: Mapping[str, str], stdout: TextIO) -> int:
    """The Docker action: inputs from INPUT_*, logs and workflow commands on stdout."""
    token = env.get("INPUT_DBT_CLOUD_TOKEN", "").strip()
    workflow, redactor, _ = open_channel(stdout, stdout, token, github=True, debug=env.get("RUNNER_DEBUG") == "1")
    raw = {spec.name: env.get(f"INPUT_{spec.name.upper()}", "") for spec in INPUTS}
    labels = {spec.name: f"input `{spec.name}`" for spec in INPUTS}
    try:
        config = parse_config(raw, env, labels)
    except ConfigError as error:
        from dbtgate.report.publish import write_config_error

        write_config_error(env, error.problems, workflow)
        return ExitStatus.BAD_CONFIG
    return execute(config, env, workflow, redactor)


def execute(config: GateConfig, env: Mapping[str, str], workflow: Workflow, redactor: Redactor, *,
            summary_file: str | None = None, output_file: str | None = None, json_out: TextIO | None = None,
            install_signals: bool = True, clock: Clock | None = None) -> int:
    """The one code path: gate the job, then publish outputs, summary and annotations, then the exit code.
    `clock` (durations and the date) is the real one unless a test brings its own."""
    log = get_logger("dbtgate")
    guard = SignalGuard()
    if install_signals:
        guard.install()
    for warning in config.warnings:
        workflow.warning(warning, title="dbtgate input")
    clock = clock or SystemClock()
    gate: Gate | None = None
    try:
        gate = Gate(config, connect(config, clock), clock, emit=lambda line: log.info(line))
        result = gate.run()
    except Interrupted as interrupted:
        # Before the gate took charge there is nothing to cancel; after it returned, it already did what it could.
        result = gate.salvage(interrupted) if gate is not None else _bare_result(interrupted)
    guard.reporting = True  # from here on, a further signal must not cut the report short
    # The report's modules are imported once there is something to report: off the path to the first request,
    # which every action run pays for.
    from dbtgate.report.outputs import outputs_for, run_json
    from dbtgate.report.publish import publish

    publish(result, config, workflow=workflow, env=env, summary_file=summary_file, output_file=output_file)
    log.info(result.headline, outcome=result.outcome.value, exit_code=int(result.exit_code))
    if json_out is not None:
        payload = {"outputs": outputs_for(result, config), "run": run_json(result.run) if result.run else None}
        # Like every report channel, --json failing (a closed pipe) does not change the exit code: the decision's.
        with contextlib.suppress(OSError):
            json_out.write(json.dumps(payload, indent=2) + "\n")
            json_out.flush()
    return result.exit_code


def _bare_result(interrupted: Interrupted) -> GateResult:
    return GateResult(outcome=Outcome.INTERRUPTED, exit_code=exit_status_for(Outcome.INTERRUPTED, True,
                                                                           interrupted.signum),
                      headline=f"Interrupted by {interrupted} before any run was triggered")

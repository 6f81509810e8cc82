"""Command line and action entry: `dbtgate run|wait|status|cancel|emulator|demo`, or the action with no arguments.

Inside a GitHub Docker action (GITHUB_ACTIONS=true and no arguments) inputs come from INPUT_* variables; with
arguments, from flags and DBT_CLOUD_* variables. Both become the same raw mapping and go through one validation
(`config.parse_config`) and one code path (`execute`).
"""

from __future__ import annotations

import argparse
import difflib
import errno
import functools
import json
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO, cast

from dbtgate import __version__
from dbtgate.app import execute, open_channel, run_action
from dbtgate.clock import SystemClock
from dbtgate.cloud.client import DbtCloudClient, connect
from dbtgate.cloud.models import Run
from dbtgate.config import parse_config
from dbtgate.errors import ApiError, ConfigError, DeadlineExceeded
from dbtgate.github import GuardedStream, Workflow
from dbtgate.inputs import GATE, INPUT_NAMES, INPUTS, SPECS, Group, InputSpec, Kind
from dbtgate.logs import Redactor
from dbtgate.outcome import ExitStatus
from dbtgate.watch.progress import describe

EXIT_CODES_HELP = """exit codes:
  0  the run succeeded (or was triggered without waiting, or failure_on_error is false)
  1  the run did not succeed: error, cancelled, still running at the timeout, or older than max_age
  2  bad input: a value dbtgate refuses, or a token, account, job, run or URL that dbt Cloud refuses at the
     first call (a job name that matches no job, or several); nothing was triggered. Fix the input; do not retry
  3  dbt Cloud could not be used: it kept failing (5xx, time-outs, lost connections) or a run could no longer
     be watched. Retrying later may help
  130/143  interrupted by SIGINT/SIGTERM (the run is cancelled first unless told otherwise)
"""
# ---- entry ----------------------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None,
         stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    env = dict(os.environ if env is None else env)
    if not argv and env.get("GITHUB_ACTIONS") == "true":
        return run_action(env, stdout or sys.stdout)
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    parser = build_parser()
    if not argv:
        parser.print_help(stderr)
        return ExitStatus.BAD_CONFIG
    try:
        args, unknown = parser.parse_known_args(argv)
        if unknown:
            _unknown_flags(getattr(args, "parser", parser), unknown)
    except SystemExit as exit_:  # --help / --version (0), or a usage error argparse already explained
        return ExitStatus.SUCCESS if not exit_.code else ExitStatus.BAD_CONFIG
    handler: Any = args.handler
    return int(handler(args, env, stdout, stderr))


# ---- CLI ------------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dbtgate", description="Trigger a dbt Cloud job, wait for its run, and pass only if it succeeded.",
        epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"dbtgate {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    run = commands.add_parser("run", help="trigger a job and wait for the run (the gate)", epilog=EXIT_CODES_HELP,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    _input_flags(run, "run")
    run.set_defaults(parser=run, handler=cmd_gate)

    wait = commands.add_parser("wait", help="wait on an existing run and gate on it", epilog=EXIT_CODES_HELP,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    wait.add_argument("run_id", metavar="RUN_ID")
    _input_flags(wait, "wait")
    wait.set_defaults(parser=wait, handler=cmd_gate)

    status = commands.add_parser("status", help="show a run's status")
    status.add_argument("run_id", metavar="RUN_ID")
    _input_flags(status, "status")
    status.set_defaults(parser=status, handler=cmd_status)

    cancel = commands.add_parser("cancel", help="cancel a run")
    cancel.add_argument("run_id", metavar="RUN_ID")
    _input_flags(cancel, "cancel")
    cancel.set_defaults(parser=cancel, handler=cmd_cancel)

    emulator = commands.add_parser("emulator", help="serve a local dbt Cloud API emulator until Ctrl-C")
    emulator.add_argument("--port", type=int, default=8765, help="port to listen on (0: any free port)")
    emulator.add_argument("--host", default="127.0.0.1",
                          help="address to listen on (0.0.0.0 lets containers on this machine reach it)")
    emulator.add_argument("--scenario", help="scenario YAML file (default: the built-in demo scenario)")
    emulator.add_argument("--time-scale", type=float, help="emulated seconds per real second")
    emulator.add_argument("--tls", action="store_true", help="serve HTTPS with a throwaway self-signed certificate")
    emulator.set_defaults(parser=emulator, handler=cmd_emulator)

    demo = commands.add_parser("demo", help="watch dbtgate gate four jobs on the built-in emulator")
    demo.add_argument("--out", default="dbtgate-demo", help="folder for the outputs, summaries and artifacts")
    demo.set_defaults(parser=demo, handler=cmd_demo)
    return parser


def _unknown_flags(parser: argparse.ArgumentParser, unknown: list[str]) -> None:
    """A mistyped flag: the command's own usage, and the flag that was probably meant (argparse says neither)."""
    known = [option for action in parser._actions for option in action.option_strings]
    hints = []
    for word in unknown:
        if word.startswith("-"):
            close = difflib.get_close_matches(word.split("=", 1)[0], known, n=1, cutoff=0.6)
            hints.append(f"{word} (did you mean {close[0]}?)" if close else word)
    parser.error("unrecognized arguments: " + (", ".join(hints) if hints else " ".join(unknown)))


def _input_flags(parser: argparse.ArgumentParser, command: str) -> None:
    """The flags of one command: every input that command takes (inputs.py says which), in its group."""
    groups: dict[Group, Any] = {}
    for spec in INPUTS:
        if command in spec.commands:
            if spec.group not in groups:
                groups[spec.group] = parser.add_argument_group(spec.group.value)
            _add_input(groups[spec.group], spec)
    output = parser.add_argument_group("output")
    output.add_argument("--json", action="store_true", help="print the outputs as JSON on stdout")
    output.add_argument("--log-format", choices=("console", "json"), default="console",
                        help="progress log format on stderr")
    output.add_argument("--debug", action="store_true", help="log every request (the token is always redacted)")
    if command in GATE:
        output.add_argument("--summary", metavar="FILE", help="append the Markdown summary to FILE")
        output.add_argument("--output", metavar="FILE", help="append outputs to FILE in GITHUB_OUTPUT format")


@functools.cache
def _input_name() -> re.Pattern[str]:
    """Every input's name as a word: compiled when help is built, not at start-up (argparse builds help lazily)."""
    return re.compile(r"\b(" + "|".join(sorted(INPUT_NAMES, key=len, reverse=True)) + r")\b")


def in_flags(text: str) -> str:
    """An input's description as a CLI user reads it: every input name it mentions written as its flag."""
    return _input_name().sub(lambda found: SPECS[found.group(1)].flag if SPECS[found.group(1)].commands
                           else found.group(1).upper(), text)


def _add_input(group: Any, spec: InputSpec) -> None:
    flag = spec.flag
    env_note = f" [env: {', '.join(spec.env_vars)}]" if spec.env_vars else ""
    default_note = f" (default: {spec.default})" if spec.default else ""
    help_text = (in_flags(spec.description) + default_note + env_note).replace("%", "%%")
    if spec.kind in (Kind.BOOL, Kind.AUTO_BOOL):
        group.add_argument(flag, dest=spec.name, nargs="?", const="true", metavar=spec.metavar or "BOOL",
                           help=f"{help_text} Off: --no-{flag[2:]}.")
        group.add_argument("--no-" + flag[2:], dest=spec.name, action="store_const", const="false",
                           help=argparse.SUPPRESS)
    elif spec.kind is Kind.LINES:
        group.add_argument(flag, dest=spec.name, action="append", metavar="VALUE", help=help_text + " Repeatable.")
    else:
        group.add_argument(flag, dest=spec.name, metavar=spec.name.upper().removeprefix("DBT_CLOUD_"),
                           help=help_text)


def _raw_from_args(args: argparse.Namespace, env: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    raw: dict[str, str] = {}
    labels: dict[str, str] = {}
    for spec in INPUTS:
        value = getattr(args, spec.name, None)
        if isinstance(value, list):
            value = "\n".join(value)
        if value is None:
            value = next((env[var] for var in spec.env_vars if env.get(var)), None)
        raw[spec.name] = value if value is not None else spec.default
        labels[spec.name] = spec.flag + (f" (or {spec.env_vars[0]})" if spec.env_vars else "")
    run_id = getattr(args, "run_id", None)
    # `run` has no run id (waiting on one is `wait`'s job); the commands that take one name it RUN_ID.
    labels["run_id"] = "RUN_ID" if run_id is not None else "`dbtgate wait RUN_ID`"
    if run_id is not None:
        raw["run_id"] = str(run_id)
    return raw, labels


def _cli_setup(args: argparse.Namespace, env: Mapping[str, str], stdout: TextIO, stderr: TextIO
               ) -> tuple[Workflow, Redactor, TextIO, TextIO]:
    """The workflow-command writer and the guarded streams that everything else is printed to (see github.py)."""
    in_actions = env.get("GITHUB_ACTIONS") == "true"
    token = (getattr(args, "dbt_cloud_token", None) or env.get("DBT_CLOUD_API_TOKEN") or "").strip()
    workflow, redactor, safe_err = open_channel(stdout if in_actions else stderr, stderr, token, github=in_actions,
                                                fmt=getattr(args, "log_format", "console"),
                                                debug=getattr(args, "debug", False))
    return workflow, redactor, cast(TextIO, GuardedStream(stdout, redactor)), safe_err


def cmd_gate(args: argparse.Namespace, env: Mapping[str, str], stdout: TextIO, stderr: TextIO) -> int:
    workflow, redactor, stdout, stderr = _cli_setup(args, env, stdout, stderr)
    raw, labels = _raw_from_args(args, env)
    if getattr(args, "run_id", None) is None:
        raw["run_id"] = ""
    try:
        config = parse_config(raw, env, labels)
    except ConfigError as error:
        from dbtgate.report.publish import write_config_error  # only for bad input: off the start-up path

        write_config_error(env, error.problems, workflow, summary_file=args.summary, output_file=args.output)
        return ExitStatus.BAD_CONFIG
    return execute(config, env, workflow, redactor, summary_file=args.summary, output_file=args.output,
                   json_out=stdout if args.json else None)


def _client_for(args: argparse.Namespace, env: Mapping[str, str], workflow: Workflow
                ) -> tuple[DbtCloudClient, int] | None:
    """A client and the run id, both through the one validation path (RUN_ID checked like the run_id input)."""
    raw, labels = _raw_from_args(args, env)
    raw["run_id"] = str(args.run_id)
    try:
        config = parse_config(raw, env, labels)
    except ConfigError as error:
        from dbtgate.report.publish import write_config_error

        write_config_error(env, error.problems, workflow)
        return None
    assert config.run_id is not None
    return connect(config, SystemClock()), config.run_id


def _one_run(args: argparse.Namespace, env: Mapping[str, str], stdout: TextIO, stderr: TextIO,
             call: Callable[[DbtCloudClient, int, float], Run]) -> int:
    """`status` and `cancel`: one call about one run, a line for people, JSON for scripts."""
    workflow, _, stdout, stderr = _cli_setup(args, env, stdout, stderr)
    found = _client_for(args, env, workflow)
    if found is None:
        return ExitStatus.BAD_CONFIG
    client, run_id = found
    try:
        run = call(client, run_id, client.clock.monotonic() + client.api_timeout * 3)
    except (ApiError, DeadlineExceeded) as error:
        if isinstance(error, ApiError) and error.kind.is_mistake:
            workflow.error(str(error), title="dbtgate: bad input")
            return ExitStatus.BAD_CONFIG
        workflow.error(str(error), title="dbt Cloud API failed")
        return ExitStatus.API_FAILED
    message = f" — {' '.join(run.status_message.split())}" if run.status_message else ""
    stderr.write(f"Run {run.id}: {' '.join(describe(run).split())}{message}\n{run.href}\n")
    stderr.flush()
    if args.json:
        from dbtgate.report.outputs import run_json

        stdout.write(json.dumps(run_json(run), indent=2) + "\n")
        stdout.flush()
    return ExitStatus.SUCCESS


def cmd_status(args: argparse.Namespace, env: Mapping[str, str], stdout: TextIO, stderr: TextIO) -> int:
    return _one_run(args, env, stdout, stderr,
                    lambda client, run_id, deadline: client.get_run(run_id, deadline=deadline))


def cmd_cancel(args: argparse.Namespace, env: Mapping[str, str], stdout: TextIO, stderr: TextIO) -> int:
    return _one_run(args, env, stdout, stderr,
                    lambda client, run_id, deadline: client.cancel_run(run_id, deadline=deadline))


def cmd_emulator(args: argparse.Namespace, env: Mapping[str, str], stdout: TextIO, stderr: TextIO) -> int:
    from dbtgate.emulator import Emulator, ScenarioError, load_scenario
    try:
        overrides: dict[str, Any] = {"time_scale": args.time_scale} if args.time_scale else {}
        scenario = load_scenario(args.scenario, **overrides)
    except (ScenarioError, OSError) as error:
        stderr.write(f"dbtgate emulator: {error}\n")
        return ExitStatus.BAD_CONFIG
    try:
        emulator = Emulator(scenario, port=args.port, host=args.host, tls=args.tls)
    except OSError as error:
        # Most often the port is taken (another emulator still running); say what to do, not a traceback.
        taken = error.errno in (errno.EADDRINUSE, errno.EACCES)
        stderr.write(f"dbtgate emulator: cannot listen on {args.host}:{args.port}: {error.strerror or error}. "
                     + ("Stop whatever uses that port, or pick another with --port N (--port 0 takes any free "
                        "port).\n" if taken else "Check --host and --port.\n"))
        return ExitStatus.BAD_CONFIG
    jobs = ", ".join(f"{job.id} ({job.name})" for job in scenario.jobs) or "none"
    stdout.write(
        f"dbt Cloud emulator listening on {emulator.url}\n"
        f"  token:      {scenario.token}\n  account id: {scenario.account_id}\n  jobs:       {jobs}\n"
        f"  time scale: {scenario.time_scale:g} emulated seconds per second\n"
        + (f"  CA file:    {emulator.ca_file} (export REQUESTS_CA_BUNDLE={emulator.ca_file})\n"
           if emulator.ca_file else "")
        + f"\nTry:  DBT_CLOUD_API_TOKEN={scenario.token} dbtgate run --url {emulator.url} --account-id "
        f"{scenario.account_id} --job-id {scenario.jobs[0].id if scenario.jobs else 1} --interval 1\n"
        "Request log: GET /_emulator/requests.  Ctrl-C stops.\n")
    stdout.flush()
    try:
        emulator.serve_forever()
    except KeyboardInterrupt:
        stdout.write("stopped\n")
    finally:
        emulator.stop()
    return ExitStatus.SUCCESS


def cmd_demo(args: argparse.Namespace, env: Mapping[str, str], stdout: TextIO, stderr: TextIO) -> int:
    from dbtgate.demo import run_demo
    return run_demo(Path(args.out), stdout, stderr)

"""Run `entrypoint.py` the way GitHub's runner runs a Docker action, without Docker.

- every input declared in action.yml is set as INPUT_<NAME>: the user's value, else the default, else "";
- GITHUB_ACTIONS=true, GITHUB_* context, RUNNER_*, HOME; fresh, empty GITHUB_OUTPUT / GITHUB_STEP_SUMMARY /
  GITHUB_ENV / GITHUB_STATE files;
- no TTY, stdout a pipe; the workspace is the working directory;
- the output file is parsed with the runner's own rules, and a malformed file fails the step.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
ACTION = yaml.safe_load((ROOT / "action.yml").read_text("utf-8"))


class MalformedOutputFile(AssertionError):
    """The runner would fail the step on this GITHUB_OUTPUT file, whatever the exit code."""


def parse_output_file(text: str) -> dict[str, str]:
    """actions/runner's SetOutputFileCommand / EnvFileCommand parsing, line for line."""
    outputs: dict[str, str] = {}
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    index = 0
    while index < len(lines):
        line = lines[index].removesuffix("\r")
        index += 1
        if line == "":
            continue
        equals = line.find("=")
        heredoc = line.find("<<")
        if equals >= 0 and (heredoc < 0 or equals < heredoc):
            name, value = line[:equals], line[equals + 1:]
            if not name:
                raise MalformedOutputFile(f"Invalid format {line!r}: name must not be empty")
            outputs[name] = value
        elif heredoc >= 0:
            name, delimiter = line[:heredoc], line[heredoc + 2:]
            if not name or not delimiter:
                raise MalformedOutputFile(f"Invalid format {line!r}")
            value_lines = []
            while True:
                if index >= len(lines):
                    raise MalformedOutputFile(f"Matching delimiter not found {delimiter!r}")
                candidate = lines[index].removesuffix("\r")
                index += 1
                if candidate == delimiter:
                    break
                value_lines.append(candidate)
            outputs[name] = "\n".join(value_lines)
        else:
            raise MalformedOutputFile(f"Invalid format {line!r}")
    return outputs


@dataclass
class StepResult:
    exit_code: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    summary: str
    workspace: Path

    @property
    def log(self) -> str:
        return self.stdout + self.stderr

    def commands(self, name: str) -> list[str]:
        """The workflow commands of one kind that the runner would act on in stdout."""
        return [line for line in obeyed_commands(self.stdout) if line.startswith(f"::{name}")]


def obeyed_commands(text: str) -> list[str]:
    """Every workflow command the runner would act on in this output, by its rules (ActionCommandManager):
    a line that starts with `::` after leading blanks (new syntax), or that contains `##[` anywhere (legacy
    syntax); nothing but the resume token between `::stop-commands::TOKEN` and `::TOKEN::`. CR and LF both end a
    line."""
    found: list[str] = []
    stopped_by: str | None = None
    for raw_line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = raw_line.strip()
        if stopped_by is not None:
            if line == f"::{stopped_by}::":
                stopped_by = None
            continue
        if line.startswith("::stop-commands::"):
            stopped_by = line.split("::", 2)[2]
            continue
        if line.startswith("::") or "##[" in line:
            found.append(line)
    return found


def action_env(inputs: dict[str, Any], workspace: Path, extra_env: dict[str, str] | None = None) -> dict[str, str]:
    files = workspace.parent / f"{workspace.name}-files"
    files.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(workspace.parent / "home"),
        "GITHUB_ACTIONS": "true", "CI": "true", "GITHUB_REPOSITORY": "acme/analytics", "GITHUB_RUN_ID": "4242",
        "GITHUB_SHA": "0123456789abcdef0123456789abcdef01234567", "GITHUB_REF": "refs/heads/main",
        "GITHUB_SERVER_URL": "https://github.com", "GITHUB_WORKFLOW": "deploy", "GITHUB_JOB": "gate",
        "GITHUB_WORKSPACE": str(workspace), "GITHUB_EVENT_PATH": str(files / "event.json"),
        "RUNNER_OS": "Linux", "RUNNER_TEMP": str(files),
        "PYTHONPATH": str(ROOT),
    }
    for name in ("GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "GITHUB_ENV", "GITHUB_STATE"):
        path = files / name.lower()
        path.write_text("")
        env[name] = str(path)
    for name, spec in ACTION["inputs"].items():
        value = inputs.get(name, (spec or {}).get("default", ""))
        env[f"INPUT_{name.replace(' ', '_').upper()}"] = "" if value is None else str(value)
    unknown = set(inputs) - set(ACTION["inputs"])
    assert not unknown, f"not inputs of action.yml: {unknown}"
    env.update(extra_env or {})
    return env


def start_step(inputs: dict[str, Any], workspace: Path, extra_env: dict[str, str] | None = None,
               python_args: tuple[str, ...] = ()) -> tuple[subprocess.Popen[str], dict[str, str]]:
    workspace.mkdir(parents=True, exist_ok=True)
    env = action_env(inputs, workspace, extra_env)
    process = subprocess.Popen([sys.executable, *python_args, str(ROOT / "entrypoint.py")], cwd=workspace, env=env,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return process, env


def finish_step(process: subprocess.Popen[str], env: dict[str, str], workspace: Path,
                timeout: float = 60) -> StepResult:
    stdout, stderr = process.communicate(timeout=timeout)
    outputs = parse_output_file(Path(env["GITHUB_OUTPUT"]).read_text("utf-8"))
    summary = Path(env["GITHUB_STEP_SUMMARY"]).read_text("utf-8")
    return StepResult(process.returncode, stdout, stderr, outputs, summary, workspace)


def run_step(inputs: dict[str, Any], workspace: Path, extra_env: dict[str, str] | None = None,
             timeout: float = 60) -> StepResult:
    process, env = start_step(inputs, workspace, extra_env)
    return finish_step(process, env, workspace, timeout)


# The CLI as a user runs it: a subprocess with a clean environment.
def cli(*args: str, env: dict[str, str] | None = None, entry: str = "module",
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "dbtgate"] if entry == "module" else [sys.executable, str(ROOT / "entrypoint.py")]
    base = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run([*command, *args], env={**base, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)

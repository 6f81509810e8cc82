"""Run composite/action.yml the way GitHub's runner runs a composite action, without a runner.

What the runner does (actions/runner, src/Runner.Worker/Handlers/CompositeActionHandler.cs and ScriptHandler.cs),
and so this harness:

- the `inputs` context is the caller's `with:` over the declared defaults; composite steps get NO `INPUT_*`
  variables (actions/runner#665), so none are in the environment unless a step's `env:` maps them;
- every `${{ ... }}` is evaluated from `inputs`, `github`, `runner` and the composite's own `steps` scope. Only the
  forms composite/action.yml uses are understood; any other expression fails the test, so the harness cannot drift
  silently from the file it runs;
- the environment of a step: the job's (the runner's variables plus what earlier steps wrote to GITHUB_ENV /
  GITHUB_PATH), then the caller step's `env:`, then the inner step's own `env:`; GITHUB_ACTION_PATH is the action's
  folder;
- a `run:` step must say `shell:`; bash runs it as `bash --noprofile --norc -e -o pipefail FILE`, in the workspace,
  with fresh GITHUB_OUTPUT / GITHUB_STEP_SUMMARY / GITHUB_ENV / GITHUB_PATH / GITHUB_STATE files, parsed afterwards
  with the runner's rules;
- a failed step ends the composite; its outputs are evaluated anyway, after the steps (ProcessOutputs);
- `uses: actions/setup-python` (the only action the file uses) is stood in for by this interpreter, as its
  `python-path` output.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.runner import parse_output_file

ROOT = Path(__file__).resolve().parent.parent
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
BASH = ["bash", "--noprofile", "--norc", "-e", "-o", "pipefail"]


class UnsupportedExpression(AssertionError):
    """composite/action.yml uses an expression this harness does not evaluate: teach it, do not guess."""


def install_action(where: Path) -> Path:
    """The action's repository as the runner downloads it (_actions/OWNER/REPO/REF), only the tracked files the
    composite needs; returns the composite's folder (github.action_path)."""
    repository = where / "_actions" / "dbtgate" / "dbtgate" / "v1"
    for name in ("composite", "dbtgate", "requirements.txt", "LICENSE"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, repository / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            repository.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, repository / name)
    return repository / "composite"


@dataclass
class InnerStep:
    id: str
    exit_code: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    summary: str
    env: dict[str, str]


@dataclass
class CompositeResult:
    exit_code: int                 # 0, or the exit code of the step that failed
    outputs: dict[str, str]        # what `steps.<caller's id>.outputs` holds in the caller's workflow
    steps: dict[str, InnerStep] = field(default_factory=dict)

    @property
    def log(self) -> str:
        return "".join(step.stdout + step.stderr for step in self.steps.values())

    @property
    def summary(self) -> str:
        return "".join(step.summary for step in self.steps.values())


class CompositeRunner:
    def __init__(self, action_path: Path, workspace: Path, runner_temp: Path,
                 base_python: str = sys.executable) -> None:
        self.action_path = action_path
        self.action = yaml.safe_load((action_path / "action.yml").read_text("utf-8"))
        assert self.action["runs"]["using"] == "composite"
        self.workspace = workspace
        self.runner_temp = runner_temp
        self.base_python = base_python
        workspace.mkdir(parents=True, exist_ok=True)
        runner_temp.mkdir(parents=True, exist_ok=True)

    # ---- the runner's contexts ----------------------------------------------------------------------------------
    def job_env(self) -> dict[str, str]:
        """The variables the runner gives every step of a job (no INPUT_* among them)."""
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.runner_temp.parent / "home"),
            "GITHUB_ACTIONS": "true", "CI": "true", "GITHUB_REPOSITORY": "acme/analytics", "GITHUB_RUN_ID": "4242",
            "GITHUB_SHA": "0123456789abcdef0123456789abcdef01234567", "GITHUB_REF": "refs/heads/main",
            "GITHUB_SERVER_URL": "https://github.com", "GITHUB_WORKFLOW": "deploy", "GITHUB_JOB": "gate",
            "GITHUB_WORKSPACE": str(self.workspace), "RUNNER_OS": "Linux", "RUNNER_TEMP": str(self.runner_temp),
            "RUNNER_ARCH": "X64",
        }

    def evaluate(self, text: str, inputs: Mapping[str, str], steps: Mapping[str, dict[str, str]]) -> str:
        def value(match: re.Match[str]) -> str:
            expression = match.group(1)
            parts = expression.split(".")
            if parts[0] == "inputs" and len(parts) == 2:
                if parts[1] not in self.action["inputs"]:
                    raise UnsupportedExpression(f"{expression}: not an input of composite/action.yml")
                return inputs[parts[1]]
            if parts[0] == "steps" and len(parts) == 4 and parts[2] == "outputs":
                if parts[1] not in {step.get("id") for step in self.action["runs"]["steps"]}:
                    raise UnsupportedExpression(f"{expression}: no step has that id")
                return steps.get(parts[1], {}).get(parts[3], "")  # a step that did not run has no outputs
            known = {"github.action_path": str(self.action_path), "github.workspace": str(self.workspace),
                     "runner.temp": str(self.runner_temp), "runner.os": "Linux"}
            if expression in known:
                return known[expression]
            raise UnsupportedExpression(f"${{{{ {expression} }}}} is not evaluated by tests/composite_runner.py")

        return EXPRESSION.sub(value, text)

    # ---- a run of the action ------------------------------------------------------------------------------------
    def inputs_for(self, given: Mapping[str, Any]) -> dict[str, str]:
        unknown = set(given) - set(self.action["inputs"])
        assert not unknown, f"not inputs of composite/action.yml: {unknown}"  # the runner warns; a test should fail
        return {name: str(given[name]) if name in given else str((spec or {}).get("default", ""))
                for name, spec in self.action["inputs"].items()}

    def run(self, given: Mapping[str, Any], caller_env: Mapping[str, str] | None = None,
            gate_script: str | None = None, start_only: bool = False) -> CompositeResult | StartedStep:
        """Run every step. `gate_script` replaces the last step's script (a negative control); `start_only`
        returns the last step started, not finished, for a test that signals it."""
        inputs = self.inputs_for(given)
        env = self.job_env()
        outputs: dict[str, dict[str, str]] = {}
        result = CompositeResult(0, {})
        declared = self.action["runs"]["steps"]
        for index, step in enumerate(declared):
            step_id = step.get("id") or f"__step{index}"
            if "uses" in step:
                outputs[step_id] = self._uses(step)
                continue
            assert step.get("shell") == "bash", f"step {step_id}: a composite run step must say shell: bash"
            step_env = {**env, **(caller_env or {}), "GITHUB_ACTION_PATH": str(self.action_path)}
            for name, raw in (step.get("env") or {}).items():
                step_env[name] = self.evaluate(str(raw), inputs, outputs)
            leaked = {name for name in step_env if name.startswith("INPUT_")} - set(step.get("env") or {})
            assert not leaked, f"INPUT_* that no step maps: {leaked}"
            script = self.evaluate(step["run"], inputs, outputs)
            last = index == len(declared) - 1
            if last and gate_script is not None:
                script = gate_script
            started = self._start(step_id, script, step_env)
            if last and start_only:
                return started
            inner = started.finish()
            result.steps[step_id] = inner
            outputs[step_id] = inner.outputs
            env = self._apply_env_files(env, started.files)
            if inner.exit_code != 0:
                result.exit_code = inner.exit_code
                break
        result.outputs = self.composite_outputs(inputs, outputs)
        return result

    def composite_outputs(self, inputs: Mapping[str, str], steps: Mapping[str, dict[str, str]]) -> dict[str, str]:
        return {name: self.evaluate(str(spec["value"]), inputs, steps)
                for name, spec in (self.action.get("outputs") or {}).items()}

    def _uses(self, step: dict[str, Any]) -> dict[str, str]:
        uses = str(step["uses"])
        assert re.fullmatch(r"actions/setup-python@[0-9a-f]{40}", uses), f"no stand-in for {uses}"
        assert str((step.get("with") or {}).get("update-environment")).lower() == "false", \
            "setup-python must leave the caller's PATH and environment alone"
        return {"python-path": self.base_python, "python-version": ".".join(map(str, sys.version_info[:3]))}

    def _start(self, step_id: str, script: str, env: dict[str, str]) -> StartedStep:
        files = self.runner_temp / "_runner_file_commands" / step_id
        shutil.rmtree(files, ignore_errors=True)
        files.mkdir(parents=True)
        for name in ("GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "GITHUB_ENV", "GITHUB_PATH", "GITHUB_STATE"):
            (files / name.lower()).write_text("")
            env[name] = str(files / name.lower())
        path = files / "script.sh"
        path.write_text(script, "utf-8")
        process = subprocess.Popen([*BASH, str(path)], cwd=self.workspace, env=env, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return StartedStep(step_id, process, files, env)

    @staticmethod
    def _apply_env_files(env: dict[str, str], files: Path) -> dict[str, str]:
        """GITHUB_ENV and GITHUB_PATH: what a step leaves for the job's later steps."""
        changed = {**env, **parse_output_file((files / "github_env").read_text("utf-8"))}
        added = [line for line in (files / "github_path").read_text("utf-8").splitlines() if line.strip()]
        if added:
            changed["PATH"] = os.pathsep.join([*reversed(added), changed["PATH"]])
        return changed


@dataclass
class StartedStep:
    id: str
    process: subprocess.Popen[str]
    files: Path
    env: dict[str, str]

    def finish(self, timeout: float = 300) -> InnerStep:
        stdout, stderr = self.process.communicate(timeout=timeout)
        return InnerStep(self.id, self.process.returncode, stdout, stderr,
                         parse_output_file((self.files / "github_output").read_text("utf-8")),
                         (self.files / "github_step_summary").read_text("utf-8"), self.env)

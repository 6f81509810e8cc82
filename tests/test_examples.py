"""The CI examples in docs/examples: each one loads, docs/ci-systems.md quotes it verbatim, every `dbtgate ...`
command line in it is accepted by the real CLI parser, and each one runs end to end against the emulator the way
its CI system would run it (tests/test_examples.py, `run_example`)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from dbtgate.cli import build_parser
from dbtgate.inputs import INPUTS
from tests.conftest import EmulatorFactory

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "docs" / "examples"
FILES = sorted(path for path in EXAMPLES.iterdir() if path.is_file())
# The flags of the PR inputs for GitLab, Azure DevOps and other providers.
PR_INPUTS = {"--gitlab-merge-request-id": "gitlab_merge_request_id",
             "--azure-pull-request-id": "azure_pull_request_id",
             "--non-native-pull-request-id": "non_native_pull_request_id"}
DECLARED = {spec.name for spec in INPUTS}
# $VAR, ${VAR...}, $(command) and Azure's $(Variable.Name): replaced by a dummy value, as CI would expand them.
VARIABLE = re.compile(r"\$\([^)]*\)|\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*")
# `dbtgate` in command position: at the start of a line, after `$(`, a shell operator, or then/do/exec.
COMMAND_START = re.compile(r"(?:^\s*|\$\(\s*|[;&|!]\s*|\b(?:then|do|exec)\s+)(?P<command>dbtgate\s)")


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


JENKINS_SH = re.compile(r"\bsh\s+'([^']*)'|\bsh\s+\"([^\"]*)\"")


def shell_texts(path: Path) -> list[str]:
    """The shell the CI system would run: the script itself, the `sh` steps of a Jenkinsfile, or every string of a
    YAML pipeline."""
    text = path.read_text("utf-8")
    if path.suffix == ".sh":
        return [text]
    if path.name == "Jenkinsfile":
        return [single or double for single, double in JENKINS_SH.findall(text)]
    return list(_strings(yaml.safe_load(text)))


def _strip_comment(line: str) -> str:
    """The line without a shell comment: a # at the start of a word, outside quotes."""
    quote = ""
    for index, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index]
    return line


def command_lines(shell: str) -> list[list[str]]:
    """Each `dbtgate ...` invocation as the argument vector it would get (up to the first |, ;, &&, ) ...)."""
    commands = []
    for line in shell.replace("\\\n", " ").splitlines():
        line = _strip_comment(line)
        for match in COMMAND_START.finditer(line):
            lexer = shlex.shlex(line[match.start("command"):], posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            argv: list[str] = []
            for token in iter(lexer.get_token, None):
                if token and set(token) <= set("();<>|&"):
                    break
                argv.append(VARIABLE.sub("123", token))
            commands.append(argv[1:])
    return commands


CASES = [(path.name, argv) for path in FILES for text in shell_texts(path) for argv in command_lines(text)]


def _case_id(case: tuple[str, list[str]]) -> str:
    return f"{case[0]}:{' '.join(case[1][:1])}"


def _marks(argv: list[str]) -> list[pytest.MarkDecorator]:
    missing = [flag for flag, name in PR_INPUTS.items() if flag in argv and name not in DECLARED]
    return [pytest.mark.xfail(strict=True, reason="added by the config change")] if missing else []


def test_every_example_loads_and_has_a_dbtgate_command() -> None:
    names = {path.name for path in FILES}
    assert {".gitlab-ci.yml", "circleci-config.yml", "bitbucket-pipelines.yml", "azure-pipelines.yml", "Jenkinsfile",
            "gate.sh"} <= names
    for path in FILES:
        assert any(command_lines(text) for text in shell_texts(path)), f"{path.name} runs no dbtgate command"
    used = {flag for _, argv in CASES for flag in argv if flag in PR_INPUTS}
    assert used == set(PR_INPUTS), "each PR flag appears in an example where it fits"


def test_the_docs_quote_every_example_verbatim() -> None:
    page = (ROOT / "docs" / "ci-systems.md").read_text("utf-8")
    assert "docs/ci-systems.md" in (ROOT / "README.md").read_text("utf-8")
    for path in FILES:
        assert f"examples/{path.name}" in page, f"docs/ci-systems.md does not link {path.name}"
        assert "\n" + path.read_text("utf-8").rstrip("\n") + "\n```" in page, f"the copy of {path.name} differs"


@pytest.mark.parametrize("case", [pytest.param(case, marks=_marks(case[1]), id=_case_id(case)) for case in CASES])
def test_every_example_command_line_parses(case: tuple[str, list[str]], capsys: pytest.CaptureFixture[str]) -> None:
    name, argv = case
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:
        pytest.fail(f"{name}: `dbtgate {shlex.join(argv)}` is rejected ({exit_.code}): {capsys.readouterr().err}")
    assert callable(args.handler)
    for flag, input_name in PR_INPUTS.items():
        if flag in argv:
            assert getattr(args, input_name) == "123"


def test_every_command_line_in_the_docs_parses(capsys: pytest.CaptureFixture[str]) -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    readme = "\n".join(page.read_text("utf-8") for page in pages)
    blocks = re.findall(r"^```(?:bash|sh)\n(.*?)^```", readme, re.M | re.S)
    commands = [argv for block in blocks for argv in command_lines(block)]
    assert len(commands) >= 5, commands
    for argv in commands:
        try:
            build_parser().parse_args(argv)
        except SystemExit as exit_:
            if exit_.code:
                pytest.fail(f"README: `dbtgate {shlex.join(argv)}` is rejected: {capsys.readouterr().err}")


def test_the_parse_check_can_fail() -> None:
    """The harness itself: a misspelt flag in an example would be caught."""
    assert command_lines("pip install dbtgate  # the dbtgate command\n# dbtgate run --nope") == []
    (argv,) = command_lines('    dbtgate run --job-id 1 --git-shaa "$CI_COMMIT_SHA" || true  # a comment')
    assert argv == ["run", "--job-id", "1", "--git-shaa", "123"]
    with pytest.raises(SystemExit):
        build_parser().parse_args(argv)


# ---- every example, end to end ----------------------------------------------------------------------------------
# Each CI system is reduced to what it does with the example: the commands it runs, in order, in one workspace,
# with its variables set and the project's variables (DBT_CLOUD_*) from its secret store — pointing at the
# emulator, as a user's own URL would. Installing dbtgate is the one step stood in for: `dbtgate` is this checkout.
EXAMPLE_TOKEN = "example-token-0123456789abcdef"
EXAMPLE_JOBS = [{"id": 67890, "name": "Production build", "outcome": "success", "run_seconds": 120},
                {"id": 67891, "name": "CI", "outcome": "success", "run_seconds": 60}]
SHA = "4e041f6c0ffee4e041f6c0ffee4e041f6c0ffee4"
INSTALLS = ("python -m pip install dbtgate", "pip install dbtgate")


@dataclass
class Pipeline:
    commands: list[tuple[str, dict[str, str]]]   # each command and the variables it gets
    reports: list[str] = field(default_factory=list)  # JUnit files the CI system would read afterwards


def _gitlab(doc: dict[str, Any]) -> Pipeline:
    pipeline = Pipeline([])
    variables = {"CI_COMMIT_SHA": SHA, "CI_MERGE_REQUEST_IID": "7", "CI_PIPELINE_SOURCE": "merge_request_event"}
    for name, job in doc.items():
        if name.startswith(".") or not isinstance(job, dict) or "script" not in job:
            continue
        template = doc.get(job.get("extends", ""), {})
        pipeline.commands += [(line, variables) for line in job["script"]]
        pipeline.reports += [template.get("artifacts", {}).get("reports", {}).get("junit")]
    return pipeline


def _circleci(doc: dict[str, Any]) -> Pipeline:
    pipeline = Pipeline([])
    for job in doc["jobs"].values():
        for step in job["steps"]:
            if isinstance(step, dict) and "run" in step:
                run = step["run"]
                pipeline.commands.append((run["command"] if isinstance(run, dict) else run, {"CIRCLE_SHA1": SHA}))
            elif isinstance(step, dict) and "store_test_results" in step:
                pipeline.reports.append(step["store_test_results"]["path"] + "/**/*.xml")
    return pipeline


def _bitbucket(doc: dict[str, Any]) -> Pipeline:
    steps = [node["step"] for node in _walk(doc["pipelines"]) if isinstance(node, dict) and "step" in node]
    variables = {"BITBUCKET_COMMIT": SHA, "BITBUCKET_PR_ID": "9"}
    return Pipeline([(line, variables) for step in steps for line in step["script"]], ["test-results/*.xml"])


def _azure(doc: dict[str, Any]) -> Pipeline:
    macros = {"Build.SourceVersion": SHA, "System.PullRequest.PullRequestId": "11",
              "DBT_CLOUD_API_TOKEN": "${DBT_CLOUD_API_TOKEN}", "DBT_CLOUD_URL": "${DBT_CLOUD_URL}",
              "DBT_CLOUD_ACCOUNT_ID": "${DBT_CLOUD_ACCOUNT_ID}"}

    def expand(text: str) -> str:  # Azure expands $(macro) before the shell sees the script
        return re.sub(r"\$\(([\w.]+)\)", lambda m: macros[m.group(1)], text)

    pipeline = Pipeline([])
    for step in doc["steps"]:
        if "script" in step:
            pipeline.commands.append((expand(step["script"]), {k: expand(v) for k, v in step.get("env", {}).items()}))
        elif step.get("task") == "PublishTestResults@2":
            pipeline.reports.append(step["inputs"]["testResultsFiles"])
    return pipeline


def _jenkins(text: str) -> Pipeline:
    return Pipeline([(command, {"GIT_COMMIT": SHA}) for command in shell_texts(EXAMPLES / "Jenkinsfile")],
                    re.findall(r"testResults: '([^']+)'", text))


def _walk(node: Any) -> Iterator[Any]:
    yield node
    for child in node.values() if isinstance(node, dict) else node if isinstance(node, list) else ():
        yield from _walk(child)


def pipeline_of(path: Path) -> Pipeline:
    if path.name == "gate.sh":
        return Pipeline([(f"sh {path}", {})], ["dbtgate-junit.xml"])
    if path.name == "Jenkinsfile":
        return _jenkins(path.read_text("utf-8"))
    doc = yaml.safe_load(path.read_text("utf-8"))
    readers = {".gitlab-ci.yml": _gitlab, "circleci-config.yml": _circleci, "bitbucket-pipelines.yml": _bitbucket,
               "azure-pipelines.yml": _azure}
    assert path.name in readers, f"{path.name}: teach tests/test_examples.py how its CI system runs it"
    return readers[path.name](doc)


def example_environment(emulator_url: str, bin_dir: Path) -> dict[str, str]:
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}", "HOME": str(bin_dir.parent),
            "CI": "true", "DBT_CLOUD_API_TOKEN": EXAMPLE_TOKEN, "DBT_CLOUD_URL": emulator_url,
            "DBT_CLOUD_ACCOUNT_ID": "12345", "GIT_AUTHOR_NAME": "ci", "GIT_AUTHOR_EMAIL": "ci@example.com",
            "GIT_COMMITTER_NAME": "ci", "GIT_COMMITTER_EMAIL": "ci@example.com"}


def _workspace(tmp_path: Path) -> tuple[Path, Path]:
    """A checkout with a commit and the build script gate.sh calls, and `dbtgate` (this checkout) on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "dbtgate"
    shim.write_text(f'#!/bin/sh\nPYTHONPATH="{ROOT}" exec "{sys.executable}" -m dbtgate "$@"\n')
    shim.chmod(0o755)
    workspace = tmp_path / "checkout"
    workspace.mkdir()
    build = workspace / "build-the-app.sh"
    build.write_text("#!/bin/sh\necho building the app\n")
    build.chmod(0o755)
    return workspace, bin_dir


@pytest.mark.parametrize("path", FILES, ids=[path.name for path in FILES])
def test_every_example_runs_end_to_end(path: Path, emulator_factory: EmulatorFactory, tmp_path: Path) -> None:
    emulator = emulator_factory(jobs=EXAMPLE_JOBS, time_scale=600.0, account_id=12345, token=EXAMPLE_TOKEN)
    workspace, bin_dir = _workspace(tmp_path)
    env = example_environment(emulator.url, bin_dir)
    subprocess.run(["git", "init", "-q"], cwd=workspace, env=env, check=True)
    subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", "x"], cwd=workspace, env=env, check=True)
    pipeline = pipeline_of(path)
    for command, variables in pipeline.commands:
        if command.strip() in INSTALLS:
            continue  # dbtgate is this checkout (until the first release, `pip install dbtgate` finds nothing)
        # A variable's value may name a secret of the CI system's store (Azure's env: mapping): ${NAME} is that.
        given = {name: re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], value) for name, value in variables.items()}
        done = subprocess.run(["sh", "-e", "-c", command], cwd=workspace, env={**env, **given},
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, f"{path.name}: `{command}` failed ({done.returncode}):\n{done.stderr[-3000:]}"
    triggers = emulator.log.of("trigger")
    assert triggers, f"{path.name} triggered nothing"
    assert all(entry.body.get("git_sha") == SHA or path.name == "gate.sh" for entry in triggers)
    runs = {entry.run_id for entry in triggers}
    assert emulator.log.cancels() == [], f"{path.name} cancelled a run"
    assert all(emulator.world.has_run(run_id or 0) for run_id in runs)
    for pattern in pipeline.reports:
        found = sorted(workspace.glob(pattern))
        assert found, f"{path.name}: the CI system would find no JUnit report at {pattern}"
        for report in found:
            root = ET.parse(report).getroot()
            assert root.tag == "testsuites" and root.get("failures") == "0" and int(root.get("tests") or 0) > 1


def test_the_shell_example_cancels_the_run_when_the_work_meanwhile_fails(emulator_factory: EmulatorFactory,
                                                                         tmp_path: Path) -> None:
    """gate.sh triggers, then builds: a failed build must not leave the dbt Cloud run going."""
    emulator = emulator_factory(jobs=[{**EXAMPLE_JOBS[0], "run_seconds": 3600}], account_id=12345,
                                token=EXAMPLE_TOKEN)
    workspace, bin_dir = _workspace(tmp_path)
    (workspace / "build-the-app.sh").write_text("#!/bin/sh\necho the build broke >&2\nexit 1\n")
    env = example_environment(emulator.url, bin_dir)
    subprocess.run(["git", "init", "-q"], cwd=workspace, env=env, check=True)
    subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", "x"], cwd=workspace, env=env, check=True)
    done = subprocess.run(["sh", str(EXAMPLES / "gate.sh")], cwd=workspace, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 1, done.stderr
    (trigger,) = emulator.log.of("trigger")
    assert emulator.log.cancels() == [trigger.run_id]

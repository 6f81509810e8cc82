"""The CI examples in docs/examples: each one loads, the README quotes it verbatim, and every `dbtgate ...` command
line in it is accepted by the real CLI parser, so an example with a flag that does not exist fails here."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from dbtgate.cli import build_parser
from dbtgate.inputs import INPUTS

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


def shell_texts(path: Path) -> list[str]:
    """The shell the CI system would run: the script itself, or every string of a YAML pipeline."""
    text = path.read_text("utf-8")
    if path.suffix == ".sh":
        return [text]
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
    assert {".gitlab-ci.yml", "circleci-config.yml", "bitbucket-pipelines.yml", "gate.sh"} <= names
    for path in FILES:
        assert any(command_lines(text) for text in shell_texts(path)), f"{path.name} runs no dbtgate command"
    used = {flag for _, argv in CASES for flag in argv if flag in PR_INPUTS}
    assert used == set(PR_INPUTS), "each PR flag appears in an example where it fits"


def test_the_readme_quotes_every_example_verbatim() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    for path in FILES:
        assert f"docs/examples/{path.name}" in readme, f"README does not link {path.name}"
        assert "\n" + path.read_text("utf-8").rstrip("\n") + "\n```" in readme, f"README's copy of {path.name} differs"


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


def test_every_command_line_in_the_readme_parses(capsys: pytest.CaptureFixture[str]) -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
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

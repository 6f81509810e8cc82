"""README is the Marketplace page (issue 23 §1, §4, §5): short, user-first, and every snippet works as pasted — with
the user's own dbt_cloud_url — so each workflow snippet's dbtgate steps are run here as the runner runs the action
(tests/runner.py), against the emulator standing in for that URL."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from dbtgate.inputs import SPECS
from tests.conftest import TOKEN, EmulatorFactory
from tests.runner import run_step

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text("utf-8")
PAGES = {"README.md": README, "docs/github-actions.md": (ROOT / "docs" / "github-actions.md").read_text("utf-8")}
USER_URL = "https://ab123.us1.dbt.com"
JOBS = [{"id": 67890, "name": "Production build", "outcome": "success", "run_seconds": 120},
        {"id": 67891, "name": "CI", "outcome": "success", "run_seconds": 60},
        {"id": 67892, "name": "Nightly build", "outcome": "success", "run_seconds": 60, "history": 2}]
# What the runner would put in for the expressions README's snippets use; any other one fails the test.
CONTEXT = {"secrets.DBT_CLOUD_API_TOKEN": TOKEN, "github.event.pull_request.head.sha": "4e041f6" + "0" * 33,
           "github.event.number": "42"}
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def yaml_blocks(text: str) -> list[str]:
    return re.findall(r"^```yaml\n(.*?)^```", text, re.M | re.S)


def dbtgate_steps(block: str) -> list[dict[str, Any]]:
    doc = yaml.safe_load(textwrap.dedent(block))
    steps: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if str(node.get("uses", "")).startswith("dbtgate/dbtgate"):
                steps.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(doc)
    return steps


SNIPPETS = [(page, block) for page, text in PAGES.items() for block in yaml_blocks(text) if dbtgate_steps(block)]


def test_readme_is_short_and_user_first() -> None:
    lines = README.count("\n")
    assert 250 <= lines <= 360, f"README has {lines} lines"
    headings = re.findall(r"^## (.+)$", README, re.M)
    assert headings[0] == "Quick start" and headings[-1] == "Developing", headings
    for needed in ("Inputs and outputs", "Exit codes", "Troubleshooting"):
        assert any(heading.startswith(needed) for heading in headings), needed
    assert any(heading.startswith("Migrating") for heading in headings)
    first_screen = README[:README.index("## Quick start")]
    assert "Not released yet" in first_screen and "commit sha" in first_screen and "30–60 s" in first_screen
    # One command for the demo, one for the whole suite.
    assert README.count("./dev demo") == 1 and README.count("./dev test") == 1
    assert "permissions: {}" in README and "concurrency:" in README and "if: failure()" in README
    assert "gh attestation verify" in README and "composite@" in README


@pytest.mark.parametrize(("page", "block"), SNIPPETS, ids=[f"{p}:{i}" for i, (p, _) in enumerate(SNIPPETS)])
def test_every_snippet_names_the_url_and_only_real_inputs(page: str, block: str) -> None:
    for step in dbtgate_steps(block):
        given = step.get("with") or {}
        assert "dbt_cloud_url" in given, f"{page}: a snippet without dbt_cloud_url calls the legacy host (401)"
        assert set(given) <= set(SPECS), f"{page}: not inputs: {set(given) - set(SPECS)}"
        assert str(given["dbt_cloud_token"]).startswith("${{ secrets."), f"{page}: the token comes from a secret"
        assert re.fullmatch(r"dbtgate/dbtgate(/composite)?@(main|v\d+|[0-9a-f]{40})", step["uses"]), step["uses"]


def _evaluate(value: Any, outputs: dict[str, dict[str, str]]) -> str:
    def one(match: re.Match[str]) -> str:
        expression = match.group(1)
        found = re.fullmatch(r"steps\.(\w+)\.outputs\.(\w+)", expression)
        if found:
            return outputs[found.group(1)][found.group(2)]
        assert expression in CONTEXT, f"README uses ${{{{ {expression} }}}}: add it to tests/test_readme.py"
        return CONTEXT[expression]

    return EXPRESSION.sub(one, str(value).lower() if isinstance(value, bool) else str(value))


README_SNIPPETS = [block for page, block in SNIPPETS if page == "README.md"]


@pytest.mark.parametrize("block", README_SNIPPETS, ids=[f"snippet{i}" for i in range(len(README_SNIPPETS))])
def test_every_readme_snippet_works_as_pasted(block: str, emulator_factory: EmulatorFactory, tmp_path: Path) -> None:
    emulator = emulator_factory(jobs=JOBS, time_scale=600.0, account_id=12345)
    outputs: dict[str, dict[str, str]] = {}
    for index, step in enumerate(dbtgate_steps(block)):
        given = {name: _evaluate(value, outputs) for name, value in (step.get("with") or {}).items()}
        assert given["dbt_cloud_url"] == USER_URL
        given["dbt_cloud_url"] = emulator.url  # the user's own URL; the emulator answers for it here
        result = run_step(given, tmp_path / "workspace")
        assert result.exit_code == 0, f"step {index} of the snippet failed:\n{result.log[-3000:]}"
        assert result.outputs["outcome"] in ("success", "not_waited"), result.outputs
        outputs[str(step.get("id", index))] = result.outputs
    assert emulator.log.of("trigger") or any("latest_run" in (s.get("with") or {}) for s in dbtgate_steps(block))

"""The repository as a releasable action: generated files in sync, inputs/outputs consistent, image rules kept."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import yaml

from dbtgate.config import INPUTS, parse_config
from dbtgate.gate import GateResult, Outcome
from dbtgate.report import OUTPUTS, outputs_for

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import gen_docs  # noqa: E402

ACTION = yaml.safe_load((ROOT / "action.yml").read_text("utf-8"))
# The inputs of dbt-labs/dbt-cloud-job-action: a migration must be a one-line change.
DBT_LABS_INPUTS = {"dbt_cloud_url", "dbt_cloud_token", "dbt_cloud_account_id", "dbt_cloud_job_id", "cause",
                   "git_sha", "git_branch", "github_pull_request_id", "schema_override", "dbt_version_override",
                   "threads_override", "target_name_override", "generate_docs_override", "timeout_seconds_override",
                   "steps_override", "wait_for_job", "failure_on_error", "interval"}


def test_action_yml_and_readme_are_generated_from_the_specs() -> None:
    assert (ROOT / "action.yml").read_text("utf-8") == gen_docs.render_action(), "run ./dev docs"
    readme = (ROOT / "README.md").read_text("utf-8")
    assert gen_docs.render_readme(readme) == readme, "run ./dev docs"
    for spec in INPUTS:
        assert f"| `{spec.name}` |" in readme


def test_inputs_and_outputs_match_the_code() -> None:
    assert list(ACTION["inputs"]) == [spec.name for spec in INPUTS]
    assert set(ACTION["inputs"]) >= DBT_LABS_INPUTS
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", name) for name in ACTION["inputs"]), "snake_case, no hyphens"
    for spec in INPUTS:
        declared = ACTION["inputs"][spec.name]
        assert declared.get("default", "") == spec.default and declared["description"] == spec.description
    config = parse_config({"dbt_cloud_token": "t", "dbt_cloud_account_id": "1", "dbt_cloud_job_id": "2"}, {})
    produced = outputs_for(GateResult(outcome=Outcome.SUCCESS, exit_code=0, headline="x"), config)
    assert list(produced) == [name for name, _ in OUTPUTS] == list(ACTION["outputs"])
    assert ACTION["runs"] == {"using": "docker", "image": "Dockerfile"}
    assert {"name", "description", "author", "branding"} <= set(ACTION)


def test_dockerfile_rules() -> None:
    text = (ROOT / "Dockerfile").read_text("utf-8")
    bases = re.findall(r"^FROM (\S+)", text, re.M)
    assert bases and all(re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", base) for base in bases)
    assert re.search(r'^ENTRYPOINT \["python", "[^"]+/entrypoint\.py"\]$', text, re.M), "exec form, Python is PID 1"
    assert "PYTHONUNBUFFERED=1" in text
    assert not re.search(r"^USER\b", text, re.M), "GitHub's docs: no USER in a Docker action"
    assert "--require-hashes" in text and "requirements.txt" in text
    assert "org.opencontainers.image.source" in text


def test_the_lock_pins_every_runtime_dependency_with_hashes() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    lock = (ROOT / "requirements.txt").read_text("utf-8")
    pinned = {m.group(1).lower().replace("_", "-") for m in re.finditer(r"^([A-Za-z0-9_.-]+)==", lock, re.M)}
    for requirement in project["dependencies"]:
        name = re.split(r"[<>=!~ \[]", requirement)[0].lower().replace("_", "-")
        assert name in pinned, f"{name} is not in requirements.txt"
    blocks = re.split(r"\n(?=[A-Za-z])", lock.split("\n", 2)[2])
    assert all("--hash=sha256:" in block for block in blocks if "==" in block)
    assert "file://" not in lock and "/opt/" not in lock
    assert project["scripts"]["dbtgate"] == "dbtgate.cli:main"


def test_workflows_pin_actions_by_sha_with_minimal_permissions() -> None:
    for path in sorted((ROOT / ".github" / "workflows").glob("*.yml")):
        workflow = yaml.safe_load(path.read_text("utf-8"))
        assert workflow.get("permissions") == {"contents": "read"}, f"{path.name}: read-only by default"
        for job in workflow["jobs"].values():
            for step in job.get("steps", []):
                uses = step.get("uses")
                if uses and not uses.startswith("./"):
                    assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", uses), f"{path.name}: {uses} not pinned"
    assert (ROOT / ".github" / "dependabot.yml").is_file()


def test_release_workflow_builds_both_architectures_and_moves_tags() -> None:
    text = (ROOT / ".github" / "workflows" / "release.yml").read_text("utf-8")
    assert "linux/amd64,linux/arm64" in text and "provenance:" in text and "sbom: true" in text
    assert "image: docker://" not in (ROOT / "action.yml").read_text("utf-8"), "main builds from the Dockerfile"
    assert 'sed -i "s|^  image: Dockerfile$|' in text


def test_project_files_exist() -> None:
    for name in ("README.md", "CHANGELOG.md", "SECURITY.md", "LICENSE", "CONTRIBUTING.md", "docs/releasing.md",
                 "docs/emulator.md", "docs/reliability.md", "docs/example-summary.md", ".ci/run"):
        assert (ROOT / name).is_file(), name
    contributing = (ROOT / "CONTRIBUTING.md").read_text("utf-8")
    assert "./dev demo" in contributing and "./dev test" in contributing and "scenario" in contributing
    assert "exec ./dev test" in (ROOT / ".ci" / "run").read_text("utf-8")

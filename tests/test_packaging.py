"""The repository as a releasable action: generated files in sync, inputs/outputs consistent, image rules kept."""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest
import trove_classifiers
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import dbtgate
from dbtgate.config import parse_config
from dbtgate.gate.state import GateResult
from dbtgate.inputs import INPUTS, Group
from dbtgate.outcome import Outcome
from dbtgate.report.outputs import OUTPUTS, outputs_for

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import gen_docs  # noqa: E402

ACTION = yaml.safe_load((ROOT / "action.yml").read_text("utf-8"))
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
# The inputs and outputs of dbt-labs/dbt-cloud-job-action (its action.yml, v8): a migration must be a one-line change.
DBT_LABS_INPUTS = {"dbt_cloud_url", "dbt_cloud_token", "dbt_cloud_account_id", "dbt_cloud_job_id", "interval",
                   "failure_on_error", "get_artifacts", "cause", "git_sha", "git_branch", "schema_override",
                   "dbt_version_override", "threads_override", "target_name_override", "generate_docs_override",
                   "timeout_seconds_override", "steps_override", "wait_for_job", "github_pull_request_id",
                   "fetch_catalog", "api_timeout"}
DBT_LABS_OUTPUTS = {"git_sha", "run_id"}


def test_action_yml_and_readme_are_generated_from_the_specs() -> None:
    assert (ROOT / "action.yml").read_text("utf-8") == gen_docs.render_action(), "run ./dev docs"
    assert (ROOT / "composite" / "action.yml").read_text("utf-8") == gen_docs.render_composite(), "run ./dev docs"
    readme = (ROOT / "README.md").read_text("utf-8")
    assert gen_docs.render_readme(readme) == readme, "run ./dev docs"
    for spec in INPUTS:
        assert re.search(rf"^\| `{spec.name}`( \(required\))? \|", readme, re.M), spec.name
    for name, _ in OUTPUTS:
        assert re.search(rf"^\| `{name}` \| (number|text|JSON list|JSON object)", readme, re.M), name


def test_the_readme_groups_inputs_as_inputs_py_does() -> None:
    tables = gen_docs.render_tables()
    titles = [f"**{gen_docs.GROUP_TITLES[group]}**" for group in Group]
    assert [tables.index(title) for title in titles] == sorted(tables.index(title) for title in titles)
    for spec in INPUTS:
        section = tables.split(f"**{gen_docs.GROUP_TITLES[spec.group]}**", 1)[1].split("\n\n**", 1)[0]
        assert f"| `{spec.name}`" in section, f"{spec.name} is not under {spec.group}"


def test_gen_docs_check_fails_on_a_stale_composite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`gen_docs.py --check` (CI) catches a composite/action.yml edited by hand."""
    copy = tmp_path / "root"
    for name in ("action.yml", "README.md", "composite/action.yml", ".github/workflows/ci.yml"):
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, copy / name)
    monkeypatch.setattr(gen_docs, "ROOT", copy)
    assert gen_docs.main(["--check"]) == 0
    stale = copy / "composite" / "action.yml"
    stale.write_text(stale.read_text("utf-8").replace("INPUT_TIMEOUT:", "INPUT_TIME_OUT:"), "utf-8")
    assert gen_docs.main(["--check"]) == 1


def test_inputs_and_outputs_match_the_code() -> None:
    assert list(ACTION["inputs"]) == [spec.name for spec in INPUTS]
    assert set(ACTION["inputs"]) >= DBT_LABS_INPUTS and set(ACTION["outputs"]) >= DBT_LABS_OUTPUTS
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


def _requirement_names(requirements: list[str]) -> dict[str, Requirement]:
    parsed = [Requirement(line) for line in requirements]
    return {canonicalize_name(requirement.name): requirement for requirement in parsed}


def _lock() -> dict[str, tuple[str, list[str]]]:
    """requirements.txt as {name: (pinned version, hashes)}: one block per `name==version \\` and its lines."""
    pins: dict[str, tuple[str, list[str]]] = {}
    text = (ROOT / "requirements.txt").read_text("utf-8")
    for block in re.split(r"\n(?=[A-Za-z])", text):
        match = re.match(r"([A-Za-z0-9_.-]+)==(\S+)", block)
        if match:
            hashes = re.findall(r"--hash=sha256:([0-9a-f]{64})", block)
            pins[canonicalize_name(match.group(1))] = (match.group(2), hashes)
        else:
            assert all(not line.strip() or line.lstrip().startswith("#") for line in block.splitlines()), block
    return pins


def test_the_lock_pins_every_runtime_dependency_inside_its_declared_range_with_hashes() -> None:
    project = PYPROJECT["project"]
    declared = _requirement_names(project["dependencies"])
    lock = _lock()
    for name, requirement in declared.items():
        assert name in lock, f"{name} is in pyproject.toml but not pinned in requirements.txt: run pip-compile"
        version, _ = lock[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"requirements.txt pins {name}=={version}, outside pyproject's {requirement}: run pip-compile")
    for name, (version, hashes) in lock.items():
        assert hashes, f"{name}=={version} has no --hash: the image installs with --require-hashes"
    text = (ROOT / "requirements.txt").read_text("utf-8")
    assert "file://" not in text and "/opt/" not in text and "--index-url" not in text, "machine-specific lines"
    # The header pip-compile writes is what Dependabot reads to regenerate the lock the same way.
    assert "autogenerated by pip-compile" in text and "--generate-hashes" in text and "requirements.in" in text
    assert project["scripts"]["dbtgate"] == "dbtgate.cli:main"


def test_requirements_in_declares_what_pyproject_declares() -> None:
    lines = [line.split("#")[0].strip() for line in (ROOT / "requirements.in").read_text("utf-8").splitlines()]
    in_file = _requirement_names([line for line in lines if line])
    declared = _requirement_names(PYPROJECT["project"]["dependencies"])
    assert {name: str(r.specifier) for name, r in in_file.items()} == {
        name: str(r.specifier) for name, r in declared.items()}


def test_metadata_is_spdx_with_one_version() -> None:
    project = PYPROJECT["project"]
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    assert not any(c.startswith("License ::") for c in project["classifiers"]), "SPDX forbids license classifiers"
    assert {"Typing :: Typed", "Environment :: Console", "Intended Audience :: Developers",
            "Operating System :: OS Independent"} <= set(project["classifiers"])
    assert any(c.startswith("Development Status ::") for c in project["classifiers"])
    assert set(project["classifiers"]) <= trove_classifiers.classifiers, "PyPI rejects unknown classifiers"
    assert set(project["urls"]) == {"Homepage", "Documentation", "Issues", "Changelog", "Source"}
    assert all(url.startswith("https://github.com/dbtgate/dbtgate") for url in project["urls"].values())
    assert "version" not in project and project["dynamic"] == ["version"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "dbtgate.__version__"}
    build_requires = [Requirement(r) for r in PYPROJECT["build-system"]["requires"]]
    setuptools_req = next(r for r in build_requires if r.name == "setuptools")
    assert not setuptools_req.specifier.contains("76.9"), "SPDX license expressions need setuptools>=77"
    assert (ROOT / "dbtgate" / "py.typed").is_file()


def _run(command: list[str], cwd: Path, timeout: float = 120) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    log = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{log[-4000:]}"
    return log


def test_the_sdist_installs_and_its_own_tests_pass(tmp_path: Path) -> None:
    """Build the sdist, build a wheel from it, install that into an empty venv and run the sdist's tests there.

    Offline: the build uses this venv's setuptools (--no-isolation); the scratch venv gets the test dependencies
    from this venv's site-packages through a .pth file, while dbtgate itself comes only from the built wheel.
    """
    # From a copy without build state: setuptools adds every file a stale *.egg-info/SOURCES.txt lists.
    source = tmp_path / "checkout"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "*.egg-info", ".cache", ".*_cache", ".hypothesis", "__pycache__", "dbtgate-demo", "build",
        "dist"))
    dist = tmp_path / "dist"
    log = _run([sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", str(dist), "."], source)
    (sdist,) = dist.glob("dbtgate-*.tar.gz")
    assert sdist.name == f"dbtgate-{dbtgate.__version__}.tar.gz"
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
        archive.extractall(tmp_path / "src", filter="data")
    for needed in ("tests/conftest.py", "tests/runner.py", "tests/cloud/test_retry.py", "tests/test_config.py",
                   "scripts/gen_docs.py", "action.yml", "Dockerfile", "entrypoint.py", "requirements.txt",
                   "requirements.in", "LICENSE", "CHANGELOG.md", "dbtgate/py.typed",
                   "dbtgate/emulator/default_scenario.yaml", "docs/examples/.gitlab-ci.yml", "docs/examples/gate.sh",
                   "tests/test_examples.py", ".pre-commit-config.yaml", "tests/fixtures/README.md",
                   "tests/fixtures/reference/dbt-core-run/manifest.json"):
        assert needed in names, f"the sdist lacks {needed}: MANIFEST.in"
    assert not any(name.startswith((".venv/", "dbtgate-demo/")) or "__pycache__" in name for name in names)
    unpacked = tmp_path / "src" / sdist.name.removesuffix(".tar.gz")
    log += _run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), "."], unpacked)
    assert "SetuptoolsDeprecationWarning" not in log, log
    (wheel,) = dist.glob("dbtgate-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read(f"dbtgate-{dbtgate.__version__}.dist-info/METADATA").decode()
        assert "dbtgate/py.typed" in archive.namelist()
        assert "dbtgate/emulator/default_scenario.yaml" in archive.namelist()
    assert "License-Expression: Apache-2.0" in metadata and "Classifier: License ::" not in metadata
    assert f"Version: {dbtgate.__version__}\n" in metadata

    venv_dir = tmp_path / "venv"
    venv.create(venv_dir, with_pip=False)
    python = venv_dir / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", "--no-index",
          "--disable-pip-version-check", str(wheel)], tmp_path)
    site = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path).strip()
    (Path(site) / "_dbtgate_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    shutil.rmtree(unpacked / "dbtgate")  # the tests must import the installed package, not the source next to them
    where = _run([str(python), "-c", "import dbtgate; print(dbtgate.__file__)"], unpacked)
    assert where.startswith(str(venv_dir)), where
    result = _run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/cloud/test_retry.py",
                   "tests/test_config.py", "tests/test_examples.py"], unpacked, timeout=300)
    assert re.search(r"\b\d+ passed\b", result) and " failed" not in result, result


def test_the_editable_install_of_dev_prints_no_warning(tmp_path: Path) -> None:
    """`./dev demo`'s first run installs dbtgate editable; setuptools' import-hook strategy printed a 10-line
    "Editable installation" warning there. The declared package-dir makes it a plain .pth file instead."""
    source = tmp_path / "checkout"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "dbtgate", source / "dbtgate", ignore=shutil.ignore_patterns("__pycache__"))
    build = ("import sys; from setuptools import build_meta; "
             "print(build_meta.build_editable(sys.argv[1]))")
    done = subprocess.run([sys.executable, "-W", "default", "-c", build, str(tmp_path / "dist")], cwd=source,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "Warning" not in done.stderr and "warning" not in done.stderr, done.stderr
    with zipfile.ZipFile(tmp_path / "dist" / done.stdout.strip().splitlines()[-1]) as wheel:
        (pth,) = [name for name in wheel.namelist() if name.endswith(".pth")]
        assert wheel.read(pth).decode().strip() == str(source.resolve())


WORKFLOWS = {path.name: path for path in sorted((ROOT / ".github" / "workflows").glob("*.yml"))}


def test_workflows_pin_actions_by_sha_with_minimal_permissions() -> None:
    for name, path in WORKFLOWS.items():
        text = path.read_text("utf-8")
        workflow = yaml.safe_load(text)
        assert workflow.get("permissions") in ({}, {"contents": "read"}), f"{name}: read-only or nothing by default"
        for job_name, job in workflow["jobs"].items():
            if workflow["permissions"] == {}:
                assert "permissions" in job, f"{name}: {job_name} must say which permissions it uses"
            signs = any("attest" in step.get("uses", "") for step in job.get("steps", []))
            if job_name != "pypi" and not signs:
                assert "id-token" not in job.get("permissions", {}), f"{name}: {job_name} needs no OIDC token"
            for step in job.get("steps", []):
                uses = step.get("uses")
                if uses and not uses.startswith("./"):
                    assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", uses), f"{name}: {uses} not pinned"
                    assert re.search(re.escape(uses) + r"  # v\d+\.\d+\.\d+\n", text), f"{name}: {uses}: # vX.Y.Z"
                if uses and uses.startswith("actions/checkout@"):
                    assert step.get("with", {}).get("persist-credentials") is False, f"{name}: {job_name} checkout"
    dependabot = yaml.safe_load((ROOT / ".github" / "dependabot.yml").read_text("utf-8"))
    assert {update["package-ecosystem"] for update in dependabot["updates"]} >= {"pip", "docker", "github-actions"}


def test_the_release_is_one_dispatch_gated_and_immutable() -> None:
    """issue 23 §1: one action by a maintainer; the image is pushed before any tag and named by digest in the
    released action.yml; every asset is attached while the release is a draft; signed provenance and an SBOM."""
    text = WORKFLOWS["release.yml"].read_text("utf-8")
    release = yaml.safe_load(text)
    jobs = release["jobs"]
    assert release["permissions"] == {} and set(release[True]) == {"workflow_dispatch"}  # `on:` parses as True
    order = ["prepare", "test", "image", "commit", "dist", "draft", "pypi", "publish"]
    assert list(jobs) == order

    def upstream(name: str) -> set[str]:
        needs = jobs[name].get("needs", [])
        direct = {needs} if isinstance(needs, str) else set(needs)
        return direct.union(*(upstream(n) for n in direct))

    for earlier, later in itertools.pairwise(order):
        assert earlier in upstream(later), f"{later} must come after {earlier}"
    assert any("./dev test" in step.get("run", "") for step in jobs["test"]["steps"])
    # The image, before any tag: both architectures, pulled anonymously and run, provenance and an SBOM attested.
    image_steps = jobs["image"]["steps"]
    uses = [step.get("uses", "").split("@")[0] for step in image_steps]
    assert {"actions/attest-build-provenance", "anchore/sbom-action", "actions/attest"} <= set(uses)
    assert "linux/amd64,linux/arm64" in text
    check = next(step["run"] for step in image_steps if "docker logout" in step.get("run", ""))
    assert check.index("docker logout") < check.index("docker pull") < check.index("docker run")
    assert jobs["image"]["permissions"] == {"contents": "read", "packages": "write", "id-token": "write",
                                            "attestations": "write"}
    # The released action.yml names the image by digest, and nothing else differs from main.
    commit = jobs["commit"]["steps"][-1]["run"]
    assert 'image: docker://${IMAGE}@${DIGEST}' in commit and 'test "$(git diff --name-only)" = action.yml' in commit
    assert any(step.get("uses", "").startswith("actions/attest-build-provenance@") for step in jobs["dist"]["steps"])
    # Assets while a draft; the tag is made by publishing, never pushed; only vX.Y and vX move.
    draft = jobs["draft"]["steps"][-1]["run"]
    assert 'gh release create "${VERSION}" --draft --target "${SHA}"' in draft and "assets/*" in draft
    publish = next(step["run"] for step in jobs["publish"]["steps"] if "--draft=false" in step.get("run", ""))
    assert publish.index("--draft=false") < publish.index("git tag --force")
    assert 'for floating in "${VERSION%.*}" "${VERSION%%.*}"; do' in publish
    tags = [line.strip() for line in text.splitlines() if "git tag" in line]
    assert tags == ['git tag --force "${floating}" "${SHA}"'], tags
    assert "gh release upload" not in text, "an immutable release takes no asset after publication"
    pypi = jobs["pypi"]
    assert pypi["permissions"] == {"id-token": "write"} and pypi["environment"]["name"] == "pypi"
    assert "publish" in jobs and "pypi" in upstream("publish")
    assert "image: docker://" not in (ROOT / "action.yml").read_text("utf-8"), "main builds from the Dockerfile"


def test_project_files_exist() -> None:
    for name in ("README.md", "CHANGELOG.md", "SECURITY.md", "LICENSE", "CONTRIBUTING.md", "docs/releasing.md",
                 "docs/emulator.md", "docs/reliability.md", "docs/example-summary.md", ".ci/run"):
        assert (ROOT / name).is_file(), name
    contributing = (ROOT / "CONTRIBUTING.md").read_text("utf-8")
    assert "./dev demo" in contributing and "./dev test" in contributing and "scenario" in contributing
    assert re.search(r"^(exec )?\./dev test$", (ROOT / ".ci" / "run").read_text("utf-8"), re.M), "CI runs ./dev test"

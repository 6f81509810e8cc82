"""The built image, run for real with podman: as GitHub's runner runs a Docker action, as PID 1 receiving the
runner's cancellation signals, and standalone (`docker run IMAGE run ...`, GitLab's `image:` + `script:`).

Skipped unless DBTGATE_IMAGE names an image; `./dev container` builds one from the Dockerfile and runs these.
The emulator listens on the host's loopback and the containers share the host's network (`--network host`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dbtgate import __version__
from dbtgate.emulator import Emulator
from tests.conftest import TOKEN, EmulatorFactory, scenario
from tests.runner import ROOT, StepResult, action_env, parse_output_file

IMAGE = os.environ.get("DBTGATE_IMAGE", "")
pytestmark = pytest.mark.skipif(not IMAGE, reason="DBTGATE_IMAGE is not set (./dev container builds and sets it)")

GRACE = 7.5  # the runner's grace period between SIGINT and SIGTERM
FAST = 600.0  # emulated seconds per real second: the one-minute jobs take a tenth of a second
CONTAINER = ROOT / "scripts" / "container"
# Paths inside the container, as the runner mounts them.
WORKSPACE, FILE_COMMANDS, HOME, WORKFLOW = "/github/workspace", "/github/file_commands", "/github/home", \
    "/github/workflow"


def podman_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """podman's settings for this sandbox (scripts/container/*.conf) unless the caller chose others."""
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(CONTAINER / "containers.conf"))
    env.setdefault("CONTAINERS_STORAGE_CONF", str(CONTAINER / "storage.conf"))
    env.update(extra or {})
    return env


def podman(*args: str, timeout: float = 60, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], env=podman_env(env), stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout)


def inputs(emulator: Emulator, job_id: int, **more: str) -> dict[str, str]:
    return {"dbt_cloud_url": emulator.url, "dbt_cloud_token": TOKEN, "dbt_cloud_account_id": "1",
            "dbt_cloud_job_id": str(job_id), "interval": "0.2", "timeout": "60", **more}


@dataclass
class Step:
    """One action step in a container: the podman client process and the host side of its mounts."""

    name: str
    process: subprocess.Popen[str]
    workspace: Path
    files: Path

    def finish(self, timeout: float = 90) -> StepResult:
        try:
            stdout, stderr = self.process.communicate(timeout=timeout)
        finally:
            podman("rm", "--force", "--ignore", self.name)
        outputs = parse_output_file((self.files / "github_output").read_text("utf-8"))
        summary = (self.files / "github_step_summary").read_text("utf-8")
        return StepResult(self.process.returncode, stdout, stderr, outputs, summary, self.workspace)


def start_action(step_inputs: dict[str, Any], tmp_path: Path) -> Step:
    """`docker run` as actions/runner composes it for a Docker container action (see tests/runner.py and
    shared/github-runner.md): workdir /github/workspace, --rm, no TTY, no --init, the env passed by name
    (`-e NAME`, values from the client's environment), the workspace, home, workflow and file-command folders
    bind-mounted, the file-command files created empty at step start."""
    workspace = tmp_path / "ws"
    workspace.mkdir()
    host_env = action_env(step_inputs, workspace)  # every INPUT_*, GITHUB_*, RUNNER_*, the empty command files
    files = workspace.parent / f"{workspace.name}-files"
    home, workflow = tmp_path / "home", tmp_path / "workflow"
    home.mkdir()
    workflow.mkdir()
    (workflow / "event.json").write_text("{}")
    env = {name: value for name, value in host_env.items() if name not in ("PATH", "PYTHONPATH", "HOME")}
    env.update({"GITHUB_WORKSPACE": WORKSPACE, "GITHUB_EVENT_PATH": f"{WORKFLOW}/event.json",
                # The runner passes its own temp path, which does not exist in the container.
                "RUNNER_TEMP": "/runner-host-only/_temp"})
    for name in ("GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "GITHUB_ENV", "GITHUB_STATE"):
        env[name] = f"{FILE_COMMANDS}/{Path(host_env[name]).name}"
    name = f"dbtgate-test-{uuid.uuid4().hex[:12]}"
    command = ["podman", "run", "--name", name, "--rm", "--workdir", WORKSPACE, "--network", "host",
               "-e", f"HOME={HOME}", *(arg for key in sorted(env) for arg in ("-e", key)),
               "-v", f"{home}:{HOME}", "-v", f"{workflow}:{WORKFLOW}", "-v", f"{files}:{FILE_COMMANDS}",
               "-v", f"{workspace}:{WORKSPACE}", IMAGE]
    process = subprocess.Popen(command, env=podman_env(env), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    STARTED.append(Step(name, process, workspace, files))
    return STARTED[-1]


STARTED: list[Step] = []


@pytest.fixture(autouse=True)
def _no_container_outlives_its_test() -> Iterator[None]:
    """A test that fails before finish() would leave a container gating a one-hour job."""
    yield
    while STARTED:
        step = STARTED.pop()
        if step.process.poll() is None:
            podman("rm", "--force", "--ignore", step.name)
            step.process.kill()
            step.process.communicate()


def run_action(step_inputs: dict[str, Any], tmp_path: Path) -> StepResult:
    return start_action(step_inputs, tmp_path).finish()


@pytest.fixture(scope="module")
def fast_emulator() -> Iterator[Emulator]:
    emulator = Emulator(scenario(time_scale=FAST)).start()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="module")
def passing(fast_emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> StepResult:
    return run_action(inputs(fast_emulator, 1), tmp_path_factory.mktemp("passing"))


# ---- the action, as the runner runs it --------------------------------------------------------------------------
def test_action_passing_job_exits_0_with_outputs_summary_and_artifacts(passing: StepResult,
                                                                      fast_emulator: Emulator) -> None:
    assert passing.exit_code == 0, passing.log
    assert passing.stdout.splitlines()[0] == f"::add-mask::{TOKEN}"
    out = passing.outputs
    assert out["outcome"] == "success" and out["status"] == "Success" and out["exit_code"] == "0"
    run_id = int(out["run_id"])
    assert fast_emulator.world.has_run(run_id)
    assert out["run_url"] == f"{fast_emulator.url}/deploy/1/projects/1/runs/{run_id}/"
    assert out["job_name"] == "Production build"
    assert "## ✅" in passing.summary and f"run \\#{run_id}" in passing.summary
    # Written by the container into the bind-mounted workspace, so later steps on the host find them.
    results = json.loads((passing.workspace / "target" / "run_results.json").read_text("utf-8"))
    assert results["results"]
    assert (passing.workspace / "target" / "manifest.json").is_file()


def test_action_artifacts_dir_output_is_usable_by_later_steps(passing: StepResult) -> None:
    """Relative to the workspace: the container's /github/workspace/target means nothing to later host steps."""
    assert passing.exit_code == 0, passing.log
    assert passing.outputs["artifacts_dir"] == "target"


def test_action_failing_job_exits_1_with_a_headline_and_the_failed_node(fast_emulator: Emulator,
                                                                        tmp_path: Path) -> None:
    step = run_action(inputs(fast_emulator, 2), tmp_path)
    assert step.exit_code == 1, step.log
    assert step.outputs["outcome"] == "error" and step.outputs["status"] == "Error"
    assert json.loads(step.outputs["failed_nodes"]) == ["test.jaffle_shop.not_null_orders_order_id"]
    headlines = [line for line in step.stdout.splitlines()
                 if line.startswith("::error ") and "title=dbt Cloud run failed" in line]
    assert len(headlines) == 1 and step.outputs["run_id"] in headlines[0]
    assert "not_null_orders_order_id" in step.summary
    assert (tmp_path / "ws" / "target" / "run_results.json").is_file()


# ---- PID 1 and the runner's cancellation signals -----------------------------------------------------------------
def wait_for_polling(emulator: Emulator, step: Step, seconds: float = 60) -> int:
    """The run id once the gate has triggered the run and polled it. Container start-up is included, and with
    vfs it copies the whole image: seconds, more on a busy machine."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        triggers = [entry for entry in emulator.log.of("trigger") if entry.run_id is not None]
        if triggers and emulator.log.polls(triggers[0].run_id or 0) > 0:
            return triggers[0].run_id or 0
        assert step.process.poll() is None, step.process.communicate()
        time.sleep(0.05)
    raise AssertionError("the gate in the container never triggered and polled the run")


def pid_1_command(name: str) -> list[str]:
    """The command line of the container's PID 1, read from the host's /proc."""
    pid = podman("inspect", "--format", "{{.State.Pid}}", name).stdout.strip()
    return Path(f"/proc/{pid}/cmdline").read_text().rstrip("\0").split("\0")


@pytest.mark.parametrize(("signum", "code", "via"), [(signal.SIGINT, 130, "podman kill"),
                                                     (signal.SIGTERM, 143, "podman kill"),
                                                     (signal.SIGINT, 130, "the client")])
def test_a_signal_to_the_container_cancels_the_run_and_writes_the_report(
        emulator_factory: EmulatorFactory, tmp_path: Path, signum: signal.Signals, code: int, via: str) -> None:
    """The runner signals the `docker run` client, which forwards the signal to PID 1 (sig-proxy); `podman kill`
    signals PID 1 directly. As PID 1, Python gets no default SIGTERM action: only its own handler stops it."""
    emulator = emulator_factory()  # real time: the one-hour job is still running when the signal comes
    step = start_action(inputs(emulator, 4, interval="0.5", timeout="10m"), tmp_path)
    run_id = wait_for_polling(emulator, step)
    assert pid_1_command(step.name)[:2] == ["python", "/opt/dbtgate/app/entrypoint.py"]
    sent = time.monotonic()
    if via == "podman kill":
        assert podman("kill", "--signal", signum.name, step.name).returncode == 0
    else:
        step.process.send_signal(signum)
    result = step.finish(timeout=GRACE + 10)
    took = time.monotonic() - sent
    assert result.exit_code == code, result.log
    assert took < GRACE, f"took {took:.1f}s, past the runner's grace period"
    assert emulator.log.cancels() == [run_id]
    assert result.outputs["run_id"] == str(run_id) and result.outputs["outcome"] == "interrupted"
    assert result.outputs["status"] == "Cancelled"
    assert "dbtgate cancelled run" in result.summary


# ---- standalone: docker run IMAGE run ..., and GitLab CI's image: + script: ----------------------------------------
def cli_args(emulator: Emulator, job_id: int) -> list[str]:
    return ["run", "--url", emulator.url, "--account-id", "1", "--job-id", str(job_id), "--interval", "0.2",
            "--timeout", "60", "--json"]


def test_standalone_run_gates_and_keeps_artifacts_in_the_mounted_working_directory(fast_emulator: Emulator,
                                                                                    tmp_path: Path) -> None:
    """README: `docker run -v "$PWD:/work" IMAGE run ...`; the artifacts land in the image's WORKDIR, the mount."""
    result = podman("run", "--rm", "--network", "host", "-e", "DBT_CLOUD_API_TOKEN", "-v", f"{tmp_path}:/work",
                    IMAGE, *cli_args(fast_emulator, 1), env={"DBT_CLOUD_API_TOKEN": TOKEN})
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["outputs"]["outcome"] == "success"
    assert (tmp_path / "target" / "run_results.json").is_file(), sorted(p.name for p in tmp_path.iterdir())


def test_dbtgate_command_is_on_path() -> None:
    result = podman("run", "--rm", "--entrypoint", "dbtgate", IMAGE, "--version")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == f"dbtgate {__version__}"


def test_gitlab_ci_image_with_a_script(fast_emulator: Emulator, tmp_path: Path) -> None:
    """GitLab's Docker executor with `image: {name: IMAGE, entrypoint: [""]}` (docs/examples/.gitlab-ci.yml) runs
    the job's `script:` lines in a shell, in the project's checkout, with CI/CD variables in the environment; the
    job's `artifacts:` are then collected from the checkout."""
    checkout = "/builds/acme/analytics"
    script = ('dbtgate run --job-id 1 --git-sha "$CI_COMMIT_SHA" --timeout 60 --interval 0.2 '
              "--summary dbtgate-summary.md --json")
    variables = {"DBT_CLOUD_API_TOKEN": TOKEN, "DBT_CLOUD_URL": fast_emulator.url, "DBT_CLOUD_ACCOUNT_ID": "1",
                 "CI_COMMIT_SHA": "0123456789abcdef0123456789abcdef01234567"}
    result = podman("run", "--rm", "--network", "host", "--entrypoint", "",
                    *(arg for name in variables for arg in ("-e", name)), "-v", f"{tmp_path}:{checkout}",
                    "--workdir", checkout, IMAGE, "sh", "-c", script, env=variables)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["outputs"]["outcome"] == "success"
    assert "## ✅" in (tmp_path / "dbtgate-summary.md").read_text("utf-8")
    assert (tmp_path / "target" / "run_results.json").is_file()
    assert fast_emulator.log.of("trigger")[-1].body["git_sha"] == variables["CI_COMMIT_SHA"]


def test_image_runs_as_root_without_user() -> None:
    """GitHub's runner needs root in the container to write the workspace and the file-command files."""
    config = json.loads(podman("image", "inspect", IMAGE).stdout)[0]["Config"]
    assert config.get("User", "") in ("", "root", "0")

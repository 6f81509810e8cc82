"""The composite variant (composite/action.yml, issue 23 §2), run the way the runner runs composite steps
(tests/composite_runner.py) against the emulator: the install step really creates the venv with pip and the locked,
hashed dependencies (once per test session, as once per job on a runner), the gate step really runs dbtgate."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from dbtgate.emulator import Emulator
from dbtgate.inputs import INPUTS
from dbtgate.report.outputs import OUTPUTS
from tests.composite_runner import CompositeResult, CompositeRunner, StartedStep, UnsupportedExpression, install_action
from tests.conftest import TOKEN, EmulatorFactory
from tests.runner import obeyed_commands

FAST = 600.0
ROOT = Path(__file__).resolve().parent.parent
COMPOSITE = yaml.safe_load((ROOT / "composite" / "action.yml").read_text("utf-8"))


@pytest.fixture(scope="session")
def action_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_action(tmp_path_factory.mktemp("runner"))


@pytest.fixture(scope="session")
def runner_temp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One RUNNER_TEMP for the session: the venv the install step makes is reused, as within one job."""
    return tmp_path_factory.mktemp("runner-temp")


@pytest.fixture
def runner(action_path: Path, runner_temp: Path, tmp_path: Path) -> Iterator[CompositeRunner]:
    before = sorted(str(path.relative_to(action_path.parent)) for path in action_path.parent.rglob("*"))
    yield CompositeRunner(action_path, tmp_path / "workspace", runner_temp)
    after = sorted(str(path.relative_to(action_path.parent)) for path in action_path.parent.rglob("*"))
    # A self-hosted runner shares _actions/ between jobs: nothing may be built or cached in it.
    assert after == before, "the composite wrote into the action's own folder"


def inputs(emulator: Emulator, job_id: int, **more: object) -> dict[str, object]:
    return {"dbt_cloud_url": emulator.url, "dbt_cloud_token": TOKEN, "dbt_cloud_account_id": "1",
            "dbt_cloud_job_id": str(job_id), "interval": "0.2", "timeout": "60", **more}


def run(runner: CompositeRunner, given: dict[str, object]) -> CompositeResult:
    result = runner.run(given)
    assert isinstance(result, CompositeResult)
    return result


def test_the_composite_declares_what_the_docker_action_declares() -> None:
    docker = yaml.safe_load((ROOT / "action.yml").read_text("utf-8"))
    assert COMPOSITE["inputs"] == docker["inputs"]
    assert {name: spec["description"] for name, spec in COMPOSITE["outputs"].items()} == {
        name: spec["description"] for name, spec in docker["outputs"].items()}
    gate = next(step for step in COMPOSITE["runs"]["steps"] if step.get("id") == "gate")
    # Composite steps get no INPUT_* from the runner: every input is mapped by hand, and each exactly so.
    assert {name: value for name, value in gate["env"].items() if name.startswith("INPUT_")} == {
        f"INPUT_{spec.name.upper()}": f"${{{{ inputs.{spec.name} }}}}" for spec in INPUTS}
    assert {name: spec["value"] for name, spec in COMPOSITE["outputs"].items()} == {
        name: f"${{{{ steps.gate.outputs.{name} }}}}" for name, _ in OUTPUTS}
    assert gate["run"].strip() == 'exec "$DBTGATE_PYTHON" -m dbtgate', "exec: the runner's signal must reach dbtgate"
    install = next(step for step in COMPOSITE["runs"]["steps"] if step.get("id") == "install")
    assert "--require-hashes" in install["run"] and "--only-binary=:all:" in install["run"]
    assert "--no-deps" in install["run"] and "$RUNNER_TEMP/" in install["run"]


def test_a_passing_run_maps_every_output(runner: CompositeRunner, emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory(time_scale=FAST)
    result = run(runner, inputs(emulator, 1, junit_xml="reports/junit.xml"))
    assert result.exit_code == 0, result.log
    assert list(result.steps) == ["install", "gate"]
    out = result.outputs
    assert set(out) == {name for name, _ in OUTPUTS}
    assert out["outcome"] == "success" and out["status"] == "Success" and out["exit_code"] == "0"
    assert emulator.world.has_run(int(out["run_id"]))
    assert out["job_name"] == "Production build" and out["artifacts_dir"] == "target"
    assert json.loads(out["node_counts"])["model"]["success"] > 0 and int(out["ran_seconds"]) > 0
    assert (runner.workspace / "target" / "run_results.json").is_file()
    assert (runner.workspace / "reports" / "junit.xml").is_file()
    assert "## ✅" in result.steps["gate"].summary
    assert obeyed_commands(result.steps["gate"].stdout)[0] == f"::add-mask::{TOKEN}"
    assert TOKEN not in "".join(out.values())


def test_a_failing_run_fails_the_step_and_still_sets_the_outputs(runner: CompositeRunner,
                                                                 emulator_factory: EmulatorFactory) -> None:
    """The runner evaluates a composite's outputs after a failed step too: `if: failure()` steps can read them."""
    emulator = emulator_factory(time_scale=FAST)
    result = run(runner, inputs(emulator, 2, project_dir="transform"))
    assert result.exit_code == 1, result.log
    assert result.outputs["outcome"] == "error" and result.outputs["exit_code"] == "1"
    assert json.loads(result.outputs["failed_nodes"]) == ["test.jaffle_shop.not_null_orders_order_id"]
    errors = [line for line in obeyed_commands(result.steps["gate"].stdout) if line.startswith("::error")]
    assert any("file=transform/models/marts/schema.yml" in line for line in errors), errors


def test_inputs_reach_dbtgate_only_through_the_mapping(runner: CompositeRunner,
                                                       emulator_factory: EmulatorFactory) -> None:
    """Bad input is named as the action's input, so the value came through INPUT_<NAME>; defaults apply."""
    emulator = emulator_factory(time_scale=FAST)
    result = run(runner, inputs(emulator, 1, timeout="soon", threads_override="0"))
    assert result.exit_code == 2 and result.outputs["outcome"] == "config_error"
    errors = "\n".join(obeyed_commands(result.steps["gate"].stdout))
    assert "input `timeout`" in errors and "input `threads_override`" in errors
    assert emulator.log.of("trigger") == [], "bad input triggers nothing"


def test_a_second_use_in_the_same_job_reuses_the_venv(runner: CompositeRunner,
                                                      emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory(time_scale=FAST)
    first = run(runner, inputs(emulator, 1, wait_for_job="false"))
    assert first.exit_code == 0, first.log
    second = run(runner, {**inputs(emulator, 1), "dbt_cloud_job_id": "", "run_id": first.outputs["run_id"]})
    assert second.exit_code == 0 and second.outputs["run_id"] == first.outputs["run_id"], second.log
    assert "Installing" not in second.steps["install"].stdout
    assert second.steps["install"].outputs["python"] == first.steps["install"].outputs["python"]


def _wait_for_trigger(emulator: Emulator, started: StartedStep) -> int:
    deadline = time.monotonic() + 60  # a bound against a hang, not a measurement
    while time.monotonic() < deadline:
        triggers = [entry for entry in emulator.log.of("trigger") if entry.run_id is not None]
        if triggers and emulator.log.polls(triggers[0].run_id or 0) > 0:
            return triggers[0].run_id or 0
        assert started.process.poll() is None, started.process.communicate()
        time.sleep(0.05)
    raise AssertionError("the composite's gate step never triggered and polled the run")


def _signalled_process(started: StartedStep) -> str:
    """What the runner's kill(pid, SIGINT) reaches: the step's own process, not its children."""
    return Path(f"/proc/{started.process.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def _start_gate(runner: CompositeRunner, emulator: Emulator, gate_script: str | None = None) -> StartedStep:
    started = runner.run({**inputs(emulator, 4), "timeout": "10m", "interval": "0.5"}, gate_script=gate_script,
                         start_only=True)
    assert isinstance(started, StartedStep)
    return started


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="reads /proc")
def test_cancelling_the_workflow_cancels_the_run(runner: CompositeRunner, emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory()
    started = _start_gate(runner, emulator)
    run_id = _wait_for_trigger(emulator, started)
    assert "-m dbtgate" in _signalled_process(started)
    started.process.send_signal(signal.SIGINT)  # as the runner does: to the step's process only
    step = started.finish(timeout=60)
    assert step.exit_code == 130, step.stdout + step.stderr
    assert emulator.log.cancels() == [run_id]
    assert step.outputs["outcome"] == "interrupted" and step.outputs["run_id"] == str(run_id)


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="reads /proc")
def test_without_exec_the_signal_would_reach_bash_not_dbtgate(runner: CompositeRunner,
                                                              emulator_factory: EmulatorFactory) -> None:
    """The negative control of the test above: the same step without `exec` is a bash waiting on Python, and the
    runner's SIGINT stops at bash (which waits for its child), so the run would go on."""
    emulator = emulator_factory()
    started = _start_gate(runner, emulator, gate_script='"$DBTGATE_PYTHON" -m dbtgate\n')
    try:
        _wait_for_trigger(emulator, started)
        assert _signalled_process(started).startswith("bash ")
    finally:
        # The dbtgate child first: it holds the step's pipes, and killing bash would not reach it.
        children = Path(f"/proc/{started.process.pid}/task/{started.process.pid}/children")
        for child in children.read_text().split() if children.exists() else ():
            os.kill(int(child), signal.SIGKILL)
        started.process.kill()
        started.process.communicate(timeout=60)


def test_the_harness_refuses_expressions_it_does_not_evaluate(runner: CompositeRunner) -> None:
    inputs_ = runner.inputs_for({})
    assert runner.evaluate("${{ inputs.timeout }}", inputs_, {}) == "2h"
    for expression in ("${{ github.token }}", "${{ inputs.no_such_input }}", "${{ steps.nope.outputs.x }}",
                       "${{ env.HOME }}"):
        with pytest.raises(UnsupportedExpression):
            runner.evaluate(expression, inputs_, {})
    with pytest.raises(AssertionError, match="not inputs"):
        runner.inputs_for({"dbt_cloud_jobid": "1"})

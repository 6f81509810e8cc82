"""SIGINT and SIGTERM stop the wait, cancel the run, write outputs and summary, and exit non-zero in time.

The runner sends SIGINT, waits 7.5 s, then SIGTERM; in the container Python is PID 1, which ignores SIGTERM
unless it handles it. These tests send real signals to a real entrypoint.py process, also as PID 1 in a new PID
namespace (`unshare --pid --fork`, root only).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dbtgate.emulator import Emulator
from tests.conftest import TOKEN, EmulatorFactory
from tests.runner import ROOT, action_env, finish_step, parse_output_file, start_step

GRACE = 7.5  # the runner's grace period between SIGINT and SIGTERM


def gate_inputs(emulator: Emulator, **more: str) -> dict[str, str]:
    return {"dbt_cloud_url": emulator.url, "dbt_cloud_token": TOKEN, "dbt_cloud_account_id": "1",
            "dbt_cloud_job_id": "4", "interval": "0.5", "timeout": "10m", **more}


def wait_for_trigger(emulator: Emulator, process: subprocess.Popen[str], seconds: float = 15) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        triggers = [entry for entry in emulator.log.of("trigger") if entry.run_id is not None]
        if triggers and emulator.log.polls(triggers[0].run_id or 0) > 0:
            return triggers[0].run_id or 0
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    raise AssertionError("the gate never triggered and polled the run")


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_cancels_the_run_and_writes_the_report(emulator_factory: EmulatorFactory, tmp_path: Path,
                                                        signum: int, code: int) -> None:
    emulator = emulator_factory()
    process, env = start_step(gate_inputs(emulator), tmp_path / "ws")
    run_id = wait_for_trigger(emulator, process)
    sent = time.monotonic()
    process.send_signal(signum)
    step = finish_step(process, env, tmp_path / "ws", timeout=GRACE + 5)
    took = time.monotonic() - sent
    assert step.exit_code == code, step.log
    assert took < GRACE, f"took {took:.1f}s, past the runner's grace period"
    assert emulator.log.cancels() == [run_id]
    assert step.outputs["run_id"] == str(run_id) and step.outputs["outcome"] == "interrupted"
    assert step.outputs["status"] == "Cancelled"
    assert "dbtgate cancelled run" in step.summary
    assert any("title=dbtgate interrupted" in line for line in step.commands("error"))


def test_a_slow_api_cannot_hold_the_exit_past_the_grace_period(emulator_factory: EmulatorFactory,
                                                               tmp_path: Path) -> None:
    emulator = emulator_factory(faults=[{"kind": "slow", "endpoint": "cancel", "delay": 30, "count": 0}])
    process, env = start_step(gate_inputs(emulator), tmp_path / "ws")
    run_id = wait_for_trigger(emulator, process)
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    step = finish_step(process, env, tmp_path / "ws", timeout=GRACE + 5)
    took = time.monotonic() - sent
    assert took < GRACE, f"took {took:.1f}s with a slow cancel endpoint"
    assert step.exit_code == 143
    assert step.outputs["run_id"] == str(run_id)
    assert "cancel it by hand" in step.summary  # the cancel was not confirmed, and the summary says so


def test_cancel_on_interrupt_false_leaves_the_run(emulator_factory: EmulatorFactory, tmp_path: Path) -> None:
    emulator = emulator_factory()
    process, env = start_step(gate_inputs(emulator, cancel_on_interrupt="false"), tmp_path / "ws")
    wait_for_trigger(emulator, process)
    process.send_signal(signal.SIGINT)
    step = finish_step(process, env, tmp_path / "ws", timeout=GRACE + 5)
    assert step.exit_code == 130
    assert emulator.log.cancels() == []
    assert "left running" in step.summary


def test_a_second_signal_during_cleanup_does_not_cut_the_report(emulator_factory: EmulatorFactory,
                                                                tmp_path: Path) -> None:
    emulator = emulator_factory(faults=[{"kind": "slow", "endpoint": "cancel", "delay": 1.0}])
    process, env = start_step(gate_inputs(emulator), tmp_path / "ws")
    wait_for_trigger(emulator, process)
    process.send_signal(signal.SIGINT)
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    step = finish_step(process, env, tmp_path / "ws", timeout=GRACE + 5)
    assert step.exit_code == 130
    assert step.outputs["outcome"] == "interrupted" and step.summary


def _child_of(pid: int, seconds: float = 5) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            children = []
        if children:
            return int(children[0])
        time.sleep(0.02)
    raise AssertionError("unshare did not start its child")


def _can_unshare() -> str | None:
    if shutil.which("unshare") is None:
        return "the unshare command is not installed"
    if os.geteuid() != 0:
        return "unshare --pid needs root"
    probe = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True)
    return None if probe.returncode == 0 else f"unshare --pid is not permitted here: {probe.stderr.decode()[:200]}"


@pytest.mark.skipif(_can_unshare() is not None, reason=str(_can_unshare()))
def test_sigterm_reaches_python_as_pid_1(emulator_factory: EmulatorFactory, tmp_path: Path) -> None:
    """As PID 1, a process without a SIGTERM handler would ignore the signal and be killed 2.5 s later."""
    emulator = emulator_factory()
    workspace = tmp_path / "ws"
    workspace.mkdir()
    env = action_env(gate_inputs(emulator), workspace)
    process = subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc", sys.executable,
                                str(ROOT / "entrypoint.py")], cwd=workspace, env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_id = wait_for_trigger(emulator, process)
    python = _child_of(process.pid)
    nspid = next(line for line in Path(f"/proc/{python}/status").read_text().splitlines()
                 if line.startswith("NSpid:"))
    assert nspid.split()[-1] == "1", f"entrypoint.py is not PID 1 in its namespace: {nspid}"
    os.kill(python, signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=GRACE + 5)
    assert process.returncode == 143, stdout + stderr
    assert emulator.log.cancels() == [run_id]
    outputs = parse_output_file(Path(env["GITHUB_OUTPUT"]).read_text("utf-8"))
    assert outputs["outcome"] == "interrupted"


def test_a_signal_while_artifacts_download_keeps_the_run_in_the_report(emulator_factory: EmulatorFactory,
                                                                       tmp_path: Path) -> None:
    emulator = emulator_factory(time_scale=600, faults=[{"kind": "slow", "endpoint": "get_artifact", "delay": 20,
                                                         "count": 0}])
    process, env = start_step(gate_inputs(emulator, dbt_cloud_job_id="1", interval="0.2"), tmp_path / "ws")
    deadline = time.monotonic() + 15
    while not emulator.log.arrived("get_artifact"):
        assert time.monotonic() < deadline and process.poll() is None, "never reached the artifact download"
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    step = finish_step(process, env, tmp_path / "ws", timeout=GRACE + 5)
    assert step.exit_code == 143
    # The run succeeded, but the step fails: `status` must not read "Success" for a workflow to act on.
    assert step.outputs["outcome"] == "interrupted" and step.outputs["status"].startswith("Success (but")
    assert step.outputs["run_id"] and emulator.log.cancels() == [], "a finished run is not cancelled"

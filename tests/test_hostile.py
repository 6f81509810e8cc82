"""Promises against a slow, broken or hostile dbt Cloud (issue 12), each proved on the real entrypoint as the runner
starts it, against the emulator's misbehaving faults. Real time only where real time is the point (a trickling
server, a signal); then only generous upper bounds are asserted.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from dbtgate.emulator import Emulator
from dbtgate.errors import ApiErrorKind
from tests.conftest import TOKEN, EmulatorFactory
from tests.fault_matrix import CASES, injected_commands, run_case
from tests.runner import ROOT, action_env, finish_step, parse_output_file, run_step, start_step

GRACE = 7.5            # the runner's grace period between SIGINT and SIGTERM
CANCEL_BUDGET = 15.0   # documented: the whole gate ends within timeout + this
FAST = 600.0


def inputs(emulator: Emulator, job_id: int, **more: object) -> dict[str, object]:
    return {"dbt_cloud_url": emulator.url, "dbt_cloud_token": TOKEN, "dbt_cloud_account_id": "1",
            "dbt_cloud_job_id": str(job_id), "interval": "1", "timeout": "60", **more}


# ---- 1. the deadline holds inside a request ------------------------------------------------------------------
@pytest.mark.parametrize("endpoint", ["get_run", "trigger", "list_runs"])
def test_a_trickling_answer_cannot_keep_the_gate_past_its_timeout(emulator_factory: EmulatorFactory,
                                                                  tmp_path: Path, endpoint: str) -> None:
    """One byte every 0.5 s never trips a per-read timeout: only a deadline on the whole call ends it."""
    faults: list[dict[str, Any]] = [{"kind": "trickle", "endpoint": endpoint, "delay": 0.5, "count": 0}]
    if endpoint == "list_runs":  # the run list is read when a trigger answer is lost
        faults.append({"kind": "lose_trigger_response"})
    emulator = emulator_factory(faults=faults, time_scale=FAST)
    started = time.monotonic()
    step = run_step(inputs(emulator, 4, timeout="4"), tmp_path / "ws", timeout=120)
    took = time.monotonic() - started
    assert took < 4 + CANCEL_BUDGET + 10, f"took {took:.0f}s"
    assert step.exit_code in (1, 3), step.log
    assert step.outputs["outcome"] in ("timeout", "api_error")
    assert "## " in step.summary


def test_the_whole_gate_ends_within_timeout_and_cancel_budget_when_the_cancel_trickles_too(
        emulator_factory: EmulatorFactory, tmp_path: Path) -> None:
    emulator = emulator_factory(faults=[{"kind": "trickle", "endpoint": "cancel", "delay": 0.5, "count": 0}])
    started = time.monotonic()
    step = run_step(inputs(emulator, 4, timeout="3"), tmp_path / "ws", timeout=120)
    took = time.monotonic() - started
    assert took < 3 + CANCEL_BUDGET + 8, f"took {took:.0f}s"
    assert step.outputs["outcome"] == "timeout" and step.outputs["run_id"]
    assert "did not confirm" in step.summary


# ---- 2. a cancelled workflow with a hanging cancel request ----------------------------------------------------
def wait_for_polls(emulator: Emulator, process: subprocess.Popen[str], seconds: float = 20) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        created = [entry.run_id for entry in emulator.log.of("trigger") if entry.run_id is not None]
        if created and emulator.log.polls(created[0] or 0) > 0:
            return created[0] or 0
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    raise AssertionError("the gate never polled its run")


@pytest.mark.parametrize("second_signal", [False, True])
def test_sigint_with_a_trickling_cancel_still_exits_in_time_with_the_report(
        emulator_factory: EmulatorFactory, tmp_path: Path, second_signal: bool) -> None:
    emulator = emulator_factory(faults=[{"kind": "trickle", "endpoint": "cancel", "delay": 1.0, "count": 0}])
    process, env = start_step(inputs(emulator, 4, interval="0.5", timeout="10m"), tmp_path / "ws")
    run_id = wait_for_polls(emulator, process)
    sent = time.monotonic()
    process.send_signal(signal.SIGINT)
    if second_signal:
        time.sleep(1.0)
        process.send_signal(signal.SIGTERM)
    step = finish_step(process, env, tmp_path / "ws", timeout=GRACE + 10)
    took = time.monotonic() - sent
    assert took < GRACE, f"took {took:.1f}s: the runner would have killed the step with nothing written"
    assert step.exit_code == 130, step.log
    assert step.outputs["run_id"] == str(run_id) and step.outputs["outcome"] == "interrupted"
    assert f"run \\#{run_id}" in step.summary
    assert "did not confirm" in step.summary or "had not confirmed" in step.summary
    assert emulator.log.arrived("cancel") >= 1


# ---- 5. a run the gate may have created is never orphaned ------------------------------------------------------
def test_sigint_during_the_trigger_post_finds_and_cancels_the_created_run(emulator_factory: EmulatorFactory,
                                                                         tmp_path: Path) -> None:
    emulator = emulator_factory(faults=[{"kind": "delay_trigger_response", "delay": 30}])
    process, env = start_step(inputs(emulator, 4, timeout="10m"), tmp_path / "ws")
    deadline = time.monotonic() + 20
    while not emulator.world.run_ids():
        assert time.monotonic() < deadline and process.poll() is None, "the trigger never arrived"
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    step = finish_step(process, env, tmp_path / "ws", timeout=GRACE + 10)
    [run_id] = emulator.world.run_ids()
    assert step.exit_code == 130, step.log
    assert step.outputs["run_id"] == str(run_id), "the created run must be reported, not lost"
    assert emulator.log.cancels() == [run_id]


# ---- 3. no injected workflow command is obeyed, on any path, in any log format ---------------------------------
@pytest.mark.parametrize("job_id", [1, 2])
def test_hostile_text_starts_no_workflow_command_in_the_action(emulator_factory: EmulatorFactory, tmp_path: Path,
                                                               job_id: int) -> None:
    emulator = emulator_factory(faults=[{"kind": "hostile_text", "count": 0}], time_scale=FAST)
    step = run_step(inputs(emulator, job_id, rerun_attempts="1"), tmp_path / "ws", extra_env={"RUNNER_DEBUG": "1"})
    assert step.exit_code == (0 if job_id == 1 else 1), step.log
    assert injected_commands(step.stdout + "\n" + step.stderr) == []
    assert TOKEN not in step.log.replace(f"::add-mask::{TOKEN}", "") + step.summary + json.dumps(step.outputs)
    # The summary: no forged heading, no link (nor bare URL GitHub would link) outside the fenced log block, where
    # Markdown shows the text literally.
    outside_code = re.sub(r"(`{3,})text\n.*?\n\1", "", step.summary, flags=re.S)
    assert "\n# fake" not in outside_code and "https://evil.example" not in outside_code


@pytest.mark.parametrize("log_format", ["console", "json"])
def test_hostile_text_starts_no_workflow_command_from_the_cli(emulator_factory: EmulatorFactory, tmp_path: Path,
                                                              log_format: str) -> None:
    emulator = emulator_factory(faults=[{"kind": "hostile_text", "count": 0}], time_scale=FAST)
    env = {**os.environ, "GITHUB_ACTIONS": "true", "DBT_CLOUD_API_TOKEN": TOKEN, "PYTHONPATH": str(ROOT)}
    for command in (["run", "--job-id", "2", "--json", "--summary", str(tmp_path / "s.md"), "--log-format",
                     log_format],
                    ["status", "70000001", "--json"], ["cancel", "70000001"]):
        done = subprocess.run([sys.executable, "-m", "dbtgate", *command, "--url", emulator.url, "--account-id", "1",
                               *(["--interval", "1"] if command[0] == "run" else [])],
                              env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert injected_commands(done.stdout + "\n" + done.stderr) == [], (command, done.stdout, done.stderr)
        assert TOKEN not in done.stdout.replace(f"::add-mask::{TOKEN}", "") + done.stderr
        if command[0] == "run":
            assert json.loads(done.stdout[done.stdout.index("{"):])["outputs"]["outcome"] == "error"


# ---- 7. memory stays bounded whatever the server sends ----------------------------------------------------------
@pytest.mark.parametrize("fault", [
    {"kind": "huge_body", "endpoint": "get_run", "size": 400 * 1024 * 1024, "count": 0},
    {"kind": "gzip_bomb", "endpoint": "get_run", "size": 2 * 1024 * 1024 * 1024, "count": 0},
    {"kind": "huge_body", "endpoint": "get_artifact", "mode": "junk", "size": 400 * 1024 * 1024, "count": 0},
])
def test_peak_memory_stays_under_300_mb(emulator_factory: EmulatorFactory, tmp_path: Path,
                                        fault: dict[str, Any]) -> None:
    emulator = emulator_factory(faults=[fault], time_scale=FAST)
    workspace = tmp_path / "ws"
    workspace.mkdir()
    env = action_env(inputs(emulator, 1, max_artifact_size="1GB"), workspace)
    # A child forked from this (large) pytest process would report pytest's size as its peak, since ru_maxrss
    # spans the time before exec. So a small Python starts the step and reports its one child's peak.
    measure = ("import os, resource, subprocess, sys; "
               "code = subprocess.call([sys.executable, sys.argv[1]], stdin=subprocess.DEVNULL); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(code)")
    with (tmp_path / "out").open("w") as out, (tmp_path / "err").open("w") as err:
        code = subprocess.call([sys.executable, "-c", measure, str(ROOT / "entrypoint.py")], cwd=workspace, env=env,
                               stdin=subprocess.DEVNULL, stdout=out, stderr=err)
    peak_mb = int((tmp_path / "err").read_text().split()[-1]) / 1024  # kilobytes on Linux
    outputs = parse_output_file(Path(env["GITHUB_OUTPUT"]).read_text("utf-8"))
    assert peak_mb < 300, f"peak RSS {peak_mb:.0f} MB"
    if fault["endpoint"] == "get_run":
        assert code == 3 and "stopped reading" in (tmp_path / "out").read_text()
    else:
        assert outputs["outcome"] == "success"


# ---- the fault matrix rows added for this issue ---------------------------------------------------------------
HOSTILE = [case for case in CASES if case.name.startswith((
    "hostile", "status-humanized", "foreign", "envelope", "trigger-null", "trigger-string", "retry-", "huge",
    "gzip", "poll-trickle", "list-ignores"))]


@pytest.mark.parametrize("case", HOSTILE, ids=[case.name for case in HOSTILE])
def test_hostile_matrix_case(case: Any) -> None:
    seen = run_case(case)
    assert seen.matches(case), (seen.outcome, seen.exit_code, seen.runs_created, seen.cancel_sent,
                                seen.token_leaked, seen.injected, seen.log[-3000:])
    if case.exit_code != 0:
        assert seen.outputs["status"] != "Success"


# ---- 6. artifacts land inside the workspace only ----------------------------------------------------------------
def test_a_symlinked_target_is_not_followed_out_of_the_workspace(emulator_factory: EmulatorFactory,
                                                                 tmp_path: Path) -> None:
    emulator = emulator_factory(time_scale=FAST)
    outside = tmp_path / "outside"
    outside.mkdir()
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "target").symlink_to(outside, target_is_directory=True)
    step = run_step(inputs(emulator, 1), workspace)
    assert step.exit_code == 0, step.log  # the run succeeded; saving its files is not what decides
    assert list(outside.iterdir()) == [], "a write followed the symlink out of the workspace"
    assert "could not be written" in step.summary


def test_an_artifact_path_from_dbt_cloud_cannot_climb_out(tmp_path: Path) -> None:
    from dbtgate.artifacts import _safe_relative, open_inside
    assert _safe_relative("../../etc/passwd") is None and _safe_relative("/etc/passwd") is None
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "link").symlink_to(tmp_path)
    from pathlib import PurePosixPath
    with pytest.raises(OSError):
        open_inside(tmp_path / "root", PurePosixPath("link/x.json"))
    with open_inside(tmp_path / "root", PurePosixPath("a/b/c.json")) as handle:
        handle.write(b"{}")
    assert (tmp_path / "root" / "a" / "b" / "c.json").read_bytes() == b"{}"


@pytest.mark.parametrize("chunk", [1, 3, 7, 64])
def test_the_token_is_redacted_from_saved_artifacts_across_chunk_boundaries(tmp_path: Path, chunk: int) -> None:
    import io

    from dbtgate.artifacts import RedactingWriter
    data = f'{{"message": "echo {TOKEN} and {TOKEN[:5]}", "t": "{TOKEN}{TOKEN}"}}'.encode()
    sink = io.BytesIO()
    writer = RedactingWriter(sink, (TOKEN.encode(),))
    for start in range(0, len(data), chunk):
        writer.write(data[start:start + chunk])
    sink.close = lambda: None  # type: ignore[method-assign]
    writer.close()
    assert sink.getvalue() == data.replace(TOKEN.encode(), b"***")


# ---- 10. the summary cannot be forged ---------------------------------------------------------------------------
@pytest.mark.parametrize("href", ["https://x/y\n# Fake heading", "https://x/y\t[a](https://evil)", "javascript:x",
                                  "https://x/y)](https://evil", "  https://x"])
def test_only_plain_http_links_reach_the_summary(href: str) -> None:
    from dbtgate.escape import link_target
    url = link_target(href)
    assert url == "#" or (url.startswith(("http://", "https://")) and not any(c in url for c in "\n\t ()[]|"))


# ---- 4b. a run is reused only if it builds what this gate would build -------------------------------------------
def test_reuse_needs_every_build_setting_to_match() -> None:
    from dbtgate.cloud.models import Run
    from dbtgate.gate.trigger import reuse_mismatch
    def run(status: int = 3, job: int = 1, **trigger: object) -> Run:
        return Run.from_api({"id": 5, "job_definition_id": job, "status": status,
                             "trigger": {"cause": "x", **trigger}})
    wanted: dict[str, object] = {"git_branch": "main"}
    assert reuse_mismatch(wanted, run(git_branch="main"), 1) == ""
    assert "schema_override" in reuse_mismatch(wanted, run(git_branch="main", schema_override="other"), 1)
    assert "steps_override" in reuse_mismatch(wanted, run(git_branch="main", steps_override=["dbt run"]), 1)
    assert "threads_override" in reuse_mismatch(wanted, run(git_branch="main", threads_override=1), 1)
    assert "git_branch" in reuse_mismatch(wanted, run(git_branch="dev"), 1)
    assert "not in flight" in reuse_mismatch(wanted, run(status=20, git_branch="main"), 1)
    assert "job" in reuse_mismatch(wanted, run(job=2, git_branch="main"), 1)
    assert "did not say" in reuse_mismatch(wanted, Run.from_api({"id": 5, "job_definition_id": 1, "status": 3}), 1)


def test_a_list_that_ignores_its_filters_cannot_make_a_finished_failed_run_look_reusable() -> None:
    """The first gate leaves a failed run; the second asks for in-flight runs only, the list returns it anyway."""
    from dbtgate.clock import VirtualClock
    from tests.conftest import scenario
    from tests.fault_matrix import run_gate

    clock = VirtualClock()
    with Emulator(scenario([{"kind": "ignore_filters", "count": 0}]), clock=clock) as emulator:
        first = run_gate(emulator, clock, {"dbt_cloud_job_id": "2"})
        assert first.outcome == "error"
        second = run_gate(emulator, clock, {"dbt_cloud_job_id": "2", "reuse_existing_run": "true"})
        assert len(emulator.log.of("trigger")) == 2, "nothing was triggered: a finished run was 'reused'"
        assert second.outputs["run_id"] != first.outputs["run_id"]
        assert "Reusing run" not in second.log


def test_an_in_flight_run_with_other_settings_is_not_reused() -> None:
    from dbtgate.clock import VirtualClock
    from tests.conftest import scenario
    from tests.fault_matrix import run_gate

    clock = VirtualClock()
    with Emulator(scenario(), clock=clock) as emulator:
        import requests
        requests.post(f"{emulator.url}/api/v2/accounts/1/jobs/4/run/", timeout=10,
                      headers={"Authorization": f"Token {TOKEN}"},
                      json={"cause": "someone else", "schema_override": "dbt_other"}).raise_for_status()
        seen = run_gate(emulator, clock, {"dbt_cloud_job_id": "4", "reuse_existing_run": "true", "timeout": "5m",
                                          "cancel_on_timeout": "false"})
        assert len(emulator.log.of("trigger")) == 2
        assert "schema_override is 'dbt_other'" in seen.log


def test_a_signal_during_the_timeout_cancel_is_reported_with_its_run(emulator_factory: EmulatorFactory,
                                                                    tmp_path: Path) -> None:
    emulator = emulator_factory(faults=[{"kind": "trickle", "endpoint": "cancel", "delay": 1.0, "count": 0}])
    process, env = start_step(inputs(emulator, 4, timeout="3"), tmp_path / "ws")
    deadline = time.monotonic() + 30
    while not emulator.log.arrived("cancel"):
        assert time.monotonic() < deadline and process.poll() is None, "the timeout cancel never started"
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    step = finish_step(process, env, tmp_path / "ws", timeout=GRACE + 10)
    [run_id] = emulator.world.run_ids()
    assert step.exit_code == 130, step.log
    assert step.outputs["run_id"] == str(run_id) and step.outputs["outcome"] == "interrupted"
    assert f"run \\#{run_id}" in step.summary and "before any run was triggered" not in step.summary


# ---- found by an independent review of this change ----------------------------------------------------------
def test_a_real_shaped_token_echoed_by_dbt_cloud_is_redacted_even_once_escaped() -> None:
    """dbt Cloud tokens look like dbtc_…: Markdown escaping turns them into dbtc\\_…, which a plain search misses."""
    from dbtgate.clock import VirtualClock
    from tests.conftest import scenario
    from tests.fault_matrix import run_gate

    token = "dbtc_Zx9_secret_token_4242"
    clock = VirtualClock()
    with Emulator(scenario([{"kind": "hostile_text", "payload": " echo {token} ", "count": 0}], token=token),
                  clock=clock) as emulator:
        seen = run_gate(emulator, clock, {"dbt_cloud_job_id": "2"}, token=token)
    assert seen.outcome == "error"
    assert "***" in seen.summary, "the echo must have reached the summary (redacted)"
    assert not seen.token_leaked
    assert "Zx9" not in seen.summary and "Zx9" not in json.dumps(seen.outputs)


def test_the_verdict_never_comes_from_a_trigger_answer_alone() -> None:
    """A trigger answer that claims the new run already succeeded is read back; if that read fails, no green."""
    from dbtgate.clock import VirtualClock
    from dbtgate.cloud.models import Run
    from dbtgate.errors import ApiError
    from dbtgate.watch.watcher import RunWatcher

    class Failing:
        bytes_received = 0

        def get_run(self, run_id: int, include: Any = (), *, deadline: float,
                    not_found_grace_until: float | None = None) -> Run:
            raise ApiError("down", kind=ApiErrorKind.UNAVAILABLE)

        def list_runs(self, job_id: int, **_: Any) -> list[Run]:
            return []

        def rate_limited_recently(self, window: float = 300.0) -> bool:
            return False

    claimed = Run.from_api({"id": 5, "job_definition_id": 2, "status": 10})
    watcher = RunWatcher(Failing(), VirtualClock(), emit=lambda line: None, interval=60, api_timeout=5)  # type: ignore[arg-type]
    with pytest.raises(ApiError):
        watcher.wait(claimed, deadline=600)


def test_not_waiting_is_refused_for_a_run_this_gate_does_not_trigger() -> None:
    from dbtgate.config import parse_config
    from dbtgate.errors import ConfigError
    base = {"dbt_cloud_token": "t", "dbt_cloud_account_id": "1", "wait_for_job": "false"}
    for more in ({"run_id": "5"}, {"dbt_cloud_job_id": "5", "latest_run": "true"}):
        with pytest.raises(ConfigError, match="wait_for_job"):
            parse_config({**base, **more}, {})
    with pytest.raises(ConfigError, match="rerun_attempts"):
        parse_config({**base, "wait_for_job": "true", "dbt_cloud_job_id": "5", "latest_run": "true",
                      "rerun_attempts": "1"}, {})


def test_the_python_api_cancels_its_run_when_the_caller_is_interrupted(emulator_factory: EmulatorFactory) -> None:
    import dbtgate

    emulator = emulator_factory()

    def stop_at_trigger(line: str) -> None:
        if line.startswith("Triggered run"):
            raise KeyboardInterrupt  # Ctrl-C, or an orchestrator's task timeout, inside the gate

    with pytest.raises(KeyboardInterrupt):
        dbtgate.run_job(account_id=1, token=TOKEN, url=emulator.url, job_id=4, on_progress=stop_at_trigger)
    assert emulator.log.cancels() == emulator.world.run_ids() != []


def test_status_and_cancel_refuse_unicode_digits(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory()
    env = {**os.environ, "DBT_CLOUD_API_TOKEN": TOKEN, "PYTHONPATH": str(ROOT)}
    for command in ("status", "cancel"):
        done = subprocess.run([sys.executable, "-m", "dbtgate", command, "٧٠٠٠٠٠٠١", "--url", emulator.url,
                               "--account-id", "1"], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and "RUN_ID" in done.stderr
    assert emulator.log.all() == []


def test_a_refused_retry_keeps_the_failed_run_s_outcome() -> None:
    from tests.fault_matrix import Case
    case = Case("retry-refused", "", [{"kind": "http_error", "endpoint": "retry", "status": 400, "body": "json",
                                       "count": 0}], 3, "error", 1, 1, False, {"rerun_attempts": "2"})
    seen = run_case(case)
    assert (seen.outcome, seen.exit_code) == ("error", 1)
    assert json.loads(seen.outputs["run_ids"]) == [int(seen.outputs["run_id"])] and seen.outputs["attempts"] == "1"
    assert "refused to retry" in seen.summary

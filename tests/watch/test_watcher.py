"""RunWatcher on real-shaped emulator runs, in virtual time: failed nodes reported as they appear (once each),
fail_fast stopping at the first, and a smoke of the polling benchmark's harness (the benchmark itself is not run)."""

from __future__ import annotations

from typing import Any

from benchmarks.polling import ManualClock, WorldClient, realistic, replay
from dbtgate.cloud.models import Run
from dbtgate.emulator.scenario import parse_scenario
from dbtgate.emulator.world import World
from dbtgate.watch.watcher import RunWatcher

FAILING: dict[str, Any] = {
    "id": 1, "name": "failing build", "execute_steps": ["dbt build"], "outcome": "error",
    "project": {"models": 40, "seed": 3, "threads": 4, "colour": True}, "duration": {"median": 900},
    "failure": {"at": 0.2, "node_type": "model"}, "history": 3, "seed": 5}


def watch(job: dict[str, Any], fail_fast: bool) -> tuple[Any, list[str], World]:
    clock = ManualClock()
    scenario = parse_scenario({"jobs": [job]})
    world = World(scenario, clock)
    triggered = world.trigger(scenario.jobs[0], {"cause": "test"})
    lines: list[str] = []
    watcher = RunWatcher(WorldClient(world), clock, emit=lines.append, interval=60, api_timeout=30)
    result = watcher.wait(Run.from_api(triggered), deadline=4 * 3600, commands=("dbt build",), fail_fast=fail_fast)
    return result, lines, world


def test_fail_fast_stops_at_the_first_failed_node_while_the_run_goes_on() -> None:
    result, lines, world = watch(FAILING, fail_fast=True)
    assert result.failed_fast and result.run is not None and not result.run.is_terminal
    assert len(result.failures) == 1
    failure = result.failures[0]
    assert failure.resource_type == "model" and failure.name and failure.logged_at is not None
    reported = [line for line in lines if "errored" in line or "failed" in line]
    assert reported == [f"Run {result.run.id}: model {failure.name} errored: ERROR"]
    assert (world.finished_elapsed(result.run.id) or 0) > world.elapsed() + 60, "stopped well before the end"


def test_fail_fast_follows_the_running_step_alone() -> None:
    """fail_fast reads GET steps/{id}/ (the running step's log), not the run with every step's log, each time."""
    clock = ManualClock()
    scenario = parse_scenario({"jobs": [FAILING]})
    world = World(scenario, clock)
    triggered = world.trigger(scenario.jobs[0], {"cause": "test"})
    reads: list[str] = []

    class Counting(WorldClient):
        def get_run(self, run_id: int, include: Any = (), **more: Any) -> Run:
            reads.append("run+logs" if "run_steps" in include else "run")
            return super().get_run(run_id, include, **more)

        def get_run_step(self, step_id: int, *, deadline: float) -> Any:
            reads.append("step")
            return super().get_run_step(step_id, deadline=deadline)

    watcher = RunWatcher(Counting(world), clock, emit=lambda line: None, interval=60, api_timeout=30)
    result = watcher.wait(Run.from_api(triggered), deadline=4 * 3600, commands=("dbt build",), fail_fast=True)
    assert result.failed_fast
    assert reads.count("step") > 5 * reads.count("run+logs"), reads


def test_without_fail_fast_the_run_ends_and_each_failed_node_is_reported_once() -> None:
    result, lines, _ = watch(FAILING, fail_fast=False)
    assert not result.failed_fast and result.run is not None and result.run.status_code == 20
    assert result.failures and result.run.steps, "the final read brings the steps for the summary"
    reported = [line for line in lines if "errored" in line or "failed" in line]
    assert len(reported) == len(result.failures) == len({(f.resource_type, f.name) for f in result.failures})
    first = result.failures[0]
    if first.file:   # first seen in the final read: dbt's closing summary names the file and the error
        assert first.file.startswith("models/") and "Database Error" in first.message
    else:            # seen while running: what the result line said
        assert first.message == "ERROR"


def test_a_successful_run_reports_no_failure_and_stays_within_the_call_bound() -> None:
    job = {**FAILING, "outcome": "success"}
    result, lines, world = watch(job, fail_fast=False)
    assert result.run is not None and result.run.succeeded and result.failures == ()
    assert not [line for line in lines if "errored" in line or "failed" in line]
    length = world.elapsed()
    assert result.polls <= 20 + length / 30 + 3, "the bucket, plus the history, previous run and final reads"


def test_the_benchmark_harness_replays_a_few_runs() -> None:
    for case in realistic(4, seed=1):
        ours, fixed = replay(case, "dbtgate"), replay(case, "fixed 30s")
        assert ours.latency is not None and fixed.latency is not None
        assert ours.calls > 0 and ours.bytes > 0 and fixed.bytes > 0


def test_a_log_the_gate_cannot_read_is_said_once_never_silently_ignored() -> None:
    """A dbt step whose log has no line of a known format: fail_fast and live failures cannot work on it, and the
    log says so once, while the run is still decided by its status."""
    from dbtgate.clock import VirtualClock

    unreadable = "\n".join(f"12:00:{i:02d}  something dbt printed in a format of the future {i}" for i in range(40))

    def shaped(status: int, seconds: int) -> Run:
        return Run.from_api({"id": 9, "job_definition_id": 1, "status": status, "started_at": "2026-01-01 12:00:00",
                             "duration": f"00:{seconds // 60:02d}:{seconds % 60:02d}",
                             "run_steps": [{"index": 1, "name": "Invoke dbt with `dbt build`", "status": 3 if status
                                            == 3 else 20, "logs": unreadable}]})

    class Cloud:
        bytes_received = 0

        def __init__(self, clock: VirtualClock) -> None:
            self.clock = clock

        def get_run(self, run_id: int, include: Any = (), *, deadline: float,
                    not_found_grace_until: float | None = None) -> Run:
            return shaped(20 if self.clock.monotonic() > 300 else 3, int(self.clock.monotonic()))

        def list_runs(self, job_id: int, **_: Any) -> list[Run]:
            return []

        def rate_limited_recently(self, window: float = 300.0) -> bool:
            return False

    clock = VirtualClock()
    lines: list[str] = []
    watch = RunWatcher(Cloud(clock), clock, emit=lines.append, interval=30, api_timeout=5)
    result = watch.wait(shaped(3, 0), deadline=3600, fail_fast=True)
    assert result.run is not None and result.run.status_code == 20 and not result.failed_fast
    said = [line for line in lines if "log format is unknown" in line]
    assert len(said) == 1 and "fail_fast and live failures are off for this run" in said[0]

"""Gate on what already ran (latest_run, max_age) and find jobs by name (issue 14 §2, §3).

In-process over real HTTP against the emulator, on a virtual clock (and the emulator's date) shared by both.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from dbtgate.clock import VirtualClock
from dbtgate.cloud.models import Job, Run
from dbtgate.emulator import Emulator
from dbtgate.errors import ConfigError
from dbtgate.gate.find import LatestRunQuery, pick_job, staleness
from tests.conftest import TOKEN, scenario
from tests.fault_matrix import Observed, run_gate

JOBS: list[dict[str, Any]] = [
    {"id": 1, "name": "Nightly", "run_seconds": 60, "history": 3},
    {"id": 2, "name": "CI", "run_seconds": 60},
    {"id": 3, "name": "Broken nightly", "outcome": "error", "run_seconds": 60, "history": 2},
]


class TriggerLater(VirtualClock):
    """A clock that, once it passes `at`, triggers a run of `job` with `body`: a CI run that starts on its own
    while the gate is already waiting for it. Deterministic: it fires in the gate's own sleep."""

    def __init__(self, at: float, job: int, body: dict[str, Any]) -> None:
        super().__init__()
        self.at, self.job, self.body = at, job, body
        self.url = ""
        self.fired = False

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        if not self.fired and self.url and self.monotonic() >= self.at:
            self.fired = True
            requests.post(f"{self.url}/api/v2/accounts/1/jobs/{self.job}/run/", json=self.body, timeout=10,
                          headers={"Authorization": f"Token {TOKEN}"}).raise_for_status()


def gate(inputs: dict[str, str], clock: VirtualClock | None = None, jobs: list[dict[str, Any]] | None = None,
         before: Any = None) -> Observed:
    clock = clock or VirtualClock()
    with Emulator(scenario(jobs=jobs or JOBS), clock=clock) as emulator:
        if isinstance(clock, TriggerLater):
            clock.url = emulator.url
        if before is not None:
            before(emulator)
        return run_gate(emulator, clock, inputs)


def start_run(emulator: Emulator, job: int, **body: Any) -> int:
    reply = requests.post(f"{emulator.url}/api/v2/accounts/1/jobs/{job}/run/", json={"cause": "elsewhere", **body},
                          headers={"Authorization": f"Token {TOKEN}"}, timeout=10)
    reply.raise_for_status()
    return int(reply.json()["data"]["id"])


def triggered_by_the_gate(seen: Observed) -> list[Any]:
    return [entry for entry in seen.emulator.log.of("trigger") if "[dbtgate:" in str(entry.body)]


# ---- latest_run -------------------------------------------------------------------------------------------
def test_latest_finished_run_decides_and_nothing_is_triggered() -> None:
    seen = gate({"dbt_cloud_job_id": "1", "latest_run": "true"})
    assert seen.emulator.log.of("trigger") == [] and seen.emulator.log.cancels() == []
    history = seen.emulator.world.list_runs(job_id=1, statuses=None, order_by="-created_at", limit=1, offset=0,
                                            include=frozenset())[0][0]
    assert seen.outputs["run_id"] == str(history["id"])
    expected = {10: ("success", 0), 20: ("error", 1)}[history["status"]]
    assert (seen.outcome, seen.exit_code) == expected


def test_latest_run_of_a_failing_job_fails_the_gate() -> None:
    seen = gate({"dbt_cloud_job_id": "3", "latest_run": "true"}, before=lambda e: start_run(e, 3))
    assert (seen.outcome, seen.exit_code) == ("error", 1)
    assert triggered_by_the_gate(seen) == []


def test_a_run_in_flight_is_waited_on_and_never_cancelled_at_the_timeout() -> None:
    started: list[int] = []
    seen = gate({"dbt_cloud_job_id": "1", "latest_run": "true", "timeout": "20s"},
                jobs=[{"id": 1, "name": "Long", "run_seconds": 3600}],
                before=lambda e: started.append(start_run(e, 1)))
    assert seen.outputs["run_id"] == str(started[0])
    assert (seen.outcome, seen.exit_code) == ("timeout", 1)
    assert seen.emulator.log.cancels() == [], "latest_run never cancels a run it did not trigger unless told"
    assert "left running" in seen.summary


def test_latest_run_for_a_commit_waits_for_that_commit_s_run_to_appear() -> None:
    sha = "a" * 40
    clock = TriggerLater(at=120, job=2, body={"cause": "dbt Cloud CI", "git_sha": sha, "github_pull_request_id": 7})
    seen = gate({"dbt_cloud_job_id": "2", "latest_run": "true", "git_sha": sha[:10], "timeout": "30m"}, clock,
                before=lambda e: start_run(e, 2, git_sha="b" * 40))
    assert clock.fired
    assert (seen.outcome, seen.exit_code) == ("success", 0)
    assert "waiting for one to appear" in seen.log
    run = seen.emulator.world.run_json(int(seen.outputs["run_id"]), frozenset({"trigger"}))
    assert run["trigger"]["git_sha"] == sha
    assert triggered_by_the_gate(seen) == []  # the two runs were started by "someone else"


def test_no_run_for_the_commit_within_the_timeout_fails_without_triggering() -> None:
    seen = gate({"dbt_cloud_job_id": "2", "latest_run": "true", "git_sha": "c" * 40, "timeout": "5m"})
    assert (seen.outcome, seen.exit_code) == ("timeout", 1)
    assert seen.outputs["run_id"] == "" and seen.emulator.log.of("trigger") == []
    assert "appeared within the timeout" in seen.summary


def test_a_run_older_than_max_age_is_stale() -> None:
    seen = gate({"dbt_cloud_job_id": "1", "latest_run": "true", "max_age": "2h"})
    assert (seen.outcome, seen.exit_code) == ("stale", 1)
    assert seen.outputs["run_id"] and seen.outputs["status"] != "Success"
    assert "too old" in seen.summary and "max\\_age" in seen.summary


@pytest.mark.parametrize("years_ahead", [0, 1, 5])
def test_max_age_holds_whatever_the_date(years_ahead: int) -> None:
    """The emulator's calendar starts at the clock's date and the gate's max_age reads the same clock: a run made
    a minute ago is fresh and a week-old one is stale, this year or years from now (CI broke on 2026-12-02 when
    the calendar was fixed and the gate read the machine's date)."""
    moved = datetime.now(UTC) + timedelta(days=365 * years_ahead)
    jobs = [{"id": 1, "name": "Nightly", "run_seconds": 60, "history": 3}]
    fresh = gate({"dbt_cloud_job_id": "1", "latest_run": "true", "max_age": "10m"},
                 VirtualClock(wall_start=moved), jobs=jobs, before=lambda e: start_run(e, 1))
    assert fresh.outcome == "success", fresh.summary
    stale = gate({"dbt_cloud_job_id": "1", "latest_run": "true", "max_age": "12h"},
                 VirtualClock(wall_start=moved), jobs=jobs)
    assert (stale.outcome, stale.exit_code) == ("stale", 1)


def test_a_run_within_max_age_is_taken() -> None:
    seen = gate({"dbt_cloud_job_id": "1", "latest_run": "true", "max_age": "3d"})
    assert seen.outcome in ("success", "error")


def test_staleness_rules() -> None:
    now = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)

    def run(status: int, **moments: datetime) -> Run:
        data: dict[str, Any] = {"id": 1, "job_definition_id": 1, "status": status}
        data.update({key: value.isoformat(sep=" ") for key, value in moments.items()})
        return Run.from_api(data)
    hour = timedelta(hours=1)
    assert staleness(run(10, finished_at=now - hour), 7200, now) == ""
    assert "finished 3h00m ago" in staleness(run(10, finished_at=now - 3 * hour), 7200, now)
    # A run still going counts from its start, a queued one from its creation.
    assert staleness(run(3, started_at=now - hour, created_at=now - 5 * hour), 7200, now) == ""
    assert "was queued" in staleness(run(1, created_at=now - 3 * hour), 7200, now)


def test_latest_run_query_matches_short_shas_and_pull_requests() -> None:
    run = Run.from_api({"id": 1, "job_definition_id": 4, "status": 10, "git_sha": "abcdef0123",
                        "trigger": {"github_pull_request_id": 12}})
    assert LatestRunQuery(4, "abcdef0").matches(run) and LatestRunQuery(4, None, 12).matches(run)
    assert not LatestRunQuery(4, "abcdf01").matches(run) and not LatestRunQuery(4, None, 13).matches(run)
    # A prefix shorter than 7 characters could be anyone's commit: it matches nothing but itself.
    assert not LatestRunQuery(4, "a").matches(run) and not LatestRunQuery(4, "abcdef").matches(run)
    assert not LatestRunQuery(5).matches(run)


# ---- jobs by name -----------------------------------------------------------------------------------------
def test_pick_job_is_exact_and_explains_ambiguity_and_misses() -> None:
    jobs = [Job(1, "Nightly build", project_id=1, environment_id=1), Job(2, "Nightly build", project_id=2,
                                                                         environment_id=3), Job(3, "CI")]
    assert pick_job(jobs, "CI").id == 3
    with pytest.raises(ConfigError) as several:
        pick_job(jobs, "Nightly build")
    assert "id 1 (project 1, environment 1)" in str(several.value) and "id 2 (project 2, environment 3)" in str(
        several.value)
    with pytest.raises(ConfigError) as none:
        pick_job(jobs, "nightly  build")
    assert "'Nightly build'" in str(none.value)


MANY_JOBS: list[dict[str, Any]] = [{"id": n, "name": f"Job number {n}", "run_seconds": 30} for n in range(1, 131)] + [
    {"id": 500, "name": "Deploy gate", "run_seconds": 30, "project_id": 7, "environment_id": 8},
    {"id": 501, "name": "Twin", "run_seconds": 30, "project_id": 7, "environment_id": 8},
    {"id": 502, "name": "Twin", "run_seconds": 30, "project_id": 9, "environment_id": 10},
]


def test_a_job_name_on_a_later_page_is_found_and_triggered() -> None:
    seen = gate({"dbt_cloud_job_name": "Deploy gate"}, jobs=MANY_JOBS)
    assert (seen.outcome, seen.exit_code) == ("success", 0)
    assert [entry.job_id for entry in seen.emulator.log.of("trigger")] == [500]
    assert len(seen.emulator.log.of("list_jobs")) >= 2, "the job list has several pages"


def test_an_ambiguous_job_name_is_bad_input_listing_the_candidates() -> None:
    seen = gate({"dbt_cloud_job_name": "Twin"}, jobs=MANY_JOBS)
    assert (seen.outcome, seen.exit_code) == ("config_error", 2)
    assert "id 501" in seen.summary and "id 502" in seen.summary
    assert seen.emulator.log.of("trigger") == []


def test_a_project_narrows_an_ambiguous_name() -> None:
    seen = gate({"dbt_cloud_job_name": "Twin", "dbt_cloud_project_id": "9"}, jobs=MANY_JOBS)
    assert [entry.job_id for entry in seen.emulator.log.of("trigger")] == [502]


def test_an_unknown_job_name_suggests_the_closest() -> None:
    seen = gate({"dbt_cloud_job_name": "Deploy gates"}, jobs=MANY_JOBS)
    assert (seen.outcome, seen.exit_code) == ("config_error", 2)
    assert "Deploy gate" in seen.summary and seen.emulator.log.of("trigger") == []


# ---- the same capabilities through the action and the CLI, as real processes ----------------------------------
def test_latest_run_and_a_job_name_through_the_action(emulator_factory: Any, tmp_path: Any) -> None:
    from tests.runner import run_step
    emulator = emulator_factory(jobs=JOBS, time_scale=600)
    step = run_step({"dbt_cloud_url": emulator.url, "dbt_cloud_token": TOKEN, "dbt_cloud_account_id": "1",
                     "dbt_cloud_job_name": "Broken nightly", "latest_run": "true", "max_age": "30d",
                     "interval": "1"}, tmp_path / "ws")
    # The job's history decides: its latest run may have passed or failed; the exit code must say which.
    expected = {"Success": ("success", 0), "Error": ("error", 1)}[step.outputs["status"].split(" ")[0]]
    assert (step.outputs["outcome"], step.exit_code) == expected, step.log
    assert emulator.log.of("trigger") == [] and emulator.log.cancels() == []
    assert step.outputs["job_id"] == "3"


def test_fail_fast_and_latest_run_through_the_cli(emulator_factory: Any, tmp_path: Any) -> None:
    import os
    import subprocess
    import sys

    from tests.runner import ROOT
    emulator = emulator_factory(jobs=[{"id": 20, "name": "Big", "outcome": "error", "project": {"models": 40},
                                       "failure": {"at": 0.2, "node_type": "model"}, "duration": 1200}],
                                time_scale=60)
    env = {**os.environ, "DBT_CLOUD_API_TOKEN": TOKEN, "PYTHONPATH": str(ROOT)}
    env.pop("GITHUB_ACTIONS", None)
    common = ["--url", emulator.url, "--account-id", "1", "--interval", "1", "--json"]
    fast = subprocess.run([sys.executable, "-m", "dbtgate", "run", "--job-name", "Big", "--fail-fast", *common],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert fast.returncode == 1, fast.stderr
    assert "(fail_fast)" in fast.stderr and len(emulator.log.cancels()) == 1
    latest = subprocess.run([sys.executable, "-m", "dbtgate", "run", "--job-id", "20", "--latest-run", *common],
                            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert latest.returncode == 1, latest.stderr
    assert len(emulator.log.of("trigger")) == 1, "latest_run triggered nothing"

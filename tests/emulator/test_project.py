"""Emulated runs are shaped like real dbt projects (issue #11): threads, heavy tails, skips, real log formats,
truncated logs, a finalisation gap, history, consistent artifacts — and the run object's retry and filter API."""

from __future__ import annotations

import itertools
import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from dbtgate.clock import VirtualClock
from dbtgate.emulator import load_scenario, parse_scenario
from dbtgate.emulator.scenario import ScenarioError
from dbtgate.emulator.world import RetryRefused, RunFilters, World

NODE_LINE = re.compile(r"^(?:\x1b\[0m)?(\d\d:\d\d:\d\d)  (\d+) of (\d+) (START|OK|PASS|FAIL|WARN|ERROR|SKIP)\b(.*)$")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
ALL = frozenset({"run_steps", "job", "trigger"})


def world_for(*jobs: dict[str, Any], **extra: Any) -> tuple[World, VirtualClock]:
    clock = VirtualClock(wall_start=datetime(2026, 11, 2, 9, 0, tzinfo=UTC))  # the same bytes on every date
    return World(parse_scenario({"jobs": list(jobs), **extra}), clock), clock


def finished_run(world: World, clock: VirtualClock, job_id: int, include: frozenset[str] = ALL,
                 **body: Any) -> dict[str, Any]:
    job = world.scenario.job(job_id)
    assert job is not None
    run = world.trigger(job, {"cause": "test", **body})
    end = world.finished_elapsed(run["id"])
    assert end is not None
    clock.advance(end - world.elapsed() + 1)
    return world.run_json(run["id"], include)


def build_step(run: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in run["run_steps"] if "`dbt build" in s["name"])


def node_lines(logs: str) -> list[tuple[int, int, str, str]]:
    found = []
    for line in logs.splitlines():
        match = NODE_LINE.match(line)
        if match:
            found.append((int(match[2]), int(match[3]), match[4], ANSI.sub("", match[5])))
    return found


MID = {"id": 1, "name": "Mid", "project": {"models": 60, "seed": 7, "threads": 4}}


def test_nodes_run_on_threads_numbered_by_dispatch_with_results_out_of_order() -> None:
    world, clock = world_for(MID)
    lines = node_lines(build_step(finished_run(world, clock, 1))["logs"])
    total = lines[0][1]
    numbered = sorted(n for n, _, verb, _ in lines if verb in ("START", "SKIP"))
    assert numbered == list(range(1, total + 1)), "every N appears once, as a START or a SKIP"
    in_flight: set[int] = set()
    most = 0
    results = []
    for number, _, verb, _ in lines:
        if verb == "START":
            in_flight.add(number)
            most = max(most, len(in_flight))
        elif verb != "SKIP":
            assert number in in_flight, f"{number} finished before it started"
            in_flight.remove(number)
            results.append(number)
    assert not in_flight
    assert 2 <= most <= 4, "several nodes in flight, never more than the threads"
    inversions = sum(1 for a, b in itertools.pairwise(results) if b < a)
    assert inversions >= 3, "OK lines arrive out of N order"


def test_log_lines_are_in_dbts_format() -> None:
    world, clock = world_for({**MID, "project": {"models": 30, "seed": 3, "threads": 4}})
    logs = build_step(finished_run(world, clock, 1))["logs"].splitlines()
    assert all(re.match(r"^\d\d:\d\d:\d\d  ", line) for line in logs), "HH:MM:SS and two spaces on every line"
    texts = [line[10:] for line in logs]
    assert texts[0] == "Running with dbt=1.12.6" and texts[1].startswith("Registered adapter: snowflake=")
    assert re.match(r"Found \d+ models, \d+ data tests, \d+ seeds?, .*\d+ macros$", texts[2])
    assert texts[3:6] == ["", "Concurrency: 4 threads (target='prod')", ""]
    for line in logs:
        if NODE_LINE.match(line) and "  [" not in line:
            assert line.index(" [") == 90 and line[89] in ". ", "dot padding to column 80, '[' at column 92"
    assert any(re.search(r" START sql (view|table|incremental) model \w+\.\w+ \.+ \[RUN\]$", t) for t in texts)
    assert any(re.search(r" OK created sql \w+ model \w+\.\w+ \.+ \[SUCCESS 1 in \d+\.\d\ds\]$", t) for t in texts)
    assert any(re.search(r" OK loaded seed file raw\.\w+ \.+ \[INSERT \d+ in \d+\.\d\ds\]$", t) for t in texts)
    assert any(re.search(r" PASS \w+ \.+ \[PASS in \d+\.\d\ds\]$", t) for t in texts)
    finished = next(t for t in texts if t.startswith("Finished running "))
    assert re.fullmatch(r"Finished running (\d+ [a-z ]+, )*\d+ [a-z ]+ in \d+ hours \d+ minutes and \d+\.\d\d "
                        r"seconds \(\d+\.\d\ds\)\.", finished)
    kinds = [k.split(" ", 1)[1].rstrip("s") for k in finished[len("Finished running "):].split(" in ")[0].split(", ")]
    order = ["incremental model", "seed", "snapshot", "table model", "data test", "view model"]
    assert kinds == sorted(kinds, key=order.index), "kinds sorted as dbt sorts them"
    assert texts[-1].startswith("Done. PASS=") and texts[-1].endswith(" NO-OP=0 REUSED=0 TOTAL=" +
                                                                      str(node_lines("\n".join(logs))[0][1]))
    assert "Completed successfully" in texts


def test_a_failing_model_skips_exactly_its_descendants_and_the_others_finish() -> None:
    world, clock = world_for({**MID, "outcome": "error", "failure": {"at": 0.2, "node_type": "model"}})
    run = finished_run(world, clock, 1)
    assert run["status"] == 20
    results = world.artifact(run["id"], "run_results.json", None)
    manifest = world.artifact(run["id"], "manifest.json", None)
    assert isinstance(results, dict) and isinstance(manifest, dict)
    status = {r["unique_id"]: r["status"] for r in results["results"]}
    failed = [uid for uid, s in status.items() if s == "error"]
    assert len(failed) == 1 and failed[0].startswith("model.")
    children: dict[str, set[str]] = {}
    for uid, node in manifest["nodes"].items():
        for parent in node["depends_on"]["nodes"]:
            children.setdefault(parent, set()).add(uid)
    descendants: set[str] = set()
    todo = [failed[0]]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in descendants:
                descendants.add(child)
                todo.append(child)
    skipped = {uid for uid, s in status.items() if s == "skipped"}
    assert descendants <= skipped and descendants
    # dbt build also makes a node wait for the tests of what it refs: a relationships test that also refs the failed
    # model is skipped, and so is what waits for that test. Nothing else.
    tests_of: dict[str, set[str]] = {}
    for uid, node in manifest["nodes"].items():
        if node["attached_node"]:
            tests_of.setdefault(node["attached_node"], set()).add(uid)
    for uid in skipped - descendants:
        assert any(tests_of.get(p, set()) & skipped for p in manifest["nodes"][uid]["depends_on"]["nodes"]), uid
    assert sum(1 for s in status.values() if s in ("success", "pass")) == len(status) - len(skipped) - 1
    logs = build_step(run)["logs"]
    assert "ERROR creating sql" in logs and "SKIP relation " in logs
    assert "Completed with 1 error, 0 partial successes, and 0 warnings:" in logs
    assert f"[ERROR]: in model {failed[0].split('.')[-1]} (" in logs


def test_a_failing_test_skips_only_what_waits_for_it_and_the_run_goes_on() -> None:
    world, clock = world_for({**MID, "outcome": "error", "failure": {"at": 0.3, "node_type": "test"}})
    run = finished_run(world, clock, 1)
    results = world.artifact(run["id"], "run_results.json", None)
    manifest = world.artifact(run["id"], "manifest.json", None)
    assert isinstance(results, dict) and isinstance(manifest, dict)
    by_id = {r["unique_id"]: r for r in results["results"]}
    failed = [r for r in results["results"] if r["status"] == "fail"]
    assert len(failed) == 1
    test = manifest["nodes"][failed[0]["unique_id"]]
    tested = test["attached_node"]
    siblings = [uid for uid, n in manifest["nodes"].items() if n.get("attached_node") == tested and uid != test[
        "unique_id"]]
    assert all(by_id[uid]["status"] != "skipped" for uid in siblings), "the model's other tests still run"
    skipped = {uid for uid, r in by_id.items() if r["status"] == "skipped"}
    downstream = {uid for uid, n in manifest["nodes"].items() if tested in n["depends_on"]["nodes"]
                  and n["resource_type"] != "test"}
    assert skipped and skipped & downstream, "the tested model's children wait for the failing test"
    fail_end = failed[0]["timing"][1]["completed_at"]
    later = [r for r in results["results"] if r["timing"] and r["timing"][1]["started_at"] > fail_end]
    assert later, "dbt build does not stop at a failing test"
    assert f"FAIL {failed[0]['failures']} {test['name']}" in build_step(run)["logs"]


def test_durations_are_heavy_tailed_and_a_long_chain_ends_the_run() -> None:
    world, clock = world_for({**MID, "project": {"models": 200, "seed": 11, "threads": 4}})
    run = finished_run(world, clock, 1)
    results = world.artifact(run["id"], "run_results.json", None)
    assert isinstance(results, dict)
    times = sorted((r["execution_time"] for r in results["results"]), reverse=True)
    top = max(3, len(times) // 20)
    assert sum(times[:top]) > 0.5 * sum(times), "the top 5% of nodes take most of the time"
    assert times[len(times) // 2] < times[0] / 50, "the median node is tiny next to the largest"
    assert results["elapsed_time"] > 1.3 * sum(times) / 4, "threads sit idle while the long chain runs"


def test_artifacts_match_the_log() -> None:
    world, clock = world_for({**MID, "outcome": "error", "failure": {"at": 0.5, "node_type": "model"},
                              "warnings": [{"node": "not_null_stg_orders_order_id"}]})
    run = finished_run(world, clock, 1)
    logs = build_step(run)["logs"]
    results = world.artifact(run["id"], "run_results.json", None)
    manifest = world.artifact(run["id"], "manifest.json", None)
    assert isinstance(results, dict) and isinstance(manifest, dict)
    assert results["metadata"]["dbt_schema_version"].endswith("/run-results/v6.json")
    assert manifest["metadata"]["dbt_schema_version"].endswith("/manifest/v12.json")
    lines = node_lines(logs)
    assert len(results["results"]) == lines[0][1] == len(manifest["nodes"]) - 0
    verbs = {"success": "OK", "pass": "PASS", "fail": "FAIL", "warn": "WARN", "error": "ERROR", "skipped": "SKIP"}
    for result in results["results"]:
        node = manifest["nodes"][result["unique_id"]]
        assert node["original_file_path"] and node["path"]
        mine = [line for line in lines if line[2] != "START" and re.search(
            rf"[ .]{re.escape(node['name'])} [. ]", line[3] + " ")]
        assert any(verb == verbs[result["status"]] for _, _, verb, _ in mine), result["unique_id"]
        if result["status"] == "skipped":
            assert result["timing"] == [] and result["execution_time"] == 0 and result["message"] is None
            continue
        shown = f" in {result['execution_time']:.2f}s]"
        assert any(text.endswith(shown) for _, _, _, text in mine), "execution_time as the log rounds it"
        compile_, execute = result["timing"]
        assert compile_["name"] == "compile" and execute["name"] == "execute"
        assert compile_["started_at"] <= execute["started_at"] <= execute["completed_at"]
        assert re.fullmatch(r"Thread-[1-4] \(worker\)", result["thread_id"])
    warned = [r for r in results["results"] if r["status"] == "warn"]
    assert len(warned) == 1 and warned[0]["message"].startswith("Got ") and "[WARNING]: in test " in logs
    assert re.search(r"Done\. PASS=\d+ WARN=1 ERROR=1 SKIP=\d+ NO-OP=0 REUSED=0 TOTAL=\d+$", logs.rstrip())
    # Completion order: the list follows execute.completed_at, as dbt's callbacks do.
    ends = [r["timing"][1]["completed_at"] for r in results["results"] if r["timing"]]
    assert ends == sorted(ends)


def test_same_scenario_same_bytes() -> None:
    job = {**MID, "outcome": "error", "history": 3, "queue_seconds": [1, 30], "finalize_seconds": [2, 12]}

    def everything() -> str:
        world, clock = world_for(job)
        run = finished_run(world, clock, 1, ALL | {"debug_logs"})
        listed, _ = world.list_runs(job_id=None, statuses=None, order_by="id", limit=100, offset=0, include=ALL)
        return json.dumps([run, listed, world.artifact(run["id"], "run_results.json", None),
                           world.artifact(run["id"], "manifest.json", None)], sort_keys=True)

    assert everything() == everything()
    other = {**job, "seed": 99}
    world, clock = world_for(other)
    assert json.dumps(finished_run(world, clock, 1)["run_steps"]) != json.dumps(
        json.loads(everything())[0]["run_steps"])


def test_a_5000_node_project_is_truncated_to_the_last_1000_lines_and_polls_fast() -> None:
    world, clock = world_for({"id": 1, "name": "Huge", "size": "huge", "project": {"threads": 16},
                              "duration": 3600, "outcome": "error"})
    job = world.scenario.job(1)
    assert job is not None
    run = world.trigger(job, {"cause": "big"})
    end = world.finished_elapsed(run["id"])
    assert end is not None
    seen = []
    while world.elapsed() < end + 1:
        clock.advance(300)
        data = world.run_json(run["id"], ALL)
        if data["run_steps"]:
            logs = data["run_steps"][-1]["logs"]
            assert logs.count("\n") <= 1000
            seen.append(logs.count("\n"))
    assert max(seen) == 1000
    done = world.run_json(run["id"], ALL | {"debug_logs"})
    step = build_step(done)
    assert "Running with dbt=" not in step["logs"], "the header is gone on a big project"
    assert step["logs"].rstrip().splitlines()[-1].endswith("TOTAL=" + str(node_lines(step["logs"])[-1][1]))
    assert "Running with dbt=" in step["debug_logs"] and step["debug_logs"].count("\n") > 10_000
    assert step["truncated_debug_logs"].count("\n") == 1000
    assert step["debug_logs"].endswith(step["truncated_debug_logs"])
    results = world.artifact(run["id"], "run_results.json", None)
    assert isinstance(results, dict) and len(results["results"]) > 10_000


def test_the_run_completes_seconds_after_its_last_step() -> None:
    job = {**MID, "finalize_seconds": [3, 12]}
    world, clock = world_for(job)
    gaps = []
    for _ in range(4):
        run = finished_run(world, clock, 1)
        last = datetime.fromisoformat(run["run_steps"][-1]["finished_at"])
        gap = (datetime.fromisoformat(run["finished_at"]) - last).total_seconds()
        assert 3 <= gap <= 12
        gaps.append(round(gap, 3))
        assert run["last_heartbeat_at"] <= run["run_steps"][-1]["finished_at"] < run["finished_at"]
    assert len(set(gaps)) > 1, "the gap varies per run"
    # In the gap every step is done but the run is still running.
    trigger = world.trigger(world.scenario.jobs[0], {"cause": "gap"})
    end = world.finished_elapsed(trigger["id"])
    assert end is not None
    clock.advance(end - world.elapsed() - 1)
    during = world.run_json(trigger["id"], ALL)
    assert during["status"] == 3 and all(s["status"] == 10 for s in during["run_steps"])


def test_history_durations_vary_around_a_median_with_slow_and_failed_runs() -> None:
    world, _ = world_for({**MID, "history": 20, "duration": {"median": 600, "spread": 0.1, "slow": 0.2}})
    runs, total = world.list_runs(job_id=1, statuses=None, order_by="id", limit=100, offset=0, include=frozenset())
    assert total == 20 and all(r["is_complete"] for r in runs)
    assert world.run_ids() == [], "history is not counted as runs created since the start"
    seconds = sorted(
        (datetime.fromisoformat(r["finished_at"]) - datetime.fromisoformat(r["started_at"])).total_seconds()
        for r in runs if r["status"] == 10)
    median = seconds[len(seconds) // 2]
    assert 450 < median < 900
    assert any(s > 1.6 * median for s in seconds), "some runs are about twice as slow"
    assert any(r["status"] == 20 for r in runs), "some failed"
    assert len({round(s) for s in seconds}) > len(seconds) // 2, "durations differ from run to run"


def test_colour_codes_when_the_project_asks_for_them() -> None:
    plain_world, plain_clock = world_for(MID)
    colour_world, colour_clock = world_for({**MID, "project": {**MID["project"], "colour": True}})
    plain = build_step(finished_run(plain_world, plain_clock, 1))["logs"]
    colour = build_step(finished_run(colour_world, colour_clock, 1))["logs"]
    assert "\x1b" not in plain
    stamped = [line for line in colour.splitlines() if re.match(r"^\x1b\[0m\d\d:", line)]
    assert len(stamped) == len(colour.splitlines())
    assert "[\x1b[32mPASS\x1b[0m in " in colour and "\x1b[32mCompleted successfully\x1b[0m" in colour
    assert ANSI.sub("", colour) == plain, "the same bytes once the codes are gone: padding ignores them"


def test_setup_deps_freshness_and_docs_steps() -> None:
    world, clock = world_for({"id": 1, "name": "Full", "project": {"models": 40, "packages": True},
                              "execute_steps": ["dbt source freshness", "dbt build"], "generate_docs": True,
                              "outcome": "error", "failure": {"node_type": "source"}})
    run = finished_run(world, clock, 1)
    names = [s["name"] for s in run["run_steps"]]
    assert names == ["Clone git repository", "Create profile from connection Snowflake",
                     "Invoke dbt with `dbt deps`", "Invoke dbt with `dbt source freshness`"]
    deps, freshness = run["run_steps"][2]["logs"], run["run_steps"][3]["logs"]
    assert "Installing dbt-labs/dbt_utils" in deps
    assert re.search(r" START freshness of raw\.\w+ \.+ \[RUN\]", freshness)
    assert re.search(r" ERROR STALE freshness of raw\.\w+ \.+ \[ERROR STALE in \d+\.\d\ds\]", freshness)
    assert "  Status: error" in freshness and freshness.rstrip().endswith("Done.")
    assert run["status"] == 20 and run["run_steps"][3]["status"] == 20
    assert world.retry_details(run["id"]) == {"failed_step": "dbt source freshness",
                                              "skipped_steps": ["dbt build", "dbt docs generate"]}
    ok_world, ok_clock = world_for({"id": 1, "name": "Docs", "project": {"models": 20}, "generate_docs": True})
    docs = finished_run(ok_world, ok_clock, 1)["run_steps"][-1]
    assert docs["name"] == "Invoke dbt with `dbt docs generate`"
    assert re.search(r"Building catalog\n.*  Catalog written to /tmp/jobs/\d+/target/catalog\.json\n$", docs["logs"])


def test_retry_run_and_its_refusals() -> None:
    world, clock = world_for({**MID, "outcomes": ["error", "error", "success"], "generate_docs": True})
    job = world.scenario.jobs[0]
    running = world.trigger(job, {"cause": "first", "git_branch": "dev"})
    clock.advance(60)
    assert world.run_json(running["id"])["retry_not_supported_reason"] == "RETRY_NOT_FAILED_RUN"
    with pytest.raises(RetryRefused) as refused:
        world.retry_run(running["id"])
    assert refused.value.reason == "RETRY_NOT_FAILED_RUN"
    end = world.finished_elapsed(running["id"])
    assert end is not None
    clock.advance(end - world.elapsed() + 1)
    failed = world.run_json(running["id"], ALL)
    assert failed["can_retry"] is True and failed["retry_not_supported_reason"] is None
    assert world.retry_details(running["id"]) == {"failed_step": "dbt build", "skipped_steps": ["dbt docs generate"]}
    retry = world.retry_run(running["id"])
    assert retry["retrying_run_id"] == running["id"] and retry["trigger"]["git_branch"] == "dev"
    with pytest.raises(RetryRefused) as refused:
        world.retry_run(running["id"])
    assert refused.value.reason == "RETRY_NOT_LATEST_RUN"
    end = world.finished_elapsed(retry["id"])
    assert end is not None
    clock.advance(end - world.elapsed() + 1)
    done = world.run_json(retry["id"], ALL)
    assert done["status"] == 20 and done["run_steps"][-1]["name"] == "Invoke dbt with `dbt retry`"
    results = world.artifact(running["id"], "run_results.json", None)
    assert isinstance(results, dict)
    again = {r["unique_id"] for r in results["results"] if r["status"] in ("error", "fail", "skipped")}
    retried = world.artifact(retry["id"], "run_results.json", 3)
    assert isinstance(retried, dict) and {r["unique_id"] for r in retried["results"]} == again
    # rerun acts on the latest run only: the retry failed too, so it is retried; then a success starts anew.
    rerun = world.rerun(job)
    assert rerun["retrying_run_id"] == retry["id"]
    with pytest.raises(RetryRefused) as refused:
        world.retry_details(rerun["id"])
    assert refused.value.reason == "RETRY_NOT_FAILED_RUN"


def test_retry_refusals_for_success_unsupported_and_no_results() -> None:
    world, clock = world_for({"id": 1, "name": "ok"}, {"id": 2, "name": "no", "outcome": "error", "retryable": False},
                             {"id": 3, "name": "parse", "outcome": "error", "execute_steps": ["dbt parse"]})
    for job_id, reason in ((1, "RETRY_NOT_FAILED_RUN"), (2, "RETRY_UNSUPPORTED_CMD"), (3, "RETRY_NO_RUN_RESULTS")):
        run = finished_run(world, clock, job_id)
        assert run["retry_not_supported_reason"] == reason and run["can_retry"] is False
        with pytest.raises(RetryRefused):
            world.retry_run(run["id"])
    job = world.scenario.job(1)
    assert job is not None
    fresh = world.rerun(job)
    assert fresh["retrying_run_id"] is None and fresh["trigger"]["cause"] == "Rerun via API"
    with pytest.raises(KeyError):
        world.retry_run(123)


def test_run_filters_and_list_jobs() -> None:
    world, clock = world_for({"id": 1, "name": "Nightly build"}, {"id": 2, "name": "CI", "project_id": 7,
                                                                   "environment_id": 8})
    ids = []
    for job_id in (1, 2, 1, 2):
        job = world.scenario.job(job_id)
        assert job is not None
        ids.append(world.trigger(job, {"cause": "x"})["id"])
        clock.advance(400)

    def listed(filters: RunFilters) -> list[int]:
        rows, total = world.list_runs(job_id=None, statuses=None, order_by="id", limit=100, offset=0,
                                      include=frozenset(), filters=filters)
        assert total == len(rows)
        return [row["id"] for row in rows]

    assert listed(RunFilters(pk=ids[1])) == [ids[1]]
    assert listed(RunFilters(pk__in=frozenset({ids[0], ids[3]}))) == [ids[0], ids[3]]
    assert listed(RunFilters(id__gt=ids[1])) == ids[2:]
    assert listed(RunFilters(project_id=7)) == [ids[1], ids[3]]
    assert listed(RunFilters(environment_id=8, id__gt=ids[1])) == [ids[3]]
    second = world.run_json(ids[1])
    assert listed(RunFilters(created_at__range=(second["created_at"], None))) == ids[1:]
    assert listed(RunFilters(created_at__range=(None, datetime.fromisoformat(second["created_at"])))) == ids[:2]
    assert listed(RunFilters(finished_at__range=(None, second["finished_at"]))) == ids[:2]
    jobs, total = world.list_jobs(name_contains="nightly")
    assert total == 1 and jobs[0]["id"] == 1
    assert [j["id"] for j in world.list_jobs(project_id=7)[0]] == [2]
    assert [j["id"] for j in world.list_jobs(order_by="name")[0]] == [2, 1]
    assert [j["id"] for j in world.list_jobs(order_by="-id", limit=1)[0]] == [2]
    assert world.list_jobs(offset=1)[1] == 2 and len(world.list_jobs(offset=1)[0]) == 1


def test_run_object_fields_read_like_dbt_cloud() -> None:
    world, clock = world_for({"id": 1, "name": "x", "queue_seconds": 30, "start_seconds": 10, "run_seconds": 200,
                              "schedule": "0 6 * * *"})
    job = world.scenario.jobs[0]
    first = world.trigger(job, {"cause": "x"})
    assert first["git_sha"] is None and first["git_branch"] is None, "unknown until the clone step"
    assert first["scribe_enabled"] is True and first["created_at_humanized"] == "0 minutes ago"
    clock.advance(60)
    running = world.run_json(first["id"])
    assert re.fullmatch(r"[0-9a-f]{40}", running["git_sha"]) and running["git_branch"] == "main"
    assert running["queued_duration"] == "00:00:40", "started - created"
    assert running["retry_not_supported_reason"] == "RETRY_NOT_FAILED_RUN"
    clock.advance(2 * 86400 + 3 * 7 * 86400)
    done = world.run_json(first["id"])
    assert done["created_at_humanized"] == "3 weeks, 2 days ago"
    assert done["last_checked_at"] == done["finished_at"], "checks stop when the run ends"
    job_json = world.job_json(job)
    assert "T" in job_json["created_at"] and job_json["triggers"]["schedule"] is True
    assert all(isinstance(v, bool) for v in job_json["triggers"].values())
    assert job_json["cron_humanized"] == "At 06:00" and job_json["next_run"] > done["finished_at"]


@pytest.mark.parametrize("timeout", [-5, 10 ** 40, "nan", 1e308, float("inf"), "x"])
def test_odd_timeouts_never_crash_the_world(timeout: Any) -> None:
    world, clock = world_for({"id": 1, "name": "x", "run_seconds": 30})
    run = world.trigger(world.scenario.jobs[0], {"cause": "x", "timeout_seconds_override": timeout})
    clock.advance(600)
    assert world.run_json(run["id"], ALL)["status"] == 10


def test_the_timeout_message_is_dbt_clouds() -> None:
    world, clock = world_for({"id": 1, "name": "x", "run_seconds": 3600})
    run = finished_run(world, clock, 1, timeout_seconds_override=300)
    assert run["status"] == 30
    assert run["status_message"] == ("This run timed out after running for 5 minutes, which exceeded the configured "
                                     "timeout of 300 seconds.")


def test_scenario_shape_keys_are_checked() -> None:
    for job in ({"project": {"models": 5, "bogus": 1}}, {"failure": {"at": 2}}, {"size": "galactic"},
                {"finalize_seconds": [5, 1]}, {"queue_seconds": "soon"}, {"project": {"threads": 0}}):
        with pytest.raises(ScenarioError):
            parse_scenario({"jobs": [{"id": 1, **job}]})


def test_the_built_in_scenario_has_realistic_shapes() -> None:
    scenario = load_scenario()
    assert any(job.project and job.project.models >= 50 for job in scenario.jobs)
    assert any(job.history for job in scenario.jobs)
    world = World(scenario, VirtualClock())
    assert world.list_runs(job_id=None, statuses={10, 20}, order_by="id", limit=100, offset=0,
                           include=frozenset())[1] > 0


def test_generation_and_polls_of_a_5000_node_project_in_the_suite() -> None:
    """Not a timing assertion: it makes the suite generate and poll a 5,000-node project (see the report's figures)."""
    world, clock = world_for({"id": 1, "name": "Huge", "project": {"models": 5000, "seed": 5, "threads": 8},
                              "duration": 5400})
    run = world.trigger(world.scenario.jobs[0], {"cause": "big"})
    clock.advance(2000)
    for _ in range(50):
        data = world.run_json(run["id"], ALL)
        assert data["status"] == 3 and len(data["run_steps"][-1]["logs"].splitlines()) == 1000


def test_queueing_varies_from_run_to_run() -> None:
    world, clock = world_for({**MID, "start_seconds": 5}, {"id": 2, "name": "fixed", "queue_seconds": 4,
                                                          "start_seconds": 5})
    waits = {1: [], 2: []}
    for _ in range(5):
        for job_id in (1, 2):
            run = finished_run(world, clock, job_id, frozenset())
            waits[job_id].append((datetime.fromisoformat(run["started_at"]) -
                                  datetime.fromisoformat(run["created_at"])).total_seconds())
    assert all(6 <= w <= 15 for w in waits[1]) and len({round(w, 3) for w in waits[1]}) > 1
    assert {round(w, 3) for w in waits[2]} == {9.0}


def test_dbts_fail_fast_stops_the_step_at_the_first_failure() -> None:
    """--fail-fast: the nodes in flight at the first failure are interrupted (skipped), none starts after it, and
    the ones it never started are reported skipped with dbt-core's message (so `dbt retry` runs them)."""
    from dbtgate.emulator.project import FAIL_FAST_SKIP, NodeRun, stopped_at_first_failure

    def node(index: int, status: str, start: float, end: float) -> NodeRun:
        return NodeRun(index, index, status, start, end, 1, None, None, "")

    runs = [node(1, "success", 0, 5), node(2, "error", 2, 6), node(3, "success", 3, 9), node(4, "skipped", 6, 6),
            node(5, "success", 7, 12)]
    stopped = stopped_at_first_failure(runs)
    assert [(r.index, r.status, r.end) for r in stopped] == [(1, "success", 5), (2, "error", 6), (4, "skipped", 6),
                                                           (3, "skipped", 6), (5, "skipped", 6)]
    assert [r.index for r in stopped if r.message == FAIL_FAST_SKIP] == [3, 5]
    assert stopped_at_first_failure(runs[:1]) == runs[:1]

"""Issue 20: the dbt platform as users run it — Fusion runs, the right step's artifacts, and the API's real shape
and limits. Every test talks HTTP to the emulator."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path
from typing import Any

import requests

from dbtgate.clock import VirtualClock
from dbtgate.emulator import load_scenario
from dbtgate.emulator.server import RequestLog
from tests.conftest import REFERENCE, TOKEN, Api, EmulatorFactory

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "fusion"
PREFIX = re.compile(r"^\d\d:\d\d:\d\d {6}(INFO|WARN|ERROR)( |$)")
NODE_LINE = re.compile(r"^ *(Succeeded|Passed|Warned|Failed|Stale|Skipped|Reused|Cancelled) "
                       r"\[(-------|[ \d]{3}\.\d\ds|[ \d]{3}m[ \d]\ds|[ \d]{3}h[ \d]\dm)\] "
                       r"(model|seed |snapshot|test |source) \S+( \(.+\))?$")
FUSION_JOB = {"id": 30, "name": "Fusion build", "dbt_version": "latest-fusion", "execute_steps": ["dbt build"],
              "project": {"models": 40, "seed": 5, "threads": 4}, "outcome": "error",
              "failure": {"at": 0.4, "node_type": "model"}, "duration": 75}
CAUSES = {"api", "ci", "scheduled", "ui", "rerun", "job completion", "merge", "exposures generated", "adaptive",
          "ingest"}   # CauseCategoryEnum of the official spec


def finished(api: Api, clock: VirtualClock, job_id: int, **body: Any) -> dict[str, Any]:
    run = api.trigger(job_id, **body)
    clock.advance(100_000)
    return api.run(run["id"], "run_steps,trigger")


def command_step(run: dict[str, Any]) -> dict[str, Any]:
    step: dict[str, Any] = [s for s in run["run_steps"] if s["name"].startswith("Invoke dbt with `dbt build")][-1]
    return step


def body_lines(logs: str) -> list[str]:
    """The Fusion text of each prefixed line (the platform's time and level removed)."""
    return [PREFIX.sub("", line) for line in logs.splitlines() if PREFIX.match(line)]


# ---- A. Fusion runs ---------------------------------------------------------------------------------------------
def test_the_fixture_logs_are_what_the_emulator_checks_against() -> None:
    for name in ("failing_build.log", "passing_build.log"):
        lines = (FIXTURES / name).read_text().splitlines()
        nodes = [text for text in body_lines("\n".join(lines)) if NODE_LINE.match(text)]
        assert nodes and all(PREFIX.match(line) or line.startswith("  ") for line in lines), name


def test_a_fusion_job_prints_fusion_step_logs(emulator_factory: EmulatorFactory, clock: VirtualClock) -> None:
    api = Api(emulator_factory(jobs=[FUSION_JOB], clock=clock))
    run = finished(api, clock, 30)
    assert run["status"] == 20 and run["dbt_version"] == "latest-fusion"
    logs = command_step(run)["logs"]
    lines = logs.splitlines()
    assert lines[0].endswith("INFO      Running Fusion version: 2.0.0-preview.176")
    assert all(PREFIX.match(line) or line.startswith("  ") for line in lines)
    assert not re.search(r"\d+ of \d+ ", logs) and "Done. PASS=" not in logs and "START" not in logs
    texts = body_lines(logs)
    nodes = [text for text in texts if NODE_LINE.match(text)]
    assert len(nodes) > 100
    assert any(t.startswith("    Failed [") and " model " in t for t in nodes)
    assert any(t.startswith("   Skipped [-------] ") for t in nodes)
    assert any(re.match(r"^    Passed \[ +\d+\.\d\ds\] test  \w+$", t) for t in nodes)   # a data test: no schema
    # Threads: durations overlap, so results do not come in the order of their durations' starts.
    durations = [float(m.group(1)) for t in nodes if (m := re.search(r"\[ *(\d+\.\d\d)s\]", t))]
    assert durations != sorted(durations)
    assert "=================== Errors and Warnings ====================" in texts
    assert "==================== Execution Summary =====================" in texts
    assert re.search(r"^Finished 'build' with 1 error for target 'prod' \[", "\n".join(texts), re.M)
    assert re.search(r"^Summary: \d+ total \| \d+ success \| 1 error \| \d+ skipped$", "\n".join(texts), re.M)
    assert "ERROR [error] [DbSyntaxInvalid (dbt1302)]: Database Error in model " in logs


def test_fusion_run_results_leave_out_what_fusion_leaves_out(emulator_factory: EmulatorFactory,
                                                             clock: VirtualClock) -> None:
    old = {**FUSION_JOB, "id": 31, "fusion_version": "2.0.0-preview.85"}
    api = Api(emulator_factory(jobs=[FUSION_JOB, old], clock=clock))
    run = finished(api, clock, 30)
    results = api.get(f"runs/{run['id']}/artifacts/run_results.json").json()
    assert results["metadata"]["dbt_version"] == "2.0.0-preview.176"
    for result in results["results"]:
        assert "message" not in result and "compiled_code" not in result and "compiled" not in result
        assert ("failures" in result) == (result["unique_id"].startswith("test.") and result["status"] != "skipped")
        assert result["timing"][0]["started_at"] == result["timing"][1]["started_at"]
        assert re.fullmatch(r"Thread-\d+", result["thread_id"])
    statuses = {r["status"] for r in results["results"]}
    assert {"error", "skipped"} <= statuses
    older = finished(api, clock, 31)
    early = api.get(f"runs/{older['id']}/artifacts/run_results.json").json()
    assert {"error", "skipped"}.isdisjoint({r["status"] for r in early["results"]})   # dbt-fusion #1130


def test_a_big_fusion_run_shows_the_last_1000_lines(emulator_factory: EmulatorFactory, clock: VirtualClock) -> None:
    big = {**FUSION_JOB, "id": 32, "project": {"models": 800, "seed": 21, "threads": 8}, "duration": 3600}
    api = Api(emulator_factory(jobs=[big], clock=clock))
    run = finished(api, clock, 32)
    logs = command_step(run)["logs"]
    assert len(logs.splitlines()) == 1000 and "Running Fusion version" not in logs
    assert "Execution Summary" in logs


def test_fusion_by_engine_key_and_by_version_override(emulator_factory: EmulatorFactory,
                                                      clock: VirtualClock) -> None:
    jobs = [{"id": 1, "name": "core", "run_seconds": 30},
            {"id": 2, "name": "fusion", "engine": "fusion", "run_seconds": 30}]
    api = Api(emulator_factory(jobs=jobs, clock=clock))
    assert "Running with dbt=" in command_step(finished(api, clock, 1))["logs"]
    assert "Running Fusion version:" in command_step(finished(api, clock, 2))["logs"]
    overridden = finished(api, clock, 1, dbt_version_override="2.0.0-preview.212")
    assert "Running Fusion version: 2.0.0-preview.212" in command_step(overridden)["logs"]
    assert api.get("jobs/2/").json()["data"]["raw_dbt_version"] == "latest-fusion"


def test_the_demo_scenario_has_a_failing_fusion_job_and_keeps_its_job_ids() -> None:
    jobs = {job.id: job for job in load_scenario().jobs}
    assert {1, 2, 3, 4, 5} <= set(jobs)
    fusion = [job for job in jobs.values() if job.fusion]
    assert len(fusion) == 1 and fusion[0].outcomes == ("error",) and fusion[0].id not in {1, 2, 3, 4, 5}


# ---- B. the right step's results -------------------------------------------------------------------------------
def test_without_step_the_docs_step_results_come_back(emulator_factory: EmulatorFactory, clock: VirtualClock) -> None:
    jobs = [{"id": 1, "name": "docs", "outcome": "success", "generate_docs": True, "run_seconds": 30,
             "warnings": [{"node": "unique_customers_customer_id"}]}]
    api = Api(emulator_factory(jobs=jobs, clock=clock))
    run = finished(api, clock, 1)
    steps = {s["name"]: s["index"] for s in run["run_steps"]}
    docs = api.get(f"runs/{run['id']}/artifacts/run_results.json").json()
    assert docs["args"]["which"] == "generate"
    assert {r["status"] for r in docs["results"]} == {"success"} and len(docs["results"]) == 14
    build = api.get(f"runs/{run['id']}/artifacts/run_results.json",
                    step=steps["Invoke dbt with `dbt build`"]).json()
    assert build["args"]["which"] == "build" and "warn" in {r["status"] for r in build["results"]}
    assert "catalog.json" in api.get(f"runs/{run['id']}/artifacts/").json()["data"]


def test_every_command_records_which_and_the_cloud_env(emulator_factory: EmulatorFactory,
                                                       clock: VirtualClock) -> None:
    commands = ["dbt seed", "dbt run", "dbt test", "dbt snapshot", "dbt build", "dbt source freshness"]
    api = Api(emulator_factory(jobs=[{"id": 1, "name": "all", "execute_steps": commands, "run_seconds": 20}],
                               clock=clock))
    run = finished(api, clock, 1, git_branch="feature/x", github_pull_request_id=42)
    by_command = {s["name"].split("`")[1]: s["index"] for s in run["run_steps"] if "`" in s["name"]}
    for command, which in zip(commands[:5], ["seed", "run", "test", "snapshot", "build"], strict=True):
        results = api.get(f"runs/{run['id']}/artifacts/run_results.json", step=by_command[command]).json()
        assert results["args"]["which"] == which, command
    env = results["metadata"]["env"]
    assert env["DBT_CLOUD_RUN_ID"] == str(run["id"]) and env["DBT_CLOUD_JOB_ID"] == "1"
    assert env["DBT_CLOUD_ACCOUNT_ID"] == "1" and env["DBT_CLOUD_PROJECT_ID"] == "1"
    assert env["DBT_CLOUD_ENVIRONMENT_ID"] == "1" and env["DBT_CLOUD_PR_ID"] == "42"
    assert env["DBT_CLOUD_RUN_REASON_CATEGORY"] == "github_pull_request" and env["DBT_CLOUD_RUN_REASON"] == "test"
    assert env["DBT_CLOUD_GIT_BRANCH"] == "feature/x" and len(env["DBT_CLOUD_GIT_SHA"]) == 40
    sources = api.get(f"runs/{run['id']}/artifacts/sources.json").json()
    assert sources["metadata"]["dbt_schema_version"].endswith("/sources/v3.json")
    assert {r["status"] for r in sources["results"]} <= {"pass", "warn", "error"} and sources["results"]
    assert sources["metadata"]["env"]["DBT_CLOUD_RUN_ID"] == str(run["id"])


# ---- C. the API's real shape and limits ------------------------------------------------------------------------
def test_one_step_by_id_and_truncated_debug_logs_everywhere(api: Api, clock: VirtualClock) -> None:
    run = finished(api, clock, 2)
    step = command_step(run)
    assert step["truncated_debug_logs"] and step["debug_logs"] is None
    one = api.get(f"steps/{step['id']}/")
    assert one.status_code == 200 and one.json()["data"] == step
    assert api.get(f"steps/{step['id']}/", include_related="debug_logs").json()["data"]["debug_logs"]
    assert api.get("steps/999999/").status_code == 404


def test_a_finished_step_over_the_size_limit_has_its_logs_left_out(emulator_factory: EmulatorFactory,
                                                                 clock: VirtualClock) -> None:
    huge = "\n".join(f"  line {i}: " + "x" * 700 for i in range(900))          # ~0.6 MB of error text
    jobs = [{"id": 1, "name": "huge error", "outcome": "error", "run_seconds": 30,
             "failures": [{"node": "orders", "status": "error", "message": huge}]}]
    api = Api(emulator_factory(jobs=jobs, clock=clock))
    step = command_step(finished(api, clock, 1))
    assert step["logs"] == "" and step["log_location"] == "empty"
    assert step["truncated_debug_logs"]


def test_a_running_step_shows_at_most_half_a_megabyte() -> None:
    from dbtgate.emulator.world import LOG_MAX_BYTES, _size_limited
    logs = "".join(f"{i:05d} " + "y" * 999 + "\n" for i in range(1000))
    kept, location = _size_limited(logs, running=True)
    assert len(kept.encode()) <= LOG_MAX_BYTES and location == "db" and kept.endswith("\n")
    assert kept.startswith(tuple(f"{i:05d} " for i in range(1000))) and logs.endswith(kept)


def test_gzip_when_asked(api: Api, clock: VirtualClock) -> None:
    run = finished(api, clock, 1)
    for path in (f"runs/{run['id']}/", f"runs/{run['id']}/artifacts/run_results.json"):
        asked = requests.get(f"{api.base}/{path}", headers={**api.headers, "Accept-Encoding": "gzip"}, stream=True,
                             timeout=5)
        assert asked.headers["Content-Encoding"] == "gzip"
        assert json.loads(gzip.decompress(asked.raw.read(decode_content=False)))
        plain = requests.get(f"{api.base}/{path}", headers={**api.headers, "Accept-Encoding": "identity"},
                             timeout=5)
        assert "Content-Encoding" not in plain.headers and plain.json()


def test_job_artifacts_and_accounts(api: Api, clock: VirtualClock) -> None:
    run = finished(api, clock, 1)
    mine = api.get(f"runs/{run['id']}/artifacts/run_results.json").json()
    assert api.get("jobs/1/artifacts/run_results.json").json() == mine
    finished(api, clock, 2)   # only failed runs
    assert api.get("jobs/2/artifacts/run_results.json").status_code == 404
    accounts = requests.get(f"{api.emulator.url}/api/v2/accounts/", headers=api.headers, timeout=5)
    assert accounts.status_code == 200 and [a["id"] for a in accounts.json()["data"]] == [1]
    assert requests.get(f"{api.emulator.url}/api/v2/accounts/", timeout=5).status_code == 401
    assert api.get("").json()["data"]["id"] == 1


def test_every_list_filter_of_the_spec_is_applied_or_refused(emulator_factory: EmulatorFactory,
                                                            clock: VirtualClock) -> None:
    jobs = [{"id": 1, "name": "a", "project_id": 10, "run_seconds": 10, "schedule": "0 6 * * *"},
            {"id": 2, "name": "b", "project_id": 20, "run_seconds": 10, "generate_docs": True},
            {"id": 3, "name": "f", "project_id": 20, "engine": "fusion", "run_seconds": 10}]
    api = Api(emulator_factory(jobs=jobs, clock=clock))
    first, second, third = api.trigger(1), api.trigger(2), api.trigger(3)
    clock.advance(10_000)

    def ids(path: str, **params: Any) -> list[int]:
        response = api.get(path, **params)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["data"]]

    assert ids("runs/", project_id__in="[10,20]") == [first["id"], second["id"], third["id"]]
    assert ids("runs/", project_id__in="20") == [second["id"], third["id"]]
    assert ids("runs/", dbt_version="latest-fusion") == [third["id"]]
    assert ids("runs/", dbt_version__in='["latest-fusion"]') == [third["id"]]
    assert ids("runs/", has_docs_generated="true") == [second["id"]]
    assert ids("runs/", deferring_run_id=first["id"]) == [] and ids("runs/", state="deleted") == []
    assert ids("runs/", has_sources_generated="false") == [first["id"], second["id"], third["id"]]
    assert ids("jobs/", pk=2) == [2] and ids("jobs/", project_id__in="[20]") == [2, 3]
    assert ids("jobs/", is_fusion_ready="true") == [3] and ids("jobs/", triggers_schedule="true") == [1]
    assert ids("jobs/", is_system="true") == [] and ids("jobs/", dbt_version__in="latest-fusion") == [3]
    for path, params in (("runs/", {"has_docs_generated": "maybe"}), ("runs/", {"state": "gone"}),
                         ("runs/", {"project_id__in": "[x]"}), ("jobs/", {"is_fusion_ready": "2"}),
                         ("jobs/", {"include_related": "everything"}), ("runs/", {"include_related": "nope"})):
        refused = api.get(path, **params)
        assert refused.status_code == 400, (path, params)
        assert refused.json()["status"]["is_success"] is False and refused.json()["data"]


def test_the_trigger_has_all_its_fields_and_the_spec_categories(api: Api, clock: VirtualClock) -> None:
    run = api.trigger(2, git_branch="main")
    trigger = api.run(run["id"], "trigger")["trigger"]
    for key in ("git_sha", "azure_pull_request_id", "github_pull_request_id", "gitlab_merge_request_id",
                "non_native_pull_request_id", "schema_override", "dbt_version_override", "threads_override",
                "target_name_override", "generate_docs_override", "timeout_seconds_override", "steps_override"):
        assert key in trigger and trigger[key] is None, key
    assert trigger["git_branch"] == "main" and trigger["cause_category"] == "api"
    clock.advance(10_000)
    retry = api.post(f"runs/{run['id']}/retry/")
    assert retry.status_code == 200
    assert api.run(retry.json()["data"]["id"], "trigger")["trigger"]["cause_category"] == "rerun"
    assert {r["trigger"]["cause_category"] for r in api.get("runs/", include_related="trigger").json()["data"]} <= \
        CAUSES


def test_scheduled_history_runs_say_scheduled(emulator_factory: EmulatorFactory, clock: VirtualClock) -> None:
    api = Api(emulator_factory(jobs=[{"id": 1, "name": "nightly", "history": 2, "run_seconds": 10}], clock=clock))
    categories = {r["trigger"]["cause_category"] for r in api.get("runs/", include_related="trigger").json()["data"]}
    assert categories == {"scheduled"}


MANIFEST_TOP = ("metadata", "nodes", "sources", "macros", "docs", "exposures", "metrics", "groups", "selectors",
                "disabled", "parent_map", "child_map", "group_map", "saved_queries", "semantic_models", "unit_tests")
NODE_REQUIRED = ("database", "schema", "name", "resource_type", "package_name", "path", "original_file_path",
                 "unique_id", "fqn", "alias", "checksum")
SOURCE_REQUIRED = ("database", "schema", "name", "resource_type", "package_name", "path", "original_file_path",
                   "unique_id", "fqn", "source_name", "source_description", "loader", "identifier")


def test_the_manifest_has_what_dbt_cores_loader_requires(emulator_factory: EmulatorFactory,
                                                         clock: VirtualClock) -> None:
    api = Api(emulator_factory(jobs=[{"id": 1, "name": "p", "project": {"models": 30}, "duration": 60}],
                               clock=clock))
    run = finished(api, clock, 1)
    manifest = api.get(f"runs/{run['id']}/artifacts/manifest.json").json()
    assert manifest["metadata"]["dbt_schema_version"].endswith("/manifest/v12.json")
    assert all(key in manifest for key in MANIFEST_TOP)
    for node in manifest["nodes"].values():
        assert all(key in node for key in NODE_REQUIRED), node["unique_id"]
        assert set(node["checksum"]) == {"name", "checksum"} and node["config"]["materialized"]
    for source in manifest["sources"].values():
        assert all(key in source for key in SOURCE_REQUIRED), source["unique_id"]
    real = json.loads((REFERENCE / "dbt-core-run" / "manifest.json").read_text())
    assert set(real) - {"functions"} <= set(manifest)
    real_model = next(n for n in real["nodes"].values() if n["resource_type"] == "model")
    ours = next(n for n in manifest["nodes"].values() if n["resource_type"] == "model")
    assert set(real_model) - {"compiled", "compiled_code", "extra_ctes", "extra_ctes_injected"} <= set(ours)


def test_debug_logs_are_at_debug_level(api: Api, clock: VirtualClock) -> None:
    run = api.trigger(2)
    clock.advance(10_000)
    step = command_step(api.run(run["id"], "run_steps,debug_logs"))
    debug = step["debug_logs"]
    assert re.search(r"^={30} \d\d:\d\d:\d\d\.\d{6} \| [0-9a-f-]{36} ={30}$", debug, re.M)
    assert re.search(r"^\d\d:\d\d:\d\d\.\d{6} \[debug\] \[MainThread\]: running dbt with arguments \{", debug, re.M)
    assert re.search(r"^\d\d:\d\d:\d\d\.\d{6} \[debug\] \[Thread-\d \(\]: Began running node model\.", debug, re.M)
    assert re.search(r"\[debug\] \[Thread-\d \(\]: SQL status: SUCCESS 1 in \d+\.\d{3} seconds", debug)
    assert re.search(r"\[error\] \[Thread-\d \(\]: \d+ of \d+ FAIL 3 not_null_orders_order_id", debug)
    assert re.search(r"\[error\] \[MainThread\]: \[ERROR\]: in test not_null_orders_order_id", debug)
    assert re.search(r"\[debug\] \[MainThread\]: Command `dbt build` failed at \d\d:\d\d:\d\d\.\d{6} after ", debug)
    assert len(debug.splitlines()) > 2 * len(step["logs"].splitlines())


def test_the_request_log_is_a_ring_buffer(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory()
    assert emulator.log.capacity == 10_000
    small = RequestLog()
    small.entries = type(small.entries)(maxlen=50)
    emulator.log = emulator._server.log = small
    session = requests.Session()
    for _ in range(120):
        session.get(f"{emulator.url}/api/v2/accounts/1/jobs/1/", headers={"Authorization": f"Token {TOKEN}"},
                    timeout=5)
    assert len(small.all()) == 50 and small.total == 120 and small.dropped == 70
    assert small.arrived("get_job") == 120
    listed = session.get(f"{emulator.url}/_emulator/requests", timeout=5).json()
    assert len(listed["requests"]) == 50 and listed["total"] == 120 and listed["capacity"] == 50

"""The emulator behaves like dbt Cloud: paths, envelopes, errors, run lifecycle, queueing, cancel, rerun, faults."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest
import requests

from dbtgate.clock import VirtualClock
from dbtgate.emulator import Emulator
from dbtgate.emulator.server import parse_include_related
from tests.conftest import TOKEN, Api, EmulatorFactory

AUTH = {"Authorization": f"Token {TOKEN}"}


def test_success_envelope_and_a_run_that_progresses_by_the_clock(api: Api, clock: VirtualClock) -> None:
    response = api.post("jobs/1/run/", {"cause": "hello"})
    body = response.json()
    assert body["status"] == {"code": 200, "is_success": True, "user_message": "Success!", "developer_message": ""}
    run = body["data"]
    assert run["status"] == 1 and run["status_humanized"] == "Queued" and run["finished_at"] is None
    assert run["in_progress"] is True and run["is_complete"] is False
    assert " " in run["created_at"] and "T" not in run["created_at"]  # dbt Cloud's space separator
    seen = []
    for _ in range(20):
        clock.advance(5)
        seen.append(api.run(run["id"])["status"])
    assert seen[0] in (1, 2) and 3 in seen and seen[-1] == 10
    assert seen == sorted(seen), "status only moves forward"
    done = api.run(run["id"], '["run_steps","job","trigger"]')
    assert done["is_success"] and done["finished_at"] and done["duration"].count(":") == 2
    assert [s["name"] for s in done["run_steps"]] == [
        "Clone git repository", "Create profile from connection Snowflake", "Invoke dbt with `dbt build`"]
    assert done["trigger"]["cause"] == "test" or done["trigger"]["cause"] == "hello"
    assert done["job"]["name"] == "Production build"
    assert done["href"].endswith(f"/deploy/1/projects/1/runs/{run['id']}/")


@pytest.mark.parametrize("encoding", [
    '["run_steps","job"]', "run_steps,job", "['run_steps', 'job']", "[run_steps, job]"])
def test_include_related_in_every_encoding(api: Api, clock: VirtualClock, encoding: str) -> None:
    run = api.trigger()
    clock.advance(300)
    data = api.run(run["id"], encoding)
    assert data["run_steps"] and data["job"]["id"] == 1


def test_include_related_as_repeated_keys(api: Api, clock: VirtualClock) -> None:
    run = api.trigger()
    clock.advance(300)
    response = requests.get(f"{api.base}/runs/{run['id']}/?include_related=run_steps&include_related=job",
                            headers=AUTH, timeout=5)
    data = response.json()["data"]
    assert data["run_steps"] and data["job"]["id"] == 1
    assert parse_include_related(["a", "b,c", '["d"]', "['e']"]) == {"a", "b", "c", "d", "e"}


def test_trailing_slash_is_optional_and_bearer_works(emulator_factory: EmulatorFactory) -> None:
    api = Api(emulator_factory(), scheme="Bearer")
    run = api.trigger()
    assert api.get(f"runs/{run['id']}").status_code == 200
    assert api.get(f"runs/{run['id']}/").status_code == 200
    assert api.emulator.log.all()[0].auth_scheme == "Bearer"


def test_errors_use_the_real_envelope(api: Api) -> None:
    bad_token = requests.get(f"{api.base}/runs/", headers={"Authorization": "Token nope"}, timeout=5)
    assert bad_token.status_code == 401
    assert bad_token.json() == {"status": {"code": 401, "is_success": False, "user_message": "Invalid token.",
                                           "developer_message": None}, "data": None}
    assert requests.get(f"{api.base}/runs/", timeout=5).status_code == 401
    assert requests.get(f"{api.emulator.url}/api/v2/accounts/2/runs/", headers=AUTH, timeout=5).status_code == 404
    assert api.get("runs/12345/").status_code == 404
    assert api.post("jobs/999/run/", {"cause": "x"}).status_code == 404
    wrong = api.get("jobs/1/run/")
    assert wrong.status_code == 405 and wrong.json()["status"]["is_success"] is False


@pytest.mark.parametrize(("body", "field"), [
    ({}, "cause"), ({"cause": ""}, "cause"), ({"cause": "x" * 256}, "cause"),
    ({"cause": "x", "threads_override": "8"}, "threads_override"),
    ({"cause": "x", "github_pull_request_id": True}, "github_pull_request_id"),
    ({"cause": "x", "generate_docs_override": "yes"}, "generate_docs_override"),
    ({"cause": "x", "steps_override": "dbt build"}, "steps_override"),
    ({"cause": "x", "git_sha": ""}, "git_sha"),
])
def test_invalid_trigger_bodies_are_400_naming_the_field(api: Api, body: dict[str, Any], field: str) -> None:
    response = api.post("jobs/1/run/", body)
    assert response.status_code == 400
    assert field in response.json()["data"]
    assert api.emulator.world.run_ids() == []


def test_cause_of_255_characters_is_accepted(api: Api) -> None:
    assert api.post("jobs/1/run/", {"cause": "x" * 255}).status_code == 200


def test_runs_of_one_job_execute_serially(api: Api, clock: VirtualClock) -> None:
    first, second = api.trigger(), api.trigger()
    clock.advance(20)
    assert api.run(first["id"])["status"] == 3
    waiting = api.run(second["id"])
    assert waiting["status"] == 1 and waiting["blocked_by"] == [first["id"]]
    clock.advance(200)
    assert api.run(first["id"])["status"] == 10
    finished_first = api.run(first["id"])["finished_at"]
    started_second = api.run(second["id"])["dequeued_at"]
    assert started_second >= finished_first


def test_cancel_ends_a_run_as_cancelled_by_user(api: Api, clock: VirtualClock) -> None:
    run = api.trigger(4)
    clock.advance(60)
    response = api.post(f"runs/{run['id']}/cancel/")
    data = response.json()["data"]
    assert data["status"] == 30 and data["status_message"] == "Cancelled by user." and data["is_cancelled"]
    clock.advance(10_000)
    assert api.run(run["id"])["status"] == 30
    assert api.emulator.log.cancels() == [run["id"]]


def test_timeout_seconds_override_ends_the_run_with_dbts_message(api: Api, clock: VirtualClock) -> None:
    run = api.trigger(4, timeout_seconds_override=120)
    clock.advance(600)
    data = api.run(run["id"])
    assert data["status"] == 30
    assert data["status_message"].startswith("This run timed out after running for 2 minutes")


def test_steps_override_replaces_the_steps(api: Api, clock: VirtualClock) -> None:
    run = api.trigger(1, steps_override=["dbt seed", "dbt run --select orders"])
    clock.advance(600)
    names = [s["name"] for s in api.run(run["id"], "run_steps")["run_steps"]][2:]
    assert names == ["Invoke dbt with `dbt seed`", "Invoke dbt with `dbt run --select orders`"]


def test_an_error_run_has_a_failing_node_in_its_log_and_artifacts(api: Api, clock: VirtualClock) -> None:
    run = api.trigger(2)
    clock.advance(600)
    data = api.run(run["id"], "run_steps")
    assert data["status"] == 20 and data["is_error"]
    failing = data["run_steps"][-1]
    assert failing["status"] == 20
    assert "FAIL 3 not_null_orders_order_id ...." in failing["logs"]  # dbt's own words, with the failure count
    assert "[ERROR]: in test not_null_orders_order_id (models/marts/schema.yml)" in failing["logs"]
    paths = api.get(f"runs/{run['id']}/artifacts/").json()["data"]
    assert {"manifest.json", "run_results.json"} <= set(paths)
    results = api.get(f"runs/{run['id']}/artifacts/run_results.json").json()["results"]
    failed = [r for r in results if r["status"] == "fail"]
    assert failed == [r for r in results if r["unique_id"] == "test.jaffle_shop.not_null_orders_order_id"]
    assert failed[0]["message"] == "Got 3 results, configured to fail if != 0" and failed[0]["failures"] == 3
    manifest = api.get(f"runs/{run['id']}/artifacts/manifest.json", step=3).json()
    assert manifest["nodes"]["test.jaffle_shop.not_null_orders_order_id"]["original_file_path"] == \
        "models/marts/schema.yml"


def test_a_job_without_artifacts_answers_404(api: Api, clock: VirtualClock) -> None:
    run = api.trigger(5)
    clock.advance(600)
    assert api.run(run["id"])["status"] == 10
    assert api.get(f"runs/{run['id']}/artifacts/").json()["data"] == []
    assert api.get(f"runs/{run['id']}/artifacts/run_results.json").status_code == 404


def test_rerun_retries_from_the_failed_step(api: Api, clock: VirtualClock) -> None:
    failed = api.trigger(3)
    clock.advance(600)
    first = api.run(failed["id"])
    assert first["status"] == 20 and first["can_retry"] is True and first["retry_not_supported_reason"] is None
    retry = api.post("jobs/3/rerun/").json()["data"]
    clock.advance(600)
    data = api.run(retry["id"], "run_steps")
    assert data["status"] == 10 and data["retrying_run_id"] == failed["id"]
    assert data["run_steps"][-1]["name"] == "Invoke dbt with `dbt retry`"
    assert api.run(failed["id"])["retry_not_supported_reason"] == "RETRY_NOT_LATEST_RUN"


def test_a_successful_run_cannot_be_retried(api: Api, clock: VirtualClock) -> None:
    run = api.trigger(1)
    clock.advance(600)
    data = api.run(run["id"])
    assert data["can_retry"] is False and data["retry_not_supported_reason"] == "RETRY_NOT_FAILED_RUN"


def test_list_runs_filters_orders_and_paginates(api: Api, clock: VirtualClock) -> None:
    ids = [api.trigger(1)["id"] for _ in range(3)] + [api.trigger(2)["id"]]
    clock.advance(20)  # the first run of each job is executing; the other two runs of job 1 wait behind it
    listed = api.get("runs/", job_definition_id=1, order_by="-created_at", limit=2).json()
    assert [r["id"] for r in listed["data"]] == [ids[2], ids[1]]
    assert listed["extra"]["pagination"] == {"count": 2, "total_count": 3}
    assert listed["extra"]["order_by"] == "-created_at" and listed["extra"]["filters"]["job_definition_id"] == 1
    page2 = api.get("runs/", job_definition_id=1, order_by="-created_at", limit=2, offset=2).json()
    assert [r["id"] for r in page2["data"]] == [ids[0]]
    running = api.get("runs/", status__in="[2,3]").json()["data"]
    assert {r["id"] for r in running} == {ids[0], ids[3]}
    assert api.get("runs/", status=1, job_definition_id=1).json()["extra"]["pagination"]["total_count"] == 2
    assert api.get("runs/", limit=101).status_code == 400


def test_jobs_are_listed_and_retrieved(api: Api) -> None:
    job = api.get("jobs/2/").json()["data"]
    assert job["name"] == "Nightly build" and job["execute_steps"] == ["dbt build"]
    assert len(api.get("jobs/").json()["data"]) == 7


def test_request_log_records_everything_but_the_token(api: Api) -> None:
    api.trigger(1, git_sha="abc")
    entry = api.emulator.log.of("trigger")[0]
    assert entry.method == "POST" and entry.body["git_sha"] == "abc" and entry.auth_scheme == "Token"
    dumped = requests.get(f"{api.emulator.url}/_emulator/requests", timeout=5).text
    assert TOKEN not in dumped and json.loads(dumped)["requests"][0]["endpoint"] == "trigger"


def test_https_with_a_self_signed_certificate(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory(tls=True)
    assert emulator.url.startswith("https://localhost:") and emulator.ca_file is not None
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{emulator.url}/api/v2/accounts/1/jobs/", headers=AUTH, timeout=5)
    ok = requests.get(f"{emulator.url}/api/v2/accounts/1/jobs/", headers=AUTH, timeout=5, verify=str(emulator.ca_file))
    assert ok.status_code == 200


def test_a_time_scale_makes_a_ten_minute_run_take_a_second(emulator_factory: EmulatorFactory) -> None:
    import time
    emulator = emulator_factory(jobs=[{"id": 1, "run_seconds": 540}], time_scale=600)
    api = Api(emulator)
    run = api.trigger(1)
    deadline = time.monotonic() + 10
    while api.run(run["id"])["status"] != 10:
        assert time.monotonic() < deadline, "the run did not finish on the scaled clock"
        time.sleep(0.05)


# ---- each fault kind, produced at the HTTP level --------------------------------------------------------------
def test_fault_http_error_with_html_body_and_retry_after(emulator_factory: EmulatorFactory) -> None:
    api = Api(emulator_factory(faults=[{"kind": "http_error", "endpoint": "list_runs", "status": 429,
                                        "retry_after": "12", "count": 1}]))
    limited = api.get("runs/")
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "12"
    assert "<html>" in limited.text
    assert api.get("runs/").status_code == 200, "count: 1 hits one request only"


def test_fault_after_and_window(emulator_factory: EmulatorFactory, clock: VirtualClock) -> None:
    api = Api(emulator_factory(clock=clock, faults=[
        {"kind": "http_error", "endpoint": "get_job", "status": 401, "after": 2, "count": 0},
        {"kind": "http_error", "endpoint": "list_jobs", "status": 503, "window": [100, 200], "count": 0}]))
    assert [api.get("jobs/1/").status_code for _ in range(4)] == [200, 200, 401, 401]
    assert api.get("jobs/1/").json()["status"]["user_message"] == "Invalid token."
    assert api.get("jobs/").status_code == 200
    clock.advance(150)
    assert api.get("jobs/").status_code == 503
    clock.advance(100)
    assert api.get("jobs/").status_code == 200


def test_fault_malformed_json(emulator_factory: EmulatorFactory) -> None:
    api = Api(emulator_factory(faults=[{"kind": "malformed_json", "endpoint": "list_jobs"}]))
    response = api.get("jobs/")
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()


def test_fault_drop_connection(emulator_factory: EmulatorFactory) -> None:
    api = Api(emulator_factory(faults=[{"kind": "drop_connection", "endpoint": "list_jobs"}]))
    with pytest.raises(requests.exceptions.ConnectionError):
        api.get("jobs/")
    assert api.emulator.log.of("list_jobs")[0].status is None


def test_fault_slow_response(emulator_factory: EmulatorFactory) -> None:
    api = Api(emulator_factory(faults=[{"kind": "slow", "endpoint": "list_jobs", "delay": 1.0}]))
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(f"{api.base}/jobs/", headers=AUTH, timeout=0.3)


def test_fault_not_found_for_a_new_run(emulator_factory: EmulatorFactory) -> None:
    api = Api(emulator_factory(faults=[{"kind": "not_found_new_run", "polls": 2}]))
    run = api.trigger()
    codes = [api.get(f"runs/{run['id']}/").status_code for _ in range(3)]
    assert codes == [404, 404, 200]
    second = api.trigger()
    assert api.get(f"runs/{second['id']}/").status_code == 404, "every new run gets its own 404s"


def test_fault_lose_trigger_response_after_creating_the_run(emulator_factory: EmulatorFactory) -> None:
    api = Api(emulator_factory(faults=[{"kind": "lose_trigger_response"}]))
    with pytest.raises(requests.exceptions.ConnectionError):
        api.post("jobs/1/run/", {"cause": "lost"})
    assert len(api.emulator.world.run_ids()) == 1


def test_fault_delay_trigger_response_after_creating_the_run(emulator_factory: EmulatorFactory) -> None:
    api = Api(emulator_factory(faults=[{"kind": "delay_trigger_response", "delay": 1.0}]))
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(f"{api.base}/jobs/1/run/", json={"cause": "slow"}, headers=AUTH, timeout=0.3)
    assert len(api.emulator.world.run_ids()) == 1


def test_fault_unknown_status(emulator_factory: EmulatorFactory) -> None:
    api = Api(emulator_factory(faults=[{"kind": "unknown_status", "code": 42, "count": 1}]))
    run = api.trigger()
    assert api.run(run["id"])["status"] == 42
    assert api.run(run["id"])["status"] in (1, 2, 3)


def test_free_port_and_chosen_port(emulator_factory: EmulatorFactory) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    emulator = Emulator(port=port).start()
    try:
        assert emulator.url == f"http://127.0.0.1:{port}"
    finally:
        emulator.stop()

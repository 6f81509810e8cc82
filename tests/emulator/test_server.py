"""The emulator's HTTP answers as dbt Cloud gives them (issue #11 §2): bad input is a 400 that names the field,
no request takes the server down, list filters apply and echo, retry routes, and HTTP edges answer like an API."""

from __future__ import annotations

import http.client
import json
import socket
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from dbtgate.clock import VirtualClock
from dbtgate.emulator import Emulator
from tests.conftest import TOKEN, Api, EmulatorFactory

AUTH = {"Authorization": f"Token {TOKEN}"}
INVALID = "The request was invalid. Please double check the provided data and try again."


def raw_exchange(emulator: Emulator, request: bytes) -> http.client.HTTPResponse:
    """Send bytes as they are (no client library to tidy them up) and parse whatever comes back."""
    host, port = emulator.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    sock.sendall(request)
    response = http.client.HTTPResponse(sock, method=request.split(b" ")[0].decode())
    response.begin()
    return response


def assert_healthy(api: Api) -> None:
    """The server still answers normally: listing runs and triggering a run both work."""
    assert api.get("runs/").status_code == 200
    assert api.post("jobs/1/run/", {"cause": "still alive"}).status_code == 200
    assert api.emulator.log.crashes == []


# ---- bad input is a 400, and nothing takes the server down ------------------------------------------------------
@pytest.mark.parametrize(("field", "value"), [
    ("timeout_seconds_override", -5), ("timeout_seconds_override", -10**30), ("timeout_seconds_override", 10**30),
    ("threads_override", 0), ("github_pull_request_id", 2**31), ("git_sha", "x" * 256), ("git_branch", "a\x00b"),
    ("cause", "\x00"), ("cause", 12), ("steps_override", ["dbt build"] * 101), ("steps_override", ["dbt build", ""]),
    ("generate_docs_override", "true"), ("schema_override", ["a"]),
])
def test_an_odd_trigger_field_is_a_400_naming_it_and_the_server_stays_healthy(
        api: Api, clock: VirtualClock, field: str, value: Any) -> None:
    body = {"cause": "odd", field: value}
    response = api.post("jobs/1/run/", body)
    assert response.status_code == 400, response.text
    status = response.json()["status"]
    assert status == {"code": 400, "is_success": False, "user_message": INVALID, "developer_message": ""}
    errors = response.json()["data"]
    assert list(errors) == [field] and isinstance(errors[field], list) and errors[field][0]
    assert api.emulator.world.run_ids() == []
    clock.advance(10**6)          # a stored odd value used to break every later read of the run
    assert_healthy(api)


def test_a_body_that_is_not_an_object_is_a_400_with_non_field_errors(api: Api) -> None:
    for data in (b"[1, 2]", b"{not json"):
        response = requests.post(f"{api.base}/jobs/1/run/", data=data, timeout=5,
                                 headers={**AUTH, "Content-Type": "application/json"})
        assert response.status_code == 400
        assert response.json()["status"]["developer_message"] == ""
        assert list(response.json()["data"]) == ["non_field_errors"]
    assert_healthy(api)


def test_an_unexpected_exception_is_a_500_envelope_and_the_server_keeps_serving(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    run = api.trigger()

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug in the emulator")

    with monkeypatch.context() as patch:
        patch.setattr(api.emulator.world, "run_json", broken)
        response = api.get(f"runs/{run['id']}/")
        assert response.status_code == 500
        assert response.json()["status"]["is_success"] is False and response.json()["data"] is None
    assert len(api.emulator.log.crashes) == 1 and "a bug in the emulator" in api.emulator.log.crashes[0]
    assert api.emulator.log.of("get_run")[-1].status == 500
    api.emulator.log.crashes.clear()
    assert api.get(f"runs/{run['id']}/").status_code == 200
    assert_healthy(api)


def test_trigger_fields_are_passed_on_clean(api: Api) -> None:
    response = api.post("jobs/1/run/", {"cause": "c", "timeout_seconds_override": 0, "threads_override": 8,
                                        "unknown_field": "x" * 5000, "git_branch": "feature"})
    assert response.status_code == 200
    trigger = response.json()["data"]["trigger"]
    assert trigger["git_branch"] == "feature" and trigger["threads_override"] == 8
    assert "unknown_field" not in trigger, "dbt Cloud ignores fields it does not know; it does not echo them"


# ---- list filters ---------------------------------------------------------------------------------------------
JOBS = [
    {"id": 1, "name": "Production build", "project_id": 10, "environment_id": 100},
    {"id": 2, "name": "Nightly build", "outcome": "error", "project_id": 10, "environment_id": 101},
    {"id": 3, "name": "PR check", "project_id": 20, "environment_id": 200},
]


def test_list_jobs_filters_pages_and_echoes_its_filters(emulator_factory: EmulatorFactory) -> None:
    api = Api(emulator_factory(jobs=JOBS, clock=VirtualClock()))
    body = api.get("jobs/").json()
    assert [job["id"] for job in body["data"]] == [1, 2, 3]
    assert body["extra"]["filters"] == {"account_id": 1, "limit": 100, "offset": 0, "state": "active"}
    assert body["extra"]["pagination"] == {"count": 3, "total_count": 3}
    page = api.get("jobs/", limit=2, offset=1).json()
    assert [job["id"] for job in page["data"]] == [2, 3]
    assert page["extra"]["filters"]["limit"] == 2 and page["extra"]["filters"]["offset"] == 1
    assert page["extra"]["pagination"] == {"count": 2, "total_count": 3}
    assert [job["id"] for job in api.get("jobs/", project_id=10).json()["data"]] == [1, 2]
    assert [job["id"] for job in api.get("jobs/", environment_id=200).json()["data"]] == [3]
    named = api.get("jobs/", name__icontains="BUILD", order_by="-id").json()
    assert [job["id"] for job in named["data"]] == [2, 1]
    assert named["extra"]["filters"]["name__icontains"] == "BUILD" and named["extra"]["order_by"] == "-id"
    assert [job["id"] for job in api.get("jobs/", order_by="name").json()["data"]] == [2, 3, 1]
    assert api.get("jobs/", state="deleted").json()["data"] == []


@pytest.mark.parametrize(("params", "name"), [
    ({"limit": 0}, "limit"), ({"limit": "ten"}, "limit"), ({"offset": -1}, "offset"),
    ({"project_id": "x"}, "project_id"), ({"state": "gone"}, "state"),
])
def test_bad_list_jobs_filters_are_400_naming_the_parameter(api: Api, params: dict[str, Any], name: str) -> None:
    response = api.get("jobs/", **params)
    assert response.status_code == 400
    assert response.json()["status"]["developer_message"] == "" and name in response.json()["data"]


def test_list_runs_applies_the_documented_filters(emulator_factory: EmulatorFactory) -> None:
    clock = VirtualClock(wall_start=datetime(2026, 11, 2, 9, 0, tzinfo=UTC))  # the calendar the ranges below name
    api = Api(emulator_factory(jobs=JOBS, clock=clock))
    first = api.trigger(1)
    clock.advance(3600)
    second, third = api.trigger(2), api.trigger(3)

    def ids(**params: Any) -> list[int]:
        response = api.get("runs/", **params)
        assert response.status_code == 200, response.text
        return [run["id"] for run in response.json()["data"]]

    assert ids(pk=second["id"]) == [second["id"]]
    assert ids(pk__in=json.dumps([first["id"], third["id"]])) == [first["id"], third["id"]]
    assert ids(pk__in=f"{first['id']},{second['id']}") == [first["id"], second["id"]]
    assert ids(id__gt=first["id"]) == [second["id"], third["id"]]
    assert ids(project_id=10) == [first["id"], second["id"]]
    assert ids(environment_id=200) == [third["id"]]
    created = second["created_at"]
    assert ids(created_at__range=json.dumps([created, None])) == [second["id"], third["id"]]
    assert ids(created_at__range=json.dumps(["2000-01-01T00:00:00Z", "2026-11-02 09:30:00"])) == [first["id"]]
    assert ids(finished_at__range=json.dumps(["2000-01-01", "2100-01-01"])) == [first["id"]]
    echo = api.get("runs/", pk=first["id"], project_id=10, limit=5).json()["extra"]["filters"]
    assert echo["pk"] == first["id"] and echo["project_id"] == 10 and echo["limit"] == 5 and echo["offset"] == 0
    assert echo["account_id"] == 1


@pytest.mark.parametrize(("params", "name"), [
    ({"status__in": "DbtCloudJobRunStatus.NON_TERMINAL_STATUSES"}, "status__in"), ({"pk": "one"}, "pk"),
    ({"pk__in": "[1, two]"}, "pk__in"), ({"created_at__range": "yesterday"}, "created_at__range"),
    ({"finished_at__range": '["2024-01-01"]'}, "finished_at__range"), ({"limit": 101}, "limit"),
    ({"order_by": "name"}, "order_by"), ({"id__gt": "1.5"}, "id__gt"),
])
def test_bad_list_runs_filters_are_400_naming_the_parameter(api: Api, params: dict[str, Any], name: str) -> None:
    response = api.get("runs/", **params)
    assert response.status_code == 400
    body = response.json()
    # The shape of apache/airflow#40047: an empty developer message, the parameter and its complaint in data.
    assert body["status"]["developer_message"] == "" and body["status"]["user_message"] == INVALID
    assert list(body["data"]) == [name]


# ---- retry ----------------------------------------------------------------------------------------------------
def test_a_failed_run_is_retried_and_its_failure_details_are_served(api: Api, clock: VirtualClock) -> None:
    failed = api.trigger(2)
    clock.advance(3600)
    details = api.get(f"runs/{failed['id']}/retry/")
    assert details.status_code == 200, details.text
    assert details.json()["data"]["failed_step"] == "dbt build"
    assert isinstance(details.json()["data"]["skipped_steps"], list)
    retried = api.post(f"runs/{failed['id']}/retry/")
    assert retried.status_code == 200, retried.text
    run = retried.json()["data"]
    assert run["retrying_run_id"] == failed["id"] and run["id"] != failed["id"]
    assert api.emulator.log.of("retry")[0].run_id == run["id"], "the log names the run a retry created"


def test_a_refused_retry_is_a_400_with_the_reason(api: Api, clock: VirtualClock) -> None:
    succeeded = api.trigger(1)
    clock.advance(3600)
    for response in (api.post(f"runs/{succeeded['id']}/retry/"), api.get(f"runs/{succeeded['id']}/retry/")):
        assert response.status_code == 400
        body = response.json()
        assert body["status"]["is_success"] is False and "RETRY_NOT_FAILED_RUN" in body["status"]["user_message"]
        assert body["data"] == {"retry_not_supported_reason": ["RETRY_NOT_FAILED_RUN"]}
    assert api.emulator.world.run_ids() == [succeeded["id"]]
    assert api.post("runs/999/retry/").status_code == 404
    assert api.get("runs/999/retry/").status_code == 404


# ---- HTTP edges -----------------------------------------------------------------------------------------------
def test_head_answers_like_get_without_a_body(api: Api) -> None:
    run = api.trigger()
    plain = {**AUTH, "Accept-Encoding": "identity"}  # Content-Length then counts the body itself, not its gzip
    get = requests.get(f"{api.base}/runs/{run['id']}/", headers=plain, timeout=5)
    head = requests.head(f"{api.base}/runs/{run['id']}/", headers=plain, timeout=5)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Content-Type"] == "application/json"
    assert int(head.headers["Content-Length"]) == len(get.content)
    assert requests.head(f"{api.base}/runs/999/", headers=AUTH, timeout=5).status_code == 404


def test_options_and_a_wrong_method_say_which_methods_are_allowed(api: Api) -> None:
    options = requests.options(f"{api.base}/runs/1/retry/", headers=AUTH, timeout=5)
    assert options.status_code == 200 and options.headers["Content-Type"] == "application/json"
    assert set(options.headers["Allow"].split(", ")) == {"GET", "POST", "HEAD", "OPTIONS"}
    wrong = requests.delete(f"{api.base}/jobs/1/run/", headers=AUTH, timeout=5)
    assert wrong.status_code == 405 and wrong.json()["status"]["is_success"] is False
    assert set(wrong.headers["Allow"].split(", ")) == {"POST", "OPTIONS"}
    odd = requests.request("PROPFIND", f"{api.base}/runs/", headers=AUTH, timeout=5)
    assert odd.status_code == 405 and odd.headers["Content-Type"] == "application/json"
    assert set(odd.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}
    assert_healthy(api)


@pytest.mark.parametrize("length", [b"abc", b"-1", b"12, 13", b"99999999999999999999999999"])
def test_a_malformed_content_length_is_a_400_not_a_dropped_connection(api: Api, length: bytes) -> None:
    response = raw_exchange(api.emulator, b"POST /api/v2/accounts/1/jobs/1/run/ HTTP/1.1\r\nHost: x\r\n"
                                          b"Authorization: Token " + TOKEN.encode() + b"\r\nContent-Length: " +
                            length + b"\r\nContent-Type: application/json\r\n\r\n{}")
    expected = 413 if length.isdigit() else 400
    assert response.status == expected
    assert json.loads(response.read())["status"]["code"] == expected
    assert_healthy(api)


def test_a_body_over_the_cap_is_a_413_without_reading_it(api: Api) -> None:
    response = raw_exchange(api.emulator, b"POST /api/v2/accounts/1/jobs/1/run/ HTTP/1.1\r\nHost: x\r\n"
                                          b"Authorization: Token " + TOKEN.encode() + b"\r\n"
                                          b"Content-Length: 2097152\r\nContent-Type: application/json\r\n\r\n{")
    assert response.status == 413 and json.loads(response.read())["status"]["is_success"] is False
    assert api.emulator.world.run_ids() == []
    assert_healthy(api)


def test_a_huge_include_related_is_a_400_and_a_deep_one_no_crash(api: Api) -> None:
    run = api.trigger()
    for value in ("[" * 3_000, "run_steps," * 5_000):
        response = api.get(f"runs/{run['id']}/", include_related=value)
        assert response.status_code == 400 and "include_related" in response.json()["data"]
    nested = api.get(f"runs/{run['id']}/", include_related="[" * 2_000)   # short enough, too deep to parse
    assert nested.status_code == 200
    too_long = requests.get(f"{api.base}/runs/?x={'a' * 70_000}", headers=AUTH, timeout=5)
    assert too_long.status_code == 414 and too_long.json()["status"]["code"] == 414
    assert_healthy(api)


def test_a_chunked_body_is_read(api: Api) -> None:
    body = json.dumps({"cause": "chunked"}).encode()
    chunked = hex(len(body))[2:].encode() + b"\r\n" + body + b"\r\n0\r\n\r\n"
    response = raw_exchange(api.emulator, b"POST /api/v2/accounts/1/jobs/1/run/ HTTP/1.1\r\nHost: x\r\n"
                                          b"Authorization: Token " + TOKEN.encode() + b"\r\n"
                                          b"Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n" +
                            chunked)
    assert response.status == 200, response.read()
    assert json.loads(response.read())["data"]["trigger"]["cause"] == "chunked"


def test_form_encoded_and_multipart_triggers_work(api: Api) -> None:
    multipart = requests.post(f"{api.base}/jobs/1/run/", headers=AUTH, timeout=5, files=[
        ("cause", (None, "multipart")), ("threads_override", (None, "4")), ("generate_docs_override", (None, "true")),
        ("steps_override", (None, "dbt seed")), ("steps_override", (None, "dbt build"))])
    assert multipart.status_code == 200, multipart.text
    trigger = multipart.json()["data"]["trigger"]
    assert trigger["cause"] == "multipart" and trigger["threads_override"] == 4
    assert trigger["steps_override"] == ["dbt seed", "dbt build"] and trigger["generate_docs_override"] is True
    form = requests.post(f"{api.base}/jobs/1/run/", headers=AUTH, timeout=5,
                         data={"cause": "form", "timeout_seconds_override": "60"})
    assert form.status_code == 200, form.text
    assert form.json()["data"]["trigger"]["timeout_seconds_override"] == 60
    bad = requests.post(f"{api.base}/jobs/1/run/", headers=AUTH, timeout=5, files=[
        ("cause", (None, "multipart")), ("threads_override", (None, "four"))])
    assert bad.status_code == 400 and list(bad.json()["data"]) == ["threads_override"]


def test_a_trigger_without_a_body_misses_its_cause(api: Api) -> None:
    response = requests.post(f"{api.base}/jobs/1/run/", headers=AUTH, timeout=5)
    assert response.status_code == 400 and response.json()["data"] == {"cause": ["This field is required."]}


def test_a_refused_body_closes_the_connection_and_says_so(api: Api) -> None:
    response = raw_exchange(api.emulator, b"POST /api/v2/accounts/1/jobs/1/run/ HTTP/1.1\r\nHost: x\r\n"
                                          b"Content-Length: 5000000\r\n\r\n")
    assert response.status == 413 and response.headers["Connection"] == "close"


def test_errors_of_http_server_itself_keep_the_envelope_on_a_reused_connection(api: Api) -> None:
    """A bad request after a good one on the same keep-alive connection still gets an answer."""
    host, port = api.emulator.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    connection.request("GET", "/api/v2/accounts/1/runs/", headers=AUTH)
    assert connection.getresponse().read() and connection.sock is not None
    connection.sock.sendall(b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    response = http.client.HTTPResponse(connection.sock)
    response.begin()
    assert response.status == 414 and json.loads(response.read())["status"]["code"] == 414


def test_a_body_sent_to_a_control_path_does_not_leak_into_the_next_request(api: Api) -> None:
    host, port = api.emulator.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    connection.request("POST", "/_emulator/health", body=b"GET /oops HTTP/1.1\r\n\r\n")
    assert connection.getresponse().read()
    connection.request("GET", "/api/v2/accounts/1/runs/", headers=AUTH)
    assert connection.getresponse().status == 200

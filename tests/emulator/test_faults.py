"""A dbt Cloud that misbehaves in the ways dbtgate must survive (issue #12): each fault kind, as the emulator
delivers it, observed with raw requests and sockets (how dbtgate copes is tests/gate/test_gate.py's business)."""

from __future__ import annotations

import http.client
import json
import socket
import zlib
from typing import Any

import pytest
import requests

from dbtgate.clock import VirtualClock
from dbtgate.emulator import Emulator, ScenarioError, parse_scenario
from dbtgate.emulator.scenario import HOSTILE_FIELDS, HOSTILE_PAYLOAD
from tests.conftest import TOKEN, EmulatorFactory

AUTH = {"Authorization": f"Token {TOKEN}"}
INCLUDE = {"include_related": '["run_steps","job","trigger"]'}


class Api:
    def __init__(self, emulator: Emulator, clock: VirtualClock) -> None:
        self.emulator, self.clock = emulator, clock
        self.base = f"{emulator.url}/api/v2/accounts/1"

    def get(self, path: str, **params: Any) -> requests.Response:
        return requests.get(f"{self.base}/{path}", headers=AUTH, params=params, timeout=30)

    def post(self, path: str, body: Any = None) -> requests.Response:
        return requests.post(f"{self.base}/{path}", headers=AUTH, json=body, timeout=30)

    def trigger(self, job_id: int = 1) -> int:
        run_id = self.emulator.world.trigger(self.emulator.world.scenario.job(job_id), {"cause": "setup"})["id"]
        assert isinstance(run_id, int)
        return run_id

    def finished_failure(self) -> int:
        """A run of job 2 that has ended in error (so it can be retried)."""
        run_id = self.trigger(2)
        self.clock.advance(3600)
        return run_id


@pytest.fixture
def faulty(emulator_factory: EmulatorFactory) -> Any:
    def make(*faults: dict[str, Any]) -> Api:
        clock = VirtualClock()
        return Api(emulator_factory(faults=list(faults), clock=clock), clock)
    return make


def fired(api: Api) -> list[int]:
    return api.emulator.faults.fired()


# ---- the language -----------------------------------------------------------------------------------------------
def test_the_new_kinds_parse_with_their_defaults() -> None:
    kinds = ["trickle", "huge_body", "gzip_bomb", "hostile_text", "foreign_rerun", "foreign_run", "envelope_false",
             "ignore_filters", "trigger_null_data"]
    faults = {fault.kind: fault for fault in parse_scenario({"faults": [{"kind": kind} for kind in kinds]}).faults}
    assert faults["trickle"].delay == 1.0
    assert (faults["huge_body"].size, faults["huge_body"].mode) == (64 * 1024 * 1024, "json")
    assert faults["gzip_bomb"].size == 1024 * 1024 * 1024
    assert faults["hostile_text"].payload == HOSTILE_PAYLOAD and faults["hostile_text"].fields == ()
    assert faults["foreign_rerun"].mode == "not_a_retry" and faults["foreign_run"].mode == "other_id"
    assert faults["ignore_filters"].mode == "both" and faults["trigger_null_data"].mode == "null"


@pytest.mark.parametrize(("fault", "complaint"), [
    ({"kind": "foreign_run", "endpoint": "list_runs"}, "applies only to"),
    ({"kind": "ignore_filters", "endpoint": "get_run"}, "applies only to"),
    ({"kind": "trigger_null_data", "endpoint": "get_job"}, "applies only to"),
    ({"kind": "foreign_rerun", "mode": "sideways"}, "mode"),
    ({"kind": "trickle", "mode": "json"}, "has no mode"),
    ({"kind": "hostile_text", "fields": ["password"]}, "fields"),
    ({"kind": "huge_body", "size": -1}, "size"),
])
def test_a_fault_that_cannot_happen_is_refused_with_the_reason(fault: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ScenarioError, match=complaint):
        parse_scenario({"faults": [fault]})


# ---- delivery: how the bytes go out -------------------------------------------------------------------------------
def test_trickle_sends_headers_at_once_then_the_body_a_byte_at_a_time(faulty: Any) -> None:
    api = faulty({"kind": "trickle", "endpoint": "list_artifacts", "delay": 0.02})
    run_id = api.trigger()
    host, port = api.emulator.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    sock.sendall(f"GET /api/v2/accounts/1/runs/{run_id}/artifacts/ HTTP/1.1\r\nHost: x\r\n"
                 f"Authorization: Token {TOKEN}\r\n\r\n".encode())
    response = http.client.HTTPResponse(sock)
    response.begin()                                 # the headers are all there before any of the body
    length = int(response.headers["Content-Length"])
    sock.settimeout(1.0)                             # a per-read timeout 50 times the delay: it never fires
    first = response.read1(65536)
    # A whole body arriving in the first read would mean no trickle (it takes length × 20 ms to send).
    assert 0 < len(first) < length
    body = first + response.read()
    assert len(body) == length and json.loads(body)["data"] == []
    assert fired(api) == [1]
    assert api.get(f"runs/{run_id}/artifacts/").content == body, "the trickled body is the real answer"


@pytest.mark.parametrize(("endpoint", "method", "path"), [
    ("trigger", "POST", "jobs/1/run/"), ("list_runs", "GET", "runs/"), ("cancel", "POST", "runs/{run}/cancel/"),
    ("get_artifact", "GET", "runs/{run}/artifacts/run_results.json")])
def test_trickle_works_on_any_endpoint(faulty: Any, endpoint: str, method: str, path: str) -> None:
    api = faulty({"kind": "trickle", "endpoint": endpoint, "delay": 0.05})
    run_id = api.finished_failure()
    host, port = api.emulator.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    body = b'{"cause": "trickle"}' if method == "POST" else b""
    sock.sendall(f"{method} /api/v2/accounts/1/{path.format(run=run_id)} HTTP/1.1\r\nHost: x\r\n"
                 f"Authorization: Token {TOKEN}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    response = http.client.HTTPResponse(sock)
    response.begin()
    assert response.status == 200
    first = response.read1(65536)
    assert 0 < len(first) < int(response.headers["Content-Length"]), "the body is still trickling in"
    sock.close()                                     # a client that gives up mid-body: the server shrugs
    assert fired(api) == [1]
    if endpoint == "trigger":
        assert len(api.emulator.world.run_ids()) == 2, "the trigger created its run before trickling the answer"
    assert api.get("runs/").status_code == 200 and api.emulator.log.crashes == []


def test_huge_body_is_the_real_envelope_padded_to_size(faulty: Any) -> None:
    size = 3 * 1024 * 1024
    api = faulty({"kind": "huge_body", "endpoint": "list_runs", "size": size})
    run_id = api.trigger()
    response = api.get("runs/")
    assert int(response.headers["Content-Length"]) == size and len(response.content) == size
    body = response.json()
    assert [run["id"] for run in body["data"]] == [run_id] and len(body["padding"]) > size - 5000


def test_huge_body_of_junk_is_size_bytes_that_are_not_json(faulty: Any) -> None:
    size = 1024 * 1024 + 3
    api = faulty({"kind": "huge_body", "endpoint": "get_run", "size": size, "mode": "junk"})
    run_id = api.trigger()
    response = api.get(f"runs/{run_id}/")
    assert response.status_code == 200 and len(response.content) == size
    with pytest.raises(ValueError):
        json.loads(response.content)


def test_gzip_bomb_is_a_tiny_body_that_inflates_to_size(faulty: Any) -> None:
    size = 32 * 1024 * 1024
    api = faulty({"kind": "gzip_bomb", "endpoint": "get_run", "size": size, "count": 2})
    run_id = api.trigger()
    streamed = requests.get(f"{api.base}/runs/{run_id}/", headers=AUTH, timeout=30, stream=True)
    assert streamed.headers["Content-Encoding"] == "gzip"
    compressed = streamed.raw.read(decode_content=False)
    assert len(compressed) == int(streamed.headers["Content-Length"]) and len(compressed) < size // 500
    inflated, rest = b"", compressed
    while rest:                                      # gzip members, one after another
        member = zlib.decompressobj(31)
        inflated += member.decompress(rest)
        rest = member.unused_data
    assert len(inflated) > size
    assert json.loads(inflated)["data"]["id"] == run_id, "inflated, it is the real answer plus whitespace"
    assert api.get(f"runs/{run_id}/").json()["data"]["id"] == run_id, "a client that inflates it all gets it"


# ---- content: what the answer says ----------------------------------------------------------------------------------
def test_hostile_text_reaches_every_text_field_and_echoes_the_token(faulty: Any) -> None:
    api = faulty({"kind": "hostile_text", "count": 0})
    run_id = api.finished_failure()
    text = HOSTILE_PAYLOAD.replace("{token}", TOKEN)
    assert "::error::" in text and "::add-mask::" in text and "::stop-commands::" in text and TOKEN in text
    body = api.get(f"runs/{run_id}/", **INCLUDE).json()
    run = body["data"]
    assert body["status"]["user_message"].endswith(text) and body["status"]["developer_message"].endswith(text)
    for value in (run["status_humanized"], run["status_message"], run["href"], run["retry_not_supported_reason"],
                  run["git_branch"], run["trigger"]["cause"], run["job"]["name"]):
        assert value.endswith(text), value
    assert run["run_steps"] and all(step["name"].endswith(text) and step["logs"].endswith(text) and
                                    step["status_humanized"].endswith(text) for step in run["run_steps"])
    assert run["id"] == run_id and run["status"] == 20, "only text changes"
    results = api.get(f"runs/{run_id}/artifacts/run_results.json").json()["results"]
    assert results and all(result["message"].endswith(text) for result in results)
    assert all(job["name"].endswith(text) for job in api.get("jobs/").json()["data"])
    assert api.get(f"runs/{run_id}/retry/").json()["data"]["failed_step"].endswith(text)
    missing = api.get("runs/999/")
    assert missing.status_code == 404 and missing.json()["status"]["user_message"].endswith(text)


def test_hostile_text_can_target_chosen_fields_with_its_own_payload(faulty: Any) -> None:
    api = faulty({"kind": "hostile_text", "endpoint": "get_run", "fields": ["job_name", "step_logs"],
                  "payload": "\n::warning::{token}"})
    run_id = api.finished_failure()
    run = api.get(f"runs/{run_id}/", **INCLUDE).json()["data"]
    assert run["job"]["name"] == f"Nightly build\n::warning::{TOKEN}"
    assert all(step["logs"].endswith(f"\n::warning::{TOKEN}") for step in run["run_steps"])
    assert "::" not in run["status_humanized"] + run["href"] + run["trigger"]["cause"]
    assert not any("::" in step["name"] for step in run["run_steps"])
    assert set(HOSTILE_FIELDS) >= {"job_name", "step_logs"}


@pytest.mark.parametrize("path", ["retry", "rerun"])
@pytest.mark.parametrize("mode", ["not_a_retry", "wrong_retry", "other_id", "other_job"])
def test_foreign_rerun_answers_with_a_run_that_is_not_the_retry(faulty: Any, path: str, mode: str) -> None:
    api = faulty({"kind": "foreign_rerun", "mode": mode})
    failed = api.finished_failure()
    response = api.post(f"runs/{failed}/retry/" if path == "retry" else "jobs/2/rerun/")
    assert response.status_code == 200 and fired(api) == [1]
    run = response.json()["data"]
    created = api.emulator.log.of(path)[0].run_id
    assert created is not None and created != failed
    truth = api.emulator.world.run_json(created)
    assert truth["retrying_run_id"] == failed, "the emulator did retry the run; only the answer lies"
    if mode == "not_a_retry":
        assert run["id"] == created and run["retrying_run_id"] is None
    elif mode == "wrong_retry":
        assert run["id"] == created and run["retrying_run_id"] not in (None, failed, created)
    elif mode == "other_id":
        assert run["id"] != created and run["retrying_run_id"] == failed
    else:
        assert run["id"] == created and run["job_definition_id"] != 2


@pytest.mark.parametrize("mode", ["other_id", "other_job"])
def test_foreign_run_answers_get_run_with_another_run(faulty: Any, mode: str) -> None:
    api = faulty({"kind": "foreign_run", "mode": mode})
    first, second = api.trigger(1), api.trigger(2)
    assert api.get("runs/").status_code == 200 and fired(api) == [0], "only get_run is hit"
    run = api.get(f"runs/{second}/").json()["data"]
    if mode == "other_id":
        assert run["id"] == first and run["job_definition_id"] == 2
    else:
        assert run["id"] == second and run["job_definition_id"] != 2
    assert api.get(f"runs/{second}/").json()["data"]["id"] == second, "count: 1 — the next answer is true"


def test_envelope_false_is_a_200_that_says_it_failed(faulty: Any) -> None:
    api = faulty({"kind": "envelope_false", "endpoint": "get_run"})
    run_id = api.trigger()
    response = api.get(f"runs/{run_id}/")
    assert response.status_code == 200
    assert response.json()["status"]["is_success"] is False and response.json()["data"]["id"] == run_id


@pytest.mark.parametrize(("mode", "expected"), [("both", {1, 2, 3}), ("status", {1, 2}), ("job", {2, 3})])
def test_ignore_filters_returns_runs_the_filters_exclude(faulty: Any, mode: str, expected: set[int]) -> None:
    api = faulty({"kind": "ignore_filters", "mode": mode})
    finished = api.trigger(1)
    api.clock.advance(3600)
    running, other_job = api.trigger(1), api.trigger(4)
    names = {finished: 1, running: 2, other_job: 3}
    api.clock.advance(20)
    response = api.get("runs/", job_definition_id=1, status__in="[1,2,3]")
    assert {names[run["id"]] for run in response.json()["data"]} == expected
    honest = api.get("runs/", job_definition_id=1, status__in="[1,2,3]")
    assert {names[run["id"]] for run in honest.json()["data"]} == {2}


@pytest.mark.parametrize("endpoint", ["trigger", "rerun", "retry"])
@pytest.mark.parametrize("mode", ["null", "string_id"])
def test_trigger_null_data_creates_a_run_it_does_not_identify(faulty: Any, endpoint: str, mode: str) -> None:
    api = faulty({"kind": "trigger_null_data", "mode": mode, "endpoint": endpoint})
    failed = api.finished_failure()
    response = {"trigger": lambda: api.post("jobs/2/run/", {"cause": "x"}), "rerun": lambda: api.post("jobs/2/rerun/"),
                "retry": lambda: api.post(f"runs/{failed}/retry/")}[endpoint]()
    assert response.status_code == 200 and response.json()["status"]["is_success"] is True
    created = api.emulator.log.of(endpoint)[0].run_id
    assert api.emulator.world.run_ids() == [failed, created]
    data = response.json()["data"]
    assert data is None if mode == "null" else data["id"] == str(created)

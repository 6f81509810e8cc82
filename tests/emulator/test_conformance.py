"""Every response the emulator gives validates against dbt Labs' official OpenAPI spec.

The generated spec marks nothing nullable while the real API returns null for anything unset (see
../shared/dbt-cloud-api.md), so every schema here also accepts null and `format` is not enforced. The specs
are copies in tests/fixtures/reference.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import requests
import yaml

from dbtgate.clock import VirtualClock
from tests.conftest import REFERENCE, TOKEN, EmulatorFactory

SPEC = REFERENCE / "dbt-cloud-openapi-v2.yaml"
LEGACY = REFERENCE / "dbt-cloud-openapi-v2-legacy-handwritten.yaml"


def nullable(node: Any) -> Any:
    """Rewrite an OpenAPI schema so that every schema in it also accepts null, with refs into $defs."""
    if isinstance(node, list):
        return [nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref":
            out[key] = value.replace("#/components/schemas/", "#/$defs/")
        elif key in ("properties", "patternProperties"):
            out[key] = {name: _or_null(nullable(sub)) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _or_null(nullable(value))
        elif key in ("allOf", "oneOf", "anyOf"):
            out[key] = [nullable(sub) for sub in value]
        elif key in ("nullable", "readOnly", "writeOnly", "example", "discriminator", "xml", "externalDocs"):
            continue
        else:
            out[key] = nullable(value) if isinstance(value, dict | list) and key != "enum" else value
    return out


def _or_null(schema: Any) -> Any:
    return {"anyOf": [schema, {"type": "null"}]}


def validator_for(spec_path: Path, name: str) -> jsonschema.protocols.Validator:
    spec = yaml.safe_load(spec_path.read_text("utf-8"))
    defs = {key: _or_null(nullable(value)) for key, value in spec["components"]["schemas"].items()}
    schema = {"$defs": defs, "$ref": f"#/$defs/{name}"}
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    return cls(copy.deepcopy(schema))  # no format checker: dbt Cloud's timestamps use a space


def collect_responses(emulator_factory: EmulatorFactory) -> list[tuple[str, int, Any]]:
    """(endpoint, status, JSON body) for every endpoint, with runs queued, running, failed, cancelled, retried."""
    clock = VirtualClock()
    emulator = emulator_factory(clock=clock)
    base = f"{emulator.url}/api/v2/accounts/1"
    headers = {"Authorization": f"Token {TOKEN}"}
    seen: list[tuple[str, int, Any]] = []

    def call(endpoint: str, method: str, path: str, **kwargs: Any) -> Any:
        response = requests.request(method, f"{base}/{path}", headers=headers, timeout=5, **kwargs)
        body = response.json()
        seen.append((endpoint, response.status_code, body))
        return body

    include = {"include_related": '["run_steps","job","trigger","debug_logs"]'}
    ok = call("trigger", "POST", "jobs/1/run/", json={"cause": "conformance", "git_sha": "abc",
                                                      "steps_override": ["dbt build"], "threads_override": 4})
    failing = call("trigger", "POST", "jobs/3/run/", json={"cause": "conformance"})
    queued = call("trigger", "POST", "jobs/1/run/", json={"cause": "second"})
    long = call("trigger", "POST", "jobs/4/run/", json={"cause": "long"})
    for moment in (0, 8, 30, 400):
        clock.advance(moment)
        for run in (ok, failing, queued, long):
            call("get_run", "GET", f"runs/{run['data']['id']}/", params=include)
            call("get_run", "GET", f"runs/{run['data']['id']}/")
        call("list_runs", "GET", "runs/", params={"job_definition_id": 1, "order_by": "-created_at", "limit": 5})
        call("list_runs", "GET", "runs/", params={"status__in": "[1,2,3]", **include})
    call("cancel", "POST", f"runs/{long['data']['id']}/cancel/")
    call("retry_details", "GET", f"runs/{failing['data']['id']}/retry/")
    call("retry", "POST", f"runs/{failing['data']['id']}/retry/")
    clock.advance(400)
    call("rerun", "POST", "jobs/3/rerun/")
    call("list_runs", "GET", "runs/", params={"pk__in": f"[{ok['data']['id']},{failing['data']['id']}]",
                                              "project_id": 1, "id__gt": 1, "offset": 1})
    call("list_artifacts", "GET", f"runs/{failing['data']['id']}/artifacts/")
    call("get_job", "GET", "jobs/2/")
    call("list_jobs", "GET", "jobs/")
    call("list_jobs", "GET", "jobs/", params={"project_id": 1, "name__icontains": "build", "limit": 2, "offset": 1})
    for path in ("runs/999/", "jobs/999/"):
        call("error", "GET", path)
    call("error", "POST", "jobs/1/run/", json={"cause": ""})
    call("error", "GET", "jobs/1/run/")
    call("error", "POST", f"runs/{ok['data']['id']}/retry/")
    call("error", "GET", "runs/", params={"status__in": "running"})
    seen.append(("error", 401, requests.get(f"{base}/runs/", headers={"Authorization": "Token x"}, timeout=5).json()))
    return seen


SCHEMAS = {"trigger": "RunResponseEnveloped", "rerun": "RunResponseEnveloped", "get_run": "RunResponseEnveloped",
           "retry": "RunResponseEnveloped", "retry_details": "RunFailureDetailsEnveloped",
           "cancel": "RunResponseEnveloped", "list_runs": "RunResponseListEnveloped",
           "list_artifacts": "ListOfStringsEnveloped", "get_job": "HumanReadableJobDefinitionEnveloped",
           "list_jobs": "HumanReadableJobDefinitionListEnveloped"}


def test_every_success_response_validates_against_the_official_spec(emulator_factory: EmulatorFactory) -> None:
    responses = collect_responses(emulator_factory)
    validators = {name: validator_for(SPEC, schema) for name, schema in SCHEMAS.items()}
    checked = 0
    for endpoint, status, body in responses:
        if endpoint == "error":
            continue
        assert status == 200, (endpoint, body)
        errors = sorted(validators[endpoint].iter_errors(body), key=str)
        assert not errors, f"{endpoint}: {errors[0].message} at {list(errors[0].absolute_path)}"
        checked += 1
    assert checked >= 40 and {e for e, _, _ in responses} >= set(SCHEMAS)


def test_every_error_response_validates_against_the_legacy_error_schema(emulator_factory: EmulatorFactory) -> None:
    validator = validator_for(LEGACY, "ErrorResponse")
    errors = [(status, body) for endpoint, status, body in collect_responses(emulator_factory) if endpoint == "error"]
    assert sorted(status for status, _ in errors) == [400, 400, 400, 401, 404, 404, 405]
    for status, body in errors:
        assert not list(validator.iter_errors(body)), body
        assert body["status"]["code"] == status and body["status"]["is_success"] is False
        if status == 400:
            # A 400 names its fields in data, with an empty developer message (apache/airflow#40047).
            assert body["status"]["developer_message"] == "" and isinstance(body["data"], dict) and body["data"]
        else:
            assert body["data"] is None


def test_the_null_rewrite_still_rejects_wrong_types() -> None:
    validator = validator_for(SPEC, "RunResponseEnveloped")
    good = {"status": {"code": 200, "is_success": True, "user_message": "Success!", "developer_message": ""},
            "data": {"id": 1, "status": 10, "created_at": "2024-01-01 00:00:00+00:00",
                     "updated_at": "2024-01-01 00:00:00+00:00", "finished_at": None}}
    assert not list(validator.iter_errors(good))
    bad = copy.deepcopy(good)
    bad["data"]["status"] = "done"
    assert list(validator.iter_errors(bad)), "a string status must not validate"
    missing = copy.deepcopy(good)
    del missing["data"]["created_at"]
    assert list(validator.iter_errors(missing)), "a required field must stay required"

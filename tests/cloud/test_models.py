"""dbt Cloud values as models: durations, timestamps, a real run object."""

from __future__ import annotations

from typing import Any

from dbtgate.cloud.models import Run, iso_utc, parse_api_duration, parse_api_timestamp


def run(status: int, **more: Any) -> Run:
    return Run.from_api({"id": 1, "status": status, "job_definition_id": 2, **more})


# ---- models ---------------------------------------------------------------------------------------------------
def test_api_durations_and_timestamps() -> None:
    assert parse_api_duration("00:00:37") == 37 and parse_api_duration("27:01:02") == 97262
    assert parse_api_duration("") is None and parse_api_duration("1 minute") is None
    moment = parse_api_timestamp("2024-05-27 10:42:16.179903+00:00")
    assert iso_utc(moment) == "2024-05-27T10:42:16Z"
    assert iso_utc(parse_api_timestamp("2024-05-27 12:42:16+02:00")) == "2024-05-27T10:42:16Z"
    assert parse_api_timestamp(None) is None and iso_utc(None) == ""


def test_the_sample_run_from_the_wild_parses() -> None:
    import json
    from pathlib import Path

    from tests.conftest import REFERENCE
    sample = REFERENCE / "sample-run-response.json"
    parsed = Run.from_api(json.loads(Path(sample).read_text())["data"])
    assert parsed.id == 1234567 and parsed.succeeded and parsed.duration_seconds == 37
    assert parsed.status_message == "" and parsed.cause == ""

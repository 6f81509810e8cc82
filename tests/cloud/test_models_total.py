"""The boundary from JSON to models is total (issue 21 §1): any JSON value in any field of a run, a step or a job
yields a model or the typed failure `BadAnswer` — never another exception — and the model it yields can be
reported (summary, outputs, --json, max_age) without one either."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbtgate.cloud.models import Job, Run, RunStep, parse_api_duration, parse_api_timestamp
from dbtgate.config import parse_config
from dbtgate.errors import ApiError, BadAnswer
from dbtgate.gate.find import staleness
from dbtgate.gate.state import GateResult
from dbtgate.outcome import ExitStatus, Outcome
from dbtgate.report.outputs import outputs_for, run_json
from dbtgate.report.summary import render_summary

NOW = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)

# Every JSON value json.loads can produce, the hostile ones weighted in: huge integers (up to the 4,300 digits
# Python parses), floats that are whole, infinite or NaN, dates in and out of range, deep nesting.
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=10 ** 18, max_value=10 ** 400),
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 10 ** 6).map(float), st.text(max_size=30),
    st.sampled_from(["0001-01-01 00:00:00+01:00", "9999-12-31 23:00:00-05:00", "2024-05-27 10:42:16.179903+00:00",
                     "12:00:00", "99999999999999999999:00:00", "1e400", "101", " ", "\u202emoc.live"]),
)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                       max_size=3), max_leaves=8)
RUN_FIELDS = ("id", "job_definition_id", "job_id", "status", "status_message", "href", "git_sha", "git_branch",
              "trigger", "job", "created_at", "started_at", "finished_at", "duration", "queued_duration",
              "run_duration", "blocked_by", "run_steps", "is_complete", "can_retry", "retry_not_supported_reason",
              "retrying_run_id", "project_id", "status_humanized")
STEP_FIELDS = ("index", "name", "status", "logs", "duration")
JOB_FIELDS = ("id", "name", "execute_steps", "execution", "project_id", "environment_id")
GOOD_RUN: dict[str, Any] = {"id": 7, "job_definition_id": 1, "status": 10, "created_at": "2030-05-01 11:00:00+00:00",
                            "finished_at": "2030-05-01 11:30:00+00:00", "trigger": {"cause": "ci"},
                            "run_steps": [{"index": 1, "name": "dbt build", "status": 10, "duration": "00:01:00"}]}


def objects(fields: tuple[str, ...], base: dict[str, Any]) -> st.SearchStrategy[Any]:
    """A valid object with some fields replaced by any JSON value, or any JSON value at all."""
    changed = st.dictionaries(st.sampled_from(fields), JSON, max_size=4)
    nested = st.fixed_dictionaries({"trigger": JSON, "job": JSON,
                                    "run_steps": st.lists(st.dictionaries(st.sampled_from(STEP_FIELDS), JSON),
                                                          max_size=2)})
    return st.one_of(changed.map(lambda c: {**base, **c}), nested.map(lambda n: {**base, **n}), JSON)


def reported(run: Run) -> None:
    """Everything the report does with a run, which must not raise either."""
    config = parse_config({"dbt_cloud_url": "https://cloud.getdbt.com", "dbt_cloud_token": "t0ken_x",
                           "dbt_cloud_account_id": "1", "dbt_cloud_job_id": "1"}, {"GITHUB_WORKSPACE": "/tmp"})
    result = GateResult(outcome=Outcome.SUCCESS, exit_code=ExitStatus.SUCCESS, headline="h", run=run,
                        attempts=(run,))
    render_summary(result)
    json.dumps(outputs_for(result, config))
    json.dumps(run_json(run))
    staleness(run, 3600, NOW)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(objects(RUN_FIELDS, GOOD_RUN))
def test_any_json_in_any_run_field_is_a_run_or_a_bad_answer(data: Any) -> None:
    try:
        run = Run.from_api(data)
    except BadAnswer as bad:
        assert isinstance(bad, ApiError) and str(bad)
        return
    assert isinstance(run.id, int) and 0 < run.id < 2 ** 63
    assert run.job_id is None or isinstance(run.job_id, int)
    for moment in (run.created_at, run.started_at, run.finished_at):
        assert moment is None or moment.tzinfo is not None
    for seconds in (run.duration_seconds, run.queued_duration_seconds, run.run_duration_seconds,
                    *(step.duration_seconds for step in run.steps)):
        assert seconds is None or (isinstance(seconds, int) and seconds >= 0)
    for value in run.trigger_fields.values():   # flat: comparing or printing one cannot recurse
        assert value is None or isinstance(value, str | int | float | bool) or (
            isinstance(value, list) and all(v is None or isinstance(v, str | int | float | bool) for v in value))
    reported(run)


@settings(max_examples=200)
@given(objects(STEP_FIELDS, {"index": 1, "name": "dbt build", "status": 10}))
def test_any_json_in_any_step_field_is_a_step_or_a_bad_answer(data: Any) -> None:
    try:
        step = RunStep.from_api(data)
    except BadAnswer:
        return
    assert isinstance(step.name, str) and isinstance(step.logs, str) and isinstance(step.status_code, int)


@settings(max_examples=200)
@given(objects(JOB_FIELDS, {"id": 1, "name": "Production build", "execute_steps": ["dbt build"]}))
def test_any_json_in_any_job_field_is_a_job_or_a_bad_answer(data: Any) -> None:
    try:
        job = Job.from_api(data)
    except BadAnswer:
        return
    assert isinstance(job.id, int) and isinstance(job.name, str)
    assert all(isinstance(step, str) for step in job.execute_steps)
    assert isinstance(job.timeout_seconds, int)


def test_whole_floats_are_ids_and_other_numbers_are_not() -> None:
    assert Run.from_api({**GOOD_RUN, "id": 101.0, "job_definition_id": 1.0}).id == 101
    assert Run.from_api({**GOOD_RUN, "id": 101.0, "job_definition_id": 1.0}).job_id == 1
    for bad in (101.5, "101", True, None, [101], 0, -3, 2 ** 63, float("inf"), float("nan")):
        try:
            Run.from_api({**GOOD_RUN, "id": bad})
        except BadAnswer as failure:
            assert "id" in str(failure)
        else:
            raise AssertionError(f"id {bad!r} was accepted")


def test_dates_and_durations_that_cannot_be_read_are_unknown_not_errors() -> None:
    assert parse_api_timestamp(12345) is None
    assert parse_api_timestamp("0001-01-01 00:00:00+01:00") is None     # overflows once made UTC
    assert parse_api_timestamp("9999-12-31 23:00:00-05:00") is None
    assert parse_api_timestamp("2024-05-27 10:42:16+02:00") == datetime(2024, 5, 27, 8, 42, 16, tzinfo=UTC)
    assert parse_api_duration(5) == 5            # a number of seconds is what it says
    assert parse_api_duration(5.0) == 5
    assert parse_api_duration("01:00:05") == 3605
    for bad in (-1, float("nan"), float("inf"), 10 ** 400, "99999999999999999999:00:00", [5], True):
        assert parse_api_duration(bad) is None, bad

"""Input parsing and validation: property-based for the parsers, one clear message per problem for the rest."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dbtgate.config import default_cause, parse_config
from dbtgate.errors import ConfigError
from dbtgate.parsers import (
    USER_CAUSE_LIMIT,
    FailFast,
    normalize_url,
    parse_bool,
    parse_duration,
    parse_positive_int,
    parse_steps,
)

BASE = {"dbt_cloud_token": "t0k", "dbt_cloud_account_id": "1", "dbt_cloud_job_id": "2"}


@given(st.sampled_from(["true", "yes", "1", "on", "y"]), st.booleans(), st.booleans())
def test_true_words_in_any_case(word: str, upper: bool, pad: bool) -> None:
    text = word.upper() if upper else word.title()
    assert parse_bool(f"  {text} " if pad else text) is True


@given(st.sampled_from(["false", "no", "0", "off", "n"]), st.booleans())
def test_false_words_in_any_case(word: str, upper: bool) -> None:
    assert parse_bool(word.upper() if upper else word) is False


@given(st.text().filter(lambda t: t.strip().lower() not in {"true", "yes", "1", "on", "y", "false", "no", "0",
                                                             "off", "n"}))
def test_anything_else_is_not_a_boolean(text: str) -> None:
    with pytest.raises(ValueError):
        parse_bool(text)


@given(st.integers(min_value=0, max_value=48), st.integers(min_value=0, max_value=59),
       st.integers(min_value=0, max_value=59))
def test_durations_compose(hours: int, minutes: int, seconds: int) -> None:
    total = hours * 3600 + minutes * 60 + seconds
    text = "".join(f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (seconds, "s")) if n)
    if total == 0:
        with pytest.raises(ValueError):
            parse_duration(text or "0")
    else:
        assert parse_duration(text) == total
        assert parse_duration(str(total)) == total


@given(st.text(alphabet="abcxyz!?-/ ", min_size=1))
def test_nonsense_is_not_a_duration(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_duration_examples() -> None:
    assert parse_duration("2h") == 7200 and parse_duration("45m") == 2700 and parse_duration("1.5h") == 5400
    assert parse_duration("2 hours") == 7200 and parse_duration("0.25") == 0.25
    for bad in ("", "-5", "5x", "h", "1h-2m"):
        with pytest.raises(ValueError):
            parse_duration(bad)


@given(st.integers(min_value=1, max_value=10**12))
def test_positive_ints_round_trip(number: int) -> None:
    assert parse_positive_int(f" {number} ") == number


@given(st.one_of(st.integers(max_value=0).map(str), st.text(alphabet="abc.-e ", min_size=1)))
def test_non_positive_ints_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_positive_int(text)


@given(st.lists(st.from_regex(r"dbt [a-z][a-z +:_-]{0,20}[a-z+]", fullmatch=True), min_size=1, max_size=5))
def test_steps_parse_as_yaml_list_or_lines(steps: list[str]) -> None:
    assert parse_steps("\n".join(steps)) == tuple(steps)
    assert parse_steps("\n".join(f"- {s}" for s in steps)) == tuple(steps)


def test_steps_must_be_dbt_commands() -> None:
    assert parse_steps('["dbt seed", "dbt build"]') == ("dbt seed", "dbt build")
    assert parse_steps("- dbt run --vars '{key: value}'\n- \"dbt test\"") == (
        "dbt run --vars '{key: value}'", "dbt test")
    for bad in ("rm -rf /", "dbt", "- dbt build\n- echo hi", "[1, 2]", "   "):
        with pytest.raises(ValueError):
            parse_steps(bad)


def test_urls() -> None:
    assert normalize_url("https://ab123.us1.dbt.com/", False) == "https://ab123.us1.dbt.com"
    assert normalize_url("cloud.getdbt.com", False) == "https://cloud.getdbt.com"
    assert normalize_url("https://emea.dbt.com/api/v2/", False) == "https://emea.dbt.com"
    assert normalize_url("http://127.0.0.1:8765", False) == "http://127.0.0.1:8765"
    assert normalize_url("http://localhost:1", False) == "http://localhost:1"
    assert normalize_url("http://10.0.0.5", True) == "http://10.0.0.5"
    for bad in ("http://cloud.getdbt.com", "ftp://x", "https://x.com/deploy/1", "https://"):
        with pytest.raises(ValueError):
            normalize_url(bad, False)


def test_every_problem_is_reported_at_once_naming_the_input() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"dbt_cloud_token": "", "dbt_cloud_account_id": "x", "dbt_cloud_job_id": "",
                      "threads_override": "0", "interval": "never"}, {})
    text = str(caught.value)
    assert len(caught.value.problems) == 5
    for name in ("dbt_cloud_token", "dbt_cloud_account_id", "dbt_cloud_job_id", "threads_override", "interval"):
        assert f"input `{name}`" in text


def test_labels_name_inputs_the_way_the_user_wrote_them() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"dbt_cloud_account_id": "1", "dbt_cloud_job_id": "2"}, {},
                     {"dbt_cloud_token": "--token (or DBT_CLOUD_API_TOKEN)"})
    assert caught.value.problems[0].startswith("--token (or DBT_CLOUD_API_TOKEN) is empty")


def test_a_long_cause_is_shortened_with_a_warning() -> None:
    config = parse_config({**BASE, "cause": "x" * 400}, {})
    assert len(config.trigger.cause) == USER_CAUSE_LIMIT
    assert "shortened" in config.warnings[0]
    assert len(config.trigger.body(" [dbtgate:12345678]")["cause"]) <= 255


def test_default_cause_from_the_workflow_context() -> None:
    env = {"GITHUB_REPOSITORY": "acme/analytics", "GITHUB_WORKFLOW": "deploy", "GITHUB_RUN_ID": "99",
           "GITHUB_SHA": "abcdef0123"}
    assert default_cause(env) == "GitHub Actions: acme/analytics workflow deploy run 99 @ abcdef0"
    assert default_cause({}) == "Triggered by dbtgate"
    assert len(default_cause({**env, "GITHUB_WORKFLOW": "w" * 400})) <= USER_CAUSE_LIMIT


def test_only_the_given_overrides_reach_the_body() -> None:
    config = parse_config({**BASE, "cause": "c", "threads_override": "4", "generate_docs_override": "no"}, {})
    assert config.trigger.body() == {"cause": "c", "threads_override": 4, "generate_docs_override": False}


def test_run_id_mode_and_cancel_default() -> None:
    waiting = parse_config({**BASE, "run_id": "77"}, {})
    assert waiting.run_id == 77 and waiting.job_id is None and waiting.cancel_on_interrupt is False
    assert waiting.warnings  # the job id is ignored, and the user is told
    assert parse_config({**BASE, "run_id": "77", "cancel_on_interrupt": "true"}, {}).cancel_on_interrupt is True
    assert parse_config(BASE, {}).cancel_on_interrupt is True


def test_artifacts_dir_is_relative_to_the_workspace() -> None:
    config = parse_config(BASE, {"GITHUB_WORKSPACE": "/github/workspace"})
    assert str(config.artifacts_dir) == "/github/workspace/target"
    with pytest.raises(ConfigError):
        parse_config({**BASE, "artifacts": "../../etc/passwd"}, {})


def test_a_token_with_whitespace_is_refused() -> None:
    with pytest.raises(ConfigError, match="whitespace"):
        parse_config({**BASE, "dbt_cloud_token": "Token abc"}, {})


def test_fail_fast_is_false_true_or_dbt() -> None:
    assert parse_config(BASE, {}).fail_fast is FailFast.OFF
    assert parse_config({**BASE, "fail_fast": "yes"}, {}).fail_fast is FailFast.GATE
    assert parse_config({**BASE, "fail_fast": " DBT "}, {}).fail_fast is FailFast.DBT
    with pytest.raises(ConfigError) as caught:
        parse_config({**BASE, "fail_fast": "dbt-core"}, {})
    assert "input `fail_fast`" in str(caught.value) and "true, false or dbt" in str(caught.value)


@pytest.mark.parametrize("mode", [{"run_id": "77"}, {"latest_run": "true"}, {"reuse_existing_run": "true"}])
def test_fail_fast_dbt_needs_a_run_this_gate_triggers(mode: dict[str, str]) -> None:
    """dbt's --fail-fast goes in with the trigger: a run that exists already (or may be reused) never got it."""
    with pytest.raises(ConfigError) as caught:
        parse_config({**BASE, "fail_fast": "dbt", **mode}, {})
    assert "input `fail_fast`" in str(caught.value) and "--fail-fast" in str(caught.value)
    assert parse_config({**BASE, "fail_fast": "true", **mode}, {}).fail_fast is FailFast.GATE

"""Bad input never slips through (issues #12 items 6, 8, 9 and #15 §3): every rule of `parse_config` that stands
between a user's typo and a request to dbt Cloud, property-tested where the parser is pure."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from dbtgate.config import parse_config
from dbtgate.errors import ConfigError
from dbtgate.parsers import (
    INT32_MAX,
    INT64_MAX,
    MAX_THREADS,
    check_token,
    normalize_url,
    parse_api_timeout,
    parse_duration,
    parse_interval,
    parse_non_negative_int,
    parse_positive_int,
    parse_steps,
    parse_timeout,
    resolve_artifacts_dir,
)

BASE = {"dbt_cloud_token": "t0k", "dbt_cloud_account_id": "1", "dbt_cloud_job_id": "2"}
# Characters that int(), float() and re's \d all accept as digits, and no person or API means: Arabic-Indic,
# fullwidth, Devanagari, Bengali, Thai, mathematical bold.
FOREIGN_DIGITS = "٠١٢٣٤٥٦٧٨٩０１２３４５６７８９०१२३४५६७८९০১২৩৪৫৬৭৮৯๐๑๒๓๔๕๖๗๘๙𝟎𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖𝟗"


def problems(**inputs: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config({**BASE, **inputs}, {"GITHUB_WORKSPACE": "/github/workspace"})
    return caught.value.problems


def only_problem(**inputs: str) -> str:
    found = problems(**inputs)
    assert len(found) == 1, found
    return found[0]


# ---- numbers: ASCII only, within what dbt Cloud stores -------------------------------------------------------
@given(st.integers(min_value=1, max_value=INT64_MAX))
def test_every_int64_id_round_trips(number: int) -> None:
    assert parse_positive_int(str(number)) == number
    assert parse_positive_int(f"+{number}") == number


@given(st.integers(min_value=INT64_MAX + 1, max_value=10**400))
def test_ids_beyond_64_bits_are_refused(number: int) -> None:
    with pytest.raises(ValueError, match="64-bit"):
        parse_positive_int(str(number))


@given(st.text(alphabet="0123456789", max_size=3), st.text(alphabet=FOREIGN_DIGITS, min_size=1, max_size=5),
       st.text(alphabet="0123456789", max_size=3))
def test_digits_other_than_ascii_are_never_numbers(before: str, foreign: str, after: str) -> None:
    text = before + foreign + after
    for parse in (parse_positive_int, parse_non_negative_int, parse_duration, parse_interval, parse_timeout):
        with pytest.raises(ValueError, match="digits 0-9"):
            parse(text)  # type: ignore[operator]


@given(st.integers(max_value=0))
def test_zero_and_negative_ids_are_refused(number: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        parse_positive_int(str(number))


def test_limits_name_the_reason() -> None:
    with pytest.raises(ValueError, match="at most 1,024 threads"):
        parse_positive_int(str(MAX_THREADS + 1), MAX_THREADS, "dbtgate accepts at most 1,024 threads")
    assert parse_non_negative_int(str(INT32_MAX), INT32_MAX) == INT32_MAX
    with pytest.raises(ValueError, match="is negative"):
        parse_non_negative_int("-5")
    # A 5,000-digit paste: refused by length, not by Python's int-conversion guard, and not echoed in full.
    with pytest.raises(ValueError, match="too large") as caught:
        parse_positive_int("9" * 5000)
    assert len(str(caught.value)) < 200


@pytest.mark.parametrize(("key", "text"), [
    ("dbt_cloud_account_id", "١٢٣"), ("dbt_cloud_job_id", "１２３"), ("run_id", "१२"),
    ("github_pull_request_id", "٤٢"), ("dbt_cloud_account_id", str(2**63)), ("dbt_cloud_job_id", str(2**64)),
    ("run_id", "0"), ("dbt_cloud_job_id", "-7"), ("github_pull_request_id", str(2**63)),
    ("gitlab_merge_request_id", str(2**63)), ("azure_pull_request_id", "0"), ("non_native_pull_request_id", "-1"),
    ("threads_override", "0"), ("threads_override", "40000"), ("threads_override", "٤"),
    ("timeout_seconds_override", "-1"), ("timeout_seconds_override", str(INT32_MAX + 1)),
    ("rerun_attempts", "11"), ("rerun_attempts", "٣"),
])
def test_bad_numbers_name_the_input(key: str, text: str) -> None:
    assert only_problem(**{key: text}).startswith(f"input `{key}`: ")


def test_number_boundaries_that_are_fine() -> None:
    config = parse_config({**BASE, "dbt_cloud_account_id": str(INT64_MAX), "threads_override": str(MAX_THREADS),
                           "timeout_seconds_override": "0", "rerun_attempts": "10"}, {})
    assert config.account_id == INT64_MAX and config.trigger.threads_override == MAX_THREADS
    assert config.trigger.timeout_seconds_override == 0 and config.rerun_attempts == 10
    assert parse_config({**BASE, "timeout_seconds_override": str(INT32_MAX)}, {}).warnings  # past the 24 h limit
    assert "0 for no timeout" in only_problem(timeout_seconds_override=str(INT32_MAX + 1))


# ---- durations --------------------------------------------------------------------------------------------------
@given(st.integers(min_value=1, max_value=10**6))
def test_milliseconds_are_a_duration_unit(millis: int) -> None:
    assert parse_duration(f"{millis}ms") == pytest.approx(millis / 1000)
    assert parse_duration(f"{millis} milliseconds") == pytest.approx(millis / 1000)


@given(st.text(alphabet="0123456789.hmsdaynioecul ", min_size=1, max_size=400))
def test_a_duration_is_finite_and_positive_or_refused(text: str) -> None:
    try:
        seconds = parse_duration(text)
    except ValueError:
        return
    assert math.isfinite(seconds) and seconds > 0


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "infinity", "1e309", "9" * 400, "1e3", "0", "0ms", "-1s"])
def test_not_a_duration(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(("inputs", "fragment"), [
    ({"interval": "0.001"}, "below the minimum of 1 s: polling faster"),
    ({"interval": "500ms"}, "below the minimum of 1 s"),
    ({"interval": "nan"}, "not a duration"),
    ({"interval": "8d"}, "above the maximum of 7 days"),
    ({"api_timeout": "0.001"}, "below the minimum of 1 s"),
    ({"api_timeout": "999ms"}, "below the minimum of 1 s"),
    ({"api_timeout": "500"}, "above the maximum of 5 min"),
    ({"api_timeout": "1h"}, "above the maximum of 5 min"),
    ({"api_timeout": "inf"}, "not a duration"),
    ({"timeout": "0.5"}, "below the minimum of 1 s"),
    ({"timeout": "nan"}, "not a duration"),
    ({"timeout": "inf"}, "not a duration"),
    ({"timeout": "9" * 400}, "not a duration"),
    ({"timeout": "30d"}, "above the maximum of 7 days"),
    ({"timeout": "٣٠m"}, "digits 0-9"),
])
def test_durations_out_of_range_are_refused(inputs: dict[str, str], fragment: str) -> None:
    message = only_problem(**inputs)
    (key,) = inputs
    assert message.startswith(f"input `{key}`: ") and fragment in message
    assert len(message) < 600  # a 400-digit paste is cut short, not printed whole


def test_the_floors_relax_only_for_a_loopback_url() -> None:
    """The emulator and local tests poll fast; dbt Cloud's rate limit and a real network need the 1 s floors."""
    local = parse_config({**BASE, "dbt_cloud_url": "http://127.0.0.1:8765", "interval": "0.2",
                          "api_timeout": "0.3"}, {})
    assert (local.interval, local.api_timeout) == (0.2, 0.3)
    assert only_problem(dbt_cloud_url="http://127.0.0.1:8765", interval="0.01").startswith("input `interval`")
    assert len(problems(dbt_cloud_url="https://ab123.us1.dbt.com", interval="0.2", api_timeout="0.3")) == 2


@given(st.integers(min_value=1000, max_value=300_000))
def test_a_bare_api_timeout_of_1000_or_more_is_milliseconds(millis: int) -> None:
    seconds, note = parse_api_timeout(str(millis))
    assert seconds == pytest.approx(millis / 1000)
    assert note is not None and f"{millis} ms" in note and "dbt-labs/dbt-cloud-job-action" in note


@given(st.integers(min_value=1, max_value=300))
def test_a_bare_api_timeout_below_1000_is_seconds(seconds: int) -> None:
    assert parse_api_timeout(str(seconds)) == (seconds, None)
    assert parse_api_timeout(f"{seconds}s") == (seconds, None)
    assert parse_api_timeout(f"{seconds * 1000}ms") == (seconds, None)


def test_the_migrated_5000_is_5_seconds_with_a_warning() -> None:
    config = parse_config({**BASE, "api_timeout": "5000"}, {})
    assert config.api_timeout == 5.0
    assert config.warnings == ("input `api_timeout`: 5000 has no unit, so it was read as 5000 ms = 5 s (dbtgate "
                               "counts seconds, dbt-labs/dbt-cloud-job-action milliseconds). Write 5s or 5000ms to "
                               "say which you mean and silence this warning.",)
    assert parse_config({**BASE, "api_timeout": "5000ms"}, {}).warnings == ()
    assert parse_config({**BASE, "api_timeout": "30s"}, {}).api_timeout == 30.0


# ---- URLs ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("url", "fragment"), [
    ("https://ab123.us1.dbt.com:99999", "not a number from 1 to 65535"),
    ("https://ab123.us1.dbt.com:abc", "not a number from 1 to 65535"),
    ("https://ab123.us1.dbt.com:0", "not a number from 1 to 65535"),
    ("https://ab123.us1.dbt.com:٨٠", "not a number from 1 to 65535"),
    ("https://ab123 .us1.dbt.com", "spaces or control characters"),
    ("https://ab\x01123.us1.dbt.com", "spaces or control characters"),
    ("ftp://ab123.us1.dbt.com", "not an http(s) URL"),
    ("file:///etc/passwd", "not an http(s) URL"),
    ("https://ab_12$.dbt.com", "has no valid host"),
    ("https://dbt.cöm", "has no valid host"),
    ("https://[::zz]", "has no valid host"),
    ("https://", "has no valid host"),
])
def test_urls_that_cannot_be_dbt_cloud(url: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        normalize_url(url, False)


def test_url_forms_that_stay_accepted() -> None:
    assert normalize_url("https://ab123.us1.dbt.com:443/", False) == "https://ab123.us1.dbt.com:443"
    assert normalize_url("https://ab123.us1.dbt.com:", False) == "https://ab123.us1.dbt.com"
    assert normalize_url("http://[::1]:8765", False) == "http://[::1]:8765"
    assert normalize_url("https://ACME.getdbt.com", False) == "https://ACME.getdbt.com"


@given(st.text(alphabet=st.characters(codec="ascii", exclude_characters="@/#?\\"), min_size=4, max_size=30),
       st.sampled_from(["https://", "http://", ""]), st.sampled_from([":99999", ":abc", "", "/x"]))
@example("dbt ", "https://", ":99999")     # a password inside the message's own words (CI, 2026-12-06)
def test_credentials_in_the_url_are_refused_and_never_echoed(password: str, scheme: str, tail: str) -> None:
    with pytest.raises(ValueError) as caught:
        normalize_url(f"{scheme}deploy:{password}@ab123.us1.dbt.com{tail}", False)
    assert "user name or password" in str(caught.value)
    # Never echoed: the message is the same whatever the password (a password such as "dbt " can be a substring of
    # the fixed text, so "not in" alone would fail on a message that echoes nothing).
    with pytest.raises(ValueError) as neutral:
        normalize_url(f"{scheme}deploy:NEUTRAL@ab123.us1.dbt.com{tail}", False)
    assert str(caught.value) == str(neutral.value)
    assert password not in str(caught.value) or password in str(neutral.value)


def test_credentials_through_parse_config_name_the_input() -> None:
    message = only_problem(dbt_cloud_url="https://user:hunter2-secret@ab123.us1.dbt.com")
    assert message.startswith("input `dbt_cloud_url`: contains a user name or password")
    assert "hunter2" not in message and "user:" not in message


# ---- the token ----------------------------------------------------------------------------------------------------
@given(st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1))
def test_printable_ascii_tokens_pass(token: str) -> None:
    assert check_token(token) is None


@given(st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=8, max_size=40),
       st.characters(blacklist_categories=("Cs",)).filter(lambda ch: not " " < ch < "\x7f"),
       st.integers(min_value=0, max_value=40))
def test_a_token_with_any_other_character_is_refused_without_being_echoed(secret: str, odd: str, at: int) -> None:
    token = secret[:at] + odd + secret[at:]
    problem = check_token(token)
    assert problem is not None
    assert secret not in problem and secret[:8] not in problem


@pytest.mark.parametrize("token", ["dbtc_abc“def", "dbtc_ab€c", "dbtc_\x7fabc", "dbtc_abc\x1b[0m", "dbtc_ab\u200bc"])
def test_tokens_that_cannot_be_sent_in_a_header(token: str) -> None:
    message = only_problem(dbt_cloud_token=token)
    assert message.startswith("input `dbt_cloud_token` contains the character U+")
    assert "dbtc_ab" not in message


# ---- paths and NUL bytes ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["..", "../target", "target/../../etc", "/etc", "/github/workspace/../x", "/tmp"])
def test_artifacts_dir_stays_inside_the_workspace(path: str) -> None:
    assert only_problem(artifacts_dir=path).startswith("input `artifacts_dir`: ")


def test_artifacts_dir_forms_that_stay_accepted() -> None:
    assert resolve_artifacts_dir("build/dbt", "/github/workspace") == Path("/github/workspace/build/dbt")
    assert resolve_artifacts_dir("/github/workspace/t", "/github/workspace") == Path("/github/workspace/t")
    assert resolve_artifacts_dir("", "/github/workspace") == Path("/github/workspace/target")
    # Outside GitHub Actions the CLI writes where its user says, but never through `..`.
    assert resolve_artifacts_dir("/tmp/out", "") == Path("/tmp/out")
    with pytest.raises(ValueError, match=r"\.\."):
        resolve_artifacts_dir("../out", "")


@given(st.lists(st.from_regex(r"[a-z_]{1,8}", fullmatch=True), min_size=0, max_size=3),
       st.lists(st.from_regex(r"[a-z_]{1,8}", fullmatch=True), min_size=0, max_size=3))
def test_no_dotdot_path_escapes(before: list[str], after: list[str]) -> None:
    path = "/".join([*before, "..", *after])
    with pytest.raises(ValueError):
        resolve_artifacts_dir(path, "/github/workspace")
    with pytest.raises(ConfigError):
        parse_config({**BASE, "artifacts": path}, {})


@pytest.mark.parametrize("path", ["/etc/passwd", "\\\\server\\share", "compiled/../../x", "a\\..\\b"])
def test_artifact_paths_are_relative(path: str) -> None:
    assert only_problem(artifacts=f"manifest.json\n{path}").startswith("input `artifacts`: ")


@pytest.mark.parametrize("key", ["dbt_cloud_token", "dbt_cloud_url", "cause", "git_branch", "artifacts_dir",
                                 "steps_override", "dbt_cloud_job_id"])
def test_a_nul_byte_anywhere_is_refused_once_without_the_value(key: str) -> None:
    message = only_problem(**{key: "secret-part\x00rest"})
    assert message.startswith(f"input `{key}` contains a NUL byte")
    assert "secret-part" not in message


# ---- pull requests ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["github_pull_request_id", "gitlab_merge_request_id", "azure_pull_request_id",
                                 "non_native_pull_request_id"])
def test_each_pull_request_id_reaches_the_trigger_body(key: str) -> None:
    config = parse_config({**BASE, "cause": "c", key: "42"}, {})
    assert config.trigger.body() == {"cause": "c", key: 42}


def test_at_most_one_pull_request_id() -> None:
    message = only_problem(github_pull_request_id="1", gitlab_merge_request_id="2")
    assert message.startswith("input `github_pull_request_id` and input `gitlab_merge_request_id` are both set")
    three = only_problem(github_pull_request_id="1", azure_pull_request_id="2", non_native_pull_request_id="3")
    assert "are all set" in three


def test_every_problem_still_comes_at_once() -> None:
    found = problems(dbt_cloud_url="https://h:99999", dbt_cloud_account_id="١", interval="0.001",
                     api_timeout="0.001", timeout="inf", dbt_cloud_token="t€k", artifacts_dir="../x",
                     threads_override="99999", github_pull_request_id=str(2**63))
    assert len(found) == 9


def test_zero_is_a_duration_out_of_range_not_a_non_duration() -> None:
    with pytest.raises(ValueError, match="below the minimum"):
        parse_timeout("0")


def test_a_bad_steps_override_says_where_and_how_to_write_it() -> None:
    with pytest.raises(ValueError, match=r"line 1, column \d+.*\[\"dbt seed\""):
        parse_steps('["dbt seed", "dbt build')

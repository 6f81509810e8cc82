"""Inputs, validated once: from the action's INPUT_* variables, from CLI flags, or from DBT_CLOUD_* variables.

Every source is first turned into the same mapping of input name → raw string, then `parse_config` checks it all
at once and reports every problem (naming the input the way the user wrote it) before anything is triggered.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dbtgate.errors import ConfigError

DEFAULT_URL = "https://cloud.getdbt.com"
CAUSE_LIMIT = 255
# The gate appends " [dbtgate:xxxxxxxx]" to the cause so that a run created by a lost trigger response can be
# found and adopted instead of triggering a duplicate. The user's part must leave room for it.
MARKER_LENGTH = len(" [dbtgate:00000000]")
USER_CAUSE_LIMIT = CAUSE_LIMIT - MARKER_LENGTH
# dbt Cloud ids (accounts, jobs, runs, pull requests) are int64 in its API; anything larger cannot name anything.
INT64_MAX = 2**63 - 1
# The spec gives timeout_seconds_override no format; the job's timeout column behind it is a 32-bit integer, so a
# larger value is refused by dbt Cloud (or wraps), long after dbtgate could have said so.
INT32_MAX = 2**31 - 1
# Runs are ended by the account's run_duration_limit_seconds (24 h by default, see the spec), whatever the override.
ACCOUNT_RUN_LIMIT = 86400
# dbt sets no maximum on threads; warehouses cap concurrent queries far lower. Above this it is a typo (40000 for 4).
MAX_THREADS = 1024
# Polling faster than once a second finds the end of a run no sooner and eats dbt Cloud's rate limit (5,000
# requests a minute per account, then a five-minute lockout). Shorter than a second per request is not a timeout
# but a guaranteed failure on a real network. A loopback URL (the emulator, a local test server) is neither
# rate-limited nor far away, so it may go down to LOOPBACK_FLOOR.
MIN_INTERVAL = 1.0
MIN_API_TIMEOUT = 1.0
LOOPBACK_FLOOR = 0.1
# Longer than five minutes for ONE request is never what anyone meant; the gate's timeout bounds the whole wait.
MAX_API_TIMEOUT = 300.0
# dbt-labs/dbt-cloud-job-action reads api_timeout in milliseconds (default 5000) and dbtgate in seconds. A bare
# number at or above this is read as milliseconds: as seconds it would be 16+ minutes per request, beyond
# MAX_API_TIMEOUT, so the only sane reading of `api_timeout: 5000` is the migrated 5000 ms.
BARE_MS_THRESHOLD = 1000.0
MIN_TIMEOUT = 1.0
# No run outlives the account's run limit (24 h by default) and GitHub ends a job after 6 h (hosted) or 5 days
# (self-hosted); a week leaves room for queueing and reruns and still catches "2000h" or "99999999".
MAX_TIMEOUT = 7 * 86400.0
PULL_REQUEST_INPUTS = ("github_pull_request_id", "gitlab_merge_request_id", "azure_pull_request_id",
                       "non_native_pull_request_id")


@dataclass(frozen=True)
class InputSpec:
    name: str
    description: str
    default: str = ""
    required: bool = False
    cli_flag: str | None = None     # None: derived from the name (--name-with-dashes)
    env_vars: tuple[str, ...] = ()  # fallbacks for the CLI and the standalone container


INPUTS: tuple[InputSpec, ...] = (
    InputSpec("dbt_cloud_url", "Your dbt Cloud access URL, e.g. https://ab123.us1.dbt.com (Account settings → "
              "Account information). The legacy https://cloud.getdbt.com answers 401 for accounts that moved.",
              DEFAULT_URL, cli_flag="--url", env_vars=("DBT_CLOUD_URL", "DBT_CLOUD_HOST")),
    InputSpec("dbt_cloud_token", "API token: a service token with Job Admin (or a personal access token). Pass it "
              "from a secret.", required=True, cli_flag="--token", env_vars=("DBT_CLOUD_API_TOKEN",)),
    InputSpec("dbt_cloud_account_id", "dbt Cloud account id (the number after /deploy/ in dbt Cloud URLs).",
              required=True, cli_flag="--account-id", env_vars=("DBT_CLOUD_ACCOUNT_ID",)),
    InputSpec("dbt_cloud_job_id", "Id of the job to trigger (or dbt_cloud_job_name; neither is needed with run_id).",
              cli_flag="--job-id", env_vars=("DBT_CLOUD_JOB_ID",)),
    InputSpec("dbt_cloud_job_name", "The job's exact name, instead of its id: several jobs with that name (narrow "
              "with dbt_cloud_project_id / dbt_cloud_environment_id) or none is bad input, listing the candidates.",
              cli_flag="--job-name", env_vars=("DBT_CLOUD_JOB_NAME",)),
    InputSpec("dbt_cloud_project_id", "With dbt_cloud_job_name: only jobs of this project.",
              cli_flag="--project-id", env_vars=("DBT_CLOUD_PROJECT_ID",)),
    InputSpec("dbt_cloud_environment_id", "With dbt_cloud_job_name: only jobs of this environment.",
              cli_flag="--environment-id", env_vars=("DBT_CLOUD_ENVIRONMENT_ID",)),
    InputSpec("run_id", "Wait on this existing run instead of triggering a new one (e.g. one started earlier "
              "with wait_for_job: false).", cli_flag="--run-id"),
    InputSpec("cause", "Reason shown in dbt Cloud (at most 236 characters are kept). Default: built from the "
              "repository, workflow run and commit."),
    InputSpec("git_sha", "Git commit to check out for the run."),
    InputSpec("git_branch", "Git branch to check out for the run."),
    InputSpec("github_pull_request_id", "Pull request number; makes the run a CI run in dbt Cloud. Set at most one "
              "of the four pull/merge request ids."),
    InputSpec("gitlab_merge_request_id", "GitLab merge request id (IID), for a project connected through GitLab."),
    InputSpec("azure_pull_request_id", "Azure DevOps pull request id, for a project connected through Azure DevOps."),
    InputSpec("non_native_pull_request_id", "Pull request id for a git provider dbt Cloud has no native "
              "integration with."),
    InputSpec("schema_override", "Override the target schema, e.g. dbt_pr_123 for pull request 123."),
    InputSpec("dbt_version_override", "Override the dbt version of the job."),
    InputSpec("threads_override", "Override the number of threads (1 to 1024)."),
    InputSpec("target_name_override", "Override target.name."),
    InputSpec("generate_docs_override", "Override whether the run generates docs (true/false)."),
    InputSpec("timeout_seconds_override", "Override dbt Cloud's own timeout for the run, in whole seconds "
              "(0: no timeout)."),
    InputSpec("steps_override", "Replace the job's steps: a YAML list or one dbt command per line."),
    InputSpec("rerun_attempts", "When the run ends in error and dbt Cloud can retry it, rerun it from the point of "
              "failure up to this many times (within timeout). Cancelled runs are never retried.", "0"),
    InputSpec("reuse_existing_run", "If a run of the job is already queued or running and matches what this gate "
              "would trigger (same git_sha, git_branch and overrides, where given), wait on it instead of queueing "
              "another.", "false"),
    InputSpec("latest_run", "Trigger nothing: gate on the job's latest run — wait for it if it is in flight, "
              "decide by its outcome if it has finished. With git_sha (or a pull request id), the latest run for "
              "that commit, waiting within timeout for one to appear (e.g. dbt Cloud's own CI run).", "false"),
    InputSpec("max_age", "With latest_run: the run must have finished (or started, if still running) within this "
              "long, e.g. 26h; otherwise the outcome is stale."),
    InputSpec("fail_fast", "At the first failed model or test, cancel the dbt Cloud run and fail now instead of "
              "waiting for the end (for a run this gate did not trigger, only with cancel_on_timeout: true).",
              "false"),
    InputSpec("wait_for_job", "Wait for the run to finish. false: trigger, set run_id, and return at once.",
              "true", cli_flag="--wait"),
    InputSpec("failure_on_error", "Fail the step when the run does not succeed. false: report the outcome in "
              "the outputs and exit 0.", "true", cli_flag="--fail-on-error"),
    InputSpec("interval", "Longest time between two polls, in seconds. dbtgate polls more often right after the "
              "trigger and as the run nears its end (estimated from its progress and the job's history). At "
              "least 1s: faster polling only spends dbt Cloud's rate limit.", "60"),
    InputSpec("api_timeout", "Timeout of one HTTP request to dbt Cloud: 30s, 5000ms, or a bare number of seconds "
              "from 1 to 300. A bare number of 1000 or more is read as milliseconds, as in "
              "dbt-labs/dbt-cloud-job-action (with a warning).", "30"),
    InputSpec("timeout", "The longest the gate waits, retries and queueing included: seconds or a duration "
              "such as 45m, 2h, 1h30m (1s to 7d).", "2h"),
    InputSpec("cancel_on_timeout", "Cancel the dbt Cloud run when the gate gives up waiting, so no warehouse "
              "money burns for a pipeline that already failed. Empty means: yes for a run this gate triggered, no "
              "for a run given by run_id."),
    InputSpec("cancel_on_interrupt", "Cancel the dbt Cloud run when the workflow is cancelled (SIGINT/SIGTERM). "
              "Empty means: yes for a run this gate triggered, no for a run given by run_id."),
    InputSpec("allow_insecure_http", "Allow plain http:// to a host that is not loopback (never for real "
              "tokens).", "false"),
    InputSpec("get_artifacts", "Download run_results.json and manifest.json into artifacts_dir.", "true"),
    InputSpec("artifacts_dir", "Where artifacts go, relative to the workspace (no `..`; an absolute path "
              "must lie inside the workspace).", "target"),
    InputSpec("fetch_catalog", "Also download catalog.json (runs that generate docs).", "false"),
    InputSpec("max_artifact_size", "The largest artifact dbtgate downloads (streamed to disk), e.g. 500MB or 2GB; "
              "a larger one is reported and skipped.", "1GB"),
    InputSpec("artifacts", "More artifact paths to download, one per line (e.g. compiled/...).",
              cli_flag="--artifact"),
    InputSpec("project_dir", "Folder of the dbt project in the repository, so annotations point at the right "
              "files (e.g. transform/).", ""),
)
INPUT_NAMES = tuple(spec.name for spec in INPUTS)
SPECS = {spec.name: spec for spec in INPUTS}
TRUE_WORDS = frozenset({"true", "yes", "1", "on", "y"})
FALSE_WORDS = frozenset({"false", "no", "0", "off", "n"})
# [0-9], never \d: \d, int() and float() also accept "١٢٣" and fullwidth digits, which no API or person means.
_NUMBER = r"[0-9]+(?:\.[0-9]+)?"
_DURATION_PART = re.compile(rf"({_NUMBER})([a-z]*)", re.ASCII)
_INTEGER = re.compile(r"\+?([0-9]+)", re.ASCII)
_UNITS = {"": 1, "ms": 0.001, "msec": 0.001, "msecs": 0.001, "millisecond": 0.001, "milliseconds": 0.001,
          "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1, "m": 60, "min": 60, "mins": 60,
          "minute": 60, "minutes": 60, "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
          "d": 86400, "day": 86400, "days": 86400}


@dataclass(frozen=True)
class TriggerOptions:
    cause: str
    git_sha: str | None = None
    git_branch: str | None = None
    github_pull_request_id: int | None = None
    gitlab_merge_request_id: int | None = None
    azure_pull_request_id: int | None = None
    non_native_pull_request_id: int | None = None
    schema_override: str | None = None
    dbt_version_override: str | None = None
    threads_override: int | None = None
    target_name_override: str | None = None
    generate_docs_override: bool | None = None
    timeout_seconds_override: int | None = None
    steps_override: tuple[str, ...] | None = None

    def body(self, marker: str = "") -> dict[str, Any]:
        """The trigger request body; only the fields the user set, plus the cause (with the marker)."""
        body: dict[str, Any] = {"cause": f"{self.cause}{marker}"}
        for name in ("git_sha", "git_branch", *PULL_REQUEST_INPUTS, "schema_override", "dbt_version_override",
                     "threads_override", "target_name_override", "generate_docs_override",
                     "timeout_seconds_override"):
            value = getattr(self, name)
            if value is not None:
                body[name] = value
        if self.steps_override is not None:
            body["steps_override"] = list(self.steps_override)
        return body


@dataclass(frozen=True)
class GateConfig:
    base_url: str
    token: str
    account_id: int
    job_id: int | None
    run_id: int | None
    trigger: TriggerOptions
    wait: bool = True
    failure_on_error: bool = True
    interval: float = 60.0
    api_timeout: float = 30.0
    timeout: float = 7200.0
    cancel_on_timeout: bool = True
    cancel_on_interrupt: bool = True
    get_artifacts: bool = True
    artifacts_dir: Path = Path("target")
    # The folder artifacts may be written in (GITHUB_WORKSPACE in the action, the working directory elsewhere):
    # nothing dbt Cloud names is written outside it.
    workspace: Path = Path(".")
    max_artifact_size: int = 1024 ** 3
    fetch_catalog: bool = False
    extra_artifacts: tuple[str, ...] = ()
    project_dir: str = ""
    rerun_attempts: int = 0
    reuse_existing_run: bool = False
    job_name: str | None = None
    project_id: int | None = None
    environment_id: int | None = None
    latest_run: bool = False
    max_age: float | None = None
    fail_fast: bool = False
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).netloc


# ---- parsers (pure; property-tested) ------------------------------------------------------------------------
def parse_bool(text: str) -> bool:
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"{text!r} is not a boolean: use true or false")


def parse_duration(text: str) -> float:
    """Seconds from "90", "90s", "500ms", "45m", "2h", "1h30m", "1.5h" or "2 hours"; positive and finite."""
    cleaned = text.strip().lower().replace(" ", "")
    if not cleaned:
        raise ValueError("is empty: use seconds or a duration such as 45m or 2h")
    position, total = 0, 0.0
    for match in _DURATION_PART.finditer(cleaned):
        if match.start() != position or match.group(2) not in _UNITS:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if position != len(cleaned) or not total > 0 or not math.isfinite(total):
        raise ValueError(f"{_shown(text)} is not a duration: use seconds (3600) or a duration such as 30s, 45m, 2h, "
                         "1h30m, written with the digits 0-9")
    return total


def parse_bounded_duration(text: str, minimum: float, maximum: float, hint: str = "") -> float:
    """parse_duration, then within [minimum, maximum]; the message says the limits in the units people use."""
    seconds = parse_duration(text)
    if not minimum <= seconds <= maximum:
        side = f"below the minimum of {_human(minimum)}" if seconds < minimum else \
            f"above the maximum of {_human(maximum)}"
        raise ValueError(f"{_shown(text)} is {_human(seconds)}, {side}{hint}")
    return seconds


def _shown(text: str, limit: int = 40) -> str:
    """The user's value, quoted, and cut short: a 5,000-digit paste must not fill the error log."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"… ({len(text)} characters)"


def parse_interval(text: str, minimum: float = MIN_INTERVAL) -> float:
    """The longest pause between polls. Refused, not clamped, below the floor: a value like 0.001 is a mistake
    (milliseconds? minutes?) whose intent dbtgate cannot guess, and exit 2 costs nothing while nothing ran yet."""
    seconds = parse_duration(text)
    if seconds < minimum:
        raise ValueError(f"{text!r} is {_human(seconds)}, below the minimum of {_human(minimum)}: polling faster "
                         "finds the end of a run no sooner and spends dbt Cloud's rate limit (5,000 requests a "
                         "minute per account, then a five-minute lockout). Use 1s or more; dbtgate already polls "
                         "more often near the end of a run")
    return parse_bounded_duration(text, minimum, MAX_TIMEOUT, ": the gate's timeout bounds the whole wait anyway")


def parse_timeout(text: str) -> float:
    return parse_bounded_duration(text, MIN_TIMEOUT, MAX_TIMEOUT, ": use e.g. 45m, 2h or 1h30m")


def parse_api_timeout(text: str, minimum: float = MIN_API_TIMEOUT) -> tuple[float, str | None]:
    """Seconds for one request, and a note when a bare number was read as milliseconds (see BARE_MS_THRESHOLD)."""
    cleaned = text.strip()
    note = None
    if re.fullmatch(_NUMBER, cleaned, re.ASCII) and float(cleaned) >= BARE_MS_THRESHOLD:
        seconds = float(cleaned) / 1000
        note = (f"{cleaned} has no unit, so it was read as {cleaned} ms = {_human(seconds)} (dbtgate counts "
                f"seconds, dbt-labs/dbt-cloud-job-action milliseconds). Write {_human(seconds, compact=True)} or "
                f"{cleaned}ms to say which you mean and silence this warning.")
        cleaned += "ms"
    try:
        seconds = parse_bounded_duration(text if note is None else cleaned, minimum, MAX_API_TIMEOUT)
    except ValueError as error:
        raise ValueError(f"{error}. One request may take from {_human(minimum)} to {_human(MAX_API_TIMEOUT)}: use "
                         "e.g. 30s or 5000ms (a bare number counts seconds below 1000, milliseconds from 1000 up)"
                         ) from None
    return seconds, note


def _human(seconds: float, compact: bool = False) -> str:
    """1 s, 0.5 s, 5 min, 2 h, 7 days — or, compact, 1s / 500ms / 5m / 2h / 7d (valid input again)."""
    for size, long, short in ((86400, " days", "d"), (3600, " h", "h"), (60, " min", "m")):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{short if compact else long}"
    if seconds < 1 and compact:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}{'s' if compact else ' s'}"


ID_LIMIT = f"dbt Cloud ids are 64-bit numbers, at most {INT64_MAX:,}: check that you copied the id itself"


def parse_positive_int(text: str, maximum: int = INT64_MAX, why: str = ID_LIMIT) -> int:
    number = _parse_int(text, "a positive whole number", maximum, why)
    if number <= 0:
        raise ValueError(f"{_shown(text)} is not a positive whole number: use 1 or more")
    return number


def parse_non_negative_int(text: str, maximum: int = INT64_MAX, why: str = ID_LIMIT) -> int:
    return _parse_int(text, "a whole number of zero or more", maximum, why)


def _parse_int(text: str, what: str, maximum: int, why: str) -> int:
    cleaned = text.strip()
    match = _INTEGER.fullmatch(cleaned)
    if not match:
        hint = ("" if cleaned.isascii() else ", written with the digits 0-9") + (
            ": it is negative" if cleaned.startswith("-") else "")
        raise ValueError(f"{_shown(text)} is not {what}{hint}")
    digits = match.group(1).lstrip("0") or "0"
    # Compare lengths first: int() of a 5,000-digit string is refused by Python itself with a confusing message.
    if len(digits) > len(str(maximum)) or int(digits) > maximum:
        raise ValueError(f"{_shown(cleaned)} is too large: {why}")
    return int(digits)


THREADS_LIMIT = (f"dbtgate accepts at most {MAX_THREADS:,} threads. dbt itself sets no limit, but no warehouse runs "
                 "that many queries at once; 4 to 16 is usual")
TIMEOUT_OVERRIDE_LIMIT = (f"dbt Cloud keeps this in 32 bits, so at most {INT32_MAX:,} seconds; use 0 for no timeout, "
                          "or the seconds you mean, e.g. 3600")


def parse_steps(text: str) -> tuple[str, ...]:
    """A YAML flow list (`["dbt seed", "dbt build"]`), `- dbt build` lines, or one command per line.

    `- ` lines are read literally rather than as YAML: a command such as `dbt run --vars '{key: value}'` would
    otherwise turn into a YAML mapping.
    """
    stripped = text.strip()
    if stripped.startswith("["):
        import yaml  # only this form needs a YAML parser; kept off the start-up path

        try:
            loaded = yaml.safe_load(stripped)
        except yaml.YAMLError as error:
            raise ValueError(f"is not a valid YAML list ({error.__class__.__name__})") from error
        if not isinstance(loaded, list) or not all(isinstance(item, str) for item in loaded):
            raise ValueError("must be a list of dbt commands, e.g. [\"dbt seed\", \"dbt build\"]")
        steps = [item.strip() for item in loaded]
    else:
        lines = [line.strip() for line in stripped.splitlines() if line.strip()]
        if lines and lines[0].startswith("- "):
            if not all(line.startswith("- ") for line in lines):
                raise ValueError("mixes `- ` list items with plain lines: use one form")
            lines = [_unquote(line[2:].strip()) for line in lines]
        steps = lines
    steps = [step for step in steps if step]
    if not steps:
        raise ValueError("is empty: give at least one dbt command, or leave the input out")
    for step in steps:
        if not re.match(r"^dbt\s+\S", step):
            raise ValueError(f"entry {step!r} is not a dbt command: each step must start with `dbt `")
    return tuple(steps)


def _unquote(item: str) -> str:
    if len(item) >= 2 and item[0] == item[-1] and item[0] in "'\"":
        return item[1:-1]
    return item


_HOST_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST = re.compile(rf"{_HOST_LABEL}(?:\.{_HOST_LABEL})*\.?", re.ASCII | re.IGNORECASE)
_NETLOC = re.compile(r"(?P<host>\[[^\]]*\]|[^:]*)(?::(?P<port>.*))?", re.ASCII | re.DOTALL)


def normalize_url(text: str, allow_insecure_http: bool) -> str:
    """`https://host[:port]`, or ValueError. Never repeats a URL that carries credentials."""
    raw = text.strip()
    example = "e.g. https://ab123.us1.dbt.com"
    if "@" in raw:
        # user:password@host. requests would send them as Basic auth next to the token, and they must not appear
        # in a log: this message says where the problem is without repeating any of the text.
        raise ValueError("contains a user name or password (something@host): dbt Cloud takes only the token; "
                         f"give the bare access URL, {example}, and rotate that password if it was real")
    if any(ch.isspace() or not ch.isprintable() for ch in raw):
        raise ValueError(f"{text!r} contains spaces or control characters: give only the access URL, {example}")
    if "://" not in raw:
        raw = "https://" + raw  # dbt-cloud-cli's DBT_CLOUD_HOST is a bare host name
    try:
        parts = urlsplit(raw)
    except ValueError:  # an unparsable [IPv6] literal
        parts = urlsplit("https://")
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{text!r} is not an http(s) URL: use your access URL, {example}")
    netloc = _NETLOC.fullmatch(parts.netloc)
    host, port = (netloc.group("host"), netloc.group("port")) if netloc else ("", None)
    if host.startswith("["):
        import ipaddress  # only for an IPv6 literal: kept off the start-up path

        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            host = ""
    elif not _HOST.fullmatch(host):
        host = ""
    if not host:
        raise ValueError(f"{text!r} has no valid host name (ASCII letters, digits, dots and hyphens): use your "
                         f"access URL, {example}")
    if port is not None and port != "":
        if not re.fullmatch(r"[0-9]{1,5}", port, re.ASCII) or not 1 <= int(port) <= 65535:
            raise ValueError(f"{text!r} has port {port!r}, which is not a number from 1 to 65535: leave the "
                             f"port out ({example}) unless your dbt Cloud really uses another one")
        host += f":{int(port)}"
    path = parts.path.rstrip("/")
    if path.endswith("/api/v2"):
        path = path[: -len("/api/v2")]  # people paste the API base; it means the same host
    if path or parts.query or parts.fragment:
        raise ValueError(f"{text!r} has a path; give only the scheme and host, {example}")
    if parts.scheme == "http" and not allow_insecure_http and not is_loopback_url(raw):
        raise ValueError(f"{text!r} uses plain http:// to a host that is not loopback, which would send the token "
                         "in clear text: use https://, or set allow_insecure_http: true if you really mean it")
    return f"{parts.scheme}://{host}"


def is_loopback_url(url: str) -> bool:
    return _is_loopback(urlsplit(url).hostname or "")


def check_token(token: str) -> str | None:
    """What is wrong with a token that cannot be right, without repeating any of it; None when it may be fine."""
    if any(ch.isspace() for ch in token):
        return ("contains whitespace: copy the token alone, without 'Token ' or 'Bearer ' or a trailing newline.")
    for position, ch in enumerate(token, start=1):
        if not " " < ch < "\x7f":
            # requests cannot put a non-Latin-1 character in a header at all, and a control or non-ASCII character
            # is never part of a dbt Cloud token: it is a smart quote, a stray byte or a broken secret.
            return (f"contains the character U+{ord(ch):04X} (character {position} of {len(token)}), which no "
                    "dbt Cloud token has and which cannot be sent in an HTTP header: copy the token again, as plain "
                    "text, into the secret.")
    return None


_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*(b|kb|mb|gb|tb|kib|mib|gib|tib)?", re.ASCII)
_SIZE_UNITS = {None: 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4, "kib": 1024,
               "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}


def parse_size(text: str) -> int:
    """Bytes from "1GB", "500 MB", "64MiB" or a bare number of bytes; at least 1 KB."""
    match = _SIZE.fullmatch(text.strip().lower())
    if not match:
        raise ValueError(f"{_shown(text)} is not a size: use e.g. 500MB or 2GB")
    size = int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])
    if size < 1000:
        raise ValueError(f"{_shown(text)} is less than 1 KB: use e.g. 500MB or 2GB")
    return size


def resolve_artifacts_dir(text: str, workspace: str) -> Path:
    """Where artifacts go: inside the workspace when there is one (GitHub Actions), never above it via `..`."""
    path = Path(text or "target")
    if ".." in path.parts:
        raise ValueError(f"{text!r} contains `..`: artifacts go inside the workspace; use a folder such as target "
                         "or build/dbt")
    if not workspace:
        return path  # the CLI on someone's own machine: a path they chose, absolute or not
    if path.is_absolute():
        if path.is_relative_to(workspace):
            return path
        raise ValueError(f"{text!r} is outside the workspace {workspace}: give a path relative to it, such as "
                         "target (in a Docker action, ${{ github.workspace }} is the runner's path, not the "
                         "container's)")
    return Path(workspace) / path


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    import ipaddress  # ~2 ms, and most URLs are names: kept off the start-up path

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def default_cause(env: Mapping[str, str]) -> str:
    repository = env.get("GITHUB_REPOSITORY", "")
    if not repository:
        return "Triggered by dbtgate"
    parts = [f"GitHub Actions: {repository}"]
    if env.get("GITHUB_WORKFLOW"):
        parts.append(f"workflow {env['GITHUB_WORKFLOW']}")
    if env.get("GITHUB_RUN_ID"):
        parts.append(f"run {env['GITHUB_RUN_ID']}")
    if env.get("GITHUB_SHA"):
        parts.append(f"@ {env['GITHUB_SHA'][:7]}")
    return " ".join(parts)[:USER_CAUSE_LIMIT]


# ---- the one validation path --------------------------------------------------------------------------------
def parse_config(raw: Mapping[str, str], env: Mapping[str, str], label: Mapping[str, str] | None = None
                 ) -> GateConfig:
    """Validate every input at once. `label` says how each input is named to this user (input, flag, variable)."""
    labels = dict(label or {})
    problems: list[str] = []
    warnings: list[str] = []

    def name(key: str) -> str:
        return labels.get(key, f"input `{key}`")

    def value(key: str) -> str:
        return (raw.get(key) or "").strip()

    # A NUL byte is never meant, cuts strings short in C code underneath (paths, headers), and the value may be the
    # token: say which input, never what it contains, and check nothing else about it.
    broken = {key for key in raw if "\x00" in (raw.get(key) or "")}
    for key in sorted(broken, key=lambda k: INPUT_NAMES.index(k) if k in SPECS else len(INPUT_NAMES)):
        problems.append(f"{name(key)} contains a NUL byte (\\0): remove it; it usually comes from a file or "
                        "secret saved in another encoding.")

    def get(key: str, parser: Any, fallback: Any = None) -> Any:
        text = value(key)
        if not text or key in broken:
            return fallback
        try:
            return parser(text)
        except ValueError as error:
            problems.append(f"{name(key)}: {error}.")
            return fallback

    def require(key: str, hint: str) -> str:
        text = value(key)
        if not text and key not in broken:
            problems.append(f"{name(key)} is empty: {hint}")
        return text

    token = require("dbt_cloud_token", "pass your dbt Cloud API token, e.g. "
                    "`dbt_cloud_token: ${{ secrets.DBT_CLOUD_API_TOKEN }}` (a service token with Job Admin).")
    token_problem = check_token(token) if token and "dbt_cloud_token" not in broken else None
    if token_problem:
        problems.append(f"{name('dbt_cloud_token')} {token_problem}")
    require("dbt_cloud_account_id", "set it to your account id, the number after /deploy/ in dbt Cloud URLs.")
    account_id = get("dbt_cloud_account_id", parse_positive_int)
    allow_http = get("allow_insecure_http", parse_bool, False)
    base_url = get("dbt_cloud_url", lambda t: normalize_url(t, bool(allow_http)), DEFAULT_URL)
    # The floors protect dbt Cloud's rate limit and a real network; a loopback test server needs neither.
    floor = LOOPBACK_FLOOR if is_loopback_url(base_url) else None
    run_id = get("run_id", parse_positive_int)
    job_id = get("dbt_cloud_job_id", parse_positive_int)
    job_name = value("dbt_cloud_job_name") or None
    project_id = get("dbt_cloud_project_id", parse_positive_int)
    environment_id = get("dbt_cloud_environment_id", parse_positive_int)
    if not value("dbt_cloud_job_id") and not value("run_id") and not job_name:
        problems.append(f"{name('dbt_cloud_job_id')} is empty: set the id of the job to trigger (the number after "
                        f"/jobs/ in its URL), or {name('dbt_cloud_job_name')}, or give {name('run_id')} to wait "
                        "on an existing run.")
    if value("dbt_cloud_job_id") and job_name:
        problems.append(f"{name('dbt_cloud_job_name')} and {name('dbt_cloud_job_id')} are both set: give one.")
    latest = get("latest_run", parse_bool, False)
    if latest and value("run_id"):
        problems.append(f"{name('latest_run')} and {name('run_id')} are both set: latest_run finds the run itself; "
                        "give one.")
    max_age = get("max_age", parse_duration)
    if max_age is not None and not latest:
        problems.append(f"{name('max_age')} only applies with {name('latest_run')}: true.")
    if value("dbt_cloud_job_id") and value("run_id"):
        warnings.append(f"{name('run_id')} is set, so {name('dbt_cloud_job_id')} is ignored: dbtgate waits on the "
                        "existing run and triggers nothing.")

    cause = value("cause") or default_cause(env)
    if len(cause) > USER_CAUSE_LIMIT:
        warnings.append(f"{name('cause')} is {len(cause)} characters; dbt Cloud accepts {CAUSE_LIMIT} and dbtgate "
                        f"keeps {MARKER_LENGTH} for its run marker, so it was shortened to {USER_CAUSE_LIMIT}.")
        cause = cause[: USER_CAUSE_LIMIT - 1].rstrip() + "…"
    pull_requests = {key: get(key, parse_positive_int) for key in PULL_REQUEST_INPUTS}
    given = [key for key in PULL_REQUEST_INPUTS if value(key)]
    if len(given) > 1:
        both = "both" if len(given) == 2 else "all"
        problems.append(f"{' and '.join(name(key) for key in given)} are {both} set, but a run belongs to one pull or "
                        "merge request: keep only the one for your git provider.")
    timeout_override = get("timeout_seconds_override",
                           lambda t: parse_non_negative_int(t, INT32_MAX, TIMEOUT_OVERRIDE_LIMIT))
    if timeout_override is not None and timeout_override > ACCOUNT_RUN_LIMIT:
        warnings.append(f"{name('timeout_seconds_override')} is {timeout_override} s, but dbt Cloud also ends "
                        "every run at the account's run duration limit (24 h unless dbt Labs raised it for you).")
    trigger = TriggerOptions(
        cause=cause,
        git_sha=value("git_sha") or None,
        git_branch=value("git_branch") or None,
        **pull_requests,
        schema_override=value("schema_override") or None,
        dbt_version_override=value("dbt_version_override") or None,
        threads_override=get("threads_override", lambda t: parse_positive_int(t, MAX_THREADS, THREADS_LIMIT)),
        target_name_override=value("target_name_override") or None,
        generate_docs_override=get("generate_docs_override", parse_bool),
        timeout_seconds_override=timeout_override,
        steps_override=get("steps_override", parse_steps),
    )
    interval = get("interval", lambda t: parse_interval(t, floor or MIN_INTERVAL), 60.0)
    api_timeout, note = get("api_timeout", lambda t: parse_api_timeout(t, floor or MIN_API_TIMEOUT), (30.0, None))
    if note:
        warnings.append(f"{name('api_timeout')}: {note}")
    timeout = get("timeout", parse_timeout, 7200.0)
    extra = tuple(line.strip() for line in value("artifacts").splitlines() if line.strip())
    for path in extra if "artifacts" not in broken else ():
        if path.startswith(("/", "\\")) or ".." in re.split(r"[/\\]", path):
            problems.append(f"{name('artifacts')}: {_shown(path)} must be a relative artifact path such as "
                            "compiled/my_project/models/orders.sql, without `..`.")
    artifacts_dir = get("artifacts_dir", lambda t: resolve_artifacts_dir(t, env.get("GITHUB_WORKSPACE", "")),
                        resolve_artifacts_dir("", env.get("GITHUB_WORKSPACE", "")))
    max_artifact_size = get("max_artifact_size", parse_size, 1024 ** 3)
    booleans = {key: get(key, parse_bool, SPECS[key].default == "true") for key in (
        "wait_for_job", "failure_on_error", "get_artifacts", "fetch_catalog", "reuse_existing_run", "fail_fast")}
    rerun_attempts = get("rerun_attempts", lambda t: parse_non_negative_int(
        t, 10, "a job that fails that often needs fixing, not retrying: use at most 10"), 0)
    # Cancelling a run someone else started is opt-in: only an explicit value turns it on for run_id.
    for key in ("cancel_on_timeout", "cancel_on_interrupt"):
        explicit = get(key, parse_bool, None)
        booleans[key] = explicit if explicit is not None else (run_id is None and not latest)
    if not booleans["wait_for_job"] and (latest or run_id is not None):
        # Not waiting only makes sense for a run this gate starts: on a run that exists, it would pass the step
        # without looking at how that run ended.
        problems.append(f"{name('wait_for_job')}: false only applies when this gate triggers the run; with "
                        f"{name('latest_run' if latest else 'run_id')} the gate exists to wait and decide. Remove "
                        "wait_for_job.")
    if latest and rerun_attempts:
        problems.append(f"{name('rerun_attempts')} cannot be used with {name('latest_run')}: latest_run triggers "
                        "nothing, and a retry would start a run.")
    if latest and value("git_sha") and len(value("git_sha")) < 7:
        problems.append(f"{name('git_sha')}: with latest_run give at least 7 characters of the commit, so no other "
                        "commit's run can match it.")
    if problems:
        raise ConfigError(problems)
    return GateConfig(
        base_url=base_url, token=token, account_id=account_id, job_id=None if run_id else job_id, run_id=run_id,
        trigger=trigger, wait=booleans["wait_for_job"], failure_on_error=booleans["failure_on_error"],
        interval=interval, api_timeout=api_timeout, timeout=timeout, cancel_on_timeout=booleans["cancel_on_timeout"],
        cancel_on_interrupt=booleans["cancel_on_interrupt"], get_artifacts=booleans["get_artifacts"],
        artifacts_dir=artifacts_dir, workspace=Path(env.get("GITHUB_WORKSPACE") or "."),
        max_artifact_size=max_artifact_size, fetch_catalog=booleans["fetch_catalog"], extra_artifacts=extra,
        project_dir=value("project_dir"), rerun_attempts=rerun_attempts,
        reuse_existing_run=booleans["reuse_existing_run"], warnings=tuple(warnings),
        job_name=None if run_id else job_name, project_id=project_id, environment_id=environment_id,
        latest_run=bool(latest), max_age=max_age, fail_fast=booleans["fail_fast"],
    )

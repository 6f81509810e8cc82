"""Inputs, validated once: from the action's INPUT_* variables, from CLI flags, or from DBT_CLOUD_* variables.

Every source is first turned into the same mapping of input name → raw string, then `parse_config` checks it all
at once and reports every problem (naming the input the way the user wrote it) before anything is triggered.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DEFAULT_URL = "https://cloud.getdbt.com"
CAUSE_LIMIT = 255
# The gate appends " [dbtgate:xxxxxxxx]" to the cause so that a run created by a lost trigger response can be
# found and adopted instead of triggering a duplicate. The user's part must leave room for it.
MARKER_LENGTH = len(" [dbtgate:00000000]")
USER_CAUSE_LIMIT = CAUSE_LIMIT - MARKER_LENGTH


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
    InputSpec("dbt_cloud_job_id", "Id of the job to trigger (required unless run_id is given).",
              cli_flag="--job-id", env_vars=("DBT_CLOUD_JOB_ID",)),
    InputSpec("run_id", "Wait on this existing run instead of triggering a new one (e.g. one started earlier "
              "with wait_for_job: false).", cli_flag="--run-id"),
    InputSpec("cause", "Reason shown in dbt Cloud (at most 236 characters are kept). Default: built from the "
              "repository, workflow run and commit."),
    InputSpec("git_sha", "Git commit to check out for the run."),
    InputSpec("git_branch", "Git branch to check out for the run."),
    InputSpec("github_pull_request_id", "Pull request number; makes the run a CI run in dbt Cloud."),
    InputSpec("schema_override", "Override the target schema, e.g. dbt_pr_123 for pull request 123."),
    InputSpec("dbt_version_override", "Override the dbt version of the job."),
    InputSpec("threads_override", "Override the number of threads."),
    InputSpec("target_name_override", "Override target.name."),
    InputSpec("generate_docs_override", "Override whether the run generates docs (true/false)."),
    InputSpec("timeout_seconds_override", "Override dbt Cloud's own timeout for the run, in seconds."),
    InputSpec("steps_override", "Replace the job's steps: a YAML list or one dbt command per line."),
    InputSpec("rerun_attempts", "When the run ends in error and dbt Cloud can retry it, rerun it from the point of "
              "failure up to this many times (within timeout). Cancelled runs are never retried.", "0"),
    InputSpec("reuse_existing_run", "If a run of the job is already queued or running and matches what this gate "
              "would trigger (same git_sha, git_branch and overrides, where given), wait on it instead of queueing "
              "another.", "false"),
    InputSpec("wait_for_job", "Wait for the run to finish. false: trigger, set run_id, and return at once.",
              "true", cli_flag="--wait"),
    InputSpec("failure_on_error", "Fail the step when the run does not succeed. false: report the outcome in "
              "the outputs and exit 0.", "true", cli_flag="--fail-on-error"),
    InputSpec("interval", "Longest time between two polls, in seconds. dbtgate polls more often right after the "
              "trigger and as the run nears its end (estimated from its progress and the job's history).", "60"),
    InputSpec("api_timeout", "Timeout of one HTTP request to dbt Cloud, in seconds.", "30"),
    InputSpec("timeout", "The longest the gate waits, retries and queueing included: seconds or a duration "
              "such as 45m, 2h, 1h30m.", "2h"),
    InputSpec("cancel_on_timeout", "Cancel the dbt Cloud run when the gate gives up waiting, so no warehouse "
              "money burns for a pipeline that already failed. Empty means: yes for a run this gate triggered, no "
              "for a run given by run_id."),
    InputSpec("cancel_on_interrupt", "Cancel the dbt Cloud run when the workflow is cancelled (SIGINT/SIGTERM). "
              "Empty means: yes for a run this gate triggered, no for a run given by run_id."),
    InputSpec("allow_insecure_http", "Allow plain http:// to a host that is not loopback (never for real "
              "tokens).", "false"),
    InputSpec("get_artifacts", "Download run_results.json and manifest.json into artifacts_dir.", "true"),
    InputSpec("artifacts_dir", "Where artifacts go, relative to the workspace.", "target"),
    InputSpec("fetch_catalog", "Also download catalog.json (runs that generate docs).", "false"),
    InputSpec("artifacts", "More artifact paths to download, one per line (e.g. compiled/...).",
              cli_flag="--artifact"),
    InputSpec("project_dir", "Folder of the dbt project in the repository, so annotations point at the right "
              "files (e.g. transform/).", ""),
)
INPUT_NAMES = tuple(spec.name for spec in INPUTS)
SPECS = {spec.name: spec for spec in INPUTS}
TRUE_WORDS = frozenset({"true", "yes", "1", "on", "y"})
FALSE_WORDS = frozenset({"false", "no", "0", "off", "n"})
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)")
_UNITS = {"": 1, "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1, "m": 60, "min": 60, "mins": 60,
          "minute": 60, "minutes": 60, "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
          "d": 86400, "day": 86400, "days": 86400}


class ConfigError(Exception):
    """Bad input: every problem found, each naming the input and how to fix it. Nothing was triggered."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class TriggerOptions:
    cause: str
    git_sha: str | None = None
    git_branch: str | None = None
    github_pull_request_id: int | None = None
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
        for name in ("git_sha", "git_branch", "github_pull_request_id", "schema_override", "dbt_version_override",
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
    fetch_catalog: bool = False
    extra_artifacts: tuple[str, ...] = ()
    project_dir: str = ""
    rerun_attempts: int = 0
    reuse_existing_run: bool = False
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
    """Seconds from "90", "90s", "45m", "2h", "1h30m", "1.5h" or "2 hours"; positive and finite."""
    cleaned = text.strip().lower().replace(" ", "")
    if not cleaned:
        raise ValueError("is empty: use seconds or a duration such as 45m or 2h")
    position, total = 0, 0.0
    for match in _DURATION_PART.finditer(cleaned):
        if match.start() != position or match.group(2) not in _UNITS:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if position != len(cleaned) or total <= 0:
        raise ValueError(f"{text!r} is not a duration: use seconds (3600) or a duration such as 45m, 2h, 1h30m")
    return total


def parse_positive_int(text: str) -> int:
    cleaned = text.strip()
    if not re.fullmatch(r"\+?\d+", cleaned) or int(cleaned) <= 0:
        raise ValueError(f"{text!r} is not a positive whole number")
    return int(cleaned)


def parse_non_negative_int(text: str) -> int:
    cleaned = text.strip()
    if not re.fullmatch(r"\+?\d+", cleaned):
        raise ValueError(f"{text!r} is not a whole number of zero or more")
    return int(cleaned)


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


def normalize_url(text: str, allow_insecure_http: bool) -> str:
    raw = text.strip()
    if "://" not in raw:
        raw = "https://" + raw  # dbt-cloud-cli's DBT_CLOUD_HOST is a bare host name
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{text!r} is not a URL: use your access URL, e.g. https://ab123.us1.dbt.com")
    path = parts.path.rstrip("/")
    if path.endswith("/api/v2"):
        path = path[: -len("/api/v2")]  # people paste the API base; it means the same host
    if path or parts.query or parts.fragment:
        raise ValueError(f"{text!r} has a path; give only the scheme and host, e.g. https://ab123.us1.dbt.com")
    if parts.scheme == "http" and not allow_insecure_http and not _is_loopback(parts.hostname):
        raise ValueError(f"{text!r} uses plain http:// to a host that is not loopback, which would send the token "
                         "in clear text: use https://, or set allow_insecure_http: true if you really mean it")
    return f"{parts.scheme}://{parts.netloc}"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
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

    def get(key: str, parser: Any, fallback: Any = None) -> Any:
        text = value(key)
        if not text:
            return fallback
        try:
            return parser(text)
        except ValueError as error:
            problems.append(f"{name(key)}: {error}.")
            return fallback

    def require(key: str, hint: str) -> str:
        text = value(key)
        if not text:
            problems.append(f"{name(key)} is empty: {hint}")
        return text

    token = require("dbt_cloud_token", "pass your dbt Cloud API token, e.g. "
                    "`dbt_cloud_token: ${{ secrets.DBT_CLOUD_API_TOKEN }}` (a service token with Job Admin).")
    if token and any(ch.isspace() for ch in token):
        problems.append(f"{name('dbt_cloud_token')} contains whitespace: copy the token alone, without 'Token ' "
                        "or a trailing newline.")
    require("dbt_cloud_account_id", "set it to your account id, the number after /deploy/ in dbt Cloud URLs.")
    account_id = get("dbt_cloud_account_id", parse_positive_int)
    allow_http = get("allow_insecure_http", parse_bool, False)
    base_url = get("dbt_cloud_url", lambda t: normalize_url(t, bool(allow_http)), DEFAULT_URL)
    run_id = get("run_id", parse_positive_int)
    job_id = get("dbt_cloud_job_id", parse_positive_int)
    if not value("dbt_cloud_job_id") and not value("run_id"):
        problems.append(f"{name('dbt_cloud_job_id')} is empty: set the id of the job to trigger (the number after "
                        f"/jobs/ in its URL), or give {name('run_id')} to wait on an existing run.")
    if value("dbt_cloud_job_id") and value("run_id"):
        warnings.append(f"{name('run_id')} is set, so {name('dbt_cloud_job_id')} is ignored: dbtgate waits on the "
                        "existing run and triggers nothing.")

    cause = value("cause") or default_cause(env)
    if len(cause) > USER_CAUSE_LIMIT:
        warnings.append(f"{name('cause')} is {len(cause)} characters; dbt Cloud accepts {CAUSE_LIMIT} and dbtgate "
                        f"keeps {MARKER_LENGTH} for its run marker, so it was shortened to {USER_CAUSE_LIMIT}.")
        cause = cause[: USER_CAUSE_LIMIT - 1].rstrip() + "…"
    trigger = TriggerOptions(
        cause=cause,
        git_sha=value("git_sha") or None,
        git_branch=value("git_branch") or None,
        github_pull_request_id=get("github_pull_request_id", parse_positive_int),
        schema_override=value("schema_override") or None,
        dbt_version_override=value("dbt_version_override") or None,
        threads_override=get("threads_override", parse_positive_int),
        target_name_override=value("target_name_override") or None,
        generate_docs_override=get("generate_docs_override", parse_bool),
        timeout_seconds_override=get("timeout_seconds_override", parse_non_negative_int),
        steps_override=get("steps_override", parse_steps),
    )
    interval = get("interval", parse_duration, 60.0)
    api_timeout = get("api_timeout", parse_duration, 30.0)
    timeout = get("timeout", parse_duration, 7200.0)
    extra = tuple(line.strip() for line in value("artifacts").splitlines() if line.strip())
    for path in extra:
        if path.startswith("/") or ".." in Path(path).parts:
            problems.append(f"{name('artifacts')}: {path!r} must be a relative artifact path such as "
                            "compiled/my_project/models/orders.sql.")
    artifacts_dir = Path(value("artifacts_dir") or "target")
    if not artifacts_dir.is_absolute() and env.get("GITHUB_WORKSPACE"):
        artifacts_dir = Path(env["GITHUB_WORKSPACE"]) / artifacts_dir
    booleans = {key: get(key, parse_bool, SPECS[key].default == "true") for key in (
        "wait_for_job", "failure_on_error", "get_artifacts", "fetch_catalog", "reuse_existing_run")}
    rerun_attempts = get("rerun_attempts", parse_non_negative_int, 0)
    if rerun_attempts > 10:
        problems.append(f"{name('rerun_attempts')}: {rerun_attempts} is more than 10; a job that fails that often "
                        "needs fixing, not retrying.")
    # Cancelling a run someone else started is opt-in: only an explicit value turns it on for run_id.
    for key in ("cancel_on_timeout", "cancel_on_interrupt"):
        explicit = get(key, parse_bool, None)
        booleans[key] = explicit if explicit is not None else (run_id is None)
    if problems:
        raise ConfigError(problems)
    return GateConfig(
        base_url=base_url, token=token, account_id=account_id, job_id=None if run_id else job_id, run_id=run_id,
        trigger=trigger, wait=booleans["wait_for_job"], failure_on_error=booleans["failure_on_error"],
        interval=interval, api_timeout=api_timeout, timeout=timeout, cancel_on_timeout=booleans["cancel_on_timeout"],
        cancel_on_interrupt=booleans["cancel_on_interrupt"], get_artifacts=booleans["get_artifacts"],
        artifacts_dir=artifacts_dir, fetch_catalog=booleans["fetch_catalog"], extra_artifacts=extra,
        project_dir=value("project_dir"), rerun_attempts=rerun_attempts,
        reuse_existing_run=booleans["reuse_existing_run"], warnings=tuple(warnings),
    )

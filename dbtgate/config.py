"""The gate's configuration, validated once: from the action's INPUT_* variables, from CLI flags, from DBT_CLOUD_*
variables, or from the Python API's keyword arguments.

Every source is first turned into the same mapping of input name → raw string (the inputs are declared in
inputs.py, their values parsed by parsers.py), then `parse_config` checks it group by group and reports every
problem at once (naming the input the way the user wrote it) before anything is triggered.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from dbtgate.errors import ConfigError
from dbtgate.inputs import DEFAULT_URL, INPUT_NAMES, PULL_REQUEST_INPUTS, SPECS
from dbtgate.parsers import (
    ACCOUNT_RUN_LIMIT,
    CAUSE_LIMIT,
    INT32_MAX,
    LOOPBACK_FLOOR,
    MARKER_LENGTH,
    MAX_THREADS,
    MIN_API_TIMEOUT,
    MIN_INTERVAL,
    THREADS_LIMIT,
    TIMEOUT_OVERRIDE_LIMIT,
    USER_CAUSE_LIMIT,
    FailFast,
    check_token,
    is_loopback_url,
    normalize_url,
    parse_api_timeout,
    parse_bool,
    parse_duration,
    parse_fail_fast,
    parse_interval,
    parse_non_negative_int,
    parse_positive_int,
    parse_size,
    parse_steps,
    parse_timeout,
    resolve_artifacts_dir,
    resolve_workspace_file,
    shown,
)

MIN_SHA_PREFIX = 7       # git's own shortest abbreviation: a shorter prefix of a commit could name many commits


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
    junit_xml: Path | None = None   # where the JUnit report goes (inside the workspace), None: no report
    rerun_attempts: int = 0
    reuse_existing_run: bool = False
    job_name: str | None = None
    project_id: int | None = None
    environment_id: int | None = None
    latest_run: bool = False
    max_age: float | None = None
    fail_fast: FailFast = FailFast.OFF
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).netloc


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
class _Inputs:
    """The raw values and what is found wrong with them; each builder below reads its group through this."""

    def __init__(self, raw: Mapping[str, str], env: Mapping[str, str], labels: Mapping[str, str]) -> None:
        self.raw, self.env, self.labels = raw, env, labels
        self.problems: list[str] = []
        self.warnings: list[str] = []
        # A NUL byte is never meant, cuts strings short in C code underneath (paths, headers), and the value may be
        # the token: say which input, never what it contains, and check nothing else about it.
        self.broken = {key for key in raw if "\x00" in (raw.get(key) or "")}
        order = {name: index for index, name in enumerate(INPUT_NAMES)}
        for key in sorted(self.broken, key=lambda k: order.get(k, len(order))):
            self.problems.append(f"{self.name(key)} contains a NUL byte (\\0): remove it; it usually comes from a "
                                 "file or secret saved in another encoding.")

    def name(self, key: str) -> str:
        return self.labels.get(key, f"input `{key}`")

    def value(self, key: str) -> str:
        return (self.raw.get(key) or "").strip()

    def get(self, key: str, parser: Any, fallback: Any = None) -> Any:
        text = self.value(key)
        if not text or key in self.broken:
            return fallback
        try:
            return parser(text)
        except ValueError as error:
            self.problems.append(f"{self.name(key)}: {error}.")
            return fallback

    def flag(self, key: str) -> bool:
        """A true/false input with its declared default."""
        return bool(self.get(key, parse_bool, SPECS[key].default == "true"))

    def require(self, key: str, hint: str) -> str:
        text = self.value(key)
        if not text and key not in self.broken:
            self.problems.append(f"{self.name(key)} is empty: {hint}")
        return text


class _Credentials(NamedTuple):
    base_url: str
    token: str
    account_id: int
    floor: float | None          # the loopback floor for intervals and timeouts, None on a real host


def _credentials(given: _Inputs) -> _Credentials:
    name = given.name
    token = given.require("dbt_cloud_token", "pass your dbt Cloud API token, e.g. "
                          "`dbt_cloud_token: ${{ secrets.DBT_CLOUD_API_TOKEN }}` (a service token with Job Admin).")
    token_problem = check_token(token) if token and "dbt_cloud_token" not in given.broken else None
    if token_problem:
        given.problems.append(f"{name('dbt_cloud_token')} {token_problem}")
    given.require("dbt_cloud_account_id", "set it to your account id, the number after /deploy/ in dbt Cloud URLs.")
    account_id = given.get("dbt_cloud_account_id", parse_positive_int)
    allow_http = given.get("allow_insecure_http", parse_bool, False)
    base_url = given.get("dbt_cloud_url", lambda t: normalize_url(t, bool(allow_http)), DEFAULT_URL)
    # The floors protect dbt Cloud's rate limit and a real network; a loopback test server needs neither.
    return _Credentials(base_url, token, account_id, LOOPBACK_FLOOR if is_loopback_url(base_url) else None)


class _Target(NamedTuple):
    job_id: int | None
    run_id: int | None
    job_name: str | None
    project_id: int | None
    environment_id: int | None
    latest_run: bool
    max_age: float | None


def _target(given: _Inputs) -> _Target:
    """Which run to gate on: an existing one (run_id), the job's latest (latest_run), or a new run of a job."""
    name, value = given.name, given.value
    run_id = given.get("run_id", parse_positive_int)
    job_id = given.get("dbt_cloud_job_id", parse_positive_int)
    job_name = value("dbt_cloud_job_name") or None
    if not value("dbt_cloud_job_id") and not value("run_id") and not job_name:
        given.problems.append(f"{name('dbt_cloud_job_id')} is empty: set the id of the job to trigger (the number "
                              f"after /jobs/ in its URL), or {name('dbt_cloud_job_name')}, or give {name('run_id')} "
                              "to wait on an existing run.")
    if value("dbt_cloud_job_id") and job_name:
        given.problems.append(f"{name('dbt_cloud_job_name')} and {name('dbt_cloud_job_id')} are both set: give one.")
    latest = bool(given.get("latest_run", parse_bool, False))
    if latest and value("run_id"):
        given.problems.append(f"{name('latest_run')} and {name('run_id')} are both set: latest_run finds the run "
                              "itself; give one.")
    max_age = given.get("max_age", parse_duration)
    if max_age is not None and not latest:
        given.problems.append(f"{name('max_age')} only applies with {name('latest_run')}: true.")
    if value("dbt_cloud_job_id") and value("run_id"):
        given.warnings.append(f"{name('run_id')} is set, so {name('dbt_cloud_job_id')} is ignored: dbtgate waits on "
                              "the existing run and triggers nothing.")
    if latest and value("git_sha") and len(value("git_sha")) < MIN_SHA_PREFIX:
        given.problems.append(f"{name('git_sha')}: with latest_run give at least {MIN_SHA_PREFIX} characters of "
                              "the commit, so no other commit's run can match it.")
    return _Target(None if run_id else job_id, run_id, None if run_id else job_name,
                   given.get("dbt_cloud_project_id", parse_positive_int),
                   given.get("dbt_cloud_environment_id", parse_positive_int), latest, max_age)


def _trigger(given: _Inputs) -> TriggerOptions:
    """What a triggered run is asked to do: the cause and every override."""
    name, value = given.name, given.value
    cause = value("cause") or default_cause(given.env)
    if len(cause) > USER_CAUSE_LIMIT:
        given.warnings.append(f"{name('cause')} is {len(cause)} characters; dbt Cloud accepts {CAUSE_LIMIT} and "
                              f"dbtgate keeps {MARKER_LENGTH} for its run marker, so it was shortened to "
                              f"{USER_CAUSE_LIMIT}.")
        cause = cause[: USER_CAUSE_LIMIT - 1].rstrip() + "…"
    pull_requests = {key: given.get(key, parse_positive_int) for key in PULL_REQUEST_INPUTS}
    set_ids = [key for key in PULL_REQUEST_INPUTS if value(key)]
    if len(set_ids) > 1:
        both = "both" if len(set_ids) == 2 else "all"
        given.problems.append(f"{' and '.join(name(key) for key in set_ids)} are {both} set, but a run belongs to "
                              "one pull or merge request: keep only the one for your git provider.")
    timeout_override = given.get("timeout_seconds_override",
                                 lambda t: parse_non_negative_int(t, INT32_MAX, TIMEOUT_OVERRIDE_LIMIT))
    if timeout_override is not None and timeout_override > ACCOUNT_RUN_LIMIT:
        given.warnings.append(f"{name('timeout_seconds_override')} is {timeout_override} s, but dbt Cloud also ends "
                              "every run at the account's run duration limit (24 h unless dbt Labs raised it for "
                              "you).")
    return TriggerOptions(
        cause=cause, git_sha=value("git_sha") or None, git_branch=value("git_branch") or None, **pull_requests,
        schema_override=value("schema_override") or None, dbt_version_override=value("dbt_version_override") or None,
        threads_override=given.get("threads_override", lambda t: parse_positive_int(t, MAX_THREADS, THREADS_LIMIT)),
        target_name_override=value("target_name_override") or None,
        generate_docs_override=given.get("generate_docs_override", parse_bool),
        timeout_seconds_override=timeout_override, steps_override=given.get("steps_override", parse_steps))


class _Waiting(NamedTuple):
    wait: bool
    interval: float
    api_timeout: float
    timeout: float
    cancel_on_timeout: bool
    cancel_on_interrupt: bool
    rerun_attempts: int
    reuse_existing_run: bool
    fail_fast: FailFast


def _waiting(given: _Inputs, target: _Target, floor: float | None) -> _Waiting:
    """How to wait and when to give up, retry or cancel."""
    name = given.name
    interval = given.get("interval", lambda t: parse_interval(t, floor or MIN_INTERVAL),
                         parse_duration(SPECS["interval"].default))
    api_timeout, note = given.get("api_timeout", lambda t: parse_api_timeout(t, floor or MIN_API_TIMEOUT),
                                  (parse_duration(SPECS["api_timeout"].default), None))
    if note:
        given.warnings.append(f"{name('api_timeout')}: {note}")
    timeout = given.get("timeout", parse_timeout, parse_timeout(SPECS["timeout"].default))
    rerun_attempts = given.get("rerun_attempts", lambda t: parse_non_negative_int(
        t, 10, "a job that fails that often needs fixing, not retrying: use at most 10"), 0)
    # Cancelling a run someone else started is opt-in: only an explicit value turns it on for run_id/latest_run.
    ours = target.run_id is None and not target.latest_run
    cancel = {key: given.get(key, parse_bool, None) for key in ("cancel_on_timeout", "cancel_on_interrupt")}
    wait = given.flag("wait_for_job")
    if not wait and not ours:
        # Not waiting only makes sense for a run this gate starts: on a run that exists, it would pass the step
        # without looking at how that run ended.
        given.problems.append(f"{name('wait_for_job')}: false only applies when this gate triggers the run; with "
                              f"{name('latest_run' if target.latest_run else 'run_id')} the gate exists to wait "
                              "and decide. Remove wait_for_job.")
    if target.latest_run and rerun_attempts:
        given.problems.append(f"{name('rerun_attempts')} cannot be used with {name('latest_run')}: latest_run "
                              "triggers nothing, and a retry would start a run.")
    fail_fast = given.get("fail_fast", parse_fail_fast, FailFast.OFF)
    if fail_fast is FailFast.DBT and not ours:
        given.problems.append(f"{name('fail_fast')}: dbt adds dbt's --fail-fast to the commands of a run this gate "
                              f"triggers; with {name('latest_run' if target.latest_run else 'run_id')} the run is "
                              "already going. If a gate triggered it with fail_fast: dbt, it stops itself: leave "
                              "fail_fast out here. Otherwise use fail_fast: true (dbtgate reads its log and fails at "
                              "the first failure).")
    if fail_fast is FailFast.DBT and given.flag("reuse_existing_run"):
        given.problems.append(f"{name('fail_fast')}: dbt cannot be used with {name('reuse_existing_run')}: a run in "
                              "flight was started without dbt's --fail-fast. Remove one of them.")
    return _Waiting(wait, interval, api_timeout, timeout,
                    ours if cancel["cancel_on_timeout"] is None else cancel["cancel_on_timeout"],
                    ours if cancel["cancel_on_interrupt"] is None else cancel["cancel_on_interrupt"],
                    rerun_attempts, given.flag("reuse_existing_run"), fail_fast)


class _Reporting(NamedTuple):
    failure_on_error: bool
    get_artifacts: bool
    artifacts_dir: Path
    max_artifact_size: int
    fetch_catalog: bool
    extra_artifacts: tuple[str, ...]
    project_dir: str
    junit_xml: Path | None


def _reporting(given: _Inputs) -> _Reporting:
    """What the step reports and saves for later steps."""
    extra = tuple(line.strip() for line in given.value("artifacts").splitlines() if line.strip())
    for path in extra if "artifacts" not in given.broken else ():
        if path.startswith(("/", "\\")) or ".." in re.split(r"[/\\]", path):
            given.problems.append(f"{given.name('artifacts')}: {shown(path)} must be a relative artifact path such "
                                  "as compiled/my_project/models/orders.sql, without `..`.")
    workspace = given.env.get("GITHUB_WORKSPACE", "")
    artifacts_dir = given.get("artifacts_dir", lambda t: resolve_artifacts_dir(t, workspace),
                              resolve_artifacts_dir("", workspace))
    return _Reporting(given.flag("failure_on_error"), given.flag("get_artifacts"), artifacts_dir,
                      given.get("max_artifact_size", parse_size, parse_size(SPECS["max_artifact_size"].default)),
                      given.flag("fetch_catalog"), extra, given.value("project_dir"),
                      given.get("junit_xml", lambda t: resolve_workspace_file(t, workspace)))


def parse_config(raw: Mapping[str, str], env: Mapping[str, str], label: Mapping[str, str] | None = None
                 ) -> GateConfig:
    """Validate every input at once, group by group; every problem found is reported together (ConfigError)
    before anything is triggered. `label` says how each input is named to this user (input, flag, variable)."""
    given = _Inputs(raw, env, dict(label or {}))
    credentials = _credentials(given)
    target = _target(given)
    trigger = _trigger(given)
    waiting = _waiting(given, target, credentials.floor)
    reporting = _reporting(given)
    if given.problems:
        raise ConfigError(given.problems)
    return GateConfig(
        base_url=credentials.base_url, token=credentials.token, account_id=credentials.account_id,
        job_id=target.job_id, run_id=target.run_id, job_name=target.job_name, project_id=target.project_id,
        environment_id=target.environment_id, latest_run=target.latest_run, max_age=target.max_age,
        trigger=trigger, wait=waiting.wait, interval=waiting.interval, api_timeout=waiting.api_timeout,
        timeout=waiting.timeout, cancel_on_timeout=waiting.cancel_on_timeout,
        cancel_on_interrupt=waiting.cancel_on_interrupt, rerun_attempts=waiting.rerun_attempts,
        reuse_existing_run=waiting.reuse_existing_run, fail_fast=waiting.fail_fast,
        failure_on_error=reporting.failure_on_error, get_artifacts=reporting.get_artifacts,
        artifacts_dir=reporting.artifacts_dir, workspace=Path(env.get("GITHUB_WORKSPACE") or "."),
        max_artifact_size=reporting.max_artifact_size, fetch_catalog=reporting.fetch_catalog,
        extra_artifacts=reporting.extra_artifacts, project_dir=reporting.project_dir,
        junit_xml=reporting.junit_xml, warnings=tuple(given.warnings),
    )

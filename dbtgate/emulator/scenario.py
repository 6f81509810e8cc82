"""The scenario language: which jobs exist, how their runs behave, and which faults the API injects.

A scenario is a small YAML file (see docs/emulator.md for the full reference and examples):

    account_id: 1
    token: emulator-token
    time_scale: 60            # emulated seconds per real second
    jobs:
      - id: 2
        name: Nightly build
        execute_steps: ["dbt build"]
        outcome: error         # or a list, one per run: [error, success]
        run_seconds: 300
    faults:
      - kind: http_error
        endpoint: get_run
        status: 503
        count: 3
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from dbtgate.emulator.project import FUSION_VERSION, SAMPLE_PACKAGE, NodeResult, ProjectSpec, sample_node

ENDPOINTS = frozenset({"trigger", "rerun", "retry", "retry_details", "get_run", "list_runs", "cancel",
                       "list_artifacts", "get_artifact", "get_job", "list_jobs", "get_step", "get_job_artifact",
                       "list_accounts", "get_account", "*"})
FAULT_KINDS = frozenset({
    "http_error",               # a status code with an HTML, JSON or empty body (5xx bursts, 429, 401 midway)
    "malformed_json",           # 200 with a body that is not JSON
    "drop_connection",          # the connection closes without any response
    "slow",                     # the response comes after `delay` real seconds
    "not_found_new_run",        # 404 for the first `polls` GETs of each brand-new run
    "lose_trigger_response",    # the run is created, then the connection closes without a response
    "delay_trigger_response",   # the run is created, the response comes after `delay` real seconds
    "unknown_status",           # get_run reports status `code` (an unknown status code)
    "trickle",                  # headers at once, then the body one byte every `delay` real seconds
    "huge_body",                # the body is `size` bytes: the real envelope padded with a giant string, or junk
    "gzip_bomb",                # Content-Encoding: gzip, a small body that inflates to `size` bytes
    "hostile_text",             # text fields carry `payload` (workflow commands, markdown, the echoed token)
    "foreign_rerun",            # a rerun/retry answers with a run that is not the retry it asked for
    "foreign_run",              # get_run answers with another run's id or another job's run
    "envelope_false",           # a 200 whose envelope says is_success: false
    "ignore_filters",           # list_runs ignores status / job filters
    "trigger_null_data",        # the run is created, the answer carries data: null (or a string id)
})
# Kinds that only make sense for some endpoints; the rest apply wherever `endpoint` says.
KIND_ENDPOINTS: dict[str, frozenset[str]] = {
    "not_found_new_run": frozenset({"get_run"}),
    "unknown_status": frozenset({"get_run"}),
    "foreign_run": frozenset({"get_run"}),
    "lose_trigger_response": frozenset({"trigger", "rerun", "retry"}),
    "delay_trigger_response": frozenset({"trigger", "rerun", "retry"}),
    "trigger_null_data": frozenset({"trigger", "rerun", "retry"}),
    "foreign_rerun": frozenset({"rerun", "retry"}),
    "ignore_filters": frozenset({"list_runs"}),
}
# `mode` picks a variant of a kind; the first one listed is the default.
KIND_MODES: dict[str, tuple[str, ...]] = {
    "huge_body": ("json", "junk"),
    "foreign_rerun": ("not_a_retry", "wrong_retry", "other_id", "other_job"),
    "foreign_run": ("other_id", "other_job"),
    "ignore_filters": ("both", "status", "job"),
    "trigger_null_data": ("null", "string_id"),
}
# What hostile_text can reach: run, step, job, trigger and error text, step logs and run_results.json messages.
HOSTILE_FIELDS = frozenset({"job_name", "step_name", "status_humanized", "status_message", "href", "trigger_cause",
                            "retry_reason", "user_message", "developer_message", "step_logs", "node_message",
                            "git_branch"})
# GitHub workflow commands old and new, a markdown heading, a link, a tab and `{token}`: the token the request
# carried, echoed back (a client that prints it unmasked leaks it).
HOSTILE_PAYLOAD = ("\n::error::injected\n::add-mask::x\n::stop-commands::abc\n##[error]legacy\n# fake"
                   "\n[details](https://evil.example/phish)\ttab\t{token}")
DEFAULT_SIZES = {"huge_body": 64 * 1024 * 1024, "gzip_bomb": 1024 * 1024 * 1024}
OUTCOMES = frozenset({"success", "error", "cancelled"})


DEFAULT_FAILURES: tuple[NodeResult, ...] = (
    NodeResult(f"test.{SAMPLE_PACKAGE}.not_null_orders_order_id", "fail", "Got 3 results, configured to fail if != 0",
               0.61, 3),
)
SIZES = {"small": 15, "medium": 120, "large": 800, "huge": 5000}


class ScenarioError(ValueError):
    """A scenario file that does not say what it means; the message names the field."""


@dataclass(frozen=True)
class JobSpec:
    id: int
    name: str
    execute_steps: tuple[str, ...] = ("dbt build",)
    outcomes: tuple[str, ...] = ("success",)
    queue_seconds: float = 2.0
    start_seconds: float = 5.0
    setup_seconds: float = 3.0      # each of "Clone git repository" and "Create profile ..."
    run_seconds: float = 60.0       # each dbt command
    run_seconds_per_run: tuple[float, ...] = ()  # per run, overriding run_seconds; the last one repeats
    timeout_seconds: int = 0
    generate_docs: bool = False
    artifacts: bool = True          # False: a job whose runs produce no artifacts (404 on fetch)
    retryable: bool = True
    failures: tuple[NodeResult, ...] = DEFAULT_FAILURES
    warnings: tuple[NodeResult, ...] = ()
    project_id: int = 1
    environment_id: int = 1
    # The shape of its runs (docs/emulator.md, "Run shapes").
    project: ProjectSpec | None = None     # None: the small jaffle_shop sample project
    failure_at: float = 0.5                # where in the run a failure happens (fraction), when none is named
    failure_node_type: str = "test"        # model | test | source
    explicit_failures: bool = False        # `failures:` was given
    finalize_seconds: tuple[float, float] = (1.0, 6.0)
    queue_range: tuple[float, float] | None = None
    duration_median: float | None = None   # seconds the main dbt command takes in a typical run (project jobs)
    duration_spread: float = 0.0           # log-normal sigma of run-to-run variation
    slow_runs: float = 0.0                 # fraction of runs that take about twice as long
    seed: int = 0
    history: int = 0                       # finished runs that exist before the emulator starts
    cron: str | None = None
    dbt_version: str = "latest"            # the job's dbt version ("latest", "latest-fusion", "1.10", "2.0")
    engine: str = "core"                   # core | fusion: which dbt the runs speak (from dbt_version or `engine`)
    fusion_version: str = FUSION_VERSION   # what a Fusion run reports (its log banner, run_results.json shape)

    @property
    def fusion(self) -> bool:
        return self.engine == "fusion"

    def outcome_for(self, attempt: int) -> str:
        """The outcome of the job's attempt-th run (0-based); the last listed outcome repeats."""
        return self.outcomes[min(attempt, len(self.outcomes) - 1)]

    def run_seconds_for(self, attempt: int) -> float:
        """How long each dbt command of the attempt-th run takes; `run_seconds: [..]` lists one per run."""
        if not self.run_seconds_per_run:
            return self.run_seconds
        return self.run_seconds_per_run[min(attempt, len(self.run_seconds_per_run) - 1)]


@dataclass(frozen=True)
class FaultSpec:
    kind: str
    endpoint: str = "*"
    status: int = 503
    body: str = "html"                 # html | json | empty
    retry_after: str | None = None
    count: int = 1                     # how many requests it hits; 0 = every matching request
    after: int = 0                     # matching requests let through before it starts
    window: tuple[float, float] | None = None  # emulated seconds since start, [from, to)
    delay: float = 0.0                 # real seconds, for slow / delay_trigger_response; per byte for trickle
    polls: int = 2                     # for not_found_new_run
    code: int = 99                     # for unknown_status
    job_id: int | None = None          # only requests about this job (trigger/rerun/get_job)
    size: int = 0                      # bytes, for huge_body / gzip_bomb
    mode: str = ""                     # the variant of a kind (KIND_MODES)
    fields: tuple[str, ...] = ()       # for hostile_text; empty = all of HOSTILE_FIELDS
    payload: str = HOSTILE_PAYLOAD     # for hostile_text; `{token}` becomes the token the request carried


@dataclass(frozen=True)
class Scenario:
    account_id: int = 1
    token: str = "emulator-token"
    time_scale: float = 1.0
    jobs: tuple[JobSpec, ...] = ()
    faults: tuple[FaultSpec, ...] = ()
    first_run_id: int = 70_000_001

    def job(self, job_id: int) -> JobSpec | None:
        return next((job for job in self.jobs if job.id == job_id), None)


def load_scenario(path: str | Path | None = None, **overrides: Any) -> Scenario:
    """Read a scenario file; with no path, the built-in demo scenario. Keyword overrides replace top-level keys."""
    if path is None:
        text = resources.files("dbtgate.emulator").joinpath("default_scenario.yaml").read_text("utf-8")
        source = "the built-in scenario"
    else:
        text = Path(path).read_text("utf-8")
        source = str(path)
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise ScenarioError(f"{source} is not valid YAML: {error}") from error
    if not isinstance(raw, dict):
        raise ScenarioError(f"{source} must be a mapping with keys such as jobs: and faults:")
    raw.update(overrides)
    return parse_scenario(raw)


def parse_scenario(raw: dict[str, Any]) -> Scenario:
    unknown = set(raw) - {"account_id", "token", "time_scale", "jobs", "faults", "first_run_id"}
    if unknown:
        raise ScenarioError(f"unknown top-level key(s) {sorted(unknown)}")
    jobs = tuple(_parse_job(item, i) for i, item in enumerate(raw.get("jobs") or []))
    if len({job.id for job in jobs}) != len(jobs):
        raise ScenarioError("jobs: two jobs share an id")
    faults = tuple(_parse_fault(item, i) for i, item in enumerate(raw.get("faults") or []))
    time_scale = float(raw.get("time_scale", 1.0))
    if time_scale <= 0:
        raise ScenarioError("time_scale must be positive")
    return Scenario(
        account_id=int(raw.get("account_id", 1)),
        token=str(raw.get("token", "emulator-token")),
        time_scale=time_scale,
        jobs=jobs,
        faults=faults,
        first_run_id=int(raw.get("first_run_id", 70_000_001)),
    )


def _node_results(items: Any, where: str, default_status: str, shaped: bool = False) -> tuple[NodeResult, ...]:
    if not isinstance(items, list):
        raise ScenarioError(f"{where} must be a list of {{node, status, message}}")
    results = []
    for item in items:
        if isinstance(item, str):
            item = {"node": item}
        if not isinstance(item, dict) or "node" not in item:
            raise ScenarioError(f"{where}: each entry needs a node (a unique id or a name)")
        if shaped:
            status = str(item.get("status", default_status))
            results.append(NodeResult(str(item["node"]), status, str(item.get("message", "")),
                                      float(item.get("execution_time", 0.8)),
                                      int(item["failures"]) if "failures" in item else None))
            continue
        node = sample_node(str(item["node"]))
        status = str(item.get("status", default_status))
        default_message = "Got 1 result, configured to warn if != 0" if status == "warn" else (
            "Got 1 result, configured to fail if != 0" if node.resource_type == "test" else
            f"Database Error in model {node.name}\n  000904 (42000): SQL compilation error: invalid identifier "
            "'ORDER_TOTAL'")
        results.append(NodeResult(node.unique_id, status, str(item.get("message", default_message)),
                                  float(item.get("execution_time", 0.8)),
                                  int(item.get("failures", 1)) if node.resource_type == "test" else None))
    return tuple(results)


def _parse_job(item: Any, index: int) -> JobSpec:
    where = f"jobs[{index}]"
    if not isinstance(item, dict) or "id" not in item:
        raise ScenarioError(f"{where} needs at least an id")
    known = (set(JobSpec.__dataclass_fields__) - {"failure_at", "failure_node_type", "explicit_failures",
                                                  "queue_range", "duration_median", "duration_spread", "slow_runs"}
             | {"outcome", "failure", "duration", "size", "schedule"})
    unknown = set(item) - known
    if unknown:
        raise ScenarioError(f"{where}: unknown key(s) {sorted(unknown)}")
    outcome = item.get("outcomes", item.get("outcome", "success"))
    outcomes = tuple(outcome if isinstance(outcome, list) else [outcome])
    bad = [o for o in outcomes if o not in OUTCOMES]
    if bad or not outcomes:
        raise ScenarioError(f"{where}.outcome must be one of {sorted(OUTCOMES)} or a list of them, not {bad}")
    steps = item.get("execute_steps", ["dbt build"])
    if not isinstance(steps, list) or not all(isinstance(s, str) for s in steps):
        raise ScenarioError(f"{where}.execute_steps must be a list of dbt commands")
    kwargs: dict[str, Any] = {"id": int(item["id"]), "name": str(item.get("name", f"Job {item['id']}")),
                              "execute_steps": tuple(steps), "outcomes": outcomes}
    for key in ("start_seconds", "setup_seconds"):
        if key in item:
            kwargs[key] = float(item[key])
    if "queue_seconds" in item:
        low, high = _range(item["queue_seconds"], f"{where}.queue_seconds")
        kwargs["queue_seconds"] = low
        if high != low:
            kwargs["queue_range"] = (low, high)
    if "finalize_seconds" in item:
        kwargs["finalize_seconds"] = _range(item["finalize_seconds"], f"{where}.finalize_seconds")
    shaped = _parse_shape(item, where, kwargs)
    if "queue_seconds" not in item and kwargs.get("project") is not None and kwargs["project"].models > 0:
        kwargs["queue_range"] = (1.0, 10.0)     # a generated project queues a varying few seconds by default
    if isinstance(item.get("run_seconds"), list):
        per_run = tuple(float(value) for value in item["run_seconds"])
        if not per_run:
            raise ScenarioError(f"{where}.run_seconds must not be an empty list")
        kwargs["run_seconds_per_run"] = per_run
    elif "run_seconds" in item:
        kwargs["run_seconds"] = float(item["run_seconds"])
    for key in ("timeout_seconds", "project_id", "environment_id"):
        if key in item:
            kwargs[key] = int(item[key])
    for key in ("generate_docs", "artifacts", "retryable"):
        if key in item:
            kwargs[key] = bool(item[key])
    if "failures" in item:
        kwargs["failures"] = _node_results(item["failures"], f"{where}.failures", "fail", shaped)
        kwargs["explicit_failures"] = True
    if "warnings" in item:
        kwargs["warnings"] = _node_results(item["warnings"], f"{where}.warnings", "warn", shaped)
    if "dbt_version" in item:
        kwargs["dbt_version"] = str(item["dbt_version"])
    if "fusion_version" in item:
        kwargs["fusion_version"] = str(item["fusion_version"])
    elif str(kwargs.get("dbt_version", "")).startswith("2."):
        kwargs["fusion_version"] = str(kwargs["dbt_version"])
    engine = str(item.get("engine", "fusion" if is_fusion_version(kwargs.get("dbt_version", "")) else "core"))
    if engine not in ("core", "fusion"):
        raise ScenarioError(f"{where}.engine must be core or fusion")
    kwargs["engine"] = engine
    if engine == "fusion" and "dbt_version" not in item:
        kwargs["dbt_version"] = "latest-fusion"
    return JobSpec(**kwargs)


def is_fusion_version(version: str | None) -> bool:
    """A dbt version string that names the Fusion engine: "latest-fusion", "fusion", "2.0", "2.0.0-preview.45"."""
    text = (version or "").strip().lower()
    return "fusion" in text or text.startswith("2.")


def _range(value: Any, where: str) -> tuple[float, float]:
    """A number or a [low, high] pair of non-negative seconds."""
    try:
        if isinstance(value, list):
            if len(value) != 2:
                raise ValueError
            low, high = float(value[0]), float(value[1])
        else:
            low = high = float(value)
    except (TypeError, ValueError):
        raise ScenarioError(f"{where} must be seconds or [low, high]") from None
    if low < 0 or high < low:
        raise ScenarioError(f"{where} must be non-negative with low <= high")
    return low, high


def _parse_shape(item: dict[str, Any], where: str, kwargs: dict[str, Any]) -> bool:
    """The run-shape keys: project, size, failure, duration, seed, history, schedule. True for a generated project."""
    seed = int(item.get("seed", 0))
    kwargs["seed"] = seed
    if "history" in item:
        kwargs["history"] = max(0, int(item["history"]))
    if item.get("schedule") is not None:
        kwargs["cron"] = str(item["schedule"])
    raw = item.get("project")
    if "size" in item:
        size = item["size"]
        models = SIZES.get(str(size)) if not isinstance(size, int) else size
        if models is None:
            raise ScenarioError(f"{where}.size must be one of {sorted(SIZES)} or a number of models")
        raw = {**(raw or {}), "models": models}
    if raw is not None:
        if not isinstance(raw, dict):
            raise ScenarioError(f"{where}.project must be a mapping such as {{models: 60, threads: 4}}")
        unknown = set(raw) - {"models", "seed", "threads", "packages", "colour", "color", "name"}
        if unknown:
            raise ScenarioError(f"{where}.project: unknown key(s) {sorted(unknown)}")
        threads = int(raw.get("threads", 4))
        if not 1 <= threads <= 64:
            raise ScenarioError(f"{where}.project.threads must be 1..64")
        kwargs["project"] = ProjectSpec(
            models=max(0, int(raw.get("models", 0))), seed=int(raw.get("seed", seed)), threads=threads,
            packages=bool(raw.get("packages", False)), colour=bool(raw.get("colour", raw.get("color", False))),
            name=str(raw.get("name", "analytics")))
    failure = item.get("failure")
    if failure is not None:
        if not isinstance(failure, dict):
            raise ScenarioError(f"{where}.failure must be a mapping such as {{at: 0.3, node_type: model}}")
        at = float(failure.get("at", 0.5))
        node_type = str(failure.get("node_type", "test"))
        if not 0 <= at <= 1 or node_type not in ("model", "test", "source"):
            raise ScenarioError(f"{where}.failure needs at in [0, 1] and node_type model, test or source")
        kwargs["failure_at"], kwargs["failure_node_type"] = at, node_type
    duration = item.get("duration")
    generated = kwargs.get("project") is not None and kwargs["project"].models > 0
    if isinstance(duration, dict):
        if "median" in duration:
            kwargs["duration_median"] = float(duration["median"])
        kwargs["duration_spread"] = float(duration.get("spread", 0.15))
        kwargs["slow_runs"] = float(duration.get("slow", 0.1))
    elif duration is not None:
        kwargs["duration_median"] = float(duration)
    if generated:
        kwargs.setdefault("duration_spread", 0.15)
        kwargs.setdefault("slow_runs", 0.1)
        if "duration_median" not in kwargs and "run_seconds" in item and not isinstance(item["run_seconds"], list):
            kwargs["duration_median"] = float(item["run_seconds"])
    if kwargs.get("duration_median") is not None and kwargs["duration_median"] <= 0:
        raise ScenarioError(f"{where}.duration must be positive")
    return kwargs.get("project") is not None


def _parse_fault(item: Any, index: int) -> FaultSpec:
    where = f"faults[{index}]"
    if not isinstance(item, dict) or item.get("kind") not in FAULT_KINDS:
        raise ScenarioError(f"{where}.kind must be one of {sorted(FAULT_KINDS)}")
    kind = str(item["kind"])
    unknown = set(item) - set(FaultSpec.__dataclass_fields__)
    if unknown:
        raise ScenarioError(f"{where}: unknown key(s) {sorted(unknown)}")
    endpoint = str(item.get("endpoint", "*"))
    if endpoint not in ENDPOINTS:
        raise ScenarioError(f"{where}.endpoint must be one of {sorted(ENDPOINTS)}")
    if kind in KIND_ENDPOINTS and endpoint not in KIND_ENDPOINTS[kind] | {"*"}:
        raise ScenarioError(f"{where}: {kind} applies only to {sorted(KIND_ENDPOINTS[kind])}")
    window = item.get("window")
    if window is not None and (not isinstance(window, list) or len(window) != 2):
        raise ScenarioError(f"{where}.window must be [from_seconds, to_seconds]")
    modes = KIND_MODES.get(kind, ("",))
    mode = str(item.get("mode", modes[0]))
    if mode not in modes:
        raise ScenarioError(f"{where}.mode of {kind} must be one of {list(modes)}" if modes != ("",) else
                            f"{where}: {kind} has no mode")
    fields = item.get("fields", [])
    if not isinstance(fields, list) or not set(map(str, fields)) <= HOSTILE_FIELDS:
        raise ScenarioError(f"{where}.fields must be a list of {sorted(HOSTILE_FIELDS)}")
    size = int(item.get("size", DEFAULT_SIZES.get(kind, 0)))
    if size < 0:
        raise ScenarioError(f"{where}.size must be zero or more bytes")
    # A trickle without a delay would be no fault at all: one byte a second unless told otherwise.
    delay = float(item.get("delay", 1.0 if kind == "trickle" else 0.0))
    retry_after = item.get("retry_after")
    return FaultSpec(
        kind=kind, endpoint=endpoint, status=int(item.get("status", 503)),
        body=str(item.get("body", "html")), retry_after=None if retry_after is None else str(retry_after),
        count=int(item.get("count", 1)), after=int(item.get("after", 0)),
        window=(float(window[0]), float(window[1])) if window else None, delay=delay,
        polls=int(item.get("polls", 2)), code=int(item.get("code", 99)),
        job_id=int(item["job_id"]) if item.get("job_id") is not None else None,
        size=size, mode=mode, fields=tuple(str(name) for name in fields),
        payload=str(item.get("payload", HOSTILE_PAYLOAD)),
    )

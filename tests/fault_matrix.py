"""The reliability matrix: every fault kind the wild has thrown at dbt Cloud clients, driven through the gate.

Each case runs the real gate (`app.execute`: client, gate, report) over real HTTP against the emulator, with one
virtual clock shared by both, so hours of waiting and backoff take milliseconds. `tests/gate/test_gate.py` asserts
every expectation; `scripts/gen_reliability.py` writes the observed results to docs/reliability.md.
"""

from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dbtgate.app import execute, open_channel
from dbtgate.clock import VirtualClock
from dbtgate.config import parse_config
from dbtgate.emulator import Emulator
from tests.conftest import TOKEN, scenario
from tests.runner import obeyed_commands, parse_output_file


@dataclass(frozen=True)
class Case:
    name: str
    fault: str                       # the fault in words, for the document
    faults: list[dict[str, Any]]
    job_id: int
    outcome: str
    exit_code: int
    runs_created: int
    cancel_sent: bool
    inputs: dict[str, str] = field(default_factory=dict)
    jobs: list[dict[str, Any]] | None = None     # None: the shared test jobs of tests/conftest.py


@dataclass(frozen=True)
class Observed:
    outcome: str
    exit_code: int
    runs_created: int
    cancel_sent: bool
    token_leaked: bool
    injected: list[str]             # workflow commands the runner would obey that dbtgate did not mean to print
    requests: int
    virtual_seconds: float
    log: str
    summary: str
    outputs: dict[str, str]
    emulator: Emulator
    workdir: Path                   # the workspace the gate ran in (artifacts are saved under it)

    def matches(self, case: Case) -> bool:
        return (self.outcome, self.exit_code, self.runs_created, self.cancel_sent, self.token_leaked,
                self.injected) == (case.outcome, case.exit_code, case.runs_created, case.cancel_sent, False, [])


def injected_commands(log: str) -> list[str]:
    """Obeyed commands that are not dbtgate's own: its annotations carry a title, its groups a name, and the only
    mask it sets is the token's."""
    own = []
    for line in obeyed_commands(log):
        name = line[2:].split("::", 1)[0].split(" ", 1)[0] if line.startswith("::") else ""
        if (name in ("error", "warning") and " title=" in line.split("::", 2)[1]) or name in ("group", "endgroup") \
                or line == f"::add-mask::{TOKEN}":
            continue
        own.append(line)
    return own


def _get_run(kind: str, **more: Any) -> dict[str, Any]:
    return {"kind": kind, "endpoint": "get_run", **more}


def _rewrite(endpoint: str, values: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "rewrite", "endpoint": endpoint, "values": values, "count": 0}


CASES: tuple[Case, ...] = (
    Case("baseline-success", "none (succeeding job)", [], 1, "success", 0, 1, False),
    Case("baseline-error", "none (failing job)", [], 2, "error", 1, 1, False),
    Case("cancelled-elsewhere", "none (run cancelled in dbt Cloud)", [], 6, "cancelled", 1, 1, False),
    Case("poll-503-html-burst", "3 × 503 with an HTML body while polling",
         [_get_run("http_error", status=503, body="html", count=3)], 1, "success", 0, 1, False),
    Case("poll-500-json", "2 × 500 with a JSON envelope while polling",
         [_get_run("http_error", status=500, body="json", count=2)], 1, "success", 0, 1, False),
    Case("poll-502-empty", "2 × 502 with an empty body while polling",
         [_get_run("http_error", status=502, body="empty", count=2)], 1, "success", 0, 1, False),
    Case("poll-429-retry-after", "2 × 429 with Retry-After: 7",
         [_get_run("http_error", status=429, body="json", retry_after="7", count=2)], 1, "success", 0, 1, False),
    Case("poll-429-no-retry-after", "3 × 429 without Retry-After",
         [_get_run("http_error", status=429, body="json", count=3)], 1, "success", 0, 1, False),
    Case("poll-malformed-json", "2 × 200 with a body that is not JSON",
         [_get_run("malformed_json", count=2)], 1, "success", 0, 1, False),
    Case("poll-connection-dropped", "2 × connection closed without a response",
         [_get_run("drop_connection", count=2)], 1, "success", 0, 1, False),
    Case("poll-read-timeout", "2 × response slower than api_timeout",
         [_get_run("slow", delay=1.0, count=2)], 1, "success", 0, 1, False, {"api_timeout": "0.3"}),
    Case("new-run-404", "404 for the first 3 polls of the new run",
         [{"kind": "not_found_new_run", "polls": 3}], 1, "success", 0, 1, False),
    Case("get-job-503", "2 × 503 on the job lookup before the trigger",
         [{"kind": "http_error", "endpoint": "get_job", "status": 503, "count": 2}], 1, "success", 0, 1, False),
    Case("trigger-response-lost", "trigger: run created, then the connection closed without a response",
         [{"kind": "lose_trigger_response"}], 1, "success", 0, 1, False),
    Case("trigger-response-delayed", "trigger: run created, response slower than api_timeout",
         [{"kind": "delay_trigger_response", "delay": 1.0}], 1, "success", 0, 1, False, {"api_timeout": "0.3"}),
    Case("trigger-lost-and-list-503", "trigger response lost, then 2 × 503 on the run list used to find it",
         [{"kind": "lose_trigger_response"},
          {"kind": "http_error", "endpoint": "list_runs", "status": 503, "count": 2}], 1, "success", 0, 1, False),
    Case("trigger-502-not-created", "trigger: 502 from the load balancer, no run created",
         [{"kind": "http_error", "endpoint": "trigger", "status": 502, "count": 1}], 1, "success", 0, 1, False),
    Case("trigger-504-not-created", "trigger: 504 with a JSON body, no run created",
         [{"kind": "http_error", "endpoint": "trigger", "status": 504, "body": "json", "count": 1}],
         1, "success", 0, 1, False),
    Case("trigger-dropped-not-created", "trigger: connection closed before the run was created",
         [{"kind": "drop_connection", "endpoint": "trigger", "count": 1}], 1, "success", 0, 1, False),
    Case("trigger-429", "trigger: 429 (rejected before any work)",
         [{"kind": "http_error", "endpoint": "trigger", "status": 429, "body": "json", "count": 2}],
         1, "success", 0, 1, False),
    Case("trigger-503-forever", "trigger: 503 on every attempt",
         [{"kind": "http_error", "endpoint": "trigger", "status": 503, "count": 0}], 1, "api_error", 3, 0, False),
    Case("poll-503-forever", "503 on every poll",
         [_get_run("http_error", status=503, count=0)], 4, "api_error", 3, 1, True),
    Case("poll-401-midway", "401 Invalid token. after 2 successful polls",
         [_get_run("http_error", status=401, after=2, count=0)], 4, "api_error", 3, 1, True),
    Case("unknown-status", "every poll reports status 99 (unknown), never complete",
         [_get_run("unknown_status", code=99, count=0)], 1, "timeout", 1, 1, True, {"timeout": "20m"}),
    Case("timeout-cancels", "none; the run outlasts the gate's timeout",
         [], 4, "timeout", 1, 1, True, {"timeout": "10m"}),
    Case("timeout-no-cancel", "none; the run outlasts the timeout, cancel_on_timeout: false",
         [], 4, "timeout", 1, 1, False, {"timeout": "10m", "cancel_on_timeout": "false"}),
    Case("error-failure-on-error-false", "none (failing job), failure_on_error: false",
         [], 2, "error", 0, 1, False, {"failure_on_error": "false"}),
    # ---- a hostile or lying dbt Cloud (issue 12) ----
    Case("hostile-text-failing-run", "workflow commands, markdown and the echoed token in every text field",
         [{"kind": "hostile_text", "count": 0}], 2, "error", 1, 1, False),
    Case("hostile-text-passing-run", "workflow commands, markdown and the echoed token in every text field",
         [{"kind": "hostile_text", "count": 0}], 1, "success", 0, 1, False),
    Case("status-humanized-lies", "an errored run whose status_humanized says Success",
         [{"kind": "hostile_text", "fields": ["status_humanized"], "payload": "Success", "count": 0}],
         2, "error", 1, 1, False),
    Case("foreign-run", "get_run answers with another run",
         [_get_run("foreign_run", mode="other_id", count=0)], 1, "api_error", 3, 1, True),
    Case("foreign-job-run", "get_run answers with a run of another job",
         [_get_run("foreign_run", mode="other_job", count=0)], 1, "api_error", 3, 1, True),
    Case("envelope-false-twice", "2 × 200 whose envelope says is_success: false",
         [_get_run("envelope_false", count=2)], 1, "success", 0, 1, False),
    Case("envelope-false-forever", "every poll: 200 with is_success: false",
         [_get_run("envelope_false", count=0)], 1, "api_error", 3, 1, True),
    Case("trigger-null-data", "trigger: the run is created, the answer has data: null",
         [{"kind": "trigger_null_data", "endpoint": "trigger"}], 1, "success", 0, 1, False),
    Case("trigger-string-id", "trigger: the run is created, the answer's id is a string",
         [{"kind": "trigger_null_data", "endpoint": "trigger", "mode": "string_id"}], 1, "success", 0, 1, False),
    Case("retry-not-a-retry", "the retry endpoint starts a plain new run (retrying_run_id null)",
         [{"kind": "foreign_rerun", "mode": "not_a_retry"}], 3, "error", 1, 2, True, {"rerun_attempts": "1"}),
    Case("retry-wrong-retry", "the retry endpoint answers with a run retrying another run",
         [{"kind": "foreign_rerun", "mode": "wrong_retry"}], 3, "error", 1, 2, True, {"rerun_attempts": "1"}),
    Case("poll-trickle", "2 polls whose body trickles in one byte every 0.5 s (no read timeout ever fires)",
         [_get_run("trickle", delay=0.5, count=2)], 1, "success", 0, 1, False, {"api_timeout": "1"}),
    Case("list-ignores-filters", "the run list ignores status__in and job_definition_id (reuse_existing_run)",
         [{"kind": "ignore_filters", "count": 0}], 1, "success", 0, 1, False, {"reuse_existing_run": "true"}),
    Case("trigger-huge-answer", "trigger: the run is created, the answer is 64 MB",
         [{"kind": "huge_body", "endpoint": "trigger", "count": 1}], 1, "success", 0, 1, False),
    Case("huge-run-body", "every poll: a 64 MB answer",
         [_get_run("huge_body", count=0)], 1, "api_error", 3, 1, True),
    Case("gzip-bomb", "every poll: a gzip body that inflates to 1 GB",
         [_get_run("gzip_bomb", count=0)], 1, "api_error", 3, 1, True),
    Case("huge-artifact", "run_results.json of 64 MB with max_artifact_size 1 MB",
         [{"kind": "huge_body", "endpoint": "get_artifact", "count": 0}], 1, "success", 0, 1, False,
         {"max_artifact_size": "1MB"}),
    # ---- every byte parsed once and totally (issue 21 §1): a malformed value is coerced or a typed failure ----
    Case("answer-trigger-date-number", "trigger: the answer's created_at is a number (12345)",
         [_rewrite("trigger", {"created_at": 12345})], 1, "success", 0, 1, False),
    Case("answer-durations-numbers", "every poll: duration and the steps' durations are numbers (5)",
         [_rewrite("get_run", {"duration": 5, "run_duration": 5, "run_steps.*.duration": 5})],
         1, "success", 0, 1, False),
    Case("answer-dates-overflow", "every poll: dates that overflow once made UTC (year 1 at +01:00, 9999 at -05:00)",
         [_rewrite("get_run", {"created_at": "0001-01-01 00:00:00+01:00", "started_at": "9999-12-31 23:00:00-05:00",
                               "finished_at": "9999-12-31 23:00:00-05:00"})], 1, "success", 0, 1, False),
    Case("answer-float-ids", "trigger answer lost; ids as floats (101.0) in the run list and every poll",
         [{"kind": "lose_trigger_response"}, _rewrite("list_runs", {"*.id": "$as_float"}),
          _rewrite("get_run", {"id": "$as_float"})],
         1, "success", 0, 1, False),
    Case("answer-float-id-trigger", "the trigger answer's id is a float (101.0)",
         [_rewrite("trigger", {"id": "$as_float"})], 1, "success", 0, 1, False),
    Case("answer-history-row-malformed", "trigger answer lost; the run list's rows have a number for a date",
         [{"kind": "lose_trigger_response"}, _rewrite("list_runs", {"*.created_at": 12345, "*.finished_at": [1]})],
         1, "success", 0, 1, False),
    Case("answer-warned-node-huge-time", "run_results.json: a warned node's execution_time is a 401-digit integer",
         [_rewrite("get_artifact", {"results.*.execution_time": 10 ** 400})], 7, "success", 0, 1, False),
    Case("answer-trigger-unreadable", "trigger: the answer's id is a list, and so is every id in the run list",
         [_rewrite("trigger", {"id": [1]}), _rewrite("list_runs", {"*.id": [1]})], 1, "api_error", 3, 1, False),
    Case("answer-poll-no-id-forever", "every poll: a run object whose id is a list",
         [_rewrite("get_run", {"id": [1]})], 4, "api_error", 3, 1, True),
)


def run_case(case: Case, workdir: Path | None = None) -> Observed:
    clock = VirtualClock()
    emulator = Emulator(scenario(case.faults, case.jobs), clock=clock).start()
    try:
        return run_gate(emulator, clock, {"dbt_cloud_job_id": str(case.job_id), **case.inputs}, workdir)
    finally:
        emulator.stop()


def run_gate(emulator: Emulator, clock: VirtualClock, inputs: dict[str, str],
             workdir: Path | None = None, token: str = TOKEN) -> Observed:
    """Run the whole gate (`app.execute`) in-process against a running emulator that shares `clock` (and whose
    date is the gate's date too, for max_age)."""
    workdir = workdir or Path(tempfile.mkdtemp(prefix="dbtgate-gate-"))
    raw = {"dbt_cloud_url": emulator.url, "dbt_cloud_token": token, "dbt_cloud_account_id": "1",
           "interval": "30", "timeout": "2h", "api_timeout": "5", "artifacts_dir": "target", **inputs}
    config = parse_config(raw, {"GITHUB_WORKSPACE": str(workdir)})
    stream = io.StringIO()
    summary, outputs = workdir / "summary.md", workdir / "outputs.txt"
    summary.write_text("")
    outputs.write_text("")
    workflow, redactor, _ = open_channel(stream, stream, token, github=True, debug=True)
    started = clock.monotonic()
    code = execute(config, {}, workflow, redactor, summary_file=str(summary),
                   output_file=str(outputs), install_signals=False, clock=clock)
    log, summary_text = stream.getvalue(), summary.read_text("utf-8")
    outputs_text = outputs.read_text("utf-8")
    parsed = parse_output_file(outputs_text)
    files = "".join(path.read_text("utf-8", "replace") for path in workdir.rglob("*") if path.is_file()
                    and path not in (summary, outputs))
    # The token in any form it takes once escaped (Markdown turns dbtc_x into dbtc\\_x) is a leak too.
    forms = {token, token.replace("_", "\\_")}
    leaked = any(form in text for form in forms for text in (log.replace(f"::add-mask::{token}", ""), summary_text,
                                                               outputs_text, files))
    return Observed(outcome=parsed["outcome"], exit_code=code, runs_created=len(emulator.world.run_ids()),
                    cancel_sent=bool(emulator.log.cancels()), token_leaked=leaked, injected=injected_commands(log),
                    requests=len(emulator.log.all()), virtual_seconds=clock.monotonic() - started, log=log,
                    summary=summary_text, outputs=parsed, emulator=emulator, workdir=workdir)

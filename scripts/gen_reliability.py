"""Run the reliability matrix and write docs/reliability.md from what was observed (not from expectations).

    python scripts/gen_reliability.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fault_matrix import CASES, run_case  # noqa: E402

# The promises of issues 12, 20, 21 and 23, each with its mechanism and the tests that prove it (run on the real
# entrypoint as the runner starts it, or in-process on a virtual clock); the result column is what those tests did.
A = "tests/test_hostile_answers.py::"
PROMISES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("1. The deadline holds inside a request",
     "each call carries its deadline; every attempt runs on a worker the caller abandons at its budget (the socket "
     "is shut down), so a trickling body cannot outlive it",
     ("tests/test_hostile.py::test_a_trickling_answer_cannot_keep_the_gate_past_its_timeout",
      "tests/test_hostile.py::test_the_whole_gate_ends_within_timeout_and_cancel_budget_when_the_cancel_trickles_too",
      "tests/test_hostile.py::test_hostile_matrix_case")),
    ("2. A cancelled workflow exits in time with its report",
     "signals interrupt any wait at once; the cancel gets 4 s, a second signal cuts it short; outputs and summary "
     "are written whatever dbt Cloud answered",
     ("tests/test_hostile.py::test_sigint_with_a_trickling_cancel_still_exits_in_time_with_the_report",
      "tests/test_hostile.py::test_a_signal_during_the_timeout_cancel_is_reported_with_its_run",
      "tests/test_signals.py")),
    ("3. No injected workflow command is obeyed",
     "one guarded channel: every line that is not dbtgate's own command is redacted and defused (leading `::`, "
     "`##[` anywhere), log events are one line each, command data is escaped",
     ("tests/test_hostile.py::test_hostile_text_starts_no_workflow_command_in_the_action",
      "tests/test_hostile.py::test_hostile_text_starts_no_workflow_command_from_the_cli")),
    ("4. No false green",
     "retries through runs/{id}/retry/ and checked; reuse only when every build setting matches; answers about "
     "another run or job, or with is_success false, are refused; the status output comes from the status code",
     ("tests/test_hostile.py::test_reuse_needs_every_build_setting_to_match",
      "tests/test_hostile.py::test_a_list_that_ignores_its_filters_cannot_make_a_finished_failed_run_look_reusable",
      "tests/test_hostile.py::test_an_in_flight_run_with_other_settings_is_not_reused")),
    ("5. No orphaned run",
     "while a POST that may create a run is unanswered, giving up means finding it by its marker (or "
     "retrying_run_id) and cancelling it",
     ("tests/test_hostile.py::test_sigint_during_the_trigger_post_finds_and_cancels_the_created_run",)),
    ("6. No write outside the workspace",
     "artifacts_dir must lie inside the workspace (exit 2 otherwise); files are opened folder by folder with "
     "O_NOFOLLOW",
     ("tests/test_hostile.py::test_a_symlinked_target_is_not_followed_out_of_the_workspace",
      "tests/test_hostile.py::test_an_artifact_path_from_dbt_cloud_cannot_climb_out")),
    ("7. Bounded memory",
     "bodies read in counted chunks: 16 MB for an API answer, max_artifact_size (streamed to disk) for an artifact, "
     "gzip counted after inflating",
     ("tests/test_hostile.py::test_peak_memory_stays_under_300_mb",)),
    ("8. No leaked token",
     "credentials in the URL are bad input; the token is redacted from every line, output, the summary and saved "
     "artifacts",
     ("tests/test_hostile.py::test_the_token_is_redacted_from_saved_artifacts_across_chunk_boundaries",
      "tests/test_app.py")),
    ("9. Bad input stops before any request", "one validation path with ASCII-only numbers, bounds and floors",
     ("tests/test_parsers.py", "tests/test_app.py")),
    ("10. No forged summary",
     "only plain http(s) links dbtgate builds; untrusted text flattened and escaped, bare URLs not autolinked",
     ("tests/test_hostile.py::test_only_plain_http_links_reach_the_summary",)),
    # ---- issue 21: every byte from dbt Cloud parsed once and totally ----
    ("11. Any JSON value in any field is a model or a typed failure",
     "cloud/models.py is the one boundary, a rule per field: ids coerced from whole floats or `BadAnswer`, "
     "unreadable dates and durations unknown, text only from strings, trigger fields flat; parsed inside each call, "
     "so a bad answer is a bad body — retried for reads, ambiguous for a trigger (found by its marker, never "
     "triggered twice), one bad row of a list skipped; artifacts read by the same rules",
     ("tests/cloud/test_models_total.py",
      A + "test_one_unreadable_row_of_the_run_list_is_skipped_not_fatal",
      A + "test_status_and_cancel_survive_any_value",
      A + "test_a_float_id_never_triggers_twice_and_is_reported",
      A + "test_artifact_values_cannot_turn_into_an_error",
      "tests/gate/test_gate.py::test_fault_case[answer-trigger-date-number]",
      "tests/gate/test_gate.py::test_fault_case[answer-dates-overflow]",
      "tests/gate/test_gate.py::test_fault_case[answer-float-ids]",
      "tests/gate/test_gate.py::test_fault_case[answer-history-row-malformed]",
      "tests/gate/test_gate.py::test_fault_case[answer-warned-node-huge-time]")),
    ("12. The token in any encoding is redacted",
     "one pattern per secret matches each character plain, JSON-escaped or URL-encoded in any mix, in saved "
     "artifacts (across chunks), the log and the summary; a dbt_cloud_url is named by its host only; a loopback "
     "host is never reached through an environment proxy",
     (A + "test_a_json_escaped_token_is_redacted_from_saved_artifacts",
      A + "test_the_redactor_catches_the_token_url_encoded_and_json_escaped",
      A + "test_a_url_with_a_query_string_is_named_by_its_host_only",
      A + "test_a_proxy_in_the_environment_never_sees_a_loopback_request")),
    ("13. The report is always written and agrees with the exit code",
     "each channel (outputs, summary, the failing step's log, annotations, --json) is written alone; one that "
     "fails is warned about in the others; the exit code is the gate's decision",
     (A + "test_an_output_file_in_a_missing_folder_leaves_the_summary_and_the_exit_code",
      A + "test_an_unwritable_summary_does_not_change_the_exit_code")),
    ("14. A local failure is local",
     "a sink that cannot be opened, written or closed (ENOSPC, EFBIG) ends that download at once with its path and "
     "reason, never retried as dbt Cloud's fault; the run's verdict stands",
     (A + "test_a_full_disk_ends_the_download_at_once_and_is_not_blamed_on_dbt_cloud",
      A + "test_a_full_disk_leaves_the_runs_verdict_alone")),
    ("15. Links go only to the configured host; text stays text",
     "a run link on another host is rebuilt on the configured one; URLs and addresses in dbt Cloud text defanged "
     "(`https[:]//host[.]com`); bidi controls stripped; annotation paths relative, inside the project",
     (A + "test_a_run_link_on_another_host_is_rebuilt_on_the_configured_one",
      A + "test_urls_and_addresses_in_dbt_cloud_text_read_well_and_link_nowhere",
      A + "test_annotation_paths_stay_inside_the_project",
      A + "test_bidi_controls_are_stripped_from_names_and_messages")),
    ("16. One rule for commits and dates",
     "`same_commit` for reuse and latest_run; a run that finished in the future (past a 10-minute clock-skew "
     "allowance) or before it was created has an unknown age: stale",
     (A + "test_a_run_whose_git_sha_is_a_single_letter_is_not_reused",
      A + "test_a_run_that_finished_in_the_future_or_before_it_began_has_an_unknown_age")),
    ("17. Two gates at once converge on one run (when they see each other)",
     "reuse_existing_run looks again after its trigger: an older in-flight run with the same settings is kept and "
     "this gate's own run cancelled, with a note naming both; without a lock, a gate that looks before the other's "
     "run is listed keeps its own",
     (A + "test_two_gates_reusing_at_once_converge_on_the_older_run",
      A + "test_the_older_of_two_racing_runs_keeps_its_own")),
    ("18. CPU on hostile log text is bounded",
     "each log line is cut to 2,000 characters and at most 20,000 lines are read; every pattern is anchored or "
     "linear, and the bracket of a node line is found without backtracking (one line of spaces took 135 s)",
     ("tests/watch/test_dbtlog.py::test_a_hostile_line_costs_linear_time",)),
    # ---- issue 20: the dbt platform as users run it ----
    ("19. Fusion runs are read as dbt-core runs are",
     "watch/dbtlog.py reads Fusion's node lines and closing blocks into the same scan; the engine comes from the "
     "banner, the lines, or the job's dbt version; messages Fusion's results lack come from the log, and a node "
     "neither gives one for says so",
     ("tests/watch/test_dbtlog.py",
      "tests/gate/test_platform.py::test_a_failing_fusion_run_reports_its_failed_model_with_dbt_s_message",
      "tests/gate/test_platform.py::test_fail_fast_works_on_fusion_runs_as_on_dbt_core_runs",
      "tests/gate/test_platform.py::test_a_fusion_run_s_failed_node_is_reported_live")),
    ("20. A log nobody can read is said once, never silently ignored",
     "a dbt step whose log has no line of a known format: \"fail_fast and live failures are off for this run\"",
     ("tests/watch/test_watcher.py::test_a_log_the_gate_cannot_read_is_said_once_never_silently_ignored",)),
    ("21. The right step's results",
     "artifacts come from the first failed step, else the last build/run/test/seed/snapshot step (never the docs "
     "step's all-success run_results.json); args.which is checked",
     ("tests/gate/test_platform.py::test_generate_docs_on_run_does_not_hide_a_warning_of_a_successful_run",
      "tests/gate/test_platform.py::test_generate_docs_on_run_does_not_hide_a_failed_test")),
    # ---- issue 23: mistakes called mistakes ----
    ("22. A mistake is bad input, an outage is an outage",
     "a token, account, job, run or URL dbt Cloud refuses at the first call (401, 403, 404, an HTML 404, a host "
     "name that does not exist) is config_error / exit 2 naming the input; 5xx and a resolver that cannot answer "
     "stay exit 3",
     ("tests/gate/test_mistakes.py",)),
)


def run_promises() -> list[str]:
    rows = ["| Promise | Mechanism | Tests | Result |", "|---|---|---|---|"]
    for promise, mechanism, tests in PROMISES:
        with tempfile.TemporaryDirectory() as folder:
            report = Path(folder) / "junit.xml"
            subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
                            *tests], cwd=ROOT, capture_output=True, check=False)
            suite = ElementTree.parse(report).getroot().find("testsuite")
            assert suite is not None
            counts = {key: int(suite.get(key, "0")) for key in ("tests", "failures", "errors", "skipped")}
        passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
        ok = counts["failures"] == counts["errors"] == 0 and passed > 0
        names = "<br>".join(f"`{test.removeprefix('tests/')}`" for test in tests)
        rows.append(f"| {promise} | {mechanism} | {names} | {'✅' if ok else '❌'} {passed} passed"
                    f"{', ' + str(counts['failures'] + counts['errors']) + ' failed' if not ok else ''} |")
    return rows


def main() -> int:
    rows = ["| Case | Fault | Outcome | Exit | Runs created | Cancel sent | Token leaked | Injected commands | "
            "Requests | Virtual time | As expected |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    failures = 0
    for case in CASES:
        seen = run_case(case)
        ok = seen.matches(case)
        failures += not ok
        rows.append(f"| `{case.name}` | {case.fault} | {seen.outcome} | {seen.exit_code} | {seen.runs_created} | "
                    f"{'yes' if seen.cancel_sent else 'no'} | {'YES' if seen.token_leaked else 'no'} | "
                    f"{len(seen.injected)} | {seen.requests} | {seen.virtual_seconds:.0f}s | {'✅' if ok else '❌'} |")
    promises = run_promises()
    failures += sum("❌" in row for row in promises)
    text = "\n".join([
        "# Reliability matrix",
        "",
        "Generated by `python scripts/gen_reliability.py` — do not edit by hand. Each row runs the real gate",
        "(client, gate, report) over real HTTP against the emulator with the fault injected, on a virtual clock.",
        "The same cases are asserted by `tests/gate/test_gate.py`.",
        "",
        "What must hold in every row: the outcome and exit code are right, a fault never creates a second run,",
        "a cancel is sent exactly when dbtgate gives up on a run that is still going, the token appears in",
        "nothing the process wrote (log, summary, outputs, saved files), and no text from dbt Cloud starts a",
        "workflow command the runner would obey.",
        "",
        "## Promises against a slow, broken or hostile dbt Cloud",
        "",
        "Each promise, the mechanism that keeps it, and the tests that prove it (most start `entrypoint.py` as the",
        "runner does); the result is what those tests did when this file was generated. The whole gate ends within",
        "`timeout` + 15 s (the cancel budget) on every path; after SIGINT it exits within 7.5 s.",
        "",
        *promises,
        "",
        "## Fault matrix",
        "",
        "Exit codes: 0 success · 1 the run did not succeed · 2 bad input · 3 dbt Cloud could not be used.",
        "",
        *rows,
        "",
        "Signals (SIGINT/SIGTERM, also as PID 1) are covered by `tests/test_signals.py`, which sends real signals",
        "to a real `entrypoint.py` process.",
        "",
    ])
    (ROOT / "docs" / "reliability.md").write_text(text, "utf-8")
    print(f"wrote docs/reliability.md ({len(CASES)} cases, {failures} not as expected)")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())

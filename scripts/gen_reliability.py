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

# The promises of issue 12, each with its mechanism and the tests that prove it (run on the real entrypoint as the
# runner starts it, or in-process on a virtual clock); the result column is what those tests did just now.
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

"""The job summary: a Markdown page a person reads in ten seconds to know which run, which node, and why.

Pure: `render_summary(report)` returns text. Every string that came from dbt Cloud is escaped so it cannot inject
HTML, break a table or fake a heading, and the page stays under GitHub's 1 MiB limit by shortening its longest
parts with a note.
"""

from __future__ import annotations

from dataclasses import dataclass

from dbtgate.artifacts import NodeIssue
from dbtgate.cloud.models import iso_utc
from dbtgate.escape import code_block, code_span, html_text, link_target, md
from dbtgate.gate.state import GateResult
from dbtgate.outcome import Outcome
from dbtgate.watch.progress import format_seconds

SUMMARY_LIMIT = 1024 * 1024
ICONS = {Outcome.SUCCESS: "✅", Outcome.ERROR: "❌", Outcome.CANCELLED: "🚫", Outcome.TIMEOUT: "⏱️",
         Outcome.NOT_WAITED: "🚀", Outcome.INTERRUPTED: "🛑", Outcome.API_ERROR: "⚠️", Outcome.STALE: "🕰️",
         Outcome.CONFIG_ERROR: "⚙️"}
WORDS = {Outcome.SUCCESS: "succeeded", Outcome.ERROR: "failed", Outcome.CANCELLED: "was cancelled",
         Outcome.TIMEOUT: "timed out", Outcome.NOT_WAITED: "was triggered", Outcome.INTERRUPTED: "was interrupted",
         Outcome.API_ERROR: "could not be checked", Outcome.STALE: "has no recent enough run",
         Outcome.CONFIG_ERROR: "was not gated: a setting needs fixing"}


@dataclass(frozen=True)
class SummaryLimits:
    max_nodes: int = 50
    log_lines: int = 80


def render_summary(result: GateResult, *, project_dir: str = "", limits: SummaryLimits | None = None) -> str:
    """The summary, shortened step by step until it fits GitHub's limit."""
    limits = limits or SummaryLimits()
    text = _render(result, project_dir, limits)
    while len(text.encode("utf-8")) > SUMMARY_LIMIT and (limits.max_nodes > 5 or limits.log_lines > 10):
        limits = SummaryLimits(max(5, limits.max_nodes // 2), max(10, limits.log_lines // 2))
        text = _render(result, project_dir, limits)
    if len(text.encode("utf-8")) > SUMMARY_LIMIT:
        note = "\n\n> **Note:** this summary was cut to stay under GitHub's 1 MiB limit.\n"
        budget = SUMMARY_LIMIT - len(note.encode("utf-8"))
        text = text.encode("utf-8")[:budget].decode("utf-8", "ignore") + note
    return text


def _subject(result: GateResult) -> str:
    """What the heading is about: the job by name, else by id, else just "dbt Cloud job" (said once)."""
    if result.job is not None and result.job.name:
        return f"dbt Cloud job {md(result.job.name)}"
    job_id = result.run.job_id if result.run is not None else None
    return f"dbt Cloud job {job_id}" if job_id else "dbt Cloud job"


def _render(result: GateResult, project_dir: str, limits: SummaryLimits) -> str:
    run = result.run
    icon, word = ICONS[result.outcome], WORDS[result.outcome]
    if run is not None and run.href:
        title = f"## {icon} {_subject(result)} {word} — [run \\#{run.id}]({link_target(run.href)})"
    elif run is not None:
        title = f"## {icon} {_subject(result)} {word} — run \\#{run.id}"
    else:
        title = f"## {icon} {_subject(result)} {word}"
    parts = [title, "", md(result.headline).rstrip(".") + "."]
    if result.detail:
        parts += ["", f"> {md(result.detail)}"]
    if result.cancel_note:
        parts += ["", f"**What dbtgate did:** {md(result.cancel_note)}"]
    for note in result.notes:
        parts += ["", f"**Note:** {md(note)}"]
    if run is not None:
        parts += [""]
        rows = [
            ("Run", f"[{run.id}]({link_target(run.href)})" if run.href else str(run.id)),
            ("Status", md(run.status_humanized) + (f" — {md(run.status_message)}" if run.status_message else "")),
            ("Outcome", f"`{result.outcome.value}`"),
            ("Cause", md(run.cause) if run.cause else "—"),
            # The sha is untrusted too: md(), not a code span, since a | inside a code span still splits a table cell.
            ("Git", " ".join(x for x in (md(run.git_branch), md(run.git_sha[:12]) if run.git_sha else "")
                             if x) or "—"),
            ("Queued", _duration(run.queued_duration_seconds)),
            ("Ran", _duration(run.run_duration_seconds)),
            ("Finished at", iso_utc(run.finished_at) or "not finished"),
        ]
        if result.adopted:
            rows.append(("Adopted", "yes — found after a lost trigger answer; no second run was started"))
        if result.reused:
            rows.append(("Reused", "yes — the run was already in flight with the same settings"))
        table = [f"| {label} | {value} |" for label, value in rows]
        parts += [table[0], "|---|---|", *table[1:]]  # the first row is the header: no empty header row
        if len(result.attempts) > 1:
            parts += ["", f"### Attempts ({len(result.attempts)})", "", "| # | Run | Status | Ran |",
                      "|---|---|---|---|"]
            parts += [f"| {number} | [{attempt.id}]({link_target(attempt.href)}) | {md(attempt.status_humanized)} | "
                      f"{_duration(attempt.run_duration_seconds)} |"
                      for number, attempt in enumerate(result.attempts, start=1)]
        if run.steps:
            parts += ["", "### Steps", "", "| # | Step | Status | Duration |", "|---|---|---|---|"]
            parts += [f"| {s.index} | {md(s.name)} | {md(s.status_humanized)} | {_duration(s.duration_seconds)} |"
                      for s in run.steps]
    report = result.artifacts
    if report is not None:
        if report.failed:
            parts += ["", f"### Failed nodes ({len(report.failed)})", ""]
            parts += _node_table(report.failed, project_dir, limits.max_nodes)
        if report.warned:
            parts += ["", f"### Warnings ({len(report.warned)})", ""]
            parts += _node_table(report.warned, project_dir, limits.max_nodes)
        if report.saved:
            where = code_span(str(report.directory)) if report.directory else ""
            parts += ["", f"**Artifacts saved** to {where}: " + ", ".join(code_span(p) for p in report.saved)]
        if report.missing:
            parts += ["", "**Not produced by this run** (not an error): " +
                      ", ".join(code_span(p) for p in report.missing)]
        if report.problems:
            parts += ["", "**Artifact problems:** " + "; ".join(md(p) for p in report.problems)]
    failing = run.failed_step if run is not None else None
    if failing is not None and failing.logs:
        lines = failing.logs.rstrip().splitlines()
        shown = lines[-limits.log_lines:]
        cut = len(lines) - len(shown)
        # Inside an HTML tag Markdown escapes are shown literally, so this line is escaped as HTML instead.
        name = html_text(failing.name)
        header = f"Log of the failing step: {name}" + (
            f" (last {len(shown)} of {len(lines)} lines)" if cut else "")
        parts += ["", "<details><summary>" + header + "</summary>", "", code_block("\n".join(shown)), "",
                  "</details>"]
    parts += ["", f"<sub>dbtgate · waited {format_seconds(result.waited_seconds)}</sub>", ""]
    return "\n".join(parts)


def _node_table(nodes: tuple[NodeIssue, ...], project_dir: str, limit: int) -> list[str]:
    rows = ["| Node | Type | Status | Message | Time |", "|---|---|---|---|---|"]
    for node in nodes[:limit]:
        path = f"{project_dir.rstrip('/')}/{node.file_path}" if project_dir and node.file_path else node.file_path
        name = md(node.name) + (f"<br><sub>{md(path)}</sub>" if path else "")
        message = md(node.message[:500]) if node.message else "—"
        took = f"{node.execution_time:.1f}s" if node.execution_time is not None else "—"
        rows.append(f"| {name} | {md(node.resource_type)} | {md(node.status)} | {message} | {took} |")
    if len(nodes) > limit:
        rows += ["", f"_…and {len(nodes) - limit} more (see run_results.json)._"]
    return rows


def _duration(seconds: int | None) -> str:
    return format_seconds(seconds) if seconds is not None else "—"

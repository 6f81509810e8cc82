"""Reading dbt's console log: real dbt 1.12 logs (plain and coloured) and generated ones with threads, out-of-order
result lines and dbt Cloud's 1,000-line cut."""

from __future__ import annotations

import heapq
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dbtgate.watch.dbtlog import describe_node, scan, strip_ansi
from tests.conftest import REFERENCE

DBT_CORE_RUN = REFERENCE / "dbt-core-run"


def reference(name: str) -> str:
    return (DBT_CORE_RUN / name).read_text("utf-8")


def test_a_real_failing_build_plain_and_in_colour() -> None:
    plain, colour = scan(reference("build-error.log")), scan(reference("build-error-color.log"))
    for scanned in (plain, colour):
        assert (scanned.total, scanned.done, scanned.header, scanned.finished, scanned.threads) == (73, 73, True,
                                                                                                    True, 4)
        assert [(f.word, f.resource_type, f.name) for f in scanned.failures] == [
            ("FAIL", "test", "not_null_stg_products_category"), ("ERROR", "model", "int_orders_enriched")]
        model = scanned.problem_for(scanned.failures[1])
        assert model is not None and model.path == "models/intermediate/int_orders_enriched.sql"
        assert 'does not have a column named "discount_code"' in model.message
        test = scanned.problem_for(scanned.failures[0])
        assert test is not None and test.message == "Got 3 results, configured to fail if != 0"
    words = {line.word for line in plain.results}
    assert words == {"OK", "PASS", "WARN", "FAIL", "ERROR", "SKIP"}, "WARN and SKIP are results, not failures"


def test_a_real_successful_build_has_no_failures_and_node_times() -> None:
    scanned = scan(reference("build-success.log"))
    assert scanned.failures == () and scanned.done == 73
    events = next(line for line in scanned.results if line.name == "stg_events")
    assert (events.resource_type, events.seconds) == ("model", 6.99)
    # "2 of 73 OK ... stg_events" is the 63rd result printed: results come out of order.
    assert [line.number for line in scanned.results].index(2) > 50


def test_source_freshness_error_stale_is_a_failure_of_the_source() -> None:
    scanned = scan(reference("source-freshness.log"))
    assert [(f.resource_type, f.name) for f in scanned.failures] == [("source", "raw_orders")]
    assert {line.word for line in scanned.results} == {"PASS", "WARN", "ERROR"}


def test_in_flight_nodes_and_a_log_still_running() -> None:
    text = reference("build-success.log")
    cut = "\n".join(line for line in text.splitlines() if line[:8] <= "16:12:08") + "\n"
    scanned = scan(cut)
    assert not scanned.finished and 0 < scanned.done < 73
    assert "stg_events" in {line.name for line in scanned.starts}, "started, no result yet: in flight"


@pytest.mark.parametrize(("text", "expected"), [
    ("created sql table model main_staging.stg_events", ("model", "stg_events")),
    ("loaded seed file main_raw.raw_orders", ("seed", "raw_orders")),
    ("snapshotted main_snapshots.customers_snapshot", ("snapshot", "customers_snapshot")),
    ("relation main_marketing.customer_segments", ("model", "customer_segments")),
    ("test unique_customer_segments_customer_id", ("test", "unique_customer_segments_customer_id")),
    ("not_null_stg_orders_order_id", ("test", "not_null_stg_orders_order_id")),
    ("freshness of raw.raw_orders", ("source", "raw_orders")),
    ("", ("", "")),
])
def test_describe_node(text: str, expected: tuple[str, str]) -> None:
    assert describe_node(text) == expected


# ---- generated logs ------------------------------------------------------------------------------------------
def generated(nodes: int, threads: int, seed: int, colour: bool, failing: set[int]) -> tuple[list[str], list[float]]:
    """A dbt build log: nodes dispatched in number order onto `threads` threads, heavy-tailed durations, each
    result line printed when its node ends (so out of order). Returns the lines and, per line, how many nodes
    were done when it was printed."""
    rng = random.Random(seed)
    reset = "\x1b[0m" if colour else ""
    lines = [f"{reset}10:00:00  Running with dbt=1.12.6", f"{reset}10:00:00  Concurrency: {threads} threads"]
    done_after = [0.0, 0.0]
    running: list[tuple[float, int]] = []
    now, done, number = 36000.0, 0, 0

    def stamp(moment: float) -> str:
        whole = int(moment) % 86400
        return f"{reset}{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}  "

    while number < nodes or running:
        while number < nodes and len(running) < threads:
            number += 1
            heapq.heappush(running, (now + rng.paretovariate(1.5), number))
            lines.append(f"{stamp(now)}{number} of {nodes} START sql table model s.m{number} ....... [RUN]")
            done_after.append(done)
        now, finished = heapq.heappop(running)
        done += 1
        if finished in failing:
            word = "\x1b[31mERROR\x1b[0m" if colour else "ERROR"
            text = f"{finished} of {nodes} ERROR creating sql table model s.m{finished} ..... [{word} in 1.00s]"
        else:
            word = "\x1b[32mOK\x1b[0m" if colour else "OK"
            text = f"{finished} of {nodes} OK created sql table model s.m{finished} ....... [{word} in 1.00s]"
        lines.append(stamp(now) + text)
        done_after.append(done)
    return lines, done_after


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 300), st.integers(1, 8), st.integers(0, 10_000), st.booleans(), st.data())
def test_nodes_done_counts_result_lines_whatever_the_order_colour_or_cut(
        nodes: int, threads: int, seed: int, colour: bool, data: st.DataObject) -> None:
    failing = set(data.draw(st.lists(st.integers(1, nodes), max_size=3)))
    lines, done_after = generated(nodes, threads, seed, colour, failing)
    upto = data.draw(st.integers(1, len(lines)), label="printed so far")
    keep = data.draw(st.integers(1, 1000), label="lines dbt Cloud kept")
    first = max(0, upto - keep)
    text = "\n".join(lines[first:upto]) + "\n"
    scanned = scan(text)
    truth = int(done_after[upto - 1])
    plain = scan(strip_ansi(text))
    assert (plain.done, plain.total, plain.failures) == (scanned.done, scanned.total, scanned.failures)
    if first == 0:
        assert scanned.done == truth, "with the whole log, done is exactly the nodes with a result line"
    elif any(" START " in line for line in lines[first:upto]):
        # The header is cut: nodes dispatched before the cut are counted done; at most `threads` still ran.
        assert truth <= scanned.done <= truth + threads
    visible_failures = {line.name for line in scanned.failures}
    assert visible_failures <= {f"m{n}" for n in failing}
    assert all(line.word in ("ERROR", "FAIL") for line in scanned.failures)


# ---- Fusion (dbt 2.0) and logs nobody can read --------------------------------------------------------------
FUSION = REFERENCE.parent / "fusion"


def test_a_failing_fusion_build_as_dbt_cloud_serves_it() -> None:
    scanned = scan((FUSION / "failing_build.log").read_text("utf-8"))
    assert (scanned.engine, scanned.header, scanned.finished, scanned.total, scanned.done) == (
        "fusion", True, True, 30, 30)
    assert [(f.word, f.resource_type, f.name) for f in scanned.failures] == [
        ("FAIL", "test", "unique_stg_payments_payment_id"), ("ERROR", "model", "int_order_payments")]
    test, model = (scanned.problem_for(f) for f in scanned.failures)
    assert test is not None and test.path == "models/staging/_staging__models.yml" and "3 failed row" in test.message
    assert model is not None and model.path == "models/intermediate/int_order_payments.sql"
    assert "invalid identifier 'P.AMOUNT_CENTS'" in model.message, "the message's continuation lines are kept"
    assert {line.word for line in scanned.results} == {"OK", "PASS", "WARN", "FAIL", "ERROR", "SKIP"}
    seeds = [line for line in scanned.results if line.resource_type == "seed"]
    assert seeds and seeds[0].seconds == 1.12


def test_a_fusion_log_cut_before_its_banner_is_still_fusion() -> None:
    lines = (FUSION / "failing_build.log").read_text("utf-8").splitlines()
    cut = scan("\n".join(lines[5:20]))
    assert cut.engine == "fusion" and not cut.header and not cut.finished and cut.done == 15
    assert scan("\n".join(lines[5:20]), engine_hint="dbt-core").engine == "fusion", "the lines beat the hint"


def test_fusion_durations_and_a_line_without_the_platform_prefix() -> None:
    scanned = scan("    Failed [  5m42s] model analytics.fct_orders (incremental)\n"
                   "   Skipped [-------] test  not_null_fct_orders_id (models/marts/x.yml:9:15)\n")
    assert scanned.engine == "fusion"
    failed, skipped = scanned.results
    assert (failed.word, failed.name, failed.seconds, failed.at) == ("ERROR", "fct_orders", 342.0, None)
    assert (skipped.word, skipped.seconds) == ("SKIP", None)


def test_a_log_in_no_known_format_says_so() -> None:
    scanned = scan("\n".join(f"12:00:{i:02d}  compiling node {i} of something" for i in range(30)))
    assert scanned.engine == "unknown" and scanned.results == () and scanned.failures == ()


def test_a_hostile_line_costs_linear_time() -> None:
    """`4 of 9 START … model x` + 6,000 spaces + `x` took the old scanner 135 s over repeated reads (its bracket
    pattern backtracked). Lines are capped and nothing backtracks: a thousand such lines scan in a subprocess
    that must finish within a generous bound (a liveness check, not a benchmark)."""
    import subprocess
    import sys
    code = ("from dbtgate.watch.dbtlog import scan\n"
            "line = '21:00:00  4 of 9 START sql table model x' + ' ' * 6000 + 'x'\n"
            "for _ in range(20): scan('\\n'.join([line] * 1000))\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    from dbtgate.watch.dbtlog import MAX_LINE
    long = "21:00:00  1 of 2 OK created sql table model main.x " + "." * 10_000 + " [OK in 1.00s]"
    assert scan(long).results == () or len(long) > MAX_LINE, "a line is read only up to MAX_LINE characters"

"""The Python API (issue 14 §4): the same gate as the action, for Airflow, Dagster, Prefect, dlt and scripts —
no global logging configuration, nothing printed, progress through `logging` or a callback."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

import dbtgate
import dbtgate.logs
from tests.conftest import TOKEN, EmulatorFactory

FAST = 600.0


@pytest.fixture(autouse=True)
def library_mode() -> Any:
    """As in a fresh process that only imported dbtgate: nothing has configured dbtgate's logging."""
    saved = dbtgate.logs._configured, dbtgate.logs._pending
    dbtgate.logs._configured, dbtgate.logs._pending = False, None
    yield
    dbtgate.logs._configured, dbtgate.logs._pending = saved


def connection(emulator: Any) -> dict[str, Any]:
    return {"account_id": 1, "token": TOKEN, "url": emulator.url, "interval": 0.2, "timeout": "2m"}


def test_run_job_returns_the_result_of_a_successful_run(emulator_factory: EmulatorFactory, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    emulator = emulator_factory(time_scale=FAST)
    root_handlers = list(logging.getLogger().handlers)
    lines: list[str] = []
    result = dbtgate.run_job(job_id=1, on_progress=lines.append, **connection(emulator))
    assert result.succeeded and result.outcome == "success" and result.run is not None
    assert result.run_id == result.run.id and result.run_url.endswith(f"/runs/{result.run_id}/")
    assert result.finished_at is not None and result.failed_nodes == ()
    assert result.artifacts_dir is None, "a library call saves artifacts only where it is told to"
    assert any("Triggered run" in line for line in lines)
    printed = capsys.readouterr()
    assert printed.out == "" and printed.err == "", "a library prints nothing"
    assert logging.getLogger().handlers == root_handlers, "a library configures no logging"
    assert "::" not in "".join(lines)


def test_a_failed_run_raises_run_failed_with_the_failing_nodes(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory(time_scale=FAST)
    with pytest.raises(dbtgate.RunFailed) as failed:
        dbtgate.run_job(job_id=2, **connection(emulator))
    result = failed.value.result
    assert result.outcome == "error" and result.exit_code == 1
    assert [node.unique_id for node in result.failed_nodes] == ["test.jaffle_shop.not_null_orders_order_id"]
    assert result.failed_nodes[0].file_path == "models/marts/schema.yml"
    assert str(result.run_id) in str(failed.value)


def test_raise_on_failure_false_returns_the_failure(emulator_factory: EmulatorFactory, tmp_path: Path) -> None:
    emulator = emulator_factory(time_scale=FAST)
    result = dbtgate.run_job(job_id=2, raise_on_failure=False, artifacts_dir=str(tmp_path / "t"),
                             **connection(emulator))
    assert not result.succeeded and result.outcome == "error"
    assert result.artifacts_dir is not None and (tmp_path / "t" / "run_results.json").is_file()


def test_progress_goes_to_the_standard_logging_module(emulator_factory: EmulatorFactory,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    emulator = emulator_factory(time_scale=FAST)
    with caplog.at_level(logging.INFO, logger="dbtgate"):
        dbtgate.run_job(job_id=1, **connection(emulator))
    assert any("Triggered run" in record.getMessage() for record in caplog.records)


def test_wait_for_run_and_latest_run(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory(time_scale=FAST)
    first = dbtgate.run_job(job_id=1, wait_for_job=False, **connection(emulator))
    assert first.outcome == "not_waited" and first.run_id is not None
    waited = dbtgate.wait_for_run(first.run_id, **connection(emulator))
    assert waited.outcome == "success" and waited.run_id == first.run_id
    latest = dbtgate.latest_run(job_id=1, **connection(emulator))
    assert latest.run_id == first.run_id
    assert len(emulator.log.of("trigger")) == 1


def test_bad_options_fail_before_anything_is_sent(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory()
    with pytest.raises(dbtgate.ConfigError) as bad:
        dbtgate.run_job(job_id=1, threads_override="many", **connection(emulator))
    assert "option `threads_override`" in str(bad.value)
    with pytest.raises(TypeError, match="unknown option"):
        dbtgate.run_job(job_id=1, thread_override=4, **connection(emulator))
    assert emulator.log.all() == []


def test_cancel_run(emulator_factory: EmulatorFactory) -> None:
    emulator = emulator_factory()
    started = dbtgate.run_job(job_id=4, wait_for_job=False, **connection(emulator))
    assert started.run_id is not None
    cancelled = dbtgate.cancel_run(started.run_id, account_id=1, token=TOKEN, url=emulator.url)
    assert cancelled.id == started.run_id and emulator.log.cancels() == [started.run_id]


def test_the_library_redacts_each_call_s_token_and_forgets_it_after() -> None:
    """One call's token is redacted from what dbtgate logs during that call; a long-lived worker does not collect
    every token it ever used in a module-wide list."""
    import logging

    from dbtgate.logs import _StdlibLogger, library_redaction

    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    logger = logging.getLogger("dbtgate.test-redaction")
    logger.addHandler(Keep())
    logger.setLevel(logging.INFO)
    with library_redaction("dbtc_secret-one"):
        _StdlibLogger("dbtgate.test-redaction").info("echoed dbtc_secret-one")
    _StdlibLogger("dbtgate.test-redaction").info("after dbtc_secret-one")
    assert records == ["echoed ***", "after dbtc_secret-one"]


def test_run_failed_says_why_and_which_nodes(emulator_factory: EmulatorFactory) -> None:
    """str(RunFailed) is what Airflow or Dagster show: the reason and the failed nodes, not only a headline."""
    emulator = emulator_factory(time_scale=FAST)
    with pytest.raises(dbtgate.RunFailed) as failed:
        dbtgate.run_job(job_id=2, **connection(emulator))
    message = str(failed.value)
    assert "test not_null_orders_order_id fail (models/marts/schema.yml): Got 3 results" in message, message
    assert f"Run: {failed.value.result.run_url}" in message
    # A wrong token is bad input (issue 23 §3): ConfigError, whose message says what dbt Cloud answered.
    with pytest.raises(dbtgate.ConfigError) as refused:
        dbtgate.run_job(job_id=1, **{**connection(emulator), "token": "a-wrong-token-0123456789"})
    message = str(refused.value)
    assert "401" in message and "dbt_cloud_token" in message, message
    assert "a-wrong-token" not in message

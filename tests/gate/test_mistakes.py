"""Mistakes are called mistakes (issue 23 §3): a wrong token, account, job, run, host or URL is bad input — exit 2,
`config_error`, found at the first call, naming the input to fix — and never "dbt Cloud is down" (exit 3), which
whoever retries on exit 3 would retry forever. An outage stays exit 3.
"""

from __future__ import annotations

import http.server
import io
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dbtgate.app import execute, open_channel
from dbtgate.clock import VirtualClock
from dbtgate.config import parse_config
from dbtgate.emulator import Emulator
from tests.conftest import TOKEN, scenario
from tests.fault_matrix import run_gate
from tests.runner import parse_output_file

JOBS: list[dict[str, Any]] = [{"id": 1, "name": "Nightly", "run_seconds": 60}]


def gate(inputs: dict[str, str], token: str = TOKEN) -> Any:
    clock = VirtualClock()
    with Emulator(scenario(None, JOBS), clock=clock) as emulator:
        return run_gate(emulator, clock, inputs, token=token)


@pytest.mark.parametrize(("inputs", "token", "names"), [
    ({"dbt_cloud_job_id": "999"}, TOKEN, "dbt_cloud_job_id"),
    ({"dbt_cloud_job_id": "1", "dbt_cloud_account_id": "77"}, TOKEN, "dbt_cloud_account_id"),
    ({"dbt_cloud_job_id": "1"}, "dbtc_not-the-token", "dbt_cloud_token"),
    ({"run_id": "123456"}, TOKEN, "run_id"),
])
def test_a_wrong_id_or_token_is_bad_input_at_the_first_call(inputs: dict[str, str], token: str, names: str) -> None:
    seen = gate(inputs, token=token)
    assert (seen.outcome, seen.exit_code) == ("config_error", 2), seen.summary
    assert names in seen.summary.replace("\\_", "_"), seen.summary
    assert seen.emulator.log.of("trigger") == [], "nothing was triggered"
    if names == "run_id":
        # A given run id may 404 for its first seconds (a brand-new run's race): asked again for 10 s, no longer.
        assert "looked again for up to 10 s" in seen.summary and 3 <= len(seen.emulator.log.all()) <= 8
    else:
        assert len(seen.emulator.log.all()) <= 3, "found at the first call, not after retries"


@pytest.mark.parametrize("timeout", ["3s", "8s", "2h"])
def test_a_wrong_run_id_is_bad_input_whatever_the_timeout(timeout: str) -> None:
    # The 10 s asked of a 404 (a new run's race) must not turn a wrong id into "the API failed" (exit 3) when the
    # timeout ends first: whoever retries on exit 3 would retry a typo forever.
    seen = gate({"run_id": "123456", "timeout": timeout})
    assert (seen.outcome, seen.exit_code) == ("config_error", 2), seen.summary
    assert r"run\_id" in seen.summary and seen.emulator.log.of("trigger") == []


def test_a_wrong_token_keeps_the_regional_host_hint() -> None:
    seen = gate({"dbt_cloud_job_id": "1"}, token="dbtc_not-the-token")
    assert "access URL" in seen.summary and "dbt\\_cloud\\_url" in seen.summary


def _gate_at(url: str, tmp_path: Path) -> tuple[int, dict[str, str], str]:
    config = parse_config({"dbt_cloud_url": url, "dbt_cloud_token": TOKEN, "dbt_cloud_account_id": "1",
                           "dbt_cloud_job_id": "1", "allow_insecure_http": "true", "timeout": "10m",
                           "api_timeout": "5"}, {"GITHUB_WORKSPACE": str(tmp_path)})
    out = tmp_path / "out.txt"
    out.write_text("")
    stream = io.StringIO()
    workflow, redactor, _ = open_channel(stream, stream, TOKEN, github=True)
    code = execute(config, {}, workflow, redactor, output_file=str(out), summary_file=str(tmp_path / "s.md"),
                   install_signals=False, clock=VirtualClock())
    return code, parse_output_file(out.read_text()), stream.getvalue()


@pytest.fixture
def not_dbt_cloud() -> Iterator[str]:
    """A web server that is not dbt Cloud: every path is an HTML 404 page."""
    class Pages(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<html><body><h1>404 Not Found</h1></body></html>"
            self.send_response(404)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Pages)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_host_that_is_not_dbt_cloud_is_bad_input(not_dbt_cloud: str, tmp_path: Path) -> None:
    code, outputs, log = _gate_at(not_dbt_cloud, tmp_path)
    assert (code, outputs["outcome"]) == (2, "config_error"), log
    assert "dbt_cloud_url" in log and "not dbt Cloud" in log


def test_a_host_name_that_does_not_exist_is_bad_input_at_once(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The resolver's "no such name" (EAI_NONAME) is a typo: no retries for 80 s, no status page."""
    calls: list[str] = []

    def no_such_name(host: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(str(host))
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)
    code, outputs, log = _gate_at("https://ab123.us1.dbt.comm", tmp_path)
    assert (code, outputs["outcome"]) == (2, "config_error"), log
    assert "dbt_cloud_url" in log and "does not exist" in log and "status.getdbt.com" not in log
    assert len(calls) == 1, "found at the first call"


def test_a_resolver_that_cannot_answer_is_an_outage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_answer(host: Any, *args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", no_answer)
    code, outputs, _ = _gate_at("https://ab123.us1.dbt.com", tmp_path)
    assert (code, outputs["outcome"]) == (3, "api_error")


def test_a_5xx_that_persists_stays_an_outage() -> None:
    clock = VirtualClock()
    faults = [{"kind": "http_error", "endpoint": "get_job", "status": 503, "count": 0}]
    with Emulator(scenario(faults, JOBS), clock=clock) as emulator:
        seen = run_gate(emulator, clock, {"dbt_cloud_job_id": "1"})
    assert (seen.outcome, seen.exit_code) == ("api_error", 3)


def test_a_refused_trigger_is_bad_input_not_a_lost_answer() -> None:
    """A 403 on the trigger POST created no run: no search for one, no "got no answer" note, exit 2."""
    clock = VirtualClock()
    faults = [{"kind": "http_error", "endpoint": "trigger", "status": 403, "count": 0}]
    with Emulator(scenario(faults, JOBS), clock=clock) as emulator:
        seen = run_gate(emulator, clock, {"dbt_cloud_job_id": "1"})
    assert (seen.outcome, seen.exit_code) == ("config_error", 2), seen.summary
    assert "got no answer" not in seen.summary and emulator.log.of("list_runs") == []

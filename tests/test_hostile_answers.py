"""Every byte from dbt Cloud parsed once and totally: no traceback, no orphan, no leak, no spin (issue 21).

Each test attacks a mechanism, not one value: the model boundary (§1), secrets in every encoding (§3), the report's
channels (§4), local write errors (§5), links and text (§6), dates (§7) and two gates at once (§8). All of them talk
real HTTP to the emulator on a virtual clock whose date is fixed, unless the point is a pure function.
"""

from __future__ import annotations

import errno
import io
import json
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dbtgate import artifacts
from dbtgate.app import execute, open_channel
from dbtgate.artifacts import NodeIssue, RedactingWriter
from dbtgate.cli import main
from dbtgate.clock import VirtualClock
from dbtgate.cloud.client import DbtCloudClient, connect
from dbtgate.cloud.interface import CloudApi
from dbtgate.cloud.models import Run
from dbtgate.config import parse_config
from dbtgate.emulator import Emulator
from dbtgate.gate.find import staleness
from dbtgate.gate.gate import Gate
from dbtgate.gate.trigger import reuse_mismatch
from dbtgate.logs import Redactor
from dbtgate.parsers import normalize_url
from dbtgate.report.annotations import annotation_path
from tests.conftest import TOKEN, EmulatorFactory, scenario
from tests.runner import parse_output_file

WALL = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)   # the gate's date and the emulator's: no test reads today's


@dataclass
class Gated:
    code: int
    log: str
    outputs: dict[str, str]
    summary: str
    emulator: Emulator


@pytest.fixture
def virtual() -> Iterator[tuple[VirtualClock, list[Emulator]]]:
    clock = VirtualClock(wall_start=WALL)
    started: list[Emulator] = []
    yield clock, started
    for emulator in started:
        emulator.stop()


def start(virtual: tuple[VirtualClock, list[Emulator]], faults: list[dict[str, Any]] | None = None) -> Emulator:
    clock, started = virtual
    emulator = Emulator(scenario(faults), clock=clock).start()
    started.append(emulator)
    return emulator


def rewrite(endpoint: str, values: dict[str, Any], count: int = 0) -> dict[str, Any]:
    return {"kind": "rewrite", "endpoint": endpoint, "values": values, "count": count}


def gate(emulator: Emulator, clock: VirtualClock, workdir: Path, *, output_file: Path | None = None,
         summary_file: Path | None = None, **inputs: str) -> Gated:
    """The whole gate (`app.execute`) in-process, as the action runs it, with its report files where asked."""
    workdir.mkdir(parents=True, exist_ok=True)
    raw = {"dbt_cloud_url": emulator.url, "dbt_cloud_token": TOKEN, "dbt_cloud_account_id": "1",
           "dbt_cloud_job_id": "1", "interval": "30", "timeout": "2h", "api_timeout": "5", **inputs}
    config = parse_config(raw, {"GITHUB_WORKSPACE": str(workdir)})
    stream = io.StringIO()
    outputs, summary = output_file or workdir / "outputs.txt", summary_file or workdir / "summary.md"
    workflow, redactor, _ = open_channel(stream, stream, TOKEN, github=True)
    code = execute(config, {}, workflow, redactor, summary_file=str(summary), output_file=str(outputs),
                   install_signals=False, clock=clock)
    written = outputs.read_text("utf-8") if outputs.is_file() else ""
    return Gated(code, stream.getvalue(), parse_output_file(written) if written else {},
                 summary.read_text("utf-8") if summary.is_file() else "", emulator)


# ---- §1 the boundary from JSON to models is total ---------------------------------------------------------------
def test_one_unreadable_row_of_the_run_list_is_skipped_not_fatal(virtual: tuple[VirtualClock, list[Emulator]]
                                                                 ) -> None:
    clock, _ = virtual
    emulator = start(virtual, [rewrite("list_runs", {"0.created_at": 12345, "1.id": "x"})])
    client = DbtCloudClient(emulator.url, TOKEN, 1, clock=clock)
    ids = [client.trigger_run(1, {"cause": "t"}, deadline=60).id for _ in range(3)]
    listed = [run.id for run in client.list_runs(1, deadline=60)]
    # Newest first: the first row's date is a number (kept, its date unknown), the second row has no id (skipped).
    assert listed == [ids[2], ids[0]]


@pytest.mark.parametrize("command", ["status", "cancel"])
def test_status_and_cancel_survive_any_value(emulator_factory: EmulatorFactory, command: str) -> None:
    endpoint = "get_run" if command == "status" else "cancel"
    emulator = emulator_factory(faults=[rewrite(endpoint, {"created_at": 12345, "duration": 5,
                                                           "finished_at": "9999-12-31 23:00:00-05:00"})])
    run_id = DbtCloudClient(emulator.url, TOKEN, 1, clock=VirtualClock(wall_start=WALL)).trigger_run(
        1, {"cause": "t"}, deadline=60).id
    out, err = io.StringIO(), io.StringIO()
    code = main([command, str(run_id), "--url", emulator.url, "--account-id", "1", "--json"],
                env={"DBT_CLOUD_API_TOKEN": TOKEN}, stdout=out, stderr=err)
    assert code == 0, err.getvalue()
    assert json.loads(out.getvalue())["run_id"] == run_id


def test_a_float_id_never_triggers_twice_and_is_reported(virtual: tuple[VirtualClock, list[Emulator]],
                                                         tmp_path: Path) -> None:
    clock, _ = virtual
    emulator = start(virtual, [{"kind": "lose_trigger_response"}, rewrite("list_runs", {"*.id": "$as_float"}),
                               rewrite("get_run", {"id": "$as_float"})])
    done = gate(emulator, clock, tmp_path)
    [run_id] = emulator.world.run_ids()
    assert (done.code, done.outputs["outcome"], done.outputs["run_id"]) == (0, "success", str(run_id)), done.log


def _fake_download(files: dict[str, bytes]) -> CloudApi:
    class Client:
        def download_artifact(self, run_id: int, path: str, sink: Any, *, deadline: float, max_bytes: int,
                              step: int | None = None) -> int | None:
            if path not in files:
                return None
            handle = sink()
            handle.write(files[path])
            handle.close()
            return len(files[path])

    return cast(CloudApi, Client())


def test_artifact_values_cannot_turn_into_an_error(tmp_path: Path) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    results = {"results": [{"unique_id": "model.p.a", "status": "warn", "execution_time": 10 ** 400,
                            "message": "warned"},
                           {"unique_id": "model.p.b", "status": "error", "execution_time": float("inf"),
                            "message": {"not": "text"}}]}
    manifest = ('{"nodes": {"model.p.a": {"unique_id": "model.p.a", "name": ' + deep + '}, "model.p.b": '
                '{"unique_id": "model.p.b", "name": "b", "original_file_path": ' + deep + '}}}')
    report = artifacts.collect_artifacts(
        _fake_download({"run_results.json": json.dumps(results).encode(), "manifest.json": manifest.encode()}), 1,
        workspace=tmp_path, directory=None, fetch_catalog=False, extra=(), max_bytes=10 ** 9, deadline=60)
    assert [issue.unique_id for issue in report.warned] == ["model.p.a"]
    assert [issue.unique_id for issue in report.failed] == ["model.p.b"]
    assert report.warned[0].execution_time is None and report.warned[0].name == "a"
    assert report.failed[0].file_path == "" and report.failed[0].message == artifacts.NO_MESSAGE, "never an empty cell"


# ---- §3 secrets in every encoding -------------------------------------------------------------------------------
SECRET = "dbtc_Zx9/q+Ab-1"


def json_escaped(secret: str, choices: list[bool]) -> str:
    return "".join(f"\\u{ord(ch):04{'x' if pick else 'X'}}" if pick else ("\\/" if ch == "/" else ch)
                   for ch, pick in zip(secret, choices, strict=True))


@settings(max_examples=150)
@given(st.lists(st.booleans(), min_size=len(SECRET), max_size=len(SECRET)), st.integers(1, 40))
def test_a_json_escaped_token_is_redacted_from_saved_artifacts(choices: list[bool], chunk: int) -> None:
    text = '{"results": [{"message": "token: ' + json_escaped(SECRET, choices) + '"}]}'
    saved = io.BytesIO()
    saved.close = lambda: None  # type: ignore[method-assign]
    writer = RedactingWriter(cast(BinaryIO, saved), (SECRET.encode(),))
    data = text.encode()
    for at in range(0, len(data), chunk):
        writer.write(data[at:at + chunk])
    writer.close()
    assert SECRET not in json.dumps(json.loads(saved.getvalue()))
    assert SECRET not in saved.getvalue().decode()


@settings(max_examples=100)
@given(st.lists(st.sampled_from(["plain", "url", "URL", "json"]), min_size=len(SECRET), max_size=len(SECRET)))
def test_the_redactor_catches_the_token_url_encoded_and_json_escaped(forms: list[str]) -> None:
    encoded = "".join(ch if form == "plain" or (form.lower() == "url" and ch.isalnum()) else
                      (f"%{ord(ch):02x}" if form == "url" else f"%{ord(ch):02X}") if form.lower() == "url" else
                      f"\\u{ord(ch):04x}" for ch, form in zip(SECRET, forms, strict=True))
    scrubbed = Redactor([SECRET]).scrub(f"https://x.example/cb?t={encoded}&next=1 or {{\"t\": \"{encoded}\"}}")
    assert SECRET not in urllib.parse.unquote(scrubbed)
    assert SECRET not in scrubbed.encode().decode("unicode_escape", "replace")


def test_a_url_with_a_query_string_is_named_by_its_host_only() -> None:
    with pytest.raises(ValueError) as refused:
        normalize_url("https://ab123.us1.dbt.com/?signature=QUERYSECRET#frag", allow_insecure_http=False)
    assert "QUERYSECRET" not in str(refused.value) and "ab123.us1.dbt.com" in str(refused.value)


def test_a_proxy_in_the_environment_never_sees_a_loopback_request(monkeypatch: pytest.MonkeyPatch,
                                                                  emulator_factory: EmulatorFactory) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    seen: list[bytes] = []

    def accept() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with connection:
                connection.settimeout(1)
                try:
                    seen.append(connection.recv(65536))
                except OSError:
                    seen.append(b"")

    threading.Thread(target=accept, daemon=True).start()
    proxy = f"http://127.0.0.1:{listener.getsockname()[1]}"
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, proxy)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    emulator = emulator_factory()
    try:
        job = DbtCloudClient(emulator.url, TOKEN, 1, clock=VirtualClock(wall_start=WALL)).get_job(1, deadline=30)
    finally:
        listener.close()
    assert job.id == 1
    assert seen == [], "the proxy received the request (and the token in clear)"


# ---- §4 the report is always written, and agrees with the exit code ---------------------------------------------
def test_an_output_file_in_a_missing_folder_leaves_the_summary_and_the_exit_code(
        virtual: tuple[VirtualClock, list[Emulator]], tmp_path: Path) -> None:
    clock, _ = virtual
    done = gate(start(virtual), clock, tmp_path / "ws", output_file=tmp_path / "gone" / "output.txt")
    assert done.code == 0, done.log
    assert "succeeded" in done.summary
    assert "::warning title=dbtgate%3A step outputs not written::" in done.log
    assert str(tmp_path / "gone" / "output.txt") in done.log


def test_an_unwritable_summary_does_not_change_the_exit_code(virtual: tuple[VirtualClock, list[Emulator]],
                                                             tmp_path: Path) -> None:
    clock, _ = virtual
    folder = tmp_path / "summary-is-a-folder"
    folder.mkdir()
    done = gate(start(virtual), clock, tmp_path / "ws", summary_file=folder)
    assert (done.code, done.outputs["outcome"], done.outputs["exit_code"]) == (0, "success", "0"), done.log
    assert "::warning title=dbtgate%3A job summary not written::" in done.log


# ---- §5 a local failure is local --------------------------------------------------------------------------------
class FullDisk(io.RawIOBase):
    """A file on a full disk: the write (or, buffered, the flush at close) fails with ENOSPC."""

    def __init__(self, fail_on: str) -> None:
        self.fail_on = fail_on

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if self.fail_on == "write":
            raise OSError(errno.ENOSPC, "No space left on device")
        return len(data)

    def close(self) -> None:
        if self.fail_on == "close" and not self.closed:
            super().close()
            raise OSError(errno.ENOSPC, "No space left on device")
        super().close()


@pytest.mark.parametrize("fail_on", ["write", "close"])
def test_a_full_disk_ends_the_download_at_once_and_is_not_blamed_on_dbt_cloud(
        virtual: tuple[VirtualClock, list[Emulator]], fail_on: str) -> None:
    clock, _ = virtual
    emulator = start(virtual)
    client = DbtCloudClient(emulator.url, TOKEN, 1, clock=clock)
    run_id = client.trigger_run(1, {"cause": "t"}, deadline=60).id
    clock.advance(3600)
    with pytest.raises(OSError) as failed:
        client.download_artifact(run_id, "run_results.json", lambda: cast(BinaryIO, FullDisk(fail_on)),
                                 deadline=clock.monotonic() + 60, max_bytes=10 ** 8)
    assert failed.value.errno == errno.ENOSPC
    assert emulator.log.arrived("get_artifact") == 1, "a local write error was retried as if dbt Cloud failed"
    assert clock.monotonic() == 3600, "it waited before giving up"


def test_a_full_disk_leaves_the_runs_verdict_alone(virtual: tuple[VirtualClock, list[Emulator]], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    clock, _ = virtual
    monkeypatch.setattr(artifacts, "open_inside", lambda root, where: cast(BinaryIO, FullDisk("close")))
    done = gate(start(virtual), clock, tmp_path)
    assert (done.code, done.outputs["outcome"]) == (0, "success"), done.log
    assert r"run\_results.json: could not be written to target/run\_results.json (No space left on device)" in \
        done.summary
    assert done.emulator.log.arrived("get_artifact") == 2   # run_results.json and manifest.json, once each


# ---- §6 links go only to the configured host; text stays text ----------------------------------------------------
def test_a_run_link_on_another_host_is_rebuilt_on_the_configured_one(virtual: tuple[VirtualClock, list[Emulator]],
                                                                     tmp_path: Path) -> None:
    clock, _ = virtual
    evil = {"href": "https://evil.example/deploy/1/projects/1/runs/1/"}
    emulator = start(virtual, [rewrite(endpoint, evil) for endpoint in ("trigger", "get_run", "list_runs")])
    done = gate(emulator, clock, tmp_path, dbt_cloud_job_id="2")
    [run_id] = emulator.world.run_ids()
    assert done.outputs["run_url"] == f"{emulator.url}/deploy/1/projects/1/runs/{run_id}/"
    assert "evil.example" not in done.summary + done.log


def test_urls_and_addresses_in_dbt_cloud_text_read_well_and_link_nowhere(
        virtual: tuple[VirtualClock, list[Emulator]], tmp_path: Path) -> None:
    clock, _ = virtual
    message = "Log in at https://evil.example/login or www.evil.example, or mail help@evil.example \u202efdp.exe"
    emulator = start(virtual, [rewrite("get_run", {"status_message": message})])
    done = gate(emulator, clock, tmp_path, dbt_cloud_job_id="2")
    assert done.code == 1
    summary = done.summary
    assert r"https\[:\]//evil\[.\]example/login" in summary
    assert r"www\[.\]evil\[.\]example" in summary and r"help@evil\[.\]example" in summary
    for linkable in ("https://evil", "www.evil", "@evil.example", "&#47;", "&\\#"):
        assert linkable not in summary, linkable
    assert "\u202e" not in summary + done.log + json.dumps(done.outputs, ensure_ascii=False)


@pytest.mark.parametrize(("path", "expected"), [
    ("models/orders.sql", "dbt/models/orders.sql"), ("../../etc/passwd", None), ("/etc/passwd", None),
    ("models/../../x.sql", None), ("models\\..\\x.sql", None), ("models/a\nb.sql", None), ("C:/x.sql", None),
])
def test_annotation_paths_stay_inside_the_project(path: str, expected: str | None) -> None:
    node = NodeIssue("model.p.a", "a", "model", "error", "m", None, path)
    assert annotation_path(node, "dbt") == expected


def test_bidi_controls_are_stripped_from_names_and_messages() -> None:
    run = Run.from_api({"id": 1, "status": 20, "status_message": "ok\u202e\u2066txt.exe",
                        "job": {"name": "Prod\u202d build"}, "run_steps": [{"name": "dbt\u2069 build"}]})
    assert (run.status_message, run.job_name, run.steps[0].name) == ("oktxt.exe", "Prod build", "dbt build")


# ---- §7 one rule for commits and dates -----------------------------------------------------------------------------
def _run(**fields: Any) -> Run:
    return Run.from_api({"id": 1, "job_definition_id": 1, "status": 10, "is_complete": True, **fields})


def test_a_run_whose_git_sha_is_a_single_letter_is_not_reused() -> None:
    full = "a" + "0" * 39
    run = _run(status=3, is_complete=False, trigger={"cause": "x", "git_sha": "a"}, git_sha="a")
    assert "git_sha" in reuse_mismatch({"git_sha": full}, run, 1)
    same = _run(status=3, is_complete=False, trigger={"cause": "x", "git_sha": full[:7]})
    assert reuse_mismatch({"git_sha": full}, same, 1) == ""


@pytest.mark.parametrize(("created", "finished", "fresh"), [
    (WALL - timedelta(minutes=30), WALL - timedelta(minutes=20), True),
    (WALL - timedelta(minutes=30), WALL + timedelta(minutes=5), True),        # within the clock-skew allowance
    (WALL - timedelta(minutes=30), datetime(2999, 1, 1, tzinfo=UTC), False),  # finished in the future
    (WALL - timedelta(minutes=10), WALL - timedelta(minutes=20), False),      # finished before it was created
])
def test_a_run_that_finished_in_the_future_or_before_it_began_has_an_unknown_age(
        created: datetime, finished: datetime, fresh: bool) -> None:
    run = _run(created_at=created.isoformat(), finished_at=finished.isoformat())
    why = staleness(run, 3600, WALL)
    assert (why == "") is fresh, why
    if not fresh:
        assert "unknown" in why


# ---- §8 two gates at once ---------------------------------------------------------------------------------------
class RacingClient:
    """The real client, except that another gate triggers the same job with the same settings just before this one
    does: both looked for a run to reuse and found none."""

    def __init__(self, inner: DbtCloudClient) -> None:
        self.inner = inner
        self.other: Run | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def trigger_run(self, job_id: int, body: dict[str, Any], *, deadline: float) -> Run:
        if self.other is None:
            self.other = self.inner.trigger_run(job_id, {**body, "cause": "CI [dbtgate:0ther0ne]"}, deadline=deadline)
        return self.inner.trigger_run(job_id, body, deadline=deadline)


def reusing_config(emulator: Emulator, workspace: Path) -> Any:
    """A gate of job 1 with reuse_existing_run, as both racing gates are configured."""
    return parse_config({"dbt_cloud_url": emulator.url, "dbt_cloud_token": TOKEN, "dbt_cloud_account_id": "1",
                         "dbt_cloud_job_id": "1", "interval": "30", "timeout": "2h", "reuse_existing_run": "true",
                         "get_artifacts": "false"}, {"GITHUB_WORKSPACE": str(workspace)})


def test_two_gates_reusing_at_once_converge_on_the_older_run(virtual: tuple[VirtualClock, list[Emulator]],
                                                             tmp_path: Path) -> None:
    clock, _ = virtual
    emulator = start(virtual)
    config = reusing_config(emulator, tmp_path)
    racing = RacingClient(connect(config, clock))
    result = Gate(config, cast(CloudApi, racing), clock).run()
    assert racing.other is not None
    older, [mine] = racing.other.id, [i for i in emulator.world.run_ids() if i != racing.other.id]
    assert result.run is not None and result.run.id == older and result.outcome.value == "success"
    assert emulator.log.cancels() == [mine]
    assert any(f"run {older}" in note and f"run {mine}" in note for note in result.notes), result.notes


def test_the_older_of_two_racing_runs_keeps_its_own(virtual: tuple[VirtualClock, list[Emulator]],
                                                    tmp_path: Path) -> None:
    """The other gate's run comes second: this gate's run is the older one, kept; the other gate cancels its own."""
    clock, _ = virtual
    emulator = start(virtual)
    config = reusing_config(emulator, tmp_path)
    client = connect(config, clock)

    class Later(RacingClient):
        def trigger_run(self, job_id: int, body: dict[str, Any], *, deadline: float) -> Run:
            mine = self.inner.trigger_run(job_id, body, deadline=deadline)
            self.other = self.inner.trigger_run(job_id, {**body, "cause": "CI [dbtgate:0ther0ne]"},
                                                deadline=deadline)
            return mine

    later = Later(client)
    result = Gate(config, cast(CloudApi, later), clock).run()
    assert later.other is not None and result.run is not None and result.run.id != later.other.id
    assert emulator.log.cancels() == []


"""A local dbt Cloud: the Administrative API v2 on loopback, with runs that progress by a clock and faults on cue.

    from dbtgate.emulator import Emulator

    with Emulator() as emulator:            # the built-in scenario, a free port, plain http
        print(emulator.url, emulator.token, emulator.account_id)
        ...                                 # talk HTTP to it; emulator.log records every request

`run_emulator()` is the same as a context manager that yields just the base URL.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from dbtgate.clock import Clock, SystemClock
from dbtgate.emulator.faults import FaultInjector
from dbtgate.emulator.scenario import FaultSpec, JobSpec, Scenario, ScenarioError, load_scenario, parse_scenario
from dbtgate.emulator.server import EmulatorHTTPServer, Handler, LoggedRequest, RequestLog
from dbtgate.emulator.tls import make_self_signed_certificate
from dbtgate.emulator.world import World

__all__ = ["Emulator", "FaultSpec", "JobSpec", "LoggedRequest", "Scenario", "ScenarioError", "load_scenario",
           "parse_scenario", "run_emulator"]


class Emulator:
    def __init__(self, scenario: Scenario | None = None, *, port: int = 0, host: str = "127.0.0.1",
                 tls: bool = False, clock: Clock | None = None, epoch: float | None = None) -> None:
        self.scenario = scenario if scenario is not None else load_scenario()
        self.clock = clock or SystemClock()
        self.log = RequestLog()
        self.ca_file: Path | None = None
        self._server = EmulatorHTTPServer((host, port), Handler, bind_and_activate=True)
        if tls:
            cert, key = make_self_signed_certificate()
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self.ca_file = cert
        bound_host, bound_port = str(self._server.server_address[0]), int(self._server.server_address[1])
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://{'localhost' if tls else bound_host}:{bound_port}"
        self.world = World(self.scenario, self.clock, base_url=self.url, epoch=epoch)
        self.faults = FaultInjector(self.scenario.faults)
        self._server.world, self._server.faults, self._server.log = self.world, self.faults, self.log
        self._thread: threading.Thread | None = None

    @property
    def token(self) -> str:
        return self.scenario.token

    @property
    def account_id(self) -> int:
        return self.scenario.account_id

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> Emulator:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="dbtgate-emulator", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever(poll_interval=0.2)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()


@contextmanager
def run_emulator(scenario: Scenario | None = None, **options: object) -> Iterator[str]:
    """The emulator as a context manager that yields its base URL (e.g. "http://127.0.0.1:54321")."""
    with Emulator(scenario, **options) as emulator:  # type: ignore[arg-type]
        yield emulator.url

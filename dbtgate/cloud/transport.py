"""One HTTP exchange with dbt Cloud, bounded in time and memory whatever the server does.

`requests` applies its read timeout to each socket read, so a server that sends a byte every few seconds keeps a
request alive forever: each exchange runs on a worker thread that the caller abandons at its budget. Bodies are read
in counted chunks, so no answer takes more than its limit of memory (or disk, for an artifact streamed to a file).
This is the only module that touches the network.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

import requests

from dbtgate.cloud.retry import Attempt, AttemptFailure, parse_retry_after
from dbtgate.logs import get_logger

log = get_logger("dbtgate.client")

CONNECT_TIMEOUT = 10.0
ERROR_BODY_LIMIT = 64 * 1024
CHUNK = 64 * 1024


@dataclass
class Response:
    status: int
    body: Any            # parsed JSON, or None
    text: str
    headers: dict[str, str]


class _Transfer:
    """One HTTP exchange run on a worker thread, so the caller can stop waiting at its deadline.

    `requests` applies its read timeout to each socket read, so a server that sends a byte every few seconds keeps a
    request alive forever. The caller therefore waits on this transfer for at most its own budget and then abandons
    it: the response is closed (which ends the worker's read), and the worker can touch nothing the caller still
    uses. The body is read in chunks and counted, so no answer can take more than `limit` bytes of memory (or disk).
    """

    def __init__(self) -> None:
        self.done = threading.Event()
        self.abandoned = False
        self.reply: requests.Response | None = None
        self.attempt = Attempt(failure=AttemptFailure.READ_TIMEOUT)
        self.content = b""
        self.headers: dict[str, str] = {}
        self.sink_error: OSError | None = None   # the local file could not be written: not the server's fault

    def abandon(self) -> None:
        """Stop the worker's read without ever blocking the caller.

        Closing the response would wait for the lock the worker's buffered read holds (until a trickling body
        ends); shutting the socket down makes that read return at once instead. Before the response exists the
        worker is left to its own socket timeout: it can no longer touch anything the caller uses."""
        self.abandoned = True
        reply = self.reply
        if reply is None:
            return
        raw = getattr(reply, "raw", None)
        connection = getattr(raw, "_connection", None)
        sock = getattr(connection, "sock", None)
        if sock is None:  # urllib3 without the connection handle: reach the socket under the file object
            sock = getattr(getattr(getattr(getattr(raw, "_fp", None), "fp", None), "raw", None), "_sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


Sink = Callable[[], BinaryIO]


class SinkFailed(Exception):
    """The local file an artifact streams into could not be opened or written (e.g. a symlink refused)."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


def _open_sink(sink: Sink) -> BinaryIO:
    try:
        return sink()
    except OSError as error:
        raise SinkFailed(error) from error


def _write_sink(target: BinaryIO, chunk: bytes) -> None:
    try:
        target.write(chunk)
    except OSError as error:
        raise SinkFailed(error) from error


def _close_sink(target: BinaryIO) -> None:
    """Close the file, whose last buffered bytes are written now: a full disk (ENOSPC, EFBIG) often fails here, and
    that is a local failure, not a lost connection to retry."""
    try:
        target.close()
    except OSError as error:
        raise SinkFailed(error) from error


# requests takes HTTP(S)_PROXY / ALL_PROXY from the environment unless NO_PROXY names the host, and a proxy on a
# plain http:// URL sees every header — the token — in clear. A loopback dbt Cloud (the emulator, a tunnel) is
# never reached through a proxy: these keys override the environment's for each request (None drops the key).
DIRECT: dict[str, str | None] = {"http": None, "https": None, "all": None}


class Transport:
    """HTTP to one dbt Cloud host with one session (the token in its headers, never in a log). `direct` (a
    loopback host) ignores any proxy in the environment; other hosts use it as requests does (see SECURITY.md)."""

    def __init__(self, session: requests.Session, *, direct: bool = False) -> None:
        self._session = session
        self._proxies = DIRECT if direct else None
        # Bytes as they came over the wire (gzip-compressed when the server compressed them), every attempt's:
        # `Attempt.size` counts the decoded body, which is what the limits bound; this is what the network carried.
        self.wire_bytes = 0

    def exchange(self, method: str, url: str, params: dict[str, Any] | None, json_body: dict[str, Any] | None,
              budget: float, sink: Sink | None, limit: int) -> tuple[Attempt, Response | None, Any]:
        attempt, response, payload = self._exchange(method, url, params, json_body, budget, sink, limit)
        # Debug output (RUNNER_DEBUG=1 / --debug) shows every exchange. The Authorization header is never put in
        # the event — only its scheme — so even a caller that uses this client without dbtgate's redacting log
        # configuration (structlog's default prints debug lines) cannot leak the token.
        headers = {key: value for key, value in self._session.headers.items() if key.lower() != "authorization"}
        log.debug("dbt Cloud request", method=method, url=url, params=params, auth="Token ***", headers=headers,
                  status=attempt.status, failure=attempt.failure)
        return attempt, response, payload

    def _exchange(self, method: str, url: str, params: dict[str, Any] | None, json_body: dict[str, Any] | None,
                  budget: float, sink: Sink | None, limit: int) -> tuple[Attempt, Response | None, Any]:
        """One attempt, bounded by `budget` seconds of wall time whatever the server does."""
        budget = max(0.05, budget)
        transfer = _Transfer()
        worker = threading.Thread(target=self._transfer, name="dbtgate-http", daemon=True,
                                  args=(transfer, method, url, params, json_body, budget, sink, limit))
        worker.start()
        # Waiting on an Event is interruptible: a SIGINT/SIGTERM handler runs (and raises) in this thread at once.
        try:
            finished = transfer.done.wait(budget)
        except BaseException:
            transfer.abandon()
            raise
        if not finished:
            transfer.abandon()
            return Attempt(failure=AttemptFailure.READ_TIMEOUT), None, None
        if transfer.sink_error is not None:
            raise transfer.sink_error
        attempt = transfer.attempt
        if attempt.status is None:
            return attempt, None, None
        if sink is not None and 200 <= attempt.status < 300:
            return attempt, None, attempt.size
        text = transfer.content.decode("utf-8", "replace")
        try:
            body = json.loads(text) if text.strip() else None
        except (ValueError, RecursionError):
            body = None
        response = Response(attempt.status, body, text, transfer.headers)
        if not 200 <= attempt.status < 300:
            return attempt, response, None
        if not isinstance(body, dict):
            return (Attempt(failure=AttemptFailure.BAD_BODY, retry_after=attempt.retry_after, size=attempt.size),
                    response, None)
        status = body.get("status")
        if isinstance(status, dict) and status.get("is_success") is False:
            # A 200 whose envelope says it failed is not an answer to act on.
            return (Attempt(failure=AttemptFailure.BAD_BODY, detail="the answer says is_success: false",
                            size=attempt.size), response, None)
        return attempt, response, body.get("data")

    def _transfer(self, transfer: _Transfer, method: str, url: str, params: dict[str, Any] | None,
                  json_body: dict[str, Any] | None, budget: float, sink: Sink | None, limit: int) -> None:
        try:
            transfer.attempt = self._read(transfer, method, url, params, json_body, budget, sink, limit)
        except SinkFailed as failed:
            transfer.sink_error = failed.error
        except Exception:  # the worker must always say it is done; a bug here is a lost answer, not a hang
            transfer.attempt = Attempt(failure=AttemptFailure.CONNECTION_LOST)
        finally:
            transfer.done.set()

    def _read(self, transfer: _Transfer, method: str, url: str, params: dict[str, Any] | None,
              json_body: dict[str, Any] | None, budget: float, sink: Sink | None, limit: int) -> Attempt:
        try:
            reply = self._session.request(method, url, params=params, json=json_body, stream=True,
                                          timeout=(min(CONNECT_TIMEOUT, budget), budget),
                                          proxies=self._proxies)  # type: ignore[arg-type]
        except requests.exceptions.SSLError:
            return Attempt(failure=AttemptFailure.TLS)
        except requests.exceptions.ConnectTimeout:
            return Attempt(failure=AttemptFailure.CONNECT)
        except requests.exceptions.ReadTimeout:
            return Attempt(failure=AttemptFailure.READ_TIMEOUT)
        except requests.exceptions.ConnectionError as error:
            if _no_such_host(error):
                return Attempt(failure=AttemptFailure.NO_SUCH_HOST)
            return Attempt(failure=AttemptFailure.CONNECT if _never_sent(error) else AttemptFailure.CONNECTION_LOST)
        except requests.exceptions.RequestException:
            return Attempt(failure=AttemptFailure.CONNECTION_LOST)
        transfer.reply = reply
        try:
            if transfer.abandoned:
                return Attempt(failure=AttemptFailure.READ_TIMEOUT)
            transfer.headers = {key.lower(): value for key, value in reply.headers.items()}
            retry_after = parse_retry_after(transfer.headers.get("retry-after"))
            ok = 200 <= reply.status_code < 300
            # Error pages are read for their message only, and never at length.
            cap = limit if ok else ERROR_BODY_LIMIT
            target = _open_sink(sink) if (sink is not None and ok) else None
            size, chunks = 0, []
            try:
                for chunk in reply.iter_content(CHUNK):
                    if transfer.abandoned:
                        return Attempt(failure=AttemptFailure.READ_TIMEOUT)
                    size += len(chunk)
                    if size > cap:
                        if not ok:
                            break  # the start of an error page is enough to explain it
                        return Attempt(failure=AttemptFailure.TOO_LARGE, status=None,
                                       detail=f"more than {megabytes(cap)}", size=size)
                    if target is not None:
                        _write_sink(target, chunk)
                    else:
                        chunks.append(chunk)
            finally:
                if target is not None:
                    _close_sink(target)
            transfer.content = b"".join(chunks)
            self.wire_bytes += _wire_size(reply, size)
            return Attempt(status=reply.status_code, retry_after=retry_after, size=size)
        except requests.exceptions.RequestException:
            return Attempt(failure=AttemptFailure.CONNECTION_LOST)
        finally:
            reply.close()


def _wire_size(reply: requests.Response, decoded: int) -> int:
    """The body's bytes as received: urllib3 counts what it read off the socket (before inflating); the decoded size
    when it cannot say."""
    try:
        told = reply.raw.tell()
    except (AttributeError, OSError, ValueError):
        return decoded
    return told if isinstance(told, int) and told >= 0 else decoded


def megabytes(size: int) -> str:
    return f"{size / 1024 / 1024:,.0f} MB"


def _no_such_host(error: BaseException) -> bool:
    """True when the resolver answered that the host name does not exist (EAI_NONAME / EAI_NODATA): a mistyped
    URL. A resolver that could not answer (EAI_AGAIN, no network) is an outage instead, and is retried."""
    seen: set[int] = set()
    stack: list[BaseException] = [error]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, socket.gaierror):
            return current.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME))
        stack += [arg for arg in current.args if isinstance(arg, BaseException)]
        stack += [link for link in (current.__cause__, current.__context__, getattr(current, "reason", None))
                  if isinstance(link, BaseException)]
    return False


def _never_sent(error: requests.exceptions.ConnectionError) -> bool:
    """True when the connection was never established (so the request certainly did not reach the server)."""
    text = repr(error.args[0]) if error.args else repr(error)
    return any(marker in text for marker in ("NewConnectionError", "Connection refused", "NameResolutionError",
                                             "Failed to establish"))

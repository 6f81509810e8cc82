"""Pure value parsers for inputs, and the limits they enforce. Each returns the value or raises ValueError with a
message that says what is wrong and how to write it; parse_config adds which input it was.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

CAUSE_LIMIT = 255
# The gate appends " [dbtgate:xxxxxxxx]" to the cause so that a run created by a lost trigger response can be
# found and adopted instead of triggering a duplicate. The user's part must leave room for it.
MARKER_LENGTH = len(" [dbtgate:00000000]")
USER_CAUSE_LIMIT = CAUSE_LIMIT - MARKER_LENGTH
# dbt Cloud ids (accounts, jobs, runs, pull requests) are int64 in its API; anything larger cannot name anything.
INT64_MAX = 2**63 - 1
# The spec gives timeout_seconds_override no format; the job's timeout column behind it is a 32-bit integer, so a
# larger value is refused by dbt Cloud (or wraps), long after dbtgate could have said so.
INT32_MAX = 2**31 - 1
# Runs are ended by the account's run_duration_limit_seconds (24 h by default, see the spec), whatever the override.
ACCOUNT_RUN_LIMIT = 86400
# dbt sets no maximum on threads; warehouses cap concurrent queries far lower. Above this it is a typo (40000 for 4).
MAX_THREADS = 1024
# Polling faster than once a second finds the end of a run no sooner and eats dbt Cloud's rate limit (5,000
# requests a minute per account, then a five-minute lockout). Shorter than a second per request is not a timeout
# but a guaranteed failure on a real network. A loopback URL (the emulator, a local test server) is neither
# rate-limited nor far away, so it may go down to LOOPBACK_FLOOR.
MIN_INTERVAL = 1.0
MIN_API_TIMEOUT = 1.0
LOOPBACK_FLOOR = 0.1
# Longer than five minutes for ONE request is never what anyone meant; the gate's timeout bounds the whole wait.
MAX_API_TIMEOUT = 300.0
# dbt-labs/dbt-cloud-job-action reads api_timeout in milliseconds (default 5000) and dbtgate in seconds. A bare
# number at or above this is read as milliseconds: as seconds it would be 16+ minutes per request, beyond
# MAX_API_TIMEOUT, so the only sane reading of `api_timeout: 5000` is the migrated 5000 ms.
BARE_MS_THRESHOLD = 1000.0
MIN_TIMEOUT = 1.0
# No run outlives the account's run limit (24 h by default) and GitHub ends a job after 6 h (hosted) or 5 days
# (self-hosted); a week leaves room for queueing and reruns and still catches "2000h" or "99999999".
MAX_TIMEOUT = 7 * 86400.0

TRUE_WORDS = frozenset({"true", "yes", "1", "on", "y"})
FALSE_WORDS = frozenset({"false", "no", "0", "off", "n"})
# [0-9], never \d: \d, int() and float() also accept "١٢٣" and fullwidth digits, which no API or person means.
_NUMBER = r"[0-9]+(?:\.[0-9]+)?"
_DURATION_PART = re.compile(rf"({_NUMBER})([a-z]*)", re.ASCII)
_INTEGER = re.compile(r"\+?([0-9]+)", re.ASCII)
_UNITS = {"": 1, "ms": 0.001, "msec": 0.001, "msecs": 0.001, "millisecond": 0.001, "milliseconds": 0.001,
          "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1, "m": 60, "min": 60, "mins": 60,
          "minute": 60, "minutes": 60, "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
          "d": 86400, "day": 86400, "days": 86400}


def parse_bool(text: str) -> bool:
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"{text!r} is not a boolean: use true or false")


class FailFast(StrEnum):
    """What happens at the first failed model or test (the input `fail_fast`)."""

    OFF = "false"      # wait for the run's end
    GATE = "true"      # dbtgate follows the running step's log, cancels the run and fails at once
    DBT = "dbt"        # dbt's own --fail-fast on the job's commands: dbt stops itself, dbtgate polls the status


def parse_fail_fast(text: str) -> FailFast:
    word = text.strip().lower()
    if word == FailFast.DBT:
        return FailFast.DBT
    try:
        return FailFast.GATE if parse_bool(word) else FailFast.OFF
    except ValueError:
        raise ValueError(f"{text!r} is not one of true, false or dbt (true: dbtgate cancels the run at the first "
                         "failure; dbt: dbt's own --fail-fast stops it)") from None


def parse_duration(text: str, allow_zero: bool = False) -> float:
    """Seconds from "90", "90s", "500ms", "45m", "2h", "1h30m", "1.5h" or "2 hours"; positive (or, with
    `allow_zero`, zero — for a caller that says what the range is) and finite."""
    cleaned = text.strip().lower().replace(" ", "")
    if not cleaned:
        raise ValueError("is empty: use seconds or a duration such as 45m or 2h")
    position, total = 0, 0.0
    for match in _DURATION_PART.finditer(cleaned):
        if match.start() != position or match.group(2) not in _UNITS:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if position != len(cleaned) or not (total >= 0 if allow_zero else total > 0) or not math.isfinite(total):
        raise ValueError(f"{shown(text)} is not a duration: use seconds (3600) or a duration such as 30s, 45m, 2h, "
                         "1h30m, written with the digits 0-9")
    return total


def parse_bounded_duration(text: str, minimum: float, maximum: float, hint: str = "") -> float:
    """parse_duration, then within [minimum, maximum]; the message says the limits in the units people use."""
    seconds = parse_duration(text, allow_zero=True)   # "0" is a duration, and out of range: say that
    if not minimum <= seconds <= maximum:
        side = f"below the minimum of {_human(minimum)}" if seconds < minimum else \
            f"above the maximum of {_human(maximum)}"
        raise ValueError(f"{shown(text)} is {_human(seconds)}, {side}{hint}")
    return seconds


def shown(text: str, limit: int = 40) -> str:
    """The user's value, quoted, and cut short: a 5,000-digit paste must not fill the error log."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"… ({len(text)} characters)"


def parse_interval(text: str, minimum: float = MIN_INTERVAL) -> float:
    """The longest pause between polls. Refused, not clamped, below the floor: a value like 0.001 is a mistake
    (milliseconds? minutes?) whose intent dbtgate cannot guess, and exit 2 costs nothing while nothing ran yet."""
    seconds = parse_duration(text, allow_zero=True)
    if seconds < minimum:
        raise ValueError(f"{text!r} is {_human(seconds)}, below the minimum of {_human(minimum)}: polling faster "
                         "finds the end of a run no sooner and spends dbt Cloud's rate limit (5,000 requests a "
                         "minute per account, then a five-minute lockout). Use 1s or more; dbtgate already polls "
                         "more often near the end of a run")
    return parse_bounded_duration(text, minimum, MAX_TIMEOUT, ": the gate's timeout bounds the whole wait anyway")


def parse_timeout(text: str) -> float:
    return parse_bounded_duration(text, MIN_TIMEOUT, MAX_TIMEOUT, ": use e.g. 45m, 2h or 1h30m")


def parse_api_timeout(text: str, minimum: float = MIN_API_TIMEOUT) -> tuple[float, str | None]:
    """Seconds for one request, and a note when a bare number was read as milliseconds (see BARE_MS_THRESHOLD)."""
    cleaned = text.strip()
    note = None
    if re.fullmatch(_NUMBER, cleaned, re.ASCII) and float(cleaned) >= BARE_MS_THRESHOLD:
        seconds = float(cleaned) / 1000
        note = (f"{cleaned} has no unit, so it was read as {cleaned} ms = {_human(seconds)} (dbtgate counts "
                f"seconds, dbt-labs/dbt-cloud-job-action milliseconds). Write {_human(seconds, compact=True)} or "
                f"{cleaned}ms to say which you mean and silence this warning.")
        cleaned += "ms"
    try:
        seconds = parse_bounded_duration(text if note is None else cleaned, minimum, MAX_API_TIMEOUT)
    except ValueError as error:
        raise ValueError(f"{error}. One request may take from {_human(minimum)} to {_human(MAX_API_TIMEOUT)}: use "
                         "e.g. 30s or 5000ms (a bare number counts seconds below 1000, milliseconds from 1000 up)"
                         ) from None
    return seconds, note


def _human(seconds: float, compact: bool = False) -> str:
    """1 s, 0.5 s, 5 min, 2 h, 7 days — or, compact, 1s / 500ms / 5m / 2h / 7d (valid input again)."""
    for size, long, short in ((86400, " days", "d"), (3600, " h", "h"), (60, " min", "m")):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{short if compact else long}"
    if seconds < 1 and compact:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}{'s' if compact else ' s'}"


ID_LIMIT = f"dbt Cloud ids are 64-bit numbers, at most {INT64_MAX:,}: check that you copied the id itself"


def parse_positive_int(text: str, maximum: int = INT64_MAX, why: str = ID_LIMIT) -> int:
    number = _parse_int(text, "a positive whole number", maximum, why)
    if number <= 0:
        raise ValueError(f"{shown(text)} is not a positive whole number: use 1 or more")
    return number


def parse_non_negative_int(text: str, maximum: int = INT64_MAX, why: str = ID_LIMIT) -> int:
    return _parse_int(text, "a whole number of zero or more", maximum, why)


def _parse_int(text: str, what: str, maximum: int, why: str) -> int:
    cleaned = text.strip()
    match = _INTEGER.fullmatch(cleaned)
    if not match:
        hint = ("" if cleaned.isascii() else ", written with the digits 0-9") + (
            ": it is negative" if cleaned.startswith("-") else "")
        raise ValueError(f"{shown(text)} is not {what}{hint}")
    digits = match.group(1).lstrip("0") or "0"
    # Compare lengths first: int() of a 5,000-digit string is refused by Python itself with a confusing message.
    if len(digits) > len(str(maximum)) or int(digits) > maximum:
        raise ValueError(f"{shown(cleaned)} is too large: {why}")
    return int(digits)


THREADS_LIMIT = (f"dbtgate accepts at most {MAX_THREADS:,} threads. dbt itself sets no limit, but no warehouse runs "
                 "that many queries at once; 4 to 16 is usual")
TIMEOUT_OVERRIDE_LIMIT = (f"dbt Cloud keeps this in 32 bits, so at most {INT32_MAX:,} seconds; use 0 for no timeout, "
                          "or the seconds you mean, e.g. 3600")


def parse_steps(text: str) -> tuple[str, ...]:
    """A YAML flow list (`["dbt seed", "dbt build"]`), `- dbt build` lines, or one command per line.

    `- ` lines are read literally rather than as YAML: a command such as `dbt run --vars '{key: value}'` would
    otherwise turn into a YAML mapping.
    """
    stripped = text.strip()
    if stripped.startswith("["):
        import yaml  # only this form needs a YAML parser; kept off the start-up path

        try:
            loaded = yaml.safe_load(stripped)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = getattr(error, "problem", None) or error.__class__.__name__
            raise ValueError(f"is not a valid YAML list: {problem}{where}. Write it as a flow list such as "
                             "[\"dbt seed\", \"dbt build --select tag:daily\"], or one dbt command per line"
                             ) from error
        if not isinstance(loaded, list) or not all(isinstance(item, str) for item in loaded):
            raise ValueError("must be a list of dbt commands, e.g. [\"dbt seed\", \"dbt build\"]")
        steps = [item.strip() for item in loaded]
    else:
        lines = [line.strip() for line in stripped.splitlines() if line.strip()]
        if lines and lines[0].startswith("- "):
            if not all(line.startswith("- ") for line in lines):
                raise ValueError("mixes `- ` list items with plain lines: use one form")
            lines = [_unquote(line[2:].strip()) for line in lines]
        steps = lines
    steps = [step for step in steps if step]
    if not steps:
        raise ValueError("is empty: give at least one dbt command, or leave the input out")
    for step in steps:
        if not re.match(r"^dbt\s+\S", step):
            raise ValueError(f"entry {step!r} is not a dbt command: each step must start with `dbt `")
    return tuple(steps)


def _unquote(item: str) -> str:
    if len(item) >= 2 and item[0] == item[-1] and item[0] in "'\"":
        return item[1:-1]
    return item


_HOST_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST = re.compile(rf"{_HOST_LABEL}(?:\.{_HOST_LABEL})*\.?", re.ASCII | re.IGNORECASE)
_NETLOC = re.compile(r"(?P<host>\[[^\]]*\]|[^:]*)(?::(?P<port>.*))?", re.ASCII | re.DOTALL)


def normalize_url(text: str, allow_insecure_http: bool) -> str:
    """`https://host[:port]`, or ValueError. Never repeats a URL that carries credentials."""
    raw = text.strip()
    example = "e.g. https://ab123.us1.dbt.com"
    # Messages name the URL by its scheme and host only: a query string or fragment may carry a signature or a
    # token, and this text ends up in a CI log.
    shown = _host_only(raw)
    if "@" in raw:
        # user:password@host. requests would send them as Basic auth next to the token, and they must not appear
        # in a log: this message says where the problem is without repeating any of the text.
        raise ValueError("contains a user name or password (something@host): dbt Cloud takes only the token; "
                         f"give the bare access URL, {example}, and rotate that password if it was real")
    if any(ch.isspace() or not ch.isprintable() for ch in raw):
        raise ValueError(f"{shown!r} contains spaces or control characters: give only the access URL, {example}")
    if "://" not in raw:
        raw = "https://" + raw  # dbt-cloud-cli's DBT_CLOUD_HOST is a bare host name
    try:
        parts = urlsplit(raw)
    except ValueError:  # an unparsable [IPv6] literal
        parts = urlsplit("https://")
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{shown!r} is not an http(s) URL: use your access URL, {example}")
    netloc = _NETLOC.fullmatch(parts.netloc)
    host, port = (netloc.group("host"), netloc.group("port")) if netloc else ("", None)
    if host.startswith("["):
        import ipaddress  # only for an IPv6 literal: kept off the start-up path

        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            host = ""
    elif not _HOST.fullmatch(host):
        host = ""
    if not host:
        raise ValueError(f"{shown!r} has no valid host name (ASCII letters, digits, dots and hyphens): use your "
                         f"access URL, {example}")
    if port is not None and port != "":
        if not re.fullmatch(r"[0-9]{1,5}", port, re.ASCII) or not 1 <= int(port) <= 65535:
            raise ValueError(f"{shown!r} has port {port!r}, which is not a number from 1 to 65535: leave the "
                             f"port out ({example}) unless your dbt Cloud really uses another one")
        host += f":{int(port)}"
    path = parts.path.rstrip("/")
    if path.endswith("/api/v2"):
        path = path[: -len("/api/v2")]  # people paste the API base; it means the same host
    if path or parts.query or parts.fragment:
        what = "a path" if path else "a query string or fragment"
        raise ValueError(f"the URL of {shown!r} has {what}; give only the scheme and host, {example}")
    if parts.scheme == "http" and not allow_insecure_http and not is_loopback_url(raw):
        raise ValueError(f"{shown!r} uses plain http:// to a host that is not loopback, which would send the token "
                         "in clear text: use https://, or set allow_insecure_http: true if you really mean it")
    return f"{parts.scheme}://{host}"


def _host_only(raw: str) -> str:
    """`scheme://host[:port]` of a URL as typed (or its start before any path, query or fragment), for messages."""
    head = re.split(r"[/?#]", raw.split("://", 1)[1], maxsplit=1)[0] if "://" in raw else \
        re.split(r"[/?#]", raw, maxsplit=1)[0]
    scheme = raw.split("://", 1)[0] + "://" if "://" in raw else ""
    return (scheme + head)[:200]


def is_loopback_url(url: str) -> bool:
    return _is_loopback(urlsplit(url).hostname or "")


def check_token(token: str) -> str | None:
    """What is wrong with a token that cannot be right, without repeating any of it; None when it may be fine."""
    if any(ch.isspace() for ch in token):
        return ("contains whitespace: copy the token alone, without 'Token ' or 'Bearer ' or a trailing newline.")
    for position, ch in enumerate(token, start=1):
        if not " " < ch < "\x7f":
            # requests cannot put a non-Latin-1 character in a header at all, and a control or non-ASCII character
            # is never part of a dbt Cloud token: it is a smart quote, a stray byte or a broken secret.
            return (f"contains the character U+{ord(ch):04X} (character {position} of {len(token)}), which no "
                    "dbt Cloud token has and which cannot be sent in an HTTP header: copy the token again, as plain "
                    "text, into the secret.")
    return None


_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*(b|kb|mb|gb|tb|kib|mib|gib|tib)?", re.ASCII)
_SIZE_UNITS = {None: 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4, "kib": 1024,
               "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}


def parse_size(text: str) -> int:
    """Bytes from "1GB", "500 MB", "64MiB" or a bare number of bytes; at least 1 KB."""
    match = _SIZE.fullmatch(text.strip().lower())
    if not match:
        raise ValueError(f"{shown(text)} is not a size: use e.g. 500MB or 2GB")
    size = int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])
    if size < 1000:
        raise ValueError(f"{shown(text)} is less than 1 KB: use e.g. 500MB or 2GB")
    return size


def resolve_artifacts_dir(text: str, workspace: str) -> Path:
    """Where artifacts go: inside the workspace when there is one (GitHub Actions), never above it via `..`."""
    path = Path(text or "target")
    if ".." in path.parts:
        raise ValueError(f"{text!r} contains `..`: artifacts go inside the workspace; use a folder such as target "
                         "or build/dbt")
    if not workspace:
        return path  # the CLI on someone's own machine: a path they chose, absolute or not
    if path.is_absolute():
        if path.is_relative_to(workspace):
            return path
        raise ValueError(f"{text!r} is outside the workspace {workspace}: give a path relative to it, such as "
                         "target (in a Docker action, ${{ github.workspace }} is the runner's path, not the "
                         "container's)")
    return Path(workspace) / path


def resolve_workspace_file(text: str, workspace: str) -> Path:
    """A file dbtgate writes (junit_xml): inside the workspace as artifacts are, and not a folder."""
    if not text.strip() or text.rstrip().endswith(("/", "\\")):
        raise ValueError(f"{text!r} is not a file name: give one such as target/dbt-junit.xml")
    path = Path(text.strip())
    if ".." in path.parts:
        raise ValueError(f"{text!r} contains `..`: reports go inside the workspace, e.g. target/dbt-junit.xml")
    if not workspace:
        return path
    if path.is_absolute():
        if path.is_relative_to(workspace):
            return path
        raise ValueError(f"{text!r} is outside the workspace {workspace}: give a path relative to it, such as "
                         "target/dbt-junit.xml")
    return Path(workspace) / path


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    import ipaddress  # ~2 ms, and most URLs are names: kept off the start-up path

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# Every dbt command, and `freshness` (run_results.json's args.which for `dbt source freshness`). The command of an
# invocation is the first of these: global options come before it, some with a value (`dbt --target prod build`).
DBT_COMMANDS = frozenset({"build", "run", "test", "seed", "snapshot", "retry", "freshness", "source", "run-operation",
                          "clone", "compile", "docs", "deps", "parse", "ls", "list", "show", "debug", "init", "clean"})


def dbt_command(arguments: Sequence[str]) -> str:
    """The dbt command among the words after `dbt`: "build" from ["--target", "prod", "build", "-s", "x"]; "" when
    none is there."""
    return next((word for word in arguments if word in DBT_COMMANDS), "")


"""Untrusted text made harmless for each place it is written: Markdown (the summary), workflow commands (the log),
and links. Pure functions; the redactor asks `escaped_forms` for the shapes a secret takes after these escapes, so
the rules exist once.
"""

from __future__ import annotations

import functools
import re

# Only what changes meaning inside a line or a table cell; "<" and ">" become entities so no HTML gets through.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~#])")
_PLAIN_HTTP_URL = re.compile(r"https?://[^\s<>\"'`]+")
_LEGACY_COMMAND = "##["


def markdown_chars(text: str) -> str:
    """Backslash-escape the characters that change meaning in inline Markdown."""
    return _MD_SPECIAL.sub(r"\\\1", text)


# Characters that reorder what a reader sees (right-to-left overrides and isolates: "txt.exe" shown as "exe.txt").
BIDI_CONTROLS = dict.fromkeys([*range(0x202A, 0x202F), *range(0x2066, 0x206A)])


@functools.cache
def _addresses() -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    """URLs, www. names and e-mail addresses, compiled on first use: only the report defangs, after the run."""
    return (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*)://([^\s/?#<>]*)"), re.compile(r"(?i)\bwww\.[^\s/?#<>]*"),
            re.compile(r"(?i)([a-z0-9.+_-]+)@([a-z0-9_-]+(?:\.[a-z0-9_-]+)+)"))


def plain(text: str) -> str:
    """Text without the controls that reorder how it reads."""
    return text.translate(BIDI_CONTROLS)


def defang(text: str) -> str:
    """URLs and e-mail addresses that read well and link nowhere: `https[:]//example[.]com/path`,
    `www[.]example[.]com`, `help@example[.]com`.

    The brackets are the usual defanging notation: a person reads the address as it is, gets it back by deleting
    the brackets, and GitHub's autolinker stops at them (it needs `scheme://`, `www.` or a dotted domain). An
    entity such as `&#47;` does not work in Markdown escaping (its `#` is escaped again, and it shows literally),
    and a zero-width space would make a copied address silently wrong."""
    urls, www, email = _addresses()
    text = urls.sub(lambda m: f"{m.group(1)}[:]//{m.group(2).replace('.', '[.]')}", text)
    text = www.sub(lambda m: m.group(0).replace(".", "[.]"), text)
    return email.sub(lambda m: f"{m.group(1)}@{m.group(2).replace('.', '[.]')}", text)


def md(text: str) -> str:
    """Escape untrusted text for inline Markdown (and table cells): no HTML, no links, no line breaks, no bidi
    controls. A bare URL or address is defanged (`defang`), so a message from dbt Cloud cannot put a clickable
    phishing link in a trusted-looking summary."""
    flat = markdown_chars(defang(" ".join(plain(text).split())))
    return flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code_span(text: str) -> str:
    """Inline code for untrusted text: backslashes are literal inside code, so pick a fence instead of escaping."""
    flat = " ".join(text.split())
    longest = max((len(run) for run in re.findall(r"`+", flat)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


def code_block(text: str) -> str:
    """A fenced block that untrusted text cannot close: the fence is longer than any backtick run inside."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text.rstrip()}\n{fence}"


def html_text(text: str) -> str:
    """Text inside an HTML element (where Markdown escapes show literally), on one line, linking nowhere."""
    flat = " ".join(plain(text).split())
    escaped = flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    return escaped.replace("://", ":&#47;&#47;")


def is_plain_http_url(text: str) -> bool:
    """An http(s) URL with no blanks, line breaks, quotes or angle brackets: safe to put in a link or an output."""
    return bool(_PLAIN_HTTP_URL.fullmatch(text))


def link_target(url: str) -> str:
    """A URL for a Markdown link: only a plain http(s) URL ("#" otherwise), with what could end the link escaped."""
    if not is_plain_http_url(url):
        return "#"
    return (url.replace("(", "%28").replace(")", "%29").replace("[", "%5B").replace("]", "%5D")
            .replace("|", "%7C"))


# ---- GitHub workflow commands --------------------------------------------------------------------------------
def command_data(text: str) -> str:
    """The message of a workflow command (`::error::MESSAGE`)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def command_property(text: str) -> str:
    """A property of a workflow command (`::error title=PROPERTY::`)."""
    return command_data(text).replace(":", "%3A").replace(",", "%2C")


def defuse(line: str) -> str:
    """One physical line that the runner cannot read as a workflow command, old or new syntax."""
    line = line.replace(_LEGACY_COMMAND, "## [")
    return f"· {line}" if line.lstrip().startswith("::") else line


def _hex(text: str) -> str:
    """Hex digits matched in either case (JSON and URL encodings allow both)."""
    return "".join(f"[{ch.lower()}{ch.upper()}]" if ch.isalpha() else ch for ch in text)


def encoded_pattern(secret: str) -> str:
    """A regular expression for the secret as a reader decodes it: each character as itself, as a JSON escape
    (`\\u005f`, `\\/`) or URL-encoded (`%5F`, `%5f`), in any mix. A server that echoes the token escaped must
    not get it past redaction into a file that json.load or a browser turns back into the token."""
    parts = []
    for ch in secret:
        code = ord(ch)
        options = [re.escape(ch)]
        if code < 0x10000:
            options.append(r"\\u" + _hex(f"{code:04x}"))
        if ch in '"\\/':
            options.append(re.escape("\\" + ch))
        if code < 0x80:
            options.append("%" + _hex(f"{code:02x}"))
        parts.append("(?:" + "|".join(options) + ")")
    return "".join(parts)


def escaped_forms(secret: str) -> list[str]:
    """The secret as written after each escape above, so redaction catches it wherever it lands."""
    markdown = markdown_chars(secret)
    html = secret.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    entities = markdown.replace("&", "&amp;")
    return list(dict.fromkeys([secret, markdown, html, command_data(secret), command_property(secret), entities,
                               entities.replace("<", "&lt;").replace(">", "&gt;")]))


# What XML 1.0 cannot hold at all, even escaped: C0 controls but tab/LF/CR, surrogates, U+FFFE and U+FFFF. Terminal
# colour sequences go too, whole: a dbt message often carries them, and a reader shows "[31m" otherwise.
@functools.cache
def _xml_invalid() -> re.Pattern[str]:
    """Compiled on first use (about 3 ms for the Unicode class): only a junit_xml report needs it, after the run,
    and this module is on the way to the first request."""
    return re.compile("\x1b\\[[0-9;?]*[ -/]*[@-~]|[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    """Untrusted text that an XML serializer can then escape: characters XML 1.0 forbids are removed."""
    return _xml_invalid().sub("", text)

"""Untrusted text made harmless for each place it is written: Markdown (the summary), workflow commands (the log),
and links. Pure functions; the redactor asks `escaped_forms` for the shapes a secret takes after these escapes, so
the rules exist once.
"""

from __future__ import annotations

import re

# Only what changes meaning inside a line or a table cell; "<" and ">" become entities so no HTML gets through.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~#])")
_PLAIN_HTTP_URL = re.compile(r"https?://[^\s<>\"'`]+")
_LEGACY_COMMAND = "##["


def markdown_chars(text: str) -> str:
    """Backslash-escape the characters that change meaning in inline Markdown."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def md(text: str) -> str:
    """Escape untrusted text for inline Markdown (and table cells): no HTML, no links, no line breaks.

    GitHub also turns a bare `https://…` or `www.…` into a link; the entity keeps the text the same to the eye but
    not a link, so a message from dbt Cloud cannot put a clickable phishing link in a trusted-looking summary."""
    flat = " ".join(text.split())
    flat = flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    flat = re.sub(r"(?i)(?<=:)//", "&#47;&#47;", flat)
    flat = re.sub(r"(?i)\bwww\.", "www&#46;", flat)
    return markdown_chars(flat)


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
    flat = " ".join(text.split())
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


def escaped_forms(secret: str) -> list[str]:
    """The secret as written after each escape above, so redaction catches it wherever it lands."""
    markdown = markdown_chars(secret)
    html = secret.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    return list(dict.fromkeys([secret, markdown, html, command_data(secret), command_property(secret),
                               markdown.replace("&", "&amp;")]))


# What XML 1.0 cannot hold at all, even escaped: C0 controls but tab/LF/CR, surrogates, U+FFFE and U+FFFF. Terminal
# colour sequences go too, whole: a dbt message often carries them, and a reader shows "[31m" otherwise.
_XML_INVALID = re.compile("\x1b\\[[0-9;?]*[ -/]*[@-~]|[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    """Untrusted text that an XML serializer can then escape: characters XML 1.0 forbids are removed."""
    return _XML_INVALID.sub("", text)

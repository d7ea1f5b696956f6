"""Text clean-up shared by the report formats.

Step output and span data are untrusted and unbounded: a step may print
megabytes, a span may carry control characters.  Each format shows a clipped
copy (head and tail, since the end of an output is where failures are) and
says so; the JSON report always keeps everything.
"""

from __future__ import annotations

import re
from typing import Final

OUTPUT_LIMIT: Final = 64 * 1024
"""Characters of one stdout/stderr shown in JUnit and HTML reports."""

_XML_ILLEGAL: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def clip(text: str, limit: int = OUTPUT_LIMIT) -> str:
    """``text`` itself when short; else its head and tail around a note of what was cut."""
    if len(text) <= limit:
        return text
    head, tail = text[: limit // 2], text[-(limit // 2):]
    cut = len(text) - len(head) - len(tail)
    return f"{head}\n… {cut} characters cut here (the JSON report has all of them) …\n{tail}"


def one_line(text: str, limit: int = 300) -> str:
    """First line of ``text``, clipped: for attributes and headings that must stay short."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= limit else first[: limit - 1] + "…"


def xml_safe(text: str) -> str:
    """``text`` with the characters XML 1.0 cannot hold written as ``\\xNN`` escapes.

    ElementTree would write them as they are and every JUnit reader would then
    reject the whole file; an ANSI colour code in one step's output is enough.
    """
    return _XML_ILLEGAL.sub(_escape_char, text)


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

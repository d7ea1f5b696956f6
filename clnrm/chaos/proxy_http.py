"""HTTP/1.x message boundaries in a byte stream, for the proxy's ``http_error`` toxic.

The toxic answers some requests itself instead of forwarding them, on keep-alive
connections too, so it must know exactly where each request ends (``Content-Length``,
``chunked`` with trailers) and, when a client pipelines, where each response ends
(so an injected answer goes out in request order).  :class:`MessageFramer` finds
those boundaries incrementally, whatever the chunking of the TCP stream; it never
rewrites forwarded bytes.  Anything that does not parse as HTTP/1.x switches the
framer to pass-through for the rest of the connection (an error toxic on a Redis
port then simply does nothing rather than breaking the protocol).

Stdlib only: this module is imported by the proxy process, which starts on the
target's critical path.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from typing import Final, Literal

MAX_HEAD: Final = 64 * 1024
"""A request/response head larger than this is not treated as HTTP (pass-through)."""

_REQUEST_LINE = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\S+) HTTP/1\.([01])\r\n")
_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) (\d{3})(?: [^\r\n]*)?\r\n")

REASONS: Final = {400: "Bad Request", 403: "Forbidden", 404: "Not Found", 408: "Request Timeout",
                  409: "Conflict", 429: "Too Many Requests", 500: "Internal Server Error",
                  501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
                  504: "Gateway Timeout"}


@dataclass(frozen=True, slots=True)
class Head:
    """What the framer learnt from one message head."""

    method: str  # requests: the method; responses: the method of the request answered
    status: int  # responses only (0 for requests)
    keep_alive: bool
    expect_continue: bool


@dataclass(frozen=True, slots=True)
class Event:
    """``head`` (bytes = the head), ``body`` (raw wire bytes of the body, chunk framing
    included), ``end`` (the message is complete; ``interim`` for a 1xx response) or
    ``raw`` (bytes outside any understood message: pass-through)."""

    kind: Literal["head", "body", "end", "raw"]
    data: bytes = b""
    head: Head | None = None
    interim: bool = False


_BodyMode = Literal["none", "length", "chunk_size", "chunk_data", "trailer", "until_close"]


class MessageFramer:
    """Incremental framing of the requests (``kind="request"``) or responses of one
    direction of one connection.  For responses, :attr:`methods` holds the method of
    each request still unanswered, oldest first (HEAD/CONNECT change the framing): the
    caller appends, the framer pops when a final response ends.
    """

    def __init__(self, kind: Literal["request", "response"]) -> None:
        self.kind = kind
        self.methods: deque[str] = deque()
        self.passthrough = False
        self._buf = b""
        self._in_head = True
        self._mode: _BodyMode = "none"
        self._left = 0
        self._head: Head | None = None

    @property
    def at_boundary(self) -> bool:
        """True between messages (nothing of the next one seen yet)."""
        return self._in_head and not self._buf and not self.passthrough

    def feed(self, data: bytes) -> list[Event]:
        """The events ``data`` completes, in stream order; every byte is in exactly one."""
        out: list[Event] = []
        if self.passthrough:
            return [Event("raw", data)] if data else []
        while data:
            if self._in_head:
                data = self._feed_head(data, out)
            else:
                data = self._feed_body(data, out)
            if self.passthrough:
                if data:
                    out.append(Event("raw", data))
                break
        return out

    # -- heads -------------------------------------------------------------------------

    def _feed_head(self, data: bytes, out: list[Event]) -> bytes:
        buf = self._buf + data
        if not self._buf:
            lead = len(buf) - len(buf.lstrip(b"\r\n"))  # RFC 9112 2.2: empty lines first
            if lead:
                out.append(Event("raw", buf[:lead]))
                buf = buf[lead:]
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEAD or (buf and not self._plausible_start(buf)):
                self._give_up(buf, out)
                return b""
            self._buf = buf
            return b""
        raw_head, rest = buf[:end + 4], buf[end + 4:]
        self._buf = b""
        head = self._parse_head(raw_head)
        if head is None:
            self._give_up(raw_head, out)
            return rest
        out.append(Event("head", raw_head, head))
        if self._mode == "none":
            self._head = head
            self._finish(out)
        else:
            self._in_head = False
            self._head = head
        return rest

    def _plausible_start(self, buf: bytes) -> bool:
        """Early rejection of non-HTTP bytes, so a binary protocol (Redis' ``*3``...) is
        passed through at once instead of being held while a head never completes."""
        eol = buf.find(b"\r\n")
        if eol >= 0:
            pattern = _REQUEST_LINE if self.kind == "request" else _STATUS_LINE
            return pattern.fullmatch(buf[:eol + 2]) is not None
        if len(buf) > 8192:
            return False
        if self.kind == "response":
            return b"HTTP/1."[:len(buf)] == buf[:7]
        token = buf.split(b" ", 1)[0]
        return all(c in _TCHAR for c in token)

    def _give_up(self, data: bytes, out: list[Event]) -> None:
        self.passthrough = True
        self._buf = b""
        if data:
            out.append(Event("raw", data))

    def _parse_head(self, raw: bytes) -> Head | None:
        line_end = raw.find(b"\r\n") + 2
        fields = _header_fields(raw[line_end:-2])
        if fields is None:
            return None
        te = fields.get("transfer-encoding", "")
        length = fields.get("content-length")
        connection = fields.get("connection", "").lower()
        if self.kind == "request":
            match = _REQUEST_LINE.fullmatch(raw[:line_end])
            if match is None:
                return None
            method, minor, status = match.group(1).decode("ascii"), match.group(3), 0
        else:
            match = _STATUS_LINE.fullmatch(raw[:line_end])
            if match is None:
                return None
            minor, status = match.group(1), int(match.group(2))
            method = self.methods[0] if self.methods else "GET"
        keep_alive = ("close" not in connection if minor == b"1"
                      else "keep-alive" in connection)
        head = Head(method, status, keep_alive,
                    fields.get("expect", "").lower() == "100-continue")
        self._left = 0
        if self.kind == "response" and (status == 101 or (method == "CONNECT"
                                                          and 200 <= status < 300)):
            self._mode = "until_close"  # the connection is no longer HTTP/1.x
        elif self.kind == "response" and (100 <= status < 200 or status in (204, 304)
                                          or method == "HEAD"):
            self._mode = "none"
        elif te:
            if te.lower().replace(" ", "").split(",")[-1] != "chunked":
                if self.kind == "request":
                    return None  # RFC 9112 6.3: a request body of unknown length
                self._mode = "until_close"
            else:
                self._mode = "chunk_size"
        elif length is not None:
            if not length.isdigit():
                return None
            self._left = int(length)
            self._mode = "length" if self._left else "none"
        else:
            self._mode = "none" if self.kind == "request" else "until_close"
        return head

    # -- bodies ------------------------------------------------------------------------

    def _feed_body(self, data: bytes, out: list[Event]) -> bytes:
        mode = self._mode
        if mode == "until_close":
            out.append(Event("body", data))
            return b""
        if mode in ("length", "chunk_data"):
            take = data[:self._left]
            self._left -= len(take)
            out.append(Event("body", take))
            rest = data[len(take):]
            if self._left == 0:
                if mode == "length":
                    self._finish(out)
                else:
                    self._mode = "chunk_size"
            return rest
        # chunk_size / trailer: line based
        buf = self._buf + data
        eol = buf.find(b"\r\n")
        if eol < 0:
            if len(buf) > MAX_HEAD:
                self._give_up(buf, out)
                return b""
            self._buf = buf
            return b""
        line, rest = buf[:eol + 2], buf[eol + 2:]
        self._buf = b""
        out.append(Event("body", line))
        if mode == "chunk_size":
            size_text = line[:-2].split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                self._give_up(b"", out)
                return rest
            if size == 0:
                self._mode = "trailer"
            else:
                self._mode, self._left = "chunk_data", size + 2  # data and its CRLF
        elif line == b"\r\n":  # end of the trailer section
            self._finish(out)
        return rest

    def _finish(self, out: list[Event]) -> None:
        head = self._head
        interim = self.kind == "response" and head is not None and 100 <= head.status < 200
        if self.kind == "response" and not interim and self.methods:
            self.methods.popleft()  # that request is answered
        out.append(Event("end", head=head, interim=interim))
        self._in_head, self._mode, self._head = True, "none", None


_TCHAR: Final = frozenset(b"!#$%&'*+.^_`|~0123456789"
                          b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-")


def _header_fields(block: bytes) -> dict[str, str] | None:
    """Lower-cased names of the few fields framing needs; None if malformed."""
    found: dict[str, str] = {}
    for line in block.split(b"\r\n"):
        if not line:
            continue
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            return None
        key = name.decode("latin-1").lower()
        if key in ("content-length", "transfer-encoding", "connection", "expect"):
            text = value.decode("latin-1").strip()
            if key == "content-length" and key in found and found[key] != text:
                return None  # conflicting lengths: not safe to frame
            found[key] = f"{found[key]}, {text}" if key in found and key != "content-length" \
                else text
    return found


def error_response(status: int, body: str, *, close: bool) -> bytes:
    """The answer the ``http_error`` toxic sends instead of the server's."""
    payload = body.encode("utf-8")
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}",
             "Content-Type: text/plain; charset=utf-8",
             f"Content-Length: {len(payload)}",
             "X-Clnrm-Chaos: http_error"]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload

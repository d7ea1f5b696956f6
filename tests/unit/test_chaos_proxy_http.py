"""HTTP/1.x framing for the ``http_error`` toxic: boundaries found whatever the chunking."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from clnrm.chaos.proxy_http import Event, MessageFramer, error_response

REQUESTS = (
    b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
    b"POST /b HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
    b"PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3;ext=1\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nX-Trailer: t\r\n\r\n"
    b"\r\nDELETE /d HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    b"GET /e HTTP/1.1\r\nConnection: close\r\n\r\n"
)


def messages(events: list[Event]) -> list[tuple[str, bytes]]:
    """(method, whole wire bytes) per completed message; raw bytes kept apart."""
    out: list[tuple[str, bytes]] = []
    current = b""
    for event in events:
        if event.kind == "raw":
            if out and out[-1][0] == "raw":  # one run of raw bytes, however it was cut
                out[-1] = ("raw", out[-1][1] + event.data)
            else:
                out.append(("raw", event.data))
            continue
        current += event.data
        if event.kind == "end":
            assert event.head is not None
            out.append((event.head.method, current))
            current = b""
    return out


def feed_in_pieces(framer: MessageFramer, data: bytes, cuts: list[int]) -> list[Event]:
    events: list[Event] = []
    start = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        events += framer.feed(data[start:cut])
        start = cut
    return events


def test_requests_are_framed_by_length_chunks_and_trailers() -> None:
    events = MessageFramer("request").feed(REQUESTS)
    got = messages(events)
    assert [m for m, _ in got] == ["GET", "POST", "PUT", "raw", "DELETE", "GET"]
    assert got[2][1].endswith(b"0\r\nX-Trailer: t\r\n\r\n")
    heads = [e.head for e in events if e.kind == "head"]
    assert [h.keep_alive for h in heads if h] == [True, True, True, True, False]
    assert b"".join(e.data for e in events) == REQUESTS  # every byte exactly once


@given(st.lists(st.integers(min_value=0, max_value=len(REQUESTS)), max_size=40))
def test_any_chunking_gives_the_same_messages(cuts: list[int]) -> None:
    whole = messages(MessageFramer("request").feed(REQUESTS))
    pieces = messages(feed_in_pieces(MessageFramer("request"), REQUESTS, cuts))
    assert pieces == whole


def test_responses_follow_the_request_method_and_status() -> None:
    framer = MessageFramer("response")
    framer.methods.extend(["HEAD", "GET", "GET"])
    stream = (b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"  # HEAD: no body
              b"HTTP/1.1 100 Continue\r\n\r\n"
              b"HTTP/1.1 204 No Content\r\n\r\n"
              b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n")
    ends = [e.interim for e in framer.feed(stream) if e.kind == "end"]
    assert ends == [False, True, False, False]
    assert framer.at_boundary and not framer.methods  # each final answer popped its method


def test_binary_protocols_pass_through_at_once() -> None:
    framer = MessageFramer("request")
    events = framer.feed(b"*1\r\n$4\r\nPING\r\n")
    assert [e.kind for e in events] == ["raw"] and framer.passthrough
    pg = MessageFramer("request")  # a PostgreSQL startup packet: no line at all
    assert [e.kind for e in pg.feed(b"\x00\x00\x00\x08\x04\xd2\x16\x2f")] == ["raw"]


def test_conflicting_lengths_are_not_framed() -> None:
    framer = MessageFramer("request")
    events = framer.feed(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab")
    assert framer.passthrough and [e.kind for e in events] == ["raw", "raw"]


def test_error_response_is_a_complete_message() -> None:
    answer = error_response(503, "down for chaos\n", close=True)
    framer = MessageFramer("response")
    framer.methods.append("GET")
    events = framer.feed(answer)
    assert [e.kind for e in events] == ["head", "body", "end"]
    assert b"Connection: close" in answer and answer.endswith(b"down for chaos\n")

"""The toxics of the chaos proxy: what each one does to the bytes of one connection.

Names, attributes and semantics follow Toxiproxy where it has the toxic (``latency``,
``bandwidth``, ``slow_close``, ``timeout``, ``reset_peer``, ``slicer``,
``limit_data``); clnrm adds ``loss``, ``http_error``, ``corrupt`` and ``down``.
``upstream`` is the client-to-server stream, ``downstream`` the server-to-client one.

A toxic is a :class:`ToxicSpec` (the validated definition the control protocol added)
plus, on each connection it applies to, a :class:`ToxicRun` holding that connection's
state.  Runs of one stream form a chain: each ``process`` awaits the next stage's
``emit`` once per piece it lets through, so a toxic may delay (sleep first), drop
(never emit), split (emit several times) or rewrite what passes.  Timestamps are the
arrival time at the proxy, so ``latency`` delays each chunk from when it arrived and
back-to-back chunks do not add up.  Removing a toxic wakes its sleeping runs and lets
what they hold through (Toxiproxy: "don't drop any data on the floor").

Every random choice comes from a generator seeded by (proxy seed, toxic name,
connection number), so one seed replays the same decisions for the same traffic.

Stdlib only, like the rest of the proxy process (it starts on the target's start path).
"""

from __future__ import annotations

import asyncio
import math
import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final

from clnrm.chaos.proxy_http import MessageFramer, error_response

if TYPE_CHECKING:
    from clnrm.chaos.proxy_connection import Connection, Link

Emit = Callable[[float, bytes], Awaitable[None]]
"""The next stage of a chain: ``await emit(arrival_time, data)``."""

STREAMS: Final = ("upstream", "downstream")
MSS: Final = 1448
"""Bytes per TCP segment on an Ethernet path with timestamps; ``loss`` counts segments."""
_REQUIRED: Final = object()


class ToxicError(ValueError):
    """A toxic definition the proxy refuses (unknown type, bad attribute); the control
    protocol answers with its message."""


@dataclass(frozen=True, slots=True)
class Attr:
    """One attribute of a toxic type: JSON type, default (or required) and bounds."""

    name: str
    kind: type
    default: Any = _REQUIRED
    lo: float | None = None
    hi: float | None = None
    doc: str = ""

    def check(self, toxic: str, value: Any) -> Any:
        if self.kind is str:
            if not isinstance(value, str):
                raise ToxicError(f"{toxic}: {self.name} must be a string, got {value!r}")
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ToxicError(f"{toxic}: {self.name} must be a number, got {value!r}")
        if self.kind is int:
            if value != int(value):
                raise ToxicError(f"{toxic}: {self.name} must be a whole number, got {value!r}")
            value = int(value)
        else:
            value = float(value)
        if (self.lo is not None and value < self.lo) or (self.hi is not None and value > self.hi):
            bounds = (f"between {self.lo:g} and {self.hi:g}" if self.hi is not None
                      else f">= {self.lo:g}")
            raise ToxicError(f"{toxic}: {self.name} must be {bounds}, got {value!r}")
        return value


@dataclass(eq=False)
class ToxicSpec:
    """One added toxic: validated definition plus its effect counters."""

    name: str
    type: str
    stream: str
    toxicity: float
    sources: frozenset[str]
    attributes: dict[str, Any]
    connections: int = 0
    hits: int = 0
    serial: int = 0

    def applies_to(self, peer_ip: str, chance: random.Random) -> bool:
        """Whether this toxic acts on a connection from ``peer_ip`` (sources, then one
        seeded toxicity draw per connection, as Toxiproxy decides per connection)."""
        if self.sources and peer_ip not in self.sources:
            return False
        return self.toxicity >= 1.0 or chance.random() < self.toxicity

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "stream": self.stream,
                "toxicity": self.toxicity, "sources": sorted(self.sources),
                "attributes": dict(self.attributes)}


def parse_toxic(obj: Any, *, serial: int) -> ToxicSpec:
    """Validate one ``add_toxic`` request body into a spec, or raise :class:`ToxicError`."""
    if not isinstance(obj, dict):
        raise ToxicError("a toxic is a JSON object")
    unknown = set(obj) - {"name", "type", "stream", "toxicity", "sources", "attributes"}
    if unknown:
        raise ToxicError(f"unknown field(s) {', '.join(sorted(unknown))} (fields: name, type, "
                         "stream, toxicity, sources, attributes)")
    kind = obj.get("type")
    if kind not in KINDS:
        raise ToxicError(f"unknown toxic type {kind!r} (known: {', '.join(sorted(KINDS))})")
    run_cls = KINDS[kind]
    name = obj.get("name") or f"{kind}_{serial}"
    if not isinstance(name, str):
        raise ToxicError(f"name must be a string, got {name!r}")
    label = f"toxic {name!r} ({kind})"
    stream = obj.get("stream", "downstream")
    if stream not in STREAMS:
        raise ToxicError(f"{label}: stream must be 'upstream' or 'downstream', got {stream!r}")
    toxicity = obj.get("toxicity", 1.0)
    if isinstance(toxicity, bool) or not isinstance(toxicity, (int, float)) \
            or not 0.0 <= toxicity <= 1.0:
        raise ToxicError(f"{label}: toxicity must be a number between 0 and 1, got {toxicity!r}")
    sources = obj.get("sources") or []
    if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
        raise ToxicError(f"{label}: sources must be a list of IP addresses, got {sources!r}")
    given = obj.get("attributes") or {}
    if not isinstance(given, dict):
        raise ToxicError(f"{label}: attributes must be an object")
    known = {a.name: a for a in run_cls.ATTRS}
    extra = set(given) - set(known)
    if extra:
        raise ToxicError(f"{label}: unknown attribute(s) {', '.join(sorted(extra))} "
                         f"(attributes of {kind}: {', '.join(known) or 'none'})")
    attributes: dict[str, Any] = {}
    for attr in run_cls.ATTRS:
        if attr.name in given:
            attributes[attr.name] = attr.check(label, given[attr.name])
        elif attr.default is _REQUIRED:
            raise ToxicError(f"{label}: attribute {attr.name} is required ({attr.doc})")
        else:
            attributes[attr.name] = attr.default
    run_cls.check(label, attributes)
    return ToxicSpec(name=name, type=kind, stream=run_cls.FIXED_STREAM or stream,
                     toxicity=float(toxicity), sources=frozenset(sources),
                     attributes=attributes, serial=serial)


# -- runs ------------------------------------------------------------------------------


class ToxicRun:
    """One toxic acting on one stream of one connection (Toxiproxy's "stub")."""

    ATTRS: ClassVar[tuple[Attr, ...]] = ()
    FIXED_STREAM: ClassVar[str | None] = None
    """Set for toxics whose stream is implied (``http_error`` reads requests)."""

    def __init__(self, spec: ToxicSpec, link: Link, rng: random.Random) -> None:
        self.spec = spec
        self.a = spec.attributes
        self.link = link
        self.rng = rng
        self.active = True
        self._sleepers: set[asyncio.Future[None]] = set()
        self._timers: list[asyncio.TimerHandle] = []

    @classmethod
    def check(cls, label: str, attributes: dict[str, Any]) -> None:
        """Cross-attribute rules (raise :class:`ToxicError`)."""

    @property
    def conn(self) -> Connection:
        return self.link.conn

    def hit(self, n: int = 1) -> None:
        self.spec.hits += n

    def start(self) -> None:
        """The toxic starts acting on this connection (timers start here)."""

    async def process(self, t: float, data: bytes, emit: Emit) -> None:
        await emit(t, data)

    async def on_eof(self) -> None:
        """The stream's source closed its side; runs before the close is passed on."""

    def stop(self) -> None:
        """The toxic was removed or the connection ended: release whatever is held."""
        self.active = False
        for handle in self._timers:
            handle.cancel()
        for fut in self._sleepers:
            if not fut.done():
                fut.set_result(None)

    async def sleep_until(self, when: float) -> None:
        """Sleep until loop time ``when``; returns at once when the toxic is removed."""
        loop = asyncio.get_running_loop()
        if not self.active or when <= loop.time():
            return
        fut = loop.create_future()
        self._sleepers.add(fut)
        handle = loop.call_at(when, _wake, fut)
        try:
            await fut
        finally:
            handle.cancel()
            self._sleepers.discard(fut)

    def later(self, delay_s: float, action: Callable[[], None]) -> None:
        self._timers.append(asyncio.get_running_loop().call_later(delay_s, action))


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _ms(name: str, doc: str, default: Any = 0) -> Attr:
    return Attr(name, int, default, lo=0, doc=doc)


class LatencyToxic(ToxicRun):
    """Each chunk leaves ``latency`` ± ``jitter`` ms (uniform) after it arrived."""

    ATTRS = (_ms("latency", "delay in ms"), _ms("jitter", "± random ms"))

    async def process(self, t: float, data: bytes, emit: Emit) -> None:
        delay = self.a["latency"]
        if self.a["jitter"]:
            delay += self.rng.randint(-self.a["jitter"], self.a["jitter"])
        if delay > 0:
            self.hit()
            await self.sleep_until(t + delay / 1000)
        await emit(t, data)


class BandwidthToxic(ToxicRun):
    """At most ``rate`` KB/s (1 KB = 1000 bytes, as Toxiproxy), sent in 100 ms slices."""

    ATTRS = (Attr("rate", int, _REQUIRED, lo=0, doc="KB/s; 0 = unlimited"),)
    _next = 0.0

    async def process(self, t: float, data: bytes, emit: Emit) -> None:
        rate = self.a["rate"] * 1000
        if rate <= 0:
            await emit(t, data)
            return
        loop = asyncio.get_running_loop()
        step = max(1, rate // 10)
        for i in range(0, len(data), step):
            piece = data[i:i + step]
            self._next = max(self._next, loop.time()) + len(piece) / rate
            self.hit()
            await self.sleep_until(self._next)
            await emit(t, piece)


class SlowCloseToxic(ToxicRun):
    """The source's close reaches the other side ``delay`` ms late."""

    ATTRS = (_ms("delay", "ms the close is held"),)

    async def on_eof(self) -> None:
        if self.a["delay"] > 0:
            self.hit()
            await self.sleep_until(asyncio.get_running_loop().time() + self.a["delay"] / 1000)


class TimeoutToxic(ToxicRun):
    """Data is dropped; the connection is closed after ``timeout`` ms (0: held open,
    never closed: a black hole)."""

    ATTRS = (_ms("timeout", "ms until the connection is closed; 0 = never"),)

    def start(self) -> None:
        if self.a["timeout"] > 0:
            self.later(self.a["timeout"] / 1000, self._expire)

    def _expire(self) -> None:
        self.hit()
        self.conn.close()

    async def process(self, t: float, data: bytes, emit: Emit) -> None:
        self.hit()


class ResetPeerToxic(ToxicRun):
    """The first data after the toxic applies is dropped and, ``timeout`` ms later, the
    connection is reset (RST via SO_LINGER 0), as Toxiproxy's reset_peer."""

    ATTRS = (_ms("timeout", "ms from the first data to the reset"),)
    _armed = False

    async def process(self, t: float, data: bytes, emit: Emit) -> None:
        if not self._armed:
            self._armed = True
            self.hit()
            self.later(self.a["timeout"] / 1000, self.conn.reset)


class SlicerToxic(ToxicRun):
    """Chunks are cut into pieces of about ``average_size`` ± ``size_variation`` bytes,
    ``delay`` µs apart (Toxiproxy's halving algorithm)."""

    ATTRS = (Attr("average_size", int, _REQUIRED, lo=1, doc="bytes per slice"),
             Attr("size_variation", int, 0, lo=0, doc="± bytes"),
             Attr("delay", int, 0, lo=0, doc="µs between slices"))

    @classmethod
    def check(cls, label: str, attributes: dict[str, Any]) -> None:
        if attributes["size_variation"] >= attributes["average_size"]:
            raise ToxicError(f"{label}: size_variation must be smaller than average_size")

    def _cuts(self, start: int, end: int, out: list[int]) -> None:
        avg, var = self.a["average_size"], self.a["size_variation"]
        if (end - start) - avg <= var:
            out.append(end)
            return
        mid = start + (end - start) // 2 + (self.rng.randrange(2 * var) - var if var else 0)
        self._cuts(start, mid, out)
        self._cuts(mid, end, out)

    async def process(self, t: float, data: bytes, emit: Emit) -> None:
        cuts: list[int] = []
        self._cuts(0, len(data), cuts)
        loop = asyncio.get_running_loop()
        start = 0
        for n, end in enumerate(cuts):
            self.hit()
            await emit(t, data[start:end])
            start = end
            if self.a["delay"] and n + 1 < len(cuts):
                await self.sleep_until(loop.time() + self.a["delay"] / 1e6)


class LimitDataToxic(ToxicRun):
    """The connection is closed once ``bytes`` bytes have passed on this stream."""

    ATTRS = (Attr("bytes", int, _REQUIRED, lo=0, doc="bytes passed before the close"),)
    _sent = 0

    async def process(self, t: float, data: bytes, emit: Emit) -> None:
        left = self.a["bytes"] - self._sent
        if left > 0:
            piece = data[:left]
            self._sent += len(piece)
            await emit(t, piece)
        if self._sent >= self.a["bytes"]:
            self.hit()
            self.conn.close()


class LossToxic(ToxicRun):
    """Packet loss as the application sees it over TCP.

    TCP never delivers missing or corrupted bytes: a lost segment is retransmitted and
    everything behind it waits (head-of-line blocking).  So each chunk, counted as
    ``ceil(len / 1448)`` segments each lost with ``probability``, is held back one
    retransmission timeout ``rto`` (200 ms: Linux's minimum RTO), doubled for each
    further loss of the same retransmission (exponential backoff, at most 6 times).
    """

    ATTRS = (Attr("probability", float, _REQUIRED, lo=0, hi=1, doc="per TCP segment"),
             Attr("rto", int, 200, lo=1, doc="ms of the first retransmission timeout"))

    async def process(self, t: float, data: bytes, emit: Emit) -> None:
        p = self.a["probability"]
        segments = max(1, -(-len(data) // MSS))
        if p > 0 and self.rng.random() < 1.0 - (1.0 - p) ** segments:
            hold, backoff = self.a["rto"], 1
            while backoff < 6 and self.rng.random() < p:
                hold += self.a["rto"] * 2 ** backoff
                backoff += 1
            self.hit()
            await self.sleep_until(t + hold / 1000)
        await emit(t, data)


class CorruptToxic(ToxicRun):
    """Each byte, with ``probability``, has one random bit flipped."""

    ATTRS = (Attr("probability", float, _REQUIRED, lo=0, hi=1, doc="per byte"),)

    async def process(self, t: float, data: bytes, emit: Emit) -> None:
        p = self.a["probability"]
        if p <= 0 or not data:
            await emit(t, data)
            return
        buf = bytearray(data)
        rng = self.rng
        if p >= 1:
            positions: range | list[int] = range(len(buf))
        else:  # geometric gaps between corrupted bytes: O(corrupted), not O(len)
            positions, i, log_q = [], -1, math.log1p(-p)
            while True:
                i += int(math.log(1.0 - rng.random()) / log_q) + 1
                if i >= len(buf):
                    break
                positions.append(i)
        for i in positions:
            buf[i] ^= 1 << rng.randrange(8)
        self.hit(len(positions))
        await emit(t, bytes(buf))


class DownToxic(ToxicRun):
    """The service is unreachable: connections it applies to are reset at once (new and
    existing).  With toxicity 1 and no sources the proxy also stops listening, so new
    connections are refused (RST to the SYN), as when nothing listens on the port."""

    def start(self) -> None:
        self.hit()
        asyncio.get_running_loop().call_soon(self.conn.reset)

    async def process(self, t: float, data: bytes, emit: Emit) -> None:
        return None


class HttpErrorToxic(ToxicRun):
    """HTTP/1.x requests on this connection are answered, with ``probability`` each, by
    ``status`` and ``body`` instead of being forwarded; the others pass intact.

    Parsing starts at the first chunk that begins a request (a connection the toxic
    reaches mid-request is left alone until then).  Answers keep request order on
    pipelined connections (see :class:`HttpExchange`).  A request that asked for
    ``Connection: close`` or ``Expect: 100-continue`` gets a closing answer.
    """

    ATTRS = (Attr("probability", float, 1.0, lo=0, hi=1, doc="per request"),
             Attr("status", int, 503, lo=100, hi=599, doc="status code answered"),
             Attr("body", str, "", doc="answer body (default: a short explanation)"))
    FIXED_STREAM = "upstream"

    def __init__(self, spec: ToxicSpec, link: Link, rng: random.Random) -> None:
        super().__init__(spec, link, rng)
        self._framer = MessageFramer("request")
        self._synced = False
        self._failing = False
        self._answered = False
        self._close = False

    async def process(self, t: float, data: bytes, emit: Emit) -> None:
        if not self._synced:
            if not _starts_request(data):
                await emit(t, data)
                return
            self._synced = True
        exchange = self.conn.http_exchange()
        out = bytearray()
        for event in self._framer.feed(data):
            if event.kind == "head" and event.head is not None:
                self._failing = self.rng.random() < self.a["probability"]
                if not self._failing:
                    exchange.forwarded(event.head.method)
                    out += event.data
                    continue
                self.hit()
                self._close = not event.head.keep_alive or event.head.expect_continue
                if event.head.expect_continue:  # answer now: the body may never come
                    exchange.failed(self._answer(), close=True)
                    self._answered = True
            elif event.kind == "end":
                if self._failing and not self._answered:
                    exchange.failed(self._answer(), close=self._close)
                self._failing = self._answered = False
            elif not self._failing:
                out += event.data
        if out:
            await emit(t, bytes(out))

    def _answer(self) -> bytes:
        status = self.a["status"]
        body = self.a["body"] or f"clnrm chaos: http_error toxic {self.spec.name!r} " \
                                 f"answered {status}\n"
        return error_response(status, body, close=self._close)

    def stop(self) -> None:
        if self.active and self._failing:
            # half of a swallowed request must not reach the server: end the connection
            asyncio.get_running_loop().call_soon(self.conn.close)
        super().stop()


def _starts_request(data: bytes) -> bool:
    head = data[:16].split(b" ", 1)
    return len(head) == 2 and head[0].isalpha() and head[0].isupper()


class HttpExchange:
    """Request/answer order of one HTTP connection with an ``http_error`` toxic.

    Each request is a slot, forwarded or failed.  A failed request's answer is sent when
    every earlier forwarded request has had its response (found by framing the
    downstream stream), so pipelined clients get answers in request order.
    """

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._framer = MessageFramer("response")
        self._slots: deque[tuple[bytes, bool] | None] = deque()  # None = forwarded
        self.broken = False

    @property
    def tracking(self) -> bool:
        return bool(self._slots) and not self.broken

    def forwarded(self, method: str) -> None:
        self._slots.append(None)
        self._framer.methods.append(method)

    def failed(self, answer: bytes, *, close: bool) -> None:
        if not self._slots or self.broken:
            self.conn.inject_downstream(answer, close=close)
        else:
            self._slots.append((answer, close))

    def tap(self, data: bytes) -> list[bytes | None]:
        """Server bytes in, pieces out with queued answers between responses; a None
        piece means "close after what came before"."""
        if not self.tracking:
            return [data]
        out: list[bytes | None] = []
        current = bytearray()
        for event in self._framer.feed(data):
            current += event.data
            if self._framer.passthrough:
                self.broken = True
            if event.kind == "end" and not event.interim and self._slots:
                self._slots.popleft()  # (the framer popped its method)
                while self._slots and self._slots[0] is not None:
                    answer, close = self._slots.popleft()  # type: ignore[misc]
                    out.append(bytes(current))
                    current.clear()
                    out.append(answer)
                    if close:
                        out.append(None)
                        return out
        if current:
            out.append(bytes(current))
        if self.broken:  # not HTTP after all: answer what is queued, stop tracking
            while self._slots:
                slot = self._slots.popleft()
                if slot is not None:
                    out.append(slot[0])
        return out


KINDS: Final[dict[str, type[ToxicRun]]] = {
    "latency": LatencyToxic, "bandwidth": BandwidthToxic, "slow_close": SlowCloseToxic,
    "timeout": TimeoutToxic, "reset_peer": ResetPeerToxic, "slicer": SlicerToxic,
    "limit_data": LimitDataToxic, "loss": LossToxic, "corrupt": CorruptToxic, "down": DownToxic,
    "http_error": HttpErrorToxic,
}
"""Every toxic type the proxy knows, by its control-protocol name."""

__all__ = ["KINDS", "STREAMS", "Attr", "Emit", "HttpExchange", "ToxicError", "ToxicRun",
           "ToxicSpec", "parse_toxic"]

"""One proxied TCP connection: the two sockets, the two streams between them, and the
toxic chains acting on each stream (the server is :mod:`clnrm.chaos.proxy`).

Performance: with no toxic on a stream, ``Side.data_received`` writes straight to
the other socket (``Link.fast``): no task, no queue, no copy beyond the read.  A toxic
on a stream moves it to a pump task that feeds each chunk through the chain, with
flow control on both paths (the source stops being read while bytes cannot leave).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import struct
import sys
from collections import deque
from typing import TYPE_CHECKING, Any, Final

from clnrm.chaos.proxy_toxics import KINDS, Emit, HttpExchange, ToxicRun

if TYPE_CHECKING:
    from clnrm.chaos.proxy import ProxyServer

HIGH_WATER: Final = 1024 * 1024
"""Bytes queued on a toxic stream (or unsent to a slow reader) before reading pauses."""


class Side(asyncio.Protocol):
    """One TCP connection of a proxied pair: the client's or the upstream one."""

    def __init__(self, conn: Connection, name: str) -> None:
        self.conn = conn
        self.name = name
        self.transport: asyncio.Transport | None = None
        self.out_link: Link | None = None  # bytes read here flow through it
        self.in_link: Link | None = None  # it writes here
        self.write_paused = False
        self.closed = False
        self._drained: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        self.transport.set_write_buffer_limits(high=HIGH_WATER)  # type: ignore[union-attr]
        if self.name == "client":
            self.conn.accepted(self)

    def data_received(self, data: bytes) -> None:
        link = self.out_link
        if link is None:
            return
        link.nbytes += len(data)
        if link.fast:  # no toxic, nothing queued: straight through (measured: bench/proxy.py)
            link.dst.transport.write(data)  # type: ignore[union-attr]
        else:
            link.feed(data)

    def eof_received(self) -> bool:
        if self.out_link is not None:
            self.out_link.feed_eof()
        return True  # keep the write half open (half-close is passed on, not forced)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.write_paused = False
        if self.in_link is not None:
            self.in_link.fast = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self.conn.side_lost(self, exc)

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.in_link is not None:
            self.in_link.update_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        if self.in_link is not None:
            self.in_link.update_reading()

    async def drain(self) -> None:
        if self.write_paused and not self.closed:
            self._drained = asyncio.get_running_loop().create_future()
            await self._drained

    def set_linger_zero(self) -> None:
        """Make the next close a RST (discard unsent data), as a reset peer does."""
        sock = self.transport.get_extra_info("socket") if self.transport else None
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass


class Link:
    """One stream of a connection (``upstream``: client to server, ``downstream``: back)
    and the chain of toxic runs acting on it."""

    def __init__(self, conn: Connection, direction: str, src: Side, dst: Side) -> None:
        self.conn = conn
        self.direction = direction
        self.src = src
        self.dst = dst
        src.out_link = self
        dst.in_link = self
        self.chain: tuple[ToxicRun, ...] = ()
        self.entry: Emit = self._write
        self.queue: deque[tuple[float, bytes]] = deque()
        self.queued = 0
        self.pump: asyncio.Task[None] | None = None
        self.tap: HttpExchange | None = None
        self.reading_paused = False
        self.ready = False  # until the upstream connection exists
        self.eof_pending = False
        self.close_after = False
        self.done = False
        self.nbytes = 0
        self.fast = False
        self._waiter: asyncio.Future[None] | None = None

    def _update_fast(self) -> None:
        self.fast = (self.ready and self.pump is None and not self.chain and self.tap is None
                     and not self.eof_pending and not self.done and not self.dst.closed)

    # -- input -------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Bytes read from ``src``."""
        if self.eof_pending or self.done:
            return
        if self.tap is not None and self.tap.tracking:
            for piece in self.tap.tap(data):
                if piece is None:
                    self.feed_eof(close=True)
                    return
                self.put(piece)
            return
        self.put(data)

    def put(self, data: bytes) -> None:
        if self.pump is None and not self.chain and self.ready:  # the fast path
            if not self.dst.closed:
                self.dst.transport.write(data)  # type: ignore[union-attr]
            return
        self.queue.append((asyncio.get_running_loop().time(), data))
        self.queued += len(data)
        if not self.ready:
            # uvloop starts reading after connection_made whatever it asked, so bytes can
            # come before the upstream connection exists: hold them, stop reading
            self.update_reading()
            return
        if self.queued > HIGH_WATER:
            self.update_reading()
        self._ensure_pump()

    def feed_eof(self, *, close: bool = False) -> None:
        """``src`` will send nothing more; ``close``: end the connection once delivered."""
        if self.eof_pending or self.done:
            return
        self.eof_pending = True
        self.fast = False
        self.close_after = self.close_after or close
        if not self.ready:
            return  # delivered by the pump once connected
        if self.pump is None and not self.chain and not self.queue:
            self._deliver_eof()
        else:
            self._ensure_pump()

    # -- toxics ------------------------------------------------------------------------

    def set_chain(self, chain: tuple[ToxicRun, ...]) -> None:
        if chain == self.chain:
            return
        self.chain = chain
        self._update_fast()
        entry: Emit = self._write
        for run in reversed(chain):
            entry = _stage(run, entry)
        self.entry = entry
        if self.ready and (chain or self.queue):
            self._ensure_pump()
        self._wake()

    def _ensure_pump(self) -> None:
        if self.pump is None and not self.done:
            self.pump = asyncio.get_running_loop().create_task(self._run_pump())
            self.fast = False
        else:
            self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _run_pump(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while not self.done:
                if self.queue:
                    t, data = self.queue.popleft()
                    self.queued -= len(data)
                    if self.reading_paused:
                        self.update_reading()
                    await self.entry(t, data)
                elif self.eof_pending:
                    for run in self.chain:
                        await run.on_eof()
                    self._deliver_eof()
                elif not self.chain:
                    return  # back to the fast path
                else:
                    self._waiter = loop.create_future()
                    await self._waiter
                    self._waiter = None
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a toxic bug must not leave the client hanging
            log("toxic_failed", direction=self.direction, error=repr(exc))
            self.conn.close()
        finally:
            self.pump = None
            self._update_fast()

    # -- output ------------------------------------------------------------------------

    async def _write(self, t: float, data: bytes) -> None:
        transport = self.dst.transport
        if not data or transport is None or self.dst.closed or transport.is_closing():
            return
        transport.write(data)
        if self.dst.write_paused:
            await self.dst.drain()

    def _deliver_eof(self) -> None:
        self.done = True
        self.fast = False
        transport = self.dst.transport
        if self.close_after:
            self.conn.close()
            return
        if transport is not None and not self.dst.closed and not transport.is_closing():
            if transport.can_write_eof():
                transport.write_eof()
            else:
                transport.close()
        self.conn.check_finished()

    def update_reading(self) -> None:
        """Read from ``src`` unless its bytes cannot go anywhere yet (flow control)."""
        transport = self.src.transport
        if transport is None or self.src.closed:
            return
        pause = (not self.ready or self.dst.write_paused or self.queued > HIGH_WATER) \
            and not self.done
        if pause != self.reading_paused:
            self.reading_paused = pause
            if pause:
                transport.pause_reading()
            else:
                transport.resume_reading()

    def abandon(self) -> None:
        """Nobody is left to deliver to: drop what is queued."""
        self.done = True
        self.fast = False
        self.queue.clear()
        self.queued = 0
        if self.pump is not None:
            self.pump.cancel()


def _stage(run: ToxicRun, nxt: Emit) -> Emit:
    async def stage(t: float, data: bytes) -> None:
        await run.process(t, data, nxt)
    return stage


class Connection:
    """A client connection and its upstream twin, with the toxics acting on them."""

    def __init__(self, server: ProxyServer, index: int) -> None:
        self.server = server
        self.index = index
        self.peer_ip = ""
        self.client = Side(self, "client")
        self.upstream = Side(self, "upstream")
        self.up = Link(self, "upstream", self.client, self.upstream)
        self.down = Link(self, "downstream", self.upstream, self.client)
        self.runs: dict[int, ToxicRun] = {}
        self.declined: set[int] = set()
        self.closed = False
        self._exchange: HttpExchange | None = None

    def accepted(self, client: Side) -> None:
        assert client.transport is not None
        peer = client.transport.get_extra_info("peername")
        self.peer_ip = str(peer[0]) if peer else ""
        self.server.opened(self)
        self.refresh()
        if not self.closed:
            asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        host, port = self.server.upstream
        try:
            await asyncio.get_running_loop().create_connection(lambda: self.upstream, host, port)
        except OSError as exc:
            log("upstream_unreachable", upstream=f"{host}:{port}", error=str(exc))
            self.client.set_linger_zero()  # a reset, as a connection to a dead port gets
            self._end(abort=True)
            return
        if self.closed:  # reset meanwhile (a ``down`` toxic): this one goes too
            if self.upstream.transport is not None:
                self.upstream.transport.abort()
            return
        for link in (self.up, self.down):
            link.ready = True
            link._update_fast()
            link.update_reading()
            if link.queue or link.chain or link.eof_pending:
                link._ensure_pump()

    # -- toxics ------------------------------------------------------------------------

    def refresh(self) -> None:
        """Apply the server's current toxics: decide new ones, stop removed ones."""
        if self.closed:
            return
        server = self.server
        chains: dict[str, list[ToxicRun]] = {"upstream": [], "downstream": []}
        started: list[ToxicRun] = []
        for spec in server.toxics.values():
            run = self.runs.get(spec.serial)
            if run is None:
                if spec.serial in self.declined:
                    continue
                chance = random.Random(f"{server.seed}|{spec.name}|{self.index}|toxicity")
                if not spec.applies_to(self.peer_ip, chance):
                    self.declined.add(spec.serial)
                    continue
                link = self.up if spec.stream == "upstream" else self.down
                rng = random.Random(f"{server.seed}|{spec.name}|{self.index}")
                run = KINDS[spec.type](spec, link, rng)
                self.runs[spec.serial] = run
                spec.connections += 1
                started.append(run)
            chains[run.link.direction].append(run)
        live = {spec.serial for spec in server.toxics.values()}
        for serial in [s for s in self.runs if s not in live]:
            self.runs.pop(serial).stop()
        self.declined &= live
        self.up.set_chain(tuple(chains["upstream"]))
        self.down.set_chain(tuple(chains["downstream"]))
        for run in started:
            run.start()

    def http_exchange(self) -> HttpExchange:
        if self._exchange is None:
            self._exchange = HttpExchange(self)
            self.down.tap = self._exchange
            self.down.fast = False
        return self._exchange

    def inject_downstream(self, data: bytes, *, close: bool) -> None:
        """Send ``data`` to the client as if the server had (through downstream toxics)."""
        self.down.put(data)
        if close:
            self.down.feed_eof(close=True)

    # -- ending ------------------------------------------------------------------------

    def side_lost(self, side: Side, exc: Exception | None) -> None:
        if self.closed:
            return
        other = self.upstream if side is self.client else self.client
        if isinstance(exc, ConnectionResetError):
            other.set_linger_zero()  # pass the reset on
            self._end(abort=True)
            return
        # what this side sent still goes out, then the other side is closed
        assert side.out_link is not None and side.in_link is not None
        side.in_link.abandon()
        side.out_link.feed_eof(close=True)

    def check_finished(self) -> None:
        if self.up.done and self.down.done:
            self.close()

    def close(self) -> None:
        """Close both sides after their unsent bytes (FIN)."""
        self._end(abort=False)

    def reset(self) -> None:
        """Reset both sides (RST, unsent bytes discarded)."""
        if not self.closed:
            self.client.set_linger_zero()
            self.upstream.set_linger_zero()
            self._end(abort=True)

    def _end(self, *, abort: bool) -> None:
        if self.closed:
            return
        self.closed = True
        for run in self.runs.values():
            run.stop()
        self.runs.clear()
        for link in (self.up, self.down):
            link.abandon()
        for side in (self.client, self.upstream):
            if side.transport is not None:
                side.transport.abort() if abort else side.transport.close()
        self.server.finished(self)


def log(event: str, **fields: Any) -> None:
    """One JSON line on stderr (the manager keeps it in the proxy's log file).  Not
    structlog: the proxy process imports nothing beyond the stdlib, for start-up time."""
    print(json.dumps({"event": f"chaos.proxy.{event}", "pid": os.getpid(), **fields}),
          file=sys.stderr, flush=True)

"""The chaos proxy: a userspace TCP proxy with Toxiproxy-named toxics.

``tc netem`` needs kernel modules this kind of machine lacks, so network faults act on
the bytes of TCP connections instead.  The proxy runs as its own host process inside
the target container's network namespace (see :mod:`clnrm.chaos.proxy_manager`)::

    python -m clnrm.chaos.proxy serve --listen 0.0.0.0:0 --upstream 127.0.0.1:5432 \\
        --control /tmp/clnrm-proxy-.../db-5432.sock --seed 7 --parent-pid 1234

An iptables REDIRECT sends the clients' connections to it (their source address is
kept, so toxics can pick clients), and it connects to the service over loopback.
It is controlled with JSON lines over a unix socket (paths work across network
namespaces): one request object per line, one answer per line, ``{"ok": true, ...}``
or ``{"ok": false, "error": "..."}``:

==================  ==========================================================
``ping``            ``pid``, ``listen_port``, ``upstream``, ``seed``
``add_toxic``       ``toxic``: name, type, stream, toxicity, sources, attributes
``remove_toxic``    ``name``
``reset``           remove every toxic
``list``            ``toxics``: the definitions, in chain order
``stats``           ``stats``: connections, bytes each way, per-toxic counters
==================  ==========================================================

Toxics added later reach connections opened earlier (pools, keep-alive); that is
why the proxy is installed when the target starts.  With no toxic on a stream,
bytes take a fast path (one ``write`` per read, no task, no queue).  The process
exits by itself when its parent dies (checked every 0.5 s), and on SIGTERM.

The server side is stdlib only (uvloop on request, see ``--loop``): it starts on the
target's start path, so it stays quick to import (~70 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sys
from dataclasses import dataclass, field
from typing import Any, Final

from clnrm.chaos.proxy_connection import Connection, Link, Side, log
from clnrm.chaos.proxy_control import ProxyControl, ProxyStats, ToxicStats
from clnrm.chaos.proxy_toxics import STREAMS, ToxicError, ToxicSpec, parse_toxic

__all__ = ["Connection", "Link", "ProxyControl", "ProxyServer", "ProxyStats", "Side",
           "ToxicStats", "main"]

ORPHAN_POLL_S: Final = 0.5


# -- the server ------------------------------------------------------------------------


@dataclass
class ProxyServer:
    """Listener, toxics and control socket of one proxied port."""

    listen: tuple[str, int]
    upstream: tuple[str, int]
    control_path: str | None = None
    seed: int = 0
    parent_pid: int | None = None
    toxics: dict[str, ToxicSpec] = field(default_factory=dict)
    connections: set[Connection] = field(default_factory=set)
    traffic: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STREAMS, 0))
    total: int = 0
    port: int = 0

    def __post_init__(self) -> None:
        self._serial = 0
        self._accepted = 0
        self._listener: asyncio.AbstractServer | None = None
        self._held: socket.socket | None = None
        self._control: asyncio.AbstractServer | None = None
        self._stopped: asyncio.Event | None = None
        self._parent_watch: asyncio.Task[None] | None = None  # held: the loop keeps weak refs

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        self._listener = await loop.create_server(self._accept, *self.listen,
                                                  reuse_address=True, backlog=1024)
        self.port = self._listener.sockets[0].getsockname()[1]
        if self.control_path:
            if os.path.exists(self.control_path):
                os.unlink(self.control_path)
            self._control = await asyncio.start_unix_server(self._serve_control,
                                                            path=self.control_path)
        if self.parent_pid:
            self._parent_watch = loop.create_task(self._watch_parent())

    async def serve_forever(self) -> None:
        await self.start()
        assert self._stopped is not None
        await self._stopped.wait()

    def stop(self) -> None:
        """Close everything (connections with a FIN, as a server going away would)."""
        for conn in list(self.connections):
            conn.close()
        if self._listener is not None:
            self._listener.close()
        if self._held is not None:
            self._held.close()
        if self._control is not None:
            self._control.close()
            if self.control_path and os.path.exists(self.control_path):
                os.unlink(self.control_path)
        if self._stopped is not None:
            self._stopped.set()

    async def _watch_parent(self) -> None:
        while True:
            await asyncio.sleep(ORPHAN_POLL_S)
            if os.getppid() != self.parent_pid:
                log("orphaned", parent=self.parent_pid)
                self.stop()
                return

    # -- connections -------------------------------------------------------------------

    def _accept(self) -> Side:
        conn = Connection(self, self._accepted)
        self._accepted += 1
        return conn.client

    def opened(self, conn: Connection) -> None:
        self.total += 1
        self.connections.add(conn)

    def finished(self, conn: Connection) -> None:
        self.connections.discard(conn)
        self.traffic["upstream"] += conn.up.nbytes
        self.traffic["downstream"] += conn.down.nbytes

    # -- toxics ------------------------------------------------------------------------

    async def add_toxic(self, obj: Any) -> ToxicSpec:
        self._serial += 1
        spec = parse_toxic(obj, serial=self._serial)
        if spec.name in self.toxics:
            raise ToxicError(f"toxic {spec.name!r} already exists (remove it first)")
        self.toxics[spec.name] = spec
        await self._apply()
        return spec

    async def remove_toxic(self, name: str) -> ToxicSpec:
        spec = self.toxics.pop(name, None)
        if spec is None:
            raise ToxicError(f"no toxic named {name!r} (toxics: "
                             f"{', '.join(self.toxics) or 'none'})")
        await self._apply()
        return spec

    async def reset_toxics(self) -> None:
        self.toxics.clear()
        await self._apply()

    async def _apply(self) -> None:
        for conn in list(self.connections):
            conn.refresh()
        await self._set_listening(not any(
            s.type == "down" and s.toxicity >= 1.0 and not s.sources
            for s in self.toxics.values()))

    async def _set_listening(self, on: bool) -> None:
        """``down`` for everyone closes the listener so new connections are refused; the
        port stays bound (not listening) meanwhile so nothing else can take it."""
        if on and self._listener is None and self._held is not None:
            held, self._held = self._held, None
            self._listener = await asyncio.get_running_loop().create_server(
                self._accept, sock=held, backlog=1024)
        elif not on and self._listener is not None:
            self._listener.close()
            self._listener = None
            held = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            for _ in range(100):  # uvloop closes the listening handle on its next turn
                try:
                    held.bind((self.listen[0], self.port))
                    break
                except OSError:
                    await asyncio.sleep(0.01)
            else:
                held.close()
                raise ToxicError(f"could not hold port {self.port} while down")
            self._held = held

    def stats(self) -> dict[str, Any]:
        return {"listen_port": self.port, "listening": self._listener is not None,
                "connections": {"total": self.total, "active": len(self.connections)},
                "bytes": {"upstream": self.traffic["upstream"]
                          + sum(c.up.nbytes for c in self.connections),
                          "downstream": self.traffic["downstream"]
                          + sum(c.down.nbytes for c in self.connections)},
                "toxics": {s.name: {"type": s.type, "connections": s.connections,
                                    "hits": s.hits} for s in self.toxics.values()}}

    # -- control protocol --------------------------------------------------------------

    async def _serve_control(self, reader: asyncio.StreamReader,
                             writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                answer = await self.handle(line)
                writer.write(json.dumps(answer).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def handle(self, line: bytes) -> dict[str, Any]:
        """One control request (a JSON line) to its answer; never raises."""
        try:
            req = json.loads(line)
            if not isinstance(req, dict):
                raise ToxicError("a request is a JSON object with an 'op'")
            op = req.get("op")
            if op == "ping":
                return {"ok": True, "pid": os.getpid(), "listen_port": self.port,
                        "upstream": f"{self.upstream[0]}:{self.upstream[1]}", "seed": self.seed}
            if op == "add_toxic":
                added = await self.add_toxic(req.get("toxic"))
                return {"ok": True, "toxic": added.describe()}
            if op == "remove_toxic":
                return {"ok": True, "toxic": (await self.remove_toxic(str(req.get("name"))))
                        .describe()}
            if op == "reset":
                await self.reset_toxics()
                return {"ok": True}
            if op == "list":
                return {"ok": True, "toxics": [s.describe() for s in self.toxics.values()]}
            if op == "stats":
                return {"ok": True, "stats": self.stats()}
            raise ToxicError(f"unknown op {op!r} (ops: ping, add_toxic, remove_toxic, reset, "
                             "list, stats)")
        except json.JSONDecodeError as exc:
            return {"ok": False, "error": f"not JSON: {exc}"}
        except ToxicError as exc:
            return {"ok": False, "error": str(exc)}
        except Exception as exc:  # the control socket must survive anything
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


# -- the process -------------------------------------------------------------------------


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def new_event_loop(kind: str = "asyncio") -> asyncio.AbstractEventLoop:
    """The stdlib loop, or uvloop when asked (``auto``: if installed).

    Measured with bench/proxy.py: uvloop halves the proxy's user CPU per request
    (4.4 -> 2.1 us) but ~85% of its ~18 us is the kernel's TCP work for the two extra
    hops, so throughput did not change; the stdlib loop keeps the proxy dependency-free
    and alike on every machine.
    """
    if kind in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clnrm.chaos.proxy",
                                     description="clnrm's chaos TCP proxy")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="proxy one port until SIGTERM or the parent dies")
    serve.add_argument("--listen", type=_address, default=("0.0.0.0", 0))
    serve.add_argument("--upstream", type=_address, required=True)
    serve.add_argument("--control", required=True, help="unix socket path for control")
    serve.add_argument("--seed", type=int, default=0)
    serve.add_argument("--parent-pid", type=int, default=None,
                       help="exit when this is no longer our parent (default: the parent now)")
    serve.add_argument("--loop", choices=("auto", "asyncio", "uvloop"),
                       default=os.environ.get("CLNRM_PROXY_LOOP", "asyncio"),
                       help="event loop (default: $CLNRM_PROXY_LOOP, else asyncio; auto: "
                            "uvloop if installed)")
    args = parser.parse_args(argv)
    server = ProxyServer(listen=args.listen, upstream=args.upstream, control_path=args.control,
                         seed=args.seed, parent_pid=args.parent_pid or os.getppid())
    loop = new_event_loop(args.loop)
    asyncio.set_event_loop(loop)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.stop)
    try:
        loop.run_until_complete(server.serve_forever())
    finally:
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

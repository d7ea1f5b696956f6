"""The host's side of a chaos proxy: a client of its control socket.

One JSON request per line, one JSON answer per line (the protocol is described in
:mod:`clnrm.chaos.proxy`).  Kept apart from the server so faults and the proxy manager
import neither asyncio nor the toxics.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ToxicStats:
    """Effect counters of one toxic: connections it applies to, and hits (chunks
    delayed, bytes corrupted, requests failed... per the toxic type)."""

    type: str
    connections: int
    hits: int


@dataclass(frozen=True)
class ProxyStats:
    """What went through a proxy since it started."""

    listen_port: int
    listening: bool
    connections_total: int
    connections_active: int
    bytes_upstream: int
    bytes_downstream: int
    toxics: dict[str, ToxicStats]


class ProxyControl:
    """Synchronous client of one proxy's control socket (one short connection per call,
    so it is safe from any thread).  Errors are :class:`~clnrm.errors.ChaosError` with
    the proxy's message."""

    def __init__(self, path: str, *, timeout: float = 5.0) -> None:
        self.path = path
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"ProxyControl({self.path!r})"

    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        from clnrm.errors import ChaosError

        payload = json.dumps({"op": op, **fields}).encode() + b"\n"
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout)
                sock.connect(self.path)
                sock.sendall(payload)
                data = b""
                while not data.endswith(b"\n"):
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    data += chunk
        except OSError as exc:
            raise ChaosError(f"chaos proxy at {self.path} does not answer ({op}): {exc}",
                             hint="the proxy process may have died; see its log next to "
                                  "the socket") from exc
        try:
            answer = json.loads(data)
        except json.JSONDecodeError as exc:
            raise ChaosError(f"chaos proxy at {self.path} answered {data[:200]!r} to {op}") \
                from exc
        if not answer.get("ok"):
            raise ChaosError(f"chaos proxy refused {op}: {answer.get('error')}")
        return dict(answer)

    def ping(self) -> dict[str, Any]:
        """``pid``, ``listen_port``, ``upstream``, ``seed``."""
        return self.request("ping")

    def add_toxic(self, name: str, type: str, *, stream: str = "downstream",
                  toxicity: float = 1.0, sources: Iterable[str] | None = None,
                  **attributes: Any) -> dict[str, Any]:
        """Add a toxic (acts at once on open and new connections); its definition."""
        toxic = {"name": name, "type": type, "stream": stream, "toxicity": toxicity,
                 "sources": list(sources or []), "attributes": attributes}
        return dict(self.request("add_toxic", toxic=toxic)["toxic"])

    def remove_toxic(self, name: str) -> None:
        self.request("remove_toxic", name=name)

    def reset(self) -> None:
        """Remove every toxic."""
        self.request("reset")

    def toxics(self) -> list[dict[str, Any]]:
        """Definitions of the active toxics, in chain order (re-addable as they are)."""
        return [dict(t) for t in self.request("list")["toxics"]]

    def stats(self) -> ProxyStats:
        raw = self.request("stats")["stats"]
        return ProxyStats(listen_port=raw["listen_port"], listening=raw["listening"],
                          connections_total=raw["connections"]["total"],
                          connections_active=raw["connections"]["active"],
                          bytes_upstream=raw["bytes"]["upstream"],
                          bytes_downstream=raw["bytes"]["downstream"],
                          toxics={name: ToxicStats(**t) for name, t in raw["toxics"].items()})

"""SIGTERM as Ctrl-C: one handler for every long-running command and server.

A run, a campaign or a memory server stopped by SIGTERM (systemd, CI, ``kill``) must take
the same cleanup path as Ctrl-C, or containers, proxies and servers are left behind.
Stdlib only: the CLI imports it for every command, and library code (the memory server)
uses it without pulling in typer.
"""

from __future__ import annotations

import signal


class signals_as_interrupts:  # noqa: N801 - used as a context manager, reads like one
    """SIGTERM behaves like Ctrl-C inside the block, so both take the cleanup path."""

    def __enter__(self) -> dict[str, str]:
        self.received: dict[str, str] = {}

        def handler(signum: int, frame: object) -> None:
            self.received["name"] = signal.Signals(signum).name
            # ignore further signals while cleanup runs: a second Ctrl-C must not leak
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            raise KeyboardInterrupt

        self._old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        return self.received

    def __exit__(self, *exc: object) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)

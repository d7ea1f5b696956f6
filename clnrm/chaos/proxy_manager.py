"""Putting a service's port behind the chaos proxy, transparently, from its first client on.

For each (service, port) the manager starts ``python -m clnrm.chaos.proxy serve`` as a
host process inside the service container's network namespace (``nsenter -n``; the
image needs neither Python nor iptables), listening on an ephemeral port and
forwarding to ``127.0.0.1:<port>``, then adds in that namespace::

    iptables -t nat -I PREROUTING -p tcp --dport <port> ! -i lo -j REDIRECT --to-ports <proxy>

so every connection arriving from another container (or the host) goes through the
proxy, with its source address kept (``from = ["api"]`` toxics match on it), while
the container's own loopback traffic (health checks, and the proxy's connection to
the service) stays direct.  Installed when the service starts, before any dependant
exists, so pooled and keep-alive connections are proxied too and toxics reach them.

The proxy is controlled over a unix socket in a per-run temporary directory (a path
works across network namespaces).  Leftovers after a SIGKILL: the proxy exits by
itself once its parent is gone, and each process is in the run's journal
(``PROXY_RECORD``) for ``clnrm gc``.  After a container restart the namespace is new:
:meth:`ProxyManager.reinstall` starts a fresh proxy on the same control socket and
re-adds the toxics that were active.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from clnrm.chaos import netns
from clnrm.chaos.journal import PROXY_RECORD
from clnrm.chaos.proxy_control import ProxyControl
from clnrm.errors import ChaosError

if TYPE_CHECKING:
    from clnrm.chaos.context import ChaosContext

log = structlog.get_logger("clnrm.chaos")

READY_TIMEOUT_S = 10.0


class TrackedControl(ProxyControl):
    """A :class:`ProxyControl` that remembers the toxics added through it, so they can be
    put back on the fresh proxy that replaces one lost with its container."""

    def __init__(self, path: str, service: str, port: int) -> None:
        super().__init__(path)
        self.service = service
        self.port = port
        self.active: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def add_toxic(self, name: str, type: str, **kwargs: Any) -> dict[str, Any]:
        toxic = super().add_toxic(name, type, **kwargs)
        with self._lock:
            self.active[name] = toxic
        return toxic

    def remove_toxic(self, name: str) -> None:
        with self._lock:
            self.active.pop(name, None)
        super().remove_toxic(name)

    def reset(self) -> None:
        with self._lock:
            self.active.clear()
        super().reset()

    def restore(self) -> None:
        """Re-add every remembered toxic (after a reinstall), in the original order."""
        with self._lock:
            toxics = list(self.active.values())
        for toxic in toxics:
            self.request("add_toxic", toxic=toxic)


@dataclass
class _Installed:
    service: str
    port: int
    control: TrackedControl
    seed: int
    process: subprocess.Popen[bytes] | None = None
    pid: int = 0
    netns_inode: int = 0
    proxy_port: int = 0
    entry_id: str = ""
    rule: list[str] = field(default_factory=list)
    generation: int = 0


class ProxyManager:
    """The chaos proxies of one test: ``install`` at launch, ``control`` for faults,
    ``close`` at the end (also a context manager)."""

    def __init__(self, ctx: ChaosContext) -> None:
        self.ctx = ctx
        self._installed: dict[tuple[str, int], _Installed] = {}
        self._dir: str | None = None
        self._lock = threading.RLock()
        self._closed = False

    def __enter__(self) -> ProxyManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- public ------------------------------------------------------------------------

    def install(self, service: str, port: int) -> ProxyControl:
        """Put ``service:port`` behind a proxy (idempotent); its control handle."""
        with self._lock:
            if self._closed:
                raise ChaosError("the chaos proxies of this test are already closed",
                                 target=service)
            key = (service, int(port))
            found = self._installed.get(key)
            if found is not None:
                return found.control
            seed = self.ctx.rng(f"proxy:{service}:{port}").getrandbits(31)
            control = TrackedControl(self._socket_path(service, port), service, int(port))
            inst = _Installed(service, int(port), control, seed)
            self._installed[key] = inst
            try:
                self._start(inst)
            except BaseException:
                self._stop(inst, remove_rule=True)
                del self._installed[key]
                raise
            return inst.control

    def control(self, service: str, port: int | None = None) -> ProxyControl:
        """The control handle of ``service``'s proxied ``port`` (None: its only one)."""
        with self._lock:
            ports = sorted(p for s, p in self._installed if s == service)
        if port is None:
            if len(ports) != 1:
                raise ChaosError(
                    f"{service!r} has {'no port' if not ports else f'ports {ports}'} behind "
                    "the chaos proxy" + ("" if not ports else "; say which one"),
                    target=service,
                    hint="a proxied fault's port must be declared when the test starts, so "
                         "the proxy is in place before clients connect" if not ports
                    else "add port = <number> to the fault")
            port = ports[0]
        if port not in ports:
            raise ChaosError(f"{service}:{port} is not behind the chaos proxy (proxied: "
                             + (", ".join(f"{service}:{p}" for p in ports) or "none") + ")",
                             target=service,
                             hint="the proxy is installed when the service starts, for the "
                                  "ports of the test's proxied faults")
        return self._installed[(service, port)].control

    def proxied(self) -> list[tuple[str, int]]:
        with self._lock:
            return sorted(self._installed)

    def reinstall(self, service: str) -> None:
        """After ``service`` restarted (new network namespace): new proxies, same control
        sockets, the active toxics re-applied."""
        with self._lock:
            for inst in [i for (s, _), i in sorted(self._installed.items()) if s == service]:
                pid = self.ctx.container_pid(service)
                if _netns_inode(pid) == inst.netns_inode and _alive(inst.process):
                    continue  # same namespace, proxy still there: nothing was lost
                self._stop(inst, remove_rule=False)  # its namespace is gone with its rule
                inst.generation += 1
                self._start(inst)
                inst.control.restore()
                log.info("chaos.proxy_reinstalled", service=service, port=inst.port,
                         toxics=len(inst.control.active))

    def close(self) -> None:
        """Remove the rules (if the containers are still there), stop the proxies, forget
        them in the journal and delete the socket directory.  Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            errors: list[str] = []
            for inst in self._installed.values():
                try:
                    self._stop(inst, remove_rule=True)
                except Exception as exc:
                    errors.append(f"{inst.service}:{inst.port}: {exc}")
            self._installed.clear()
            if self._dir is not None:
                shutil.rmtree(self._dir, ignore_errors=True)
                self._dir = None
        if errors:
            raise ChaosError("chaos proxies not fully removed: " + "; ".join(errors))

    # -- internals -----------------------------------------------------------------------

    def _socket_path(self, service: str, port: int) -> str:
        if self._dir is None:
            self._dir = tempfile.mkdtemp(prefix=f"clnrm-proxy-{self.ctx.run_id[:12]}-")
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in service)[:40]
        return os.path.join(self._dir, f"{safe}-{port}.sock")  # unix paths: < 108 bytes

    def _start(self, inst: _Installed) -> None:
        pid = self.ctx.container_pid(inst.service)
        sock = inst.control.path
        logfile = sock[:-5] + ".log"
        argv = [sys.executable, "-m", "clnrm.chaos.proxy", "serve",
                "--listen", "0.0.0.0:0", "--upstream", f"127.0.0.1:{inst.port}",
                "--control", sock, "--seed", str(inst.seed), "--parent-pid", str(os.getpid())]
        with open(logfile, "ab") as err:
            inst.process = netns.popen_in_netns(pid, argv, stdin=subprocess.DEVNULL,
                                                stdout=subprocess.DEVNULL, stderr=err,
                                                start_new_session=True)
        inst.pid = inst.process.pid  # nsenter execs the proxy: same pid
        inst.netns_inode = _netns_inode(pid)
        if self.ctx.journal is not None:
            from clnrm.labels import process_start_time

            inst.entry_id = f"proxy-{inst.service}-{inst.port}-{inst.generation}"
            self.ctx.journal.record(inst.entry_id, PROXY_RECORD,
                                    {"pid": inst.pid, "start": process_start_time(inst.pid),
                                     "service": inst.service, "port": inst.port})
        info = self._wait_ready(inst, logfile)
        inst.proxy_port = int(info["listen_port"])
        inst.rule = ["PREROUTING", "-p", "tcp", "--dport", str(inst.port), "!", "-i", "lo",
                     "-m", "comment", "--comment", f"clnrm-chaos-proxy-{self.ctx.run_id[:24]}",
                     "-j", "REDIRECT", "--to-ports", str(inst.proxy_port)]
        self.ctx.iptables(inst.service, "-I", *inst.rule, table="nat")
        log.info("chaos.proxy_installed", service=inst.service, port=inst.port,
                 proxy_port=inst.proxy_port, pid=inst.pid)

    def _wait_ready(self, inst: _Installed, logfile: str) -> dict[str, Any]:
        deadline = time.monotonic() + READY_TIMEOUT_S
        last: Exception | None = None
        while time.monotonic() < deadline:
            assert inst.process is not None
            if inst.process.poll() is not None:
                raise ChaosError(f"chaos proxy for {inst.service}:{inst.port} exited with "
                                 f"{inst.process.returncode} at start: {_tail(logfile)}",
                                 target=inst.service)
            if os.path.exists(inst.control.path):
                try:
                    return inst.control.ping()
                except ChaosError as exc:
                    last = exc
            time.sleep(0.01)
        raise ChaosError(f"chaos proxy for {inst.service}:{inst.port} not ready after "
                         f"{READY_TIMEOUT_S:g} s ({last}); log: {_tail(logfile)}",
                         target=inst.service, hint="is the host's Python able to import "
                                                   "clnrm? (the proxy runs sys.executable)")

    def _stop(self, inst: _Installed, *, remove_rule: bool) -> None:
        if remove_rule and inst.rule:
            try:
                if self.ctx.state(inst.service).get("Running"):
                    self.ctx.iptables(inst.service, "-D", *inst.rule, table="nat", check=False)
            except Exception:  # the container is gone (engine: NotFound), its rule with it
                pass
        proc, inst.process = inst.process, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5.0)
        if inst.entry_id and self.ctx.journal is not None:
            self.ctx.journal.done(inst.entry_id)
        inst.rule = []


def _netns_inode(pid: int) -> int:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return 0


def _alive(proc: subprocess.Popen[bytes] | None) -> bool:
    return proc is not None and proc.poll() is None


def _tail(path: str, limit: int = 600) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()[-limit:].strip() or "(empty log)"
    except OSError:
        return "(no log)"

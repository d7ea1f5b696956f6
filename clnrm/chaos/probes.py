"""Probes: what the system looks like from outside while faults come and go.

Each ``[[chaos.probes]]`` entry samples on its own thread every ``every`` seconds,
from before the steady-state check until after the last rollback, so resilience
figures (success rate during a fault, longest downtime, time to recover) are read
off one continuous series rather than off a few hand-placed steps.  HTTP and TCP
probes go from the host straight to the service's address on the test network
(a ``docker exec`` costs ~50 ms, too coarse for a 100 ms downtime budget); command
probes exec inside a container when the check needs the container's view.
HTTP probes carry the test's ``traceparent`` so the requests they cause join
the test's trace.
"""

from __future__ import annotations

import http.client
import re
import socket
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from clnrm.results import ProbeSample, ProbeSeries
from clnrm.scenario.layers import ChaosProbe

if TYPE_CHECKING:
    from clnrm.chaos.context import ChaosContext

_DETAIL_MAX = 160


class _Probe:
    """One probe: a callable returning (ok, detail), plus its raw samples."""

    def __init__(self, spec: ChaosProbe, ctx: ChaosContext, traceparent: str | None) -> None:
        self.spec = spec
        self.ctx = ctx
        self.traceparent = traceparent
        self.raw: list[tuple[float, bool, float, str]] = []  # (monotonic, ok, ms, detail)
        self._ips: dict[str, str] = {}
        self._regex = (re.compile(spec.http.body_regex)
                       if spec.http is not None and spec.http.body_regex else None)
        self.series = ProbeSeries(name=spec.name, target=describe(spec))

    def _ip(self, service: str, *, fresh: bool = False) -> str:
        if fresh or service not in self._ips:
            self._ips[service] = self.ctx.ip(service)
        return self._ips[service]

    def sample(self) -> tuple[bool, float, str]:
        started = time.monotonic()
        try:
            ok, detail = self._check()
        except Exception as exc:  # a probe failure is data, never a crash
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        ms = (time.monotonic() - started) * 1000
        self.raw.append((started, ok, ms, detail[:_DETAIL_MAX]))
        return ok, ms, detail

    def _check(self) -> tuple[bool, str]:
        spec = self.spec
        if spec.http is not None:
            return self._http()
        if spec.tcp is not None:
            try:
                with socket.create_connection((self._ip(spec.tcp.service), spec.tcp.port),
                                              timeout=spec.timeout):
                    return True, "connected"
            except OSError as exc:
                self._ips.pop(spec.tcp.service, None)
                return False, f"connect failed: {exc}"
        assert spec.command is not None
        res = self.ctx.box.exec(spec.service, list(spec.command), timeout=spec.timeout)
        if res.timed_out:
            return False, f"timed out after {spec.timeout:g} s"
        ok = res.exit_code == spec.expected_exit_code
        text = (res.stdout.strip() or res.stderr.strip())[-120:]
        return ok, f"exit {res.exit_code}" + (f": {text}" if text else "")

    def _http(self) -> tuple[bool, str]:
        h = self.spec.http
        assert h is not None
        headers = {"Connection": "close"}
        if self.traceparent:
            headers["traceparent"] = self.traceparent
        conn = http.client.HTTPConnection(self._ip(h.service), h.port, timeout=self.spec.timeout)
        try:
            conn.request(h.method, h.path, body=h.body, headers=headers)
            resp = conn.getresponse()
            body = resp.read(65536).decode("utf-8", errors="replace")
        except (OSError, http.client.HTTPException) as exc:
            self._ips.pop(h.service, None)  # a restarted container may have a new address
            return False, f"{type(exc).__name__}: {exc}"
        finally:
            conn.close()
        if resp.status not in h.expect_status:
            return False, f"HTTP {resp.status}: {body.strip()[:80]}"
        if self._regex is not None and not self._regex.search(body):
            return False, f"HTTP {resp.status}, body does not match /{self._regex.pattern}/"
        return True, f"HTTP {resp.status}"

    def materialise(self, origin: float) -> None:
        self.series.samples = [ProbeSample(t=round(t - origin, 3), ok=ok, ms=round(ms, 2),
                                           detail="" if ok else detail)
                               for t, ok, ms, detail in list(self.raw)]


def describe(spec: ChaosProbe) -> str:
    if spec.http is not None:
        return f"{spec.http.method} http://{spec.http.service}:{spec.http.port}{spec.http.path}"
    if spec.tcp is not None:
        return f"tcp {spec.tcp.service}:{spec.tcp.port}"
    where = spec.service or "step container"
    return f"{' '.join(spec.command or [])} (in {where})"


class ProbeRunner:
    """All probes of one experiment, each sampling on its own thread."""

    def __init__(self, specs: Sequence[ChaosProbe], ctx: ChaosContext, *,
                 traceparent: str | None = None) -> None:
        self.probes = {s.name: _Probe(s, ctx, traceparent) for s in specs}
        self.series = [p.series for p in self.probes.values()]
        self.origin = time.monotonic()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._checking = threading.Lock()  # steady-state checks pause the background loop

    def set_origin(self, origin: float) -> None:
        self.origin = origin

    def start(self) -> None:
        for probe in self.probes.values():
            thread = threading.Thread(target=self._loop, args=(probe,), daemon=True,
                                      name=f"clnrm-probe-{probe.spec.name[:16]}")
            thread.start()
            self._threads.append(thread)

    def _loop(self, probe: _Probe) -> None:
        every = probe.spec.every
        next_at = time.monotonic()
        while not self._stop.is_set():
            probe.sample()
            next_at += every
            delay = next_at - time.monotonic()
            if delay < 0:  # a slow sample: keep the cadence from now, don't burst
                next_at = time.monotonic()
                delay = 0
            self._stop.wait(delay)

    def check(self, names: Sequence[str], *, samples: int) -> tuple[bool, str]:
        """The last ``samples`` results of each named probe all passed (sampling now if
        there are not enough yet)."""
        deadline = time.monotonic() + max(self.probes[n].spec.every for n in names) * (
            samples + 2) + max(self.probes[n].spec.timeout for n in names) * samples
        while True:
            verdicts = [self._tail_ok(n, samples) for n in names]
            if all(v is not None for v in verdicts) or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        failed = [n for n, v in zip(names, verdicts, strict=True) if not v]
        if not failed:
            return True, f"{', '.join(names)}: last {samples} samples passed"
        return False, "; ".join(f"{n}: {self._last_detail(n)}" for n in failed)

    def wait_until(self, names: Sequence[str], *, samples: int, timeout: float,
                   cancelled: threading.Event) -> tuple[bool, str]:
        """Block until each named probe has passed ``samples`` times in a row."""
        started = time.monotonic()
        mark = {n: len(self.probes[n].raw) for n in names}  # only samples from now count
        while time.monotonic() - started < timeout and not cancelled.is_set():
            if all(self._tail_ok(n, samples, since=mark[n]) for n in names):
                return True, (f"{', '.join(names)} passed {samples} times in a row after "
                              f"{time.monotonic() - started:.2f} s")
            time.sleep(0.02)
        failed = [n for n in names if not self._tail_ok(n, samples, since=mark[n])]
        return False, (f"not back within {timeout:g} s: "
                       + "; ".join(f"{n}: {self._last_detail(n)}" for n in failed))

    def _tail_ok(self, name: str, samples: int, since: int = 0) -> bool | None:
        raw = self.probes[name].raw[since:]
        if len(raw) < samples:
            return None
        return all(ok for _, ok, _, _ in raw[-samples:])

    def _last_detail(self, name: str) -> str:
        raw = self.probes[name].raw
        bad = [d for _, ok, _, d in raw[-5:] if not ok]
        return bad[-1] if bad else ("no samples yet" if not raw else "too few samples")

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads.clear()
        for probe in self.probes.values():
            probe.materialise(self.origin)

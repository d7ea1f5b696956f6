"""Readiness probes: one small strategy object per meaning of "ready".

A service is ready when every probe in its list holds, in order (the way
testcontainers composes its wait strategies).  Each probe has its own
optional limit inside the service's start limit, and every way of failing
says which probe failed, the limit, what it saw last and the container's
state; the error carries the service's last log lines.

Probes react as fast as the signal allows instead of on a fixed interval:
log and span probes are woken by the line or span itself; TCP, HTTP and
command probes start at once and back off from 10 ms, so a dependant starts
within a few milliseconds of its dependency answering.
"""

from __future__ import annotations

import http.client
import re
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Protocol

from clnrm.errors import ClnrmError, ReadinessError

if TYPE_CHECKING:
    from clnrm.backends.base import ServiceHandle
    from clnrm.otel.receiver import SpanPredicate
    from clnrm.otel.span import Span
    from clnrm.plugins.base import ServiceSpec
    from clnrm.scenario.model import HealthCheck, ReadinessProbe

_FIRST_PAUSE: Final = 0.01
_MAX_PAUSE: Final = 0.1
_BACKOFF: Final = 1.5
_STATE_EVERY: Final = 0.1
"""Probes re-check that the service still runs this often (each check is an engine call)."""
RUNNING_GRACE_S: Final = 0.05
"""A 'running' service is checked twice, this far apart, so a command that dies at once
is reported as a readiness error with its logs instead of as a failed first step."""
_LOG_SCAN_LINES: Final = 2000


class SpanWaiter(Protocol):
    """What span probes need from the test's receiver (an ``OtlpReceiver``)."""

    def wait_for(self, until: int | SpanPredicate, timeout: float | None) -> bool: ...


@dataclass(frozen=True)
class ProbeEnv:
    """What probes may use besides the service: the span receiver, an abort signal."""

    spans: SpanWaiter | None = None
    abort: threading.Event = field(default_factory=threading.Event)


class ServiceExited(Exception):
    """Internal: the service stopped while a probe waited (turned into ReadinessError)."""

    def __init__(self, exit_code: int | None) -> None:
        super().__init__(exit_code)
        self.exit_code = exit_code


class StartAborted(ClnrmError):
    """Internal to a start: another service failed or the run was cancelled."""


class ReadinessCheck(ABC):
    """One condition; ``wait`` returns None once it holds, else what it saw last."""

    kind: str = ""
    timeout: float | None = None

    @abstractmethod
    def describe(self) -> str:
        """The condition in words, e.g. ``http GET :8000/health answers 2xx/3xx``."""

    @abstractmethod
    def wait(self, service: ServiceHandle, until: float, env: ProbeEnv) -> str | None:
        """Block until the condition holds (None) or ``until`` passes (last observation).

        Raises :class:`ServiceExited` when the service stops and
        :class:`StartAborted` when ``env.abort`` is set.
        """


def ensure_running(service: ServiceHandle) -> None:
    state = service.state()
    if not state.running and state.status != "restarting":  # its restart policy acts
        raise ServiceExited(state.exit_code)


def _pause(env: ProbeEnv, seconds: float) -> None:
    if env.abort.wait(seconds):
        raise StartAborted("start aborted")


class PollingCheck(ReadinessCheck):
    """Tries at once, then with a growing pause (10 ms up to ``max_pause``)."""

    max_pause: float = _MAX_PAUSE

    @abstractmethod
    def attempt(self, service: ServiceHandle) -> str | None:
        """One try: None when the condition holds, else what was seen."""

    def wait(self, service: ServiceHandle, until: float, env: ProbeEnv) -> str | None:
        pause = min(_FIRST_PAUSE, self.max_pause)
        checked = 0.0
        while True:
            if time.monotonic() - checked >= _STATE_EVERY:  # an engine call: not every try
                ensure_running(service)
                checked = time.monotonic()
            seen = self.attempt(service)
            if seen is None:
                return None
            if time.monotonic() + pause > until:
                ensure_running(service)  # a dead service is reported as such, not as a timeout
                return seen
            _pause(env, pause)
            pause = min(pause * _BACKOFF, self.max_pause)


@dataclass
class RunningCheck(ReadinessCheck):
    """Still running shortly after start: for services with nothing to probe."""

    timeout: float | None = None
    kind = "running"

    def describe(self) -> str:
        return "the process keeps running"

    def wait(self, service: ServiceHandle, until: float, env: ProbeEnv) -> str | None:
        ensure_running(service)
        _pause(env, RUNNING_GRACE_S)
        ensure_running(service)
        return None


@dataclass
class TcpCheck(PollingCheck):
    port: int
    timeout: float | None = None
    kind = "tcp"

    def describe(self) -> str:
        return f"TCP port {self.port} accepts a connection"

    def attempt(self, service: ServiceHandle) -> str | None:
        host = service.address()
        if host is None:
            return "no address yet"
        try:
            with socket.create_connection((host, self.port), timeout=0.5):
                return None
        except OSError as exc:
            return f"{host}:{self.port}: {exc.strerror or type(exc).__name__}"


@dataclass
class HttpCheck(PollingCheck):
    path: str
    port: int
    status: int | None = None
    timeout: float | None = None
    kind = "http"

    def describe(self) -> str:
        want = str(self.status) if self.status else "2xx/3xx"
        return f"http GET :{self.port}{self.path} answers {want}"

    def attempt(self, service: ServiceHandle) -> str | None:
        host = service.address()
        if host is None:
            return "no address yet"
        conn = http.client.HTTPConnection(host, self.port, timeout=1.0)
        try:
            conn.request("GET", self.path, headers={"User-Agent": "clnrm-readiness"})
            code = conn.getresponse().status
        except (OSError, http.client.HTTPException) as exc:
            return f"{host}:{self.port}: {getattr(exc, 'strerror', None) or type(exc).__name__}"
        finally:
            conn.close()
        ok = code == self.status if self.status else 200 <= code < 400
        return None if ok else f"HTTP {code}"


@dataclass
class CommandCheck(PollingCheck):
    """``cmd`` exec'd in the service until it exits 0; pauses grow up to ``interval``."""

    cmd: Sequence[str]
    interval: float = 1.0
    attempt_timeout: float = 5.0
    timeout: float | None = None
    kind = "command"

    def __post_init__(self) -> None:
        self.max_pause = max(self.interval, _FIRST_PAUSE)

    @classmethod
    def from_health_check(cls, hc: HealthCheck) -> CommandCheck:
        """``retries`` x ``interval`` is the probe's window, as it was with a fixed interval;
        early attempts come faster, so a quick service is seen at once."""
        return cls(cmd=list(hc.cmd), interval=hc.interval, attempt_timeout=hc.timeout,
                   timeout=hc.retries * hc.interval)

    def describe(self) -> str:
        return f"command {list(self.cmd)} exits 0"

    def attempt(self, service: ServiceHandle) -> str | None:
        try:
            res = service.exec(list(self.cmd), timeout=self.attempt_timeout)
        except ClnrmError as exc:  # one lost exec is one failed try, not a failed start
            return f"could not run the command: {exc.message}"
        if res.exit_code == 0:
            return None
        if res.timed_out:
            return f"timed out after {self.attempt_timeout:g} s"
        tail = (res.stderr.strip() or res.stdout.strip())[-200:]
        return f"exit {res.exit_code}" + (f": {tail}" if tail else "")


@dataclass
class LogCheck(ReadinessCheck):
    """A line of the service's output matches ``pattern``; woken by the line itself."""

    pattern: str
    timeout: float | None = None
    kind = "log"

    def describe(self) -> str:
        return f"a log line matches /{self.pattern}/"

    def wait(self, service: ServiceHandle, until: float, env: ProbeEnv) -> str | None:
        regex = re.compile(self.pattern)
        stream = service.follow_logs()
        if stream is None:
            return self._poll(service, regex, until, env)
        matched = threading.Event()
        ended = threading.Event()

        def read() -> None:
            try:
                for line in stream:
                    if regex.search(line):
                        matched.set()
                        return
            except Exception:  # noqa: BLE001 - a broken stream falls back to polling below
                pass
            finally:
                ended.set()

        reader = threading.Thread(target=read, name=f"clnrm-log-{service.name}", daemon=True)
        reader.start()
        try:
            while True:
                if matched.wait(max(0.0, min(_STATE_EVERY, until - time.monotonic()))):
                    return None
                ensure_running(service)
                if env.abort.is_set():
                    raise StartAborted("start aborted")
                if ended.is_set():  # stream gone while the service runs: read the logs instead
                    return self._poll(service, regex, until, env)
                if time.monotonic() >= until:
                    return "no matching line yet"
        finally:
            stream.close()

    def _poll(self, service: ServiceHandle, regex: re.Pattern[str], until: float,
              env: ProbeEnv) -> str | None:
        pause = _FIRST_PAUSE
        while True:
            ensure_running(service)
            if regex.search(service.logs(tail=_LOG_SCAN_LINES)):
                return None
            if time.monotonic() + pause > until:
                return "no matching line yet"
            _pause(env, pause)
            pause = min(pause * _BACKOFF, _MAX_PAUSE)


@dataclass
class SpanCheck(ReadinessCheck):
    """A span named ``name`` reached the test's receiver (upstream's ``wait_for_span``)."""

    name: str
    timeout: float | None = None
    kind = "span"

    def describe(self) -> str:
        return f"a span named {self.name!r} arrives"

    def wait(self, service: ServiceHandle, until: float, env: ProbeEnv) -> str | None:
        if env.spans is None:
            raise ClnrmError(f"service {service.name!r}: span readiness needs the test's OTLP "
                             "receiver, which this caller did not pass")
        scanned = [0]
        found = [False]

        def arrived(spans: Sequence[Span]) -> bool:
            # runs under the receiver's lock after each batch: scan only what is new
            # (and stay true: the receiver asks once more after the wait)
            found[0] = found[0] or any(s.name == self.name for s in spans[scanned[0]:])
            scanned[0] = len(spans)
            return found[0]

        while True:
            left = until - time.monotonic()
            if env.spans.wait_for(arrived, timeout=max(0.0, min(_STATE_EVERY, left))):
                return None
            ensure_running(service)
            if env.abort.is_set():
                raise StartAborted("start aborted")
            if left <= 0:
                return f"{scanned[0]} span(s) arrived, none named {self.name!r}"


def check_from_probe(probe: ReadinessProbe, spec: ServiceSpec) -> ReadinessCheck:
    """The strategy for one declared probe; an http probe without a port uses the first port."""
    if probe.tcp is not None:
        return TcpCheck(port=probe.tcp, timeout=probe.timeout)
    if probe.http is not None:
        port = probe.port or (spec.ports[0] if spec.ports else None)
        if port is None:
            raise ClnrmError(f"service {spec.name!r}: the http readiness probe needs a port",
                             hint="add port = 8080 to the probe, or ports = [8080] to the service")
        return HttpCheck(path=probe.http, port=port, status=probe.status, timeout=probe.timeout)
    if probe.command is not None:
        return CommandCheck(cmd=probe.command, interval=probe.interval or 1.0,
                            timeout=probe.timeout)
    if probe.log is not None:
        return LogCheck(pattern=probe.log, timeout=probe.timeout)
    assert probe.span is not None  # the model guarantees exactly one kind
    return SpanCheck(name=probe.span, timeout=probe.timeout)


def checks_for(spec: ServiceSpec) -> tuple[ReadinessCheck, ...]:
    """Declared probes, then the health check; the type's own rule only when neither exists."""
    checks = [check_from_probe(p, spec) for p in spec.checks]
    if spec.readiness == "health_check" and spec.health_check is not None:
        checks.append(CommandCheck.from_health_check(spec.health_check))
    elif not checks:
        if spec.readiness == "tcp" and spec.ports:
            checks.append(TcpCheck(port=spec.ports[0]))
        else:
            checks.append(RunningCheck())
    return tuple(checks)


def await_ready(service: ServiceHandle, checks: Sequence[ReadinessCheck], *, timeout: float,
                env: ProbeEnv | None = None) -> None:
    """Return once every check holds, in order; raise ReadinessError saying which did not."""
    env = env or ProbeEnv()
    started = time.monotonic()
    deadline = started + timeout
    for check in checks:
        now = time.monotonic()
        limit = deadline if check.timeout is None else min(deadline, now + check.timeout)
        try:
            seen = check.wait(service, limit, env)
        except ServiceExited as exc:
            after = service.state()  # what the healer classifies on: OOM kill, restarts
            flags = "".join([", OOMKilled" if after.oom_killed else "",
                             f", restarted {after.restarts}x" if after.restarts else ""])
            raise ReadinessError(
                f"service {service.name!r} exited with code {exc.exit_code} before it was "
                f"ready (waiting for: {check.describe()}{flags})", service=service.name,
                logs=service.logs(),
                hint="its command must keep running; check the command and the logs above"
            ) from None
        if seen is not None:
            own = check.timeout is not None and limit < deadline
            state = service.state()
            status = state.status or ("running" if state.running else "stopped")
            raise ReadinessError(
                f"service {service.name!r} not ready: {check.kind} probe failed: "
                f"{check.describe()} did not hold within "
                f"{(limit - now) if own else timeout:.3g} s "
                f"({'the probe' if own else 'the start'} timeout); last seen: {seen}; "
                f"container status: {status}", service=service.name, logs=service.logs(),
                hint="raise the probe's timeout (or the test's), or fix the service so the "
                     "probe can pass")

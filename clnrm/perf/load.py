"""An open-loop HTTP load driver whose latencies do not hide stalls.

:class:`LoadDriver` sends requests at *intended* times fixed before the run
(a constant rate, or Poisson arrivals drawn from the seed), whether or not
earlier requests have come back.  A closed-loop driver waits for each answer
before sending the next, so when the server stalls for a second it simply
stops sending, and the second's worth of requests that real users would have
made never get a latency: the stall shows as one slow sample (coordinated
omission, Gil Tene's term; wrk2 corrects it the way done here).  Each
:class:`RequestSample` therefore has two latencies:

- ``latency_ms``, from the intended send time to the end of the response: what
  a user arriving on schedule would have waited (the corrected figure, and the
  one to judge on);
- ``service_time_ms``, from the actual send to the end of the response: what
  the server took once it had the request (the uncorrected figure).

``concurrency`` caps open connections (HTTP/1.1 keep-alive, one request at a
time on each); a request that finds them all busy waits, in intended order,
and that wait counts in ``latency_ms``.  With ``concurrency=1`` the driver
behaves like one wrk2 connection.  If the driver itself falls behind (its
event loop could not dispatch on time), ``warnings`` says so, since the
corrected latencies then include the driver's own delay.

Plain asyncio and a small HTTP/1.1 client (status line, headers,
Content-Length or chunked bodies), so no dependency is added; ``http`` only.
A ``traceparent`` header can be attached so the requests join a test's trace.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

from clnrm.perf.metrics import percentile, summarize_ms
from clnrm.perf.result import Arrival, LoadRunResult, RequestSample  # models live with results

if TYPE_CHECKING:
    import asyncio

_LEAD_S: Final = 0.02  # the schedule starts this long after run() so set-up never lags it
_LAG_WARN_MS: Final = 20.0


def schedule(rate_rps: float, duration_s: float, *, seed: int = 0,
             arrival: Arrival = "constant") -> list[float]:
    """Intended send offsets in seconds; the same arguments always give the same list."""
    if rate_rps <= 0 or duration_s <= 0:
        raise ValueError(f"rate and duration must be positive, got {rate_rps}, {duration_s}")
    if arrival == "constant":
        return [i / rate_rps for i in range(int(rate_rps * duration_s + 1e-9))]
    if arrival != "poisson":
        raise ValueError(f"arrival must be 'constant' or 'poisson', got {arrival!r}")
    rng = random.Random(seed)
    out: list[float] = []
    t = rng.expovariate(rate_rps)
    while t < duration_s:
        out.append(t)
        t += rng.expovariate(rate_rps)
    return out


class LoadDriver:
    """Sends a seeded, rate-controlled workload to one HTTP endpoint; see the module text."""

    def __init__(self, target: str | tuple[str, int, str], *, rate_rps: float,
                 duration_s: float, seed: int = 0, arrival: Arrival = "constant",
                 concurrency: int = 64, timeout_s: float = 10.0, method: str = "GET",
                 headers: Mapping[str, str] | None = None, body: bytes = b"",
                 traceparent: str | None = None) -> None:
        if isinstance(target, str):
            url = urlsplit(target)
            if url.scheme != "http" or not url.hostname:
                raise ValueError(f"target must be an http:// URL, got {target!r}")
            host, port = url.hostname, url.port or 80
            path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        else:
            host, port, path = target
        if concurrency < 1 or timeout_s <= 0:
            raise ValueError("concurrency must be at least 1 and timeout_s positive")
        self.host, self.port, self.path = host, port, path
        self.offsets = schedule(rate_rps, duration_s, seed=seed, arrival=arrival)
        self.rate_rps, self.duration_s, self.seed, self.arrival = (rate_rps, duration_s, seed,
                                                                   arrival)
        self.concurrency, self.timeout_s, self.method = concurrency, timeout_s, method.upper()
        extra = dict(headers or {})
        if traceparent:
            extra["traceparent"] = traceparent
        self._request = _request_bytes(self.method, host, port, path, extra, body)

    @property
    def target(self) -> str:
        return f"http://{self.host}:{self.port}{self.path}"

    def run(self) -> LoadRunResult:
        """Run the whole schedule on a private event loop and wait for every answer."""
        import asyncio

        return asyncio.run(self.run_async())

    async def run_async(self) -> LoadRunResult:
        """As :meth:`run`, inside an already running event loop."""
        import asyncio

        loop = asyncio.get_running_loop()
        slots = asyncio.Semaphore(self.concurrency)  # FIFO: waiters go in intended order
        idle: list[_Connection] = []
        n = len(self.offsets)
        sent: list[float | None] = [None] * n
        ended: list[float | None] = [None] * n
        status: list[int | None] = [None] * n
        errors: list[str | None] = [None] * n
        lag: list[float] = [0.0] * n
        start_unix = time.time_ns() + int(_LEAD_S * 1e9)
        origin = loop.time() + _LEAD_S

        async def one(i: int) -> None:
            async with slots:
                conn = idle.pop() if idle else None
                sent[i] = loop.time()
                try:
                    async with asyncio.timeout(self.timeout_s):
                        conn, status[i] = await self._exchange(conn)
                except Exception as exc:  # refused, reset, timeout: a result, not a crash
                    errors[i] = _describe(exc)
                    conn = None
                ended[i] = loop.time()
                if conn is not None and conn.keep_alive:
                    idle.append(conn)
                elif conn is not None:
                    conn.close()

        tasks = []
        for i, offset in enumerate(self.offsets):
            delay = origin + offset - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            lag[i] = max(loop.time() - origin - offset, 0.0)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
        for conn in idle:
            conn.close()
        return self._result(origin, start_unix, sent, ended, status, errors, lag)

    async def _exchange(self, conn: _Connection | None) -> tuple[_Connection, int]:
        """Send the request on ``conn`` (or a new connection) and read the whole response.

        A reused keep-alive connection the server has closed meanwhile fails before any
        byte of the answer; that one case is retried once on a fresh connection.
        """
        if conn is not None:
            try:
                return conn, await conn.exchange(self._request, self.method)
            except _StaleConnection:
                conn.close()
        conn = await _Connection.open(self.host, self.port)
        try:
            return conn, await conn.exchange(self._request, self.method)
        except BaseException:
            conn.close()
            raise

    def _result(self, origin: float, start_unix: int, sent: list[float | None],
                ended: list[float | None], status: list[int | None],
                errors: list[str | None], lag: list[float]) -> LoadRunResult:
        samples: list[RequestSample] = []
        for i, offset in enumerate(self.offsets):
            answered = status[i] is not None
            # built from our own numbers: construct without validating each of ~10^5 samples
            samples.append(RequestSample.model_construct(
                index=i, intended_ms=offset * 1e3, sent_ms=_ms_between(origin, sent[i]),
                latency_ms=_ms_between(origin + offset, ended[i]) if answered else None,
                service_time_ms=_ms_between(sent[i], ended[i]) if answered else None,
                status=status[i], error=errors[i]))
        done = [r for r in samples if r.latency_ms is not None]
        counts: dict[str, int] = {}
        for r in done:
            counts[str(r.status)] = counts.get(str(r.status), 0) + 1
        last_sent = max((s for s in sent if s is not None), default=None)
        n_sent = sum(1 for s in sent if s is not None)
        span_s = (last_sent - origin) if last_sent is not None else 0.0
        # n sends on schedule span (n - 1) gaps; sending late stretches the span
        achieved = (n_sent - 1) / span_s if n_sent > 1 and span_s > 0 else 0.0
        lag_sorted = sorted(lag)
        lag_p99 = percentile(lag_sorted, 99) * 1e3 if lag_sorted else 0.0
        warnings = []
        if lag_p99 > _LAG_WARN_MS:
            warnings.append(f"the driver dispatched 1% of requests more than {lag_p99:.0f} ms "
                            "late (its own event loop was busy): latencies include that delay; "
                            "lower the rate or run the driver on a quieter machine")
        return LoadRunResult(
            target=self.target, method=self.method, arrival=self.arrival,
            rate_rps=self.rate_rps, duration_s=self.duration_s, seed=self.seed,
            concurrency=self.concurrency, started_unix_nano=start_unix, sent=n_sent,
            completed=len(done), errors=sum(1 for r in samples if r.error is not None),
            status_counts=dict(sorted(counts.items())), achieved_rps=achieved,
            driver_lag_p99_ms=lag_p99,
            latency=summarize_ms(r.latency_ms for r in done if r.latency_ms is not None)
            if done else None,
            service_time=summarize_ms(r.service_time_ms for r in done
                                      if r.service_time_ms is not None) if done else None,
            warnings=warnings, requests=samples)


class _StaleConnection(ConnectionError):
    """A reused connection closed before any byte of the response arrived."""


class _Connection:
    """One HTTP/1.1 connection: write a request, read one response, say if it stays open."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.keep_alive = True
        self.used = False

    @classmethod
    async def open(cls, host: str, port: int) -> _Connection:
        import asyncio

        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    def close(self) -> None:
        self.keep_alive = False
        self.writer.close()

    async def exchange(self, request: bytes, method: str) -> int:
        reused, self.used = self.used, True
        self.writer.write(request)
        await self.writer.drain()
        line = await self.reader.readline()
        if not line:
            if reused:
                raise _StaleConnection("keep-alive connection was closed by the server")
            raise ConnectionError("server closed the connection without answering")
        while True:
            version, code = _status_line(line)
            headers = await self._headers()
            if not 100 <= code < 200:
                break
            line = await self.reader.readline()  # an interim answer (100 Continue): skip it
        await self._body(method, code, headers)
        connection = headers.get("connection", "").lower()
        self.keep_alive = self.keep_alive and (
            connection == "keep-alive" if version == "HTTP/1.0" else connection != "close")
        return code

    async def _headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n"):
                return headers
            if not line:
                raise ConnectionError("connection closed inside the response headers")
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()

    async def _body(self, method: str, code: int, headers: dict[str, str]) -> None:
        if method == "HEAD" or code in (204, 304):
            return
        if "chunked" in headers.get("transfer-encoding", "").lower():
            while True:
                size = int((await self.reader.readline()).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    await self._headers()  # trailers, up to the blank line
                    return
                await self.reader.readexactly(size + 2)
        elif "content-length" in headers:
            await self.reader.readexactly(int(headers["content-length"]))
        else:  # the body runs to the end of the connection
            await self.reader.read()
            self.keep_alive = False


def _status_line(line: bytes) -> tuple[str, int]:
    parts = line.decode("latin-1").split(None, 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ConnectionError(f"not an HTTP response: {line[:60]!r}")
    return parts[0], int(parts[1])


def _request_bytes(method: str, host: str, port: int, path: str,
                   headers: Mapping[str, str], body: bytes) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}",
             "User-Agent: clnrm-load", "Accept: */*"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _ms_between(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else (end - start) * 1e3


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

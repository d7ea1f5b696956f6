"""CPU, memory, network and block I/O of each container while a test runs.

:class:`ContainerStatsSampler` follows the Docker stats API of every
service's container on a background thread and keeps the time series
(:meth:`~ContainerStatsSampler.samples`) and a per-service peak/mean
(:meth:`~ContainerStatsSampler.summary`).

Why one *stream* per container rather than polling: the engine's stats
collector ticks once a second (dockerd 20.10 hard-codes 1 s), and every
request waits for the next tick, so polling ``stream=False`` takes 1-2 s a
call (``one_shot=True``, API 1.41, saves the second tick but still ~1 s).
A stream delivers each tick as it happens, on one connection, at about a
third of the client CPU per sample (measured on this machine: 0.4 ms vs
1.3 ms), so ``interval`` below 1 s cannot be honoured by any API client;
larger intervals thin the stream.

The numbers follow the ``docker stats`` CLI: CPU % is the container's CPU
time delta over the host's, times the online CPUs (100 % = one core busy);
memory is usage minus inactive page cache (``total_inactive_file`` on cgroup
v1, ``inactive_file`` on v2); network and block I/O are the engine's
cumulative counters, summed over interfaces and devices.

Chaos is expected: a paused container keeps reporting (at 0 % CPU), a killed
one reports empty ticks (skipped), a removed one ends its stream (marked
``gone``), and none of it raises.  Stopping shuts the sockets down, so a
sampler closes at once instead of waiting for the next tick, and it never
leaves a thread behind.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final, Self

import structlog

from clnrm.perf.result import ContainerSample, ContainerStatsSummary  # models live with the result

log = structlog.get_logger("clnrm.perf")

ENGINE_TICK_S: Final = 1.0
"""How often the Docker engine's stats collector produces a sample."""

_JOIN_S: Final = 3.0
_RETRIES: Final = 3


class ContainerStatsSampler:
    """Samples containers' stats on background threads while entered.

    ``api`` is docker's low-level ``APIClient`` (``DockerSandbox._api``);
    ``containers`` maps service name to container id.  More can be added with
    :meth:`watch` while running (services start one after another).
    """

    def __init__(self, api: Any, containers: Mapping[str, str], *,
                 interval: float = ENGINE_TICK_S, read_timeout: float = 10.0) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval}")
        self._api = api
        self._wanted = dict(containers)
        self._interval = interval
        self._read_timeout = read_timeout
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: dict[str, threading.Thread] = {}
        self._responses: dict[str, Any] = {}
        self._samples: dict[str, list[ContainerSample]] = {s: [] for s in containers}
        self._ids: dict[str, str] = dict(containers)
        self._gone: set[str] = set()
        self._errors: dict[str, str] = {}
        self._started = False

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> Self:
        """Start one follower thread per container (idempotent)."""
        with self._lock:
            self._started = True
            wanted = list(self._wanted.items())
        for service, cid in wanted:
            self.watch(service, cid)
        return self

    def watch(self, service: str, container_id: str) -> None:
        """Sample ``container_id`` as ``service`` too (or from now on, if already running)."""
        with self._lock:
            self._wanted[service] = container_id
            self._ids[service] = container_id
            self._samples.setdefault(service, [])
            if not self._started or self._stop.is_set() or service in self._threads:
                return
            thread = threading.Thread(target=self._follow, args=(service, container_id),
                                      name=f"clnrm-stats-{service}", daemon=True)
            self._threads[service] = thread
        thread.start()

    def stop(self) -> None:
        """Stop sampling and join every thread; safe to call twice, never raises."""
        self._stop.set()
        with self._lock:
            responses = list(self._responses.values())
            threads = list(self._threads.values())
        for response in responses:
            _shutdown(response)
        deadline = time.monotonic() + _JOIN_S
        for thread in threads:
            thread.join(max(deadline - time.monotonic(), 0.01))
        alive = [t.name for t in threads if t.is_alive()]
        if alive:  # only a wedged engine connection gets here; daemon threads die with us
            log.warning("stats.threads_still_running", threads=alive)

    def samples(self) -> list[ContainerSample]:
        """Every kept sample so far, all services, in time order."""
        with self._lock:
            out = [s for series in self._samples.values() for s in series]
        return sorted(out, key=lambda s: (s.time_unix_nano, s.service))

    def summary(self) -> dict[str, ContainerStatsSummary]:
        """Per service: CPU and memory peak/mean, I/O during sampling, whether it went away."""
        with self._lock:
            series = {k: list(v) for k, v in self._samples.items()}
            gone, errors, ids = set(self._gone), dict(self._errors), dict(self._ids)
        return {service: summarize(service, ids[service], rows, gone=service in gone,
                                   error=errors.get(service))
                for service, rows in sorted(series.items())}

    def _follow(self, service: str, cid: str) -> None:
        log_ = log.bind(service=service, container=cid[:12])
        last_kept: int | None = None
        previous: dict[str, Any] | None = None
        failures = 0
        while not self._stop.is_set():
            try:
                response = self._open(cid)
            except Exception as exc:  # engine unreachable: a result, not a crash
                failures += 1
                if failures >= _RETRIES:
                    self._end(service, error=f"stats stream failed: {exc}")
                    return
                self._stop.wait(ENGINE_TICK_S)
                continue
            if response is None:  # 404: removed before or while we looked
                self._end(service, gone=True)
                return
            with self._lock:
                self._responses[service] = response
            if self._stop.is_set():  # stop() ran before the response was registered
                _shutdown(response)
            try:
                for line in response.iter_lines():
                    if self._stop.is_set():
                        break
                    if not line:
                        continue
                    raw = json.loads(line)
                    sample = parse_stats(service, cid, raw, previous)
                    if sample is None:
                        continue  # a stopped container's empty tick
                    previous = raw
                    step = self._interval * 1e9 - 0.1 * ENGINE_TICK_S * 1e9
                    if last_kept is not None and sample.time_unix_nano - last_kept < step:
                        continue
                    last_kept = sample.time_unix_nano
                    with self._lock:
                        self._samples[service].append(sample)
            except Exception as exc:
                if not self._stop.is_set():
                    log_.debug("stats.stream_broken", error=str(exc))
            finally:
                with self._lock:
                    self._responses.pop(service, None)
                response.close()
            if self._stop.is_set():
                return
            if not self._exists(cid):  # the stream ended because the container went away
                self._end(service, gone=True)
                return
            failures += 1
            if failures >= _RETRIES:
                self._end(service, error="stats stream kept ending")
                return
            self._stop.wait(0.2)

    def _open(self, cid: str) -> Any:
        """The raw streaming response (kept so :meth:`stop` can shut its socket), or None on 404.

        Built from the client's public attributes rather than ``APIClient.stats``, whose
        generator hides the response and so could only be stopped by waiting for a tick.
        """
        url = f"{self._api.base_url}/v{self._api.api_version}/containers/{cid}/stats"
        response = self._api.get(url, params={"stream": "1"}, stream=True,
                                  timeout=(10, self._read_timeout))
        if response.status_code == 404:
            response.close()
            return None
        response.raise_for_status()
        return response

    def _exists(self, cid: str) -> bool:
        """False once the container is gone or on its way out (removal ends the stream
        while inspect still finds it for a moment, with status ``removing``)."""
        try:
            state = (self._api.inspect_container(cid).get("State") or {}).get("Status")
        except Exception:
            return False
        return state not in ("removing", "dead")

    def _end(self, service: str, *, gone: bool = False, error: str | None = None) -> None:
        with self._lock:
            if gone:
                self._gone.add(service)
            if error:
                self._errors[service] = error
        log.info("stats.follow_ended", service=service, gone=gone, error=error)


def parse_stats(service: str, cid: str, raw: Mapping[str, Any],
                previous: Mapping[str, Any] | None = None) -> ContainerSample | None:
    """One stats document as a sample; None for a stopped container's empty tick.

    CPU % compares with ``precpu_stats`` when the engine filled it in, else with
    ``previous`` (the last document of the same container).
    """
    read = raw.get("read") or ""
    if not read or read.startswith("0001-"):
        return None
    cpu = raw.get("cpu_stats") or {}
    pre = raw.get("precpu_stats") or {}
    if not pre.get("system_cpu_usage") and previous is not None:
        pre = previous.get("cpu_stats") or {}
    mem = raw.get("memory_stats") or {}
    nets = (raw.get("networks") or {}).values()
    blk = (raw.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []
    return ContainerSample(
        service=service, container_id=cid, time_unix_nano=_unix_nano(read),
        cpu_pct=cpu_percent(cpu, pre), mem_bytes=memory_used(mem),
        mem_limit_bytes=mem.get("limit"),
        net_rx_bytes=sum(int(n.get("rx_bytes") or 0) for n in nets),
        net_tx_bytes=sum(int(n.get("tx_bytes") or 0) for n in nets),
        blk_read_bytes=sum(int(e.get("value") or 0) for e in blk
                           if str(e.get("op", "")).lower() == "read"),
        blk_write_bytes=sum(int(e.get("value") or 0) for e in blk
                            if str(e.get("op", "")).lower() == "write"),
        pids=(raw.get("pids_stats") or {}).get("current"))


def cpu_percent(cpu: Mapping[str, Any], pre: Mapping[str, Any]) -> float | None:
    """``docker stats`` CPU %: container delta / host delta x online CPUs x 100."""
    usage = (cpu.get("cpu_usage") or {}).get("total_usage")
    pre_usage = (pre.get("cpu_usage") or {}).get("total_usage")
    system, pre_system = cpu.get("system_cpu_usage"), pre.get("system_cpu_usage")
    if usage is None or pre_usage is None or system is None or pre_system is None:
        return None
    if system <= pre_system or usage < pre_usage:  # no time passed, or the counter restarted
        return None
    online = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage")
                                           or []) or 1
    return float((usage - pre_usage) / (system - pre_system) * online * 100.0)


def memory_used(mem: Mapping[str, Any]) -> int:
    """Usage minus inactive page cache, as the docker CLI reports it."""
    usage = int(mem.get("usage") or 0)
    stats = mem.get("stats") or {}
    for key in ("total_inactive_file", "inactive_file"):  # cgroup v1, then v2
        inactive = stats.get(key)
        if inactive is not None and inactive < usage:
            return usage - int(inactive)
    return usage


def summarize(service: str, cid: str, rows: list[ContainerSample], *, gone: bool = False,
              error: str | None = None) -> ContainerStatsSummary:
    """Peak/mean CPU and memory, and I/O counter deltas between first and last sample."""
    cpu = [r.cpu_pct for r in rows if r.cpu_pct is not None]
    mem = [r.mem_bytes for r in rows]
    first, last = (rows[0], rows[-1]) if rows else (None, None)

    def delta(field: str) -> int:
        if first is None or last is None:
            return 0
        return max(int(getattr(last, field)) - int(getattr(first, field)), 0)

    return ContainerStatsSummary(
        service=service, container_id=cid, samples=len(rows),
        cpu_pct_mean=sum(cpu) / len(cpu) if cpu else None, cpu_pct_peak=max(cpu, default=None),
        mem_bytes_mean=sum(mem) / len(mem) if mem else None,
        mem_bytes_peak=max(mem, default=None),
        mem_limit_bytes=last.mem_limit_bytes if last else None,
        net_rx_bytes=delta("net_rx_bytes"), net_tx_bytes=delta("net_tx_bytes"),
        blk_read_bytes=delta("blk_read_bytes"), blk_write_bytes=delta("blk_write_bytes"),
        gone=gone, error=error)


def _unix_nano(text: str) -> int:
    """RFC 3339 with up to nanoseconds (Go's format), which ``fromisoformat`` cannot read."""
    try:
        stamp, _, frac = text.rstrip("Z").partition(".")
        digits = "".join(ch for ch in frac if ch.isdigit())
        base = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
        return int(base.timestamp()) * 1_000_000_000 + int((digits + "0" * 9)[:9])
    except ValueError:
        return time.time_ns()


def _shutdown(response: Any) -> None:
    """Wake a thread blocked reading ``response``: shut its socket down, then close it.

    Closing alone does not interrupt a ``recv`` already waiting in another thread;
    ``shutdown`` does.  The socket sits on urllib3 2's connection (``_connection``)
    or, on older stacks, inside http.client's reader; neither is public, so each
    step is optional and the join timeout in :meth:`ContainerStatsSampler.stop`
    (one engine tick) is the fallback.
    """
    raw = getattr(response, "raw", None)
    for sock in (getattr(getattr(raw, "_connection", None), "sock", None),
                 getattr(getattr(getattr(getattr(raw, "_fp", None), "fp", None), "raw", None),
                         "_sock", None)):
        if isinstance(sock, socket.socket):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            break
    try:
        response.close()
    except Exception:
        pass

"""Every non-proxy fault injected into the running demo system: its effect, seen in probes
and spans; its rollback, seen as the effect gone and the system healthy; and its
``undo`` from the journal record, as ``clnrm gc`` would replay it after a SIGKILL.

One demo system serves the module (starting it costs seconds).  Each test leaves it
healthy (checked after every test, so damage is reported where it was done); the
faults that take a service down come last and bring it back through their rollback.
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from clnrm.chaos.context import UndoEnv
from clnrm.chaos.faults import _cgroup, _linux
from clnrm.chaos.faults.clock import SKEW_FILE, ClockSkew
from clnrm.chaos.faults.container import OomKill, Pause, Signal
from clnrm.chaos.faults.netfilter import DnsFailure, Partition, tagged_rules
from clnrm.chaos.faults.resource import (
    CpuLimit,
    CpuStress,
    DiskFill,
    FdExhaustion,
    IoThrottle,
    MemoryLimit,
    MemoryPressure,
)
from clnrm.otel.span import Span
from tests.integration.chaos_lab import DemoLab

DEMO_IMAGES = ["busybox", "demo-redis", "demo-postgres", "demo-app"]
MiB = 1 << 20


@pytest.fixture(scope="module")
def lab(docker_client: Any) -> Iterator[DemoLab]:
    from clnrm.images import build_images

    build_images(docker_client, DEMO_IMAGES)  # cached by content hash
    with DemoLab(seed=1) as running:
        running.healthy()
        yield running


@pytest.fixture
def demo(lab: DemoLab) -> Iterator[DemoLab]:
    """The shared lab, required healthy again after the test."""
    yield lab
    lab.healthy(timeout=30)


def undo_env(lab: DemoLab) -> UndoEnv:
    return UndoEnv(api=lab.ctx.api)


def spans_since(lab: DemoLab, t0: int, name: str, service: str | None = None) -> list[Span]:
    return [s for s in lab.spans(name) if (s.start_time_unix_nano or 0) >= t0
            and (service is None or s.service_name == service)]


def wait_for(what: Callable[[], Any], timeout: float = 5.0) -> Any:
    """``what()`` once it is truthy (spans arrive in batches), else its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def cgroup_file(lab: DemoLab, service: str, controller: str, name: str) -> Path:
    return _cgroup.of_pid(lab.ctx.container_pid(service)).folder(controller) / name


def timed_exec(lab: DemoLab, service: str, script: str) -> float:
    started = time.monotonic()
    res = lab.ctx.exec(service, ["sh", "-c", script], timeout=60)
    assert res.exit_code == 0, res.stderr
    return time.monotonic() - started


# -- network -----------------------------------------------------------------------------


def test_partition_rejects_gateway_to_api_until_rollback(demo: DemoLab) -> None:
    fault = demo.fault("partition", target="gateway", mode="reject", **{"with": ["api"]})
    t0 = time.time_ns()
    detail = fault.inject()
    try:
        assert detail.startswith("partitioned gateway <-> api (")
        probe = demo.get("/items", timeout=10)
        assert probe.status == 502 and "Connection refused" in probe.body, probe
        failed = wait_for(lambda: spans_since(demo, t0, "GET", "gateway"))
        assert failed and {s.status for s in failed} == {"ERROR"}
        assert not spans_since(demo, t0, "GET /v1/items")  # nothing reached the api
    finally:
        undone = fault.rollback()
    assert undone == "deleted 4 rule(s) in gateway"  # tcp-reset + icmp, in and out
    assert tagged_rules(demo.ctx.container_pid("gateway"), fault.tag) == []
    assert demo.get("/items").ok


def test_partition_rules_are_deleted_by_gc_undo_and_only_ours(demo: DemoLab) -> None:
    ours = demo.fault("partition", target="api", **{"with": ["db"]})  # drop: cached reads live
    other = demo.fault("partition", target="api", direction="egress", **{"with": ["worker"]})
    record = ours.undo_record()  # the engine journals it before injecting
    ours.inject()
    other.inject()
    try:
        pid = demo.ctx.container_pid("api")
        assert len(tagged_rules(pid, ours.tag)) == 2 and len(tagged_rules(pid, other.tag)) == 1
        assert record is not None
        assert Partition.undo(record, undo_env(demo)).startswith("deleted 2 rule(s)")
        assert tagged_rules(pid, ours.tag) == []
        assert len(tagged_rules(pid, other.tag)) == 1  # another fault's rules are left alone
        assert ours.rollback() == "deleted 0 rule(s) in api"  # idempotent after gc
    finally:
        other.rollback()


def test_dns_failure_breaks_lookups_of_the_target_only(demo: DemoLab) -> None:
    fault = demo.fault("dns_failure", target="gateway", mode="reject")
    t0 = time.time_ns()
    fault.inject()
    try:
        probe = demo.get("/items", timeout=10)
        assert probe.status == 502 and "name resolution" in probe.body, probe
        failed = wait_for(lambda: spans_since(demo, t0, "GET", "gateway"))
        assert failed and all("name resolution" in s.status_message for s in failed)
        # only the target is affected: the api behind it still resolves db and cache
        assert demo.get("/v1/items", service="api", port=8000).ok
    finally:
        fault.rollback()
    assert demo.get("/items").ok

    dropped = demo.fault("dns_failure", target="gateway")  # drop: lookups would time out
    record = dropped.undo_record()
    dropped.inject()
    assert record is not None and DnsFailure.undo(record, undo_env(demo)).startswith(
        "deleted 2 rule(s)")
    assert demo.get("/items", timeout=3).ok
    dropped.rollback()


# -- resources ---------------------------------------------------------------------------


def test_cpu_limit_throttles_cpu_bound_work_until_rollback(demo: DemoLab) -> None:
    busy = "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"
    baseline = min(timed_exec(demo, "api", busy) for _ in range(2))
    fault = demo.fault("cpu_limit", target="api", cpus=0.02)
    record = fault.undo_record()
    assert fault.inject() == "limited api to 0.02 CPUs (2000 us per 100000 us)"
    try:
        stat = cgroup_file(demo, "api", "cpu", "cpu.stat")
        throttled = _throttled(stat)
        limited = timed_exec(demo, "api", busy)
        assert limited > max(5 * baseline, 0.3), (baseline, limited)
        assert _throttled(stat) > throttled
        assert record is not None
        assert CpuLimit.undo(record, undo_env(demo)).startswith("CPU quota of")
        quota = cgroup_file(demo, "api", "cpu", "cpu.cfs_quota_us").read_text().strip()
        assert quota == "-1"
        assert timed_exec(demo, "api", busy) < max(3 * baseline, 0.3)
    finally:
        fault.rollback()
    host = demo.ctx.api.inspect_container(demo.ctx.container_id("api"))["HostConfig"]
    assert host["CpuQuota"] in (0, -1) and host["CpuPeriod"] in (0, 100_000)


def _throttled(stat: Path) -> int:
    return _cpu_stat(stat, "nr_throttled")


def _cpu_stat(stat: Path, field: str) -> int:
    fields = dict(line.split() for line in stat.read_text().splitlines())
    return int(fields[field])


def test_cpu_stress_starves_the_api_under_its_cpu_limit(demo: DemoLab) -> None:
    limit = demo.fault("cpu_limit", target="api", cpus=0.1)
    limit.inject()
    try:
        calm = _latency(demo)
        stress = demo.fault("cpu_stress", target="api", workers=2)
        assert stress.inject().startswith("2 busy loop(s) in api")
        try:
            stat = cgroup_file(demo, "api", "cpu", "cpu.stat")
            periods, throttled = _cpu_stat(stat, "nr_periods"), _throttled(stat)
            t0 = time.time_ns()
            starved = _latency(demo)
            calls = wait_for(lambda: spans_since(demo, t0, "GET", "gateway"))
            periods = _cpu_stat(stat, "nr_periods") - periods
            throttled = _throttled(stat) - throttled
        finally:
            assert stress.rollback() == "killed 2 busy loop(s) in api"
        # the busy loops eat the api's quota: most of its CPU periods end throttled, on a
        # quiet machine or a busy one (a ratio of latencies shrinks when the machine is
        # busy, because the calm figure is slow too)
        assert periods > 0 and throttled / periods > 0.5, (throttled, periods)
        assert starved > max(2 * calm, 0.03), (calm, starved)
        # the gateway's calls wait for an api that gets the CPU only now and then
        assert statistics.median(s.duration_ms or 0 for s in calls) > 20
        assert _latency(demo) < max(3 * calm, 0.03)

        again = demo.fault("cpu_stress", target="api", workers=1)
        again.inject()
        record = again.undo_record()
        assert record is not None and CpuStress.undo(record, undo_env(demo)) == \
            "killed 1 busy loop(s)"
        assert again.rollback() == "killed 0 busy loop(s) in api"
    finally:
        limit.rollback()


def _latency(lab: DemoLab, n: int = 7) -> float:
    """Median seconds of ``GET /items`` (the api answers from its cache)."""
    probes = [lab.get("/items", timeout=10) for _ in range(n)]
    assert all(p.ok for p in probes), probes
    return statistics.median(p.seconds for p in probes)


def test_memory_limit_makes_large_allocations_fail_until_restored(demo: DemoLab) -> None:
    alloc = ["python3", "-c", "open('/proc/self/oom_score_adj', 'w').write('1000'); "
                              "b = b'x' * (96 << 20)"]  # the OOM killer takes this, not the api
    usage = int(cgroup_file(demo, "api", "memory", "memory.usage_in_bytes").read_text())
    limit_mb = usage // MiB + 32
    limit_file = cgroup_file(demo, "api", "memory", "memory.limit_in_bytes")
    unlimited = limit_file.read_text()  # -1 as the kernel shows it, or the engine's "none"
    fault = demo.fault("memory_limit", target="api", limit_mb=limit_mb)
    record = fault.undo_record()
    assert fault.inject().startswith(f"memory limit of api: {limit_mb} MiB (was no limit")
    try:
        assert int(limit_file.read_text()) == limit_mb * MiB
        assert demo.ctx.exec("api", alloc).exit_code == 137  # OOM-killed at the limit
        assert demo.get("/items").ok  # the service itself lives on
        assert record is not None
        assert MemoryLimit.undo(record, undo_env(demo)).startswith("memory limit of")
        assert limit_file.read_text() == unlimited  # exactly what the kernel had
        assert demo.ctx.exec("api", alloc).exit_code == 0
    finally:
        fault.rollback()


def test_memory_pressure_holds_memory_until_rollback(demo: DemoLab) -> None:
    usage = cgroup_file(demo, "api", "memory", "memory.usage_in_bytes")
    before = int(usage.read_text())
    fault = demo.fault("memory_pressure", target="api", mb=64)
    assert fault.inject().startswith("holding ")
    try:
        assert int(usage.read_text()) > before + 56 * MiB
        assert demo.get("/items").ok
    finally:
        assert fault.rollback() == "freed the memory held in api"
    assert wait_for(lambda: int(usage.read_text()) < before + 16 * MiB, timeout=3)

    again = demo.fault("memory_pressure", target="api", mb=32)
    again.inject()
    record = again.undo_record()
    assert int(usage.read_text()) > before + 24 * MiB
    assert record is not None and MemoryPressure.undo(record, undo_env(demo)) == \
        "killed the memory hog"
    assert wait_for(lambda: int(usage.read_text()) < before + 16 * MiB, timeout=3)
    assert again.rollback() == "no memory hog left in api"


def test_disk_fill_makes_writes_fail_until_rollback(demo: DemoLab) -> None:
    write = ["sh", "-c", "echo x > /dev/shm/clnrm-probe && rm /dev/shm/clnrm-probe"]
    fault = demo.fault("disk_fill", target="api", path="/dev/shm", percent=100)
    detail = fault.inject()
    try:
        assert detail.startswith("filled /dev/shm in api with ") and "-> 0 MiB" in detail
        assert demo.ctx.exec("api", write).exit_code != 0  # ENOSPC
    finally:
        fault.rollback()
    assert demo.ctx.exec("api", write).exit_code == 0

    sized = demo.fault("disk_fill", target="api", mb=16)  # /tmp, on the writable layer
    record = sized.undo_record()
    sized.inject()
    assert isinstance(sized, DiskFill) and record is not None
    assert demo.ctx.exec("api", ["test", "-s", sized.file]).exit_code == 0
    assert DiskFill.undo(record, undo_env(demo)) == f"deleted {sized.file}"
    assert demo.ctx.exec("api", ["test", "-e", sized.file]).exit_code == 1
    sized.rollback()


def test_fd_exhaustion_stops_the_gateway_accepting_until_restored(demo: DemoLab) -> None:
    main = demo.ctx.main_pid("gateway")
    before = _linux.nofile(main)
    fault = demo.fault("fd_exhaustion", target="gateway")
    fault.inject()
    try:
        assert _linux.nofile(main)[0] < 16 and _linux.nofile(main)[1] == before[1]
        probe = demo.get("/items", timeout=2)
        # no descriptor left to accept with (the request waits in the backlog), or one
        # left to accept but none to call the api with
        assert ("timed out" in (probe.error or "") or
                (probe.status == 502 and "Too many open files" in probe.body)), probe
    finally:
        fault.rollback()
    assert _linux.nofile(main) == before
    assert demo.get("/items").ok

    again = demo.fault("fd_exhaustion", target="gateway", limit=5)
    again.inject()
    record = again.undo_record()
    assert _linux.nofile(main)[0] == 5
    assert record is not None and FdExhaustion.undo(record, undo_env(demo)).startswith(
        "open-files limit restored on 1 process(es)")
    assert _linux.nofile(main) == before
    again.rollback()


def test_io_throttle_slows_the_targets_disk_writes_until_lifted(demo: DemoLab) -> None:
    write = ("dd if=/dev/zero of=/tmp/clnrm-io bs=64k count=16 oflag=direct 2>/dev/null; "
             "rm -f /tmp/clnrm-io")
    fault = demo.fault("io_throttle", target="db", write_bps="512KiB")
    assert fault.inject().startswith("throttled db on disk ")
    try:
        assert timed_exec(demo, "db", write) > 1.2  # 1 MiB at 512 KiB/s
    finally:
        fault.rollback()
    assert timed_exec(demo, "db", write) < 0.5

    again = demo.fault("io_throttle", target="db", read_bps=1 << 20, write_iops=10)
    again.inject()
    record = again.undo_record()
    assert isinstance(again, IoThrottle) and record is not None
    rules = cgroup_file(demo, "db", "blkio", "blkio.throttle.write_iops_device")
    assert rules.read_text().strip() == f"{record['device']} 10"
    assert IoThrottle.undo(record, undo_env(demo)).startswith("lifted the I/O throttle")
    assert rules.read_text().strip() == ""
    again.rollback()


# -- container lifecycle -----------------------------------------------------------------


def test_pause_freezes_the_cache_and_unpause_heals(demo: DemoLab) -> None:
    fault = demo.fault("pause", target="cache")
    t0 = time.time_ns()
    fault.inject()
    try:
        assert demo.ctx.state("cache")["Paused"]
        # the api's cache read and write each wait out their 1 s timeout, so the gateway's
        # 1 s attempts all time out: a cache outage becomes an outage of the whole system
        probe = demo.get("/items", timeout=10)
        assert probe.status == 504, probe
        reads = wait_for(lambda: spans_since(demo, t0, "GET items", "api"))
        assert reads and all("Timeout" in s.status_message for s in reads)
    finally:
        assert fault.rollback() == "unpaused cache"
    assert not demo.ctx.state("cache")["Paused"]
    t1 = time.time_ns()
    assert demo.get("/items").ok
    assert {s.status for s in wait_for(lambda: spans_since(demo, t1, "GET items"))} == {"UNSET"}

    again = demo.fault("pause", target="cache")
    record = again.undo_record()
    again.inject()
    assert record is not None and Pause.undo(record, undo_env(demo)).startswith("unpaused")
    assert not demo.ctx.state("cache")["Paused"]
    assert again.rollback() == "cache was not paused"


def test_sigstop_freezes_the_worker_until_sigcont(demo: DemoLab) -> None:
    job = f"job-{uuid.uuid4().hex[:8]}"
    fault = demo.fault("signal", target="worker", signal="STOP")
    assert fault.inject().startswith("sent SIGSTOP to worker's main process")
    try:
        queued = demo.get("/jobs", method="POST", body=f'{{"id": "{job}", "payload": "a b"}}')
        assert queued.status == 202, queued
        time.sleep(1.0)
        assert '"status": "queued"' in demo.get(f"/jobs/{job}").body
        record = fault.undo_record()
        assert record is not None
        assert Signal.undo(record, undo_env(demo)).startswith("sent SIGCONT")
        done = wait_for(lambda: '"status": "done"' in demo.get(f"/jobs/{job}").body)
        assert done
        processed = wait_for(lambda: [s for s in demo.spans("process jobs")
                                      if s.attributes.get("messaging.message.id") == job])
        assert processed
    finally:
        fault.rollback()


def test_sigterm_ends_the_worker_and_rollback_starts_it(demo: DemoLab) -> None:
    fault = demo.fault("signal", target="worker", signal="SIGTERM")
    assert fault.undo_record() is None  # nothing a gc could undo: the container is removed
    detail = fault.inject()
    try:
        assert detail.endswith("the container exited (code 0)")  # its handler exits cleanly
        assert not demo.ctx.state("worker")["Running"]
    finally:
        assert fault.rollback() == "started worker again"
    assert demo.ctx.state("worker")["Running"]


def test_kill_takes_the_api_down_and_rollback_restarts_it(demo: DemoLab) -> None:
    fault = demo.fault("kill", target="api")
    t0 = time.time_ns()
    assert fault.inject() == "killed api (SIGKILL, exit code 137)"
    try:
        probe = demo.get("/items", timeout=10)
        assert probe.status in (502, 504), probe
        attempts = wait_for(lambda: spans_since(demo, t0, "GET", "gateway"))
        assert attempts and {s.status for s in attempts} == {"ERROR"}
    finally:
        assert fault.rollback() == "started api again"
    demo.healthy()
    assert demo.get("/items").ok


def test_stop_is_graceful_and_rollback_starts_the_api(demo: DemoLab) -> None:
    fault = demo.fault("stop", target="api", timeout="5s")
    detail = fault.inject()
    try:
        assert detail.endswith("(exit code 0)")  # SIGTERM handled, well inside the 5 s
        assert demo.get("/items", timeout=10).status in (502, 504)
    finally:
        assert fault.rollback() == "started api again"
    demo.healthy()


def test_restart_gives_an_outage_and_a_new_process(demo: DemoLab) -> None:
    started = demo.ctx.state("api")["StartedAt"]
    stop = threading.Event()
    t0 = time.time_ns()

    def prober() -> None:
        while not stop.is_set():
            demo.get("/items", timeout=5)
            time.sleep(0.02)

    worker = threading.Thread(target=prober, daemon=True)
    worker.start()
    try:
        time.sleep(0.1)
        fault = demo.fault("restart", target="api", timeout=5)
        assert fault.inject().startswith("restarted api in ")
        demo.healthy()
    finally:
        stop.set()
        worker.join(10)
    assert demo.ctx.state("api")["StartedAt"] != started
    failed = wait_for(lambda: [s for s in spans_since(demo, t0, "GET", "gateway")
                               if s.status == "ERROR"])
    assert failed, "no gateway attempt failed during the restart"
    assert fault.rollback() == "api is running"


def test_oom_kill_is_the_kernels_and_rollback_restores_limit_and_api(demo: DemoLab) -> None:
    limit = cgroup_file(demo, "api", "memory", "memory.limit_in_bytes")
    before = limit.read_text()  # no limit: -1, or the host's RAM after an engine restart
    fault = demo.fault("oom_kill", target="api")
    record_before = fault.undo_record()
    assert record_before is not None
    detail = fault.inject()
    try:
        state = demo.ctx.state("api")
        assert state["OOMKilled"] and state["ExitCode"] == 137, detail
        assert "OOMKilled=True" in detail
        assert demo.get("/items", timeout=10).status in (502, 504)
        record = fault.undo_record()
        assert record is not None
        assert OomKill.undo(record, undo_env(demo)).startswith("memory limit of")
        host = demo.ctx.api.inspect_container(demo.ctx.container_id("api"))["HostConfig"]
        assert host["Memory"] == _linux.host_memory()  # the engine cannot record "none" again
    finally:
        assert fault.rollback() == "memory limit restored; started api again"
    demo.healthy()
    assert limit.read_text() == before  # the kernel's file exactly as it was


def test_clock_skew_shifts_the_targets_spans_until_rollback(demo: DemoLab) -> None:
    fault = demo.fault("clock_skew", target="api", offset="+1h")
    assert fault.inject().startswith("api's clock runs +3600 s off")
    try:
        demo.healthy()
        assert abs(_api_offset(demo) - 3600) < 5
        record = fault.undo_record()
        assert record is not None
        assert ClockSkew.undo(record, undo_env(demo)).startswith(f"deleted {SKEW_FILE}")
        assert demo.ctx.exec("api", ["test", "-e", SKEW_FILE]).exit_code == 1
    finally:
        undone = fault.rollback()
    assert "api restarted with the real time" in undone
    demo.healthy()
    assert abs(_api_offset(demo)) < 2


def _api_offset(lab: DemoLab) -> float:
    """Seconds between the gateway's client span and the api's server span it caused."""
    t0 = time.time_ns()
    assert lab.get("/items").ok
    [client] = wait_for(lambda: spans_since(lab, t0, "GET", "gateway"))

    def server() -> list[Span]:
        return [s for s in lab.spans("GET /v1/items") if s.parent_span_id == client.span_id]

    [served] = wait_for(server)
    return ((served.start_time_unix_nano or 0) - (client.start_time_unix_nano or 0)) / 1e9

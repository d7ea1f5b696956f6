"""The cgroup faults on cgroup v2, and where a container's cgroup is on either version.

Two kinds of tree:

- a real cgroup2 hierarchy mounted for the test (root only; skipped where the kernel
  refuses): finding a process's cgroup from ``/proc/<pid>/cgroup``, listing its
  processes, lowering and restoring their limits (``fd_exhaustion``), and the one-line
  error of a fault whose controller the tree does not give the container.  A host that
  binds memory and io to cgroup v1 (like this project's CI) leaves the v2 tree without
  those controllers, so their files cannot be real here;
- for them, a fake tree with the files and the two layouts the engine makes
  (``system.slice/docker-<id>.scope`` with the systemd driver, ``docker/<id>`` with
  cgroupfs), driven end to end through the real :class:`ChaosContext` over a fake
  engine that writes the cgroup files the way runc does on ``update`` and ``start``.
"""

from __future__ import annotations

import os
import resource
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from clnrm.chaos.context import ChaosContext, UndoEnv
from clnrm.chaos.faults import _cgroup, _linux
from clnrm.chaos.faults.container import OomKill, OomKillConfig
from clnrm.chaos.faults.resource import (
    FdExhaustion,
    FdExhaustionConfig,
    IoThrottle,
    IoThrottleConfig,
    MemoryLimit,
    MemoryLimitConfig,
    MemoryPressure,
    MemoryPressureConfig,
)
from clnrm.errors import ChaosError
from clnrm.testing import FakeSandbox

MiB = 1 << 20
CID = "4f1c" + "0" * 60
PID = 99_999  # above pid_max: no real process is ever read by mistake
LAYOUTS = {"systemd": f"system.slice/docker-{CID}.scope", "cgroupfs": f"docker/{CID}"}
EVENTS = "low 0\nhigh 0\nmax 0\noom 0\noom_kill {}\noom_group_kill 0\n"


# -- a fake v2 host and engine -----------------------------------------------------------


def v2_cgroup(folder: Path, *, controllers: str = "cpu io memory pids",
              memory_max: str = "max", swap_max: str = "max") -> None:
    """A container's cgroup as runc leaves it: the files the faults read and write."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {"cgroup.controllers": controllers, "cgroup.procs": f"{PID}\n",
             "cgroup.subtree_control": "", "memory.max": memory_max,
             "memory.swap.max": swap_max, "memory.current": str(50 * MiB),
             "memory.oom.group": "0", "memory.events": EVENTS.format(0), "io.max": "",
             "pids.max": "max", "pids.current": "1"}
    for name, text in files.items():
        (folder / name).write_text(text + ("\n" if text and not text.endswith("\n") else ""))


@dataclass
class Host:
    root: Path
    cgroup: Path

    def read(self, name: str) -> str:
        return (self.cgroup / name).read_text().strip()


def fake_v2_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str = "systemd",
                 **files: str) -> Host:
    root, proc = tmp_path / "cgroup", tmp_path / "proc"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma misc\n")
    (root / "cgroup.subtree_control").write_text("cpuset cpu io memory pids\n")
    v2_cgroup(root / LAYOUTS[layout], **files)
    (proc / str(PID)).mkdir(parents=True)
    (proc / str(PID) / "cgroup").write_text(f"0::/{LAYOUTS[layout]}\n")
    monkeypatch.setattr(_cgroup, "ROOT", root)
    monkeypatch.setattr(_cgroup, "PROC", proc)
    return Host(root, root / LAYOUTS[layout])


class FakeEngine:
    """The engine's API as the faults use it, writing cgroup v2 files as runc does.

    ``oom``: what the kernel does once the hog runs (``group``: kill the box when
    ``memory.oom.group`` is 1, counting the kill in ``memory.events`` first; ``none``:
    nothing, the hog fits).
    """

    def __init__(self, host: Host, *, memory: int = 0, oom: str = "group") -> None:
        self.host = host
        self.oom = oom
        self.hostconfig: dict[str, Any] = {"Memory": memory, "MemorySwap": memory * 2}
        self.state: dict[str, Any] = {"Running": True, "Pid": PID, "OOMKilled": False,
                                      "ExitCode": 0, "Status": "running"}
        self.updates: list[dict[str, Any]] = []
        self.group_at_hog: str | None = None
        self._dying = 0

    # engine calls
    def inspect_container(self, cid: str) -> dict[str, Any]:
        assert cid == CID
        self._dying -= 1
        if self._dying == 0:  # the kernel's kill lands between two looks of the fault
            shutil.rmtree(self.host.cgroup)  # runc removes the box's cgroup
            self.state.update(Running=False, Pid=0, OOMKilled=True, ExitCode=137,
                              Status="exited")
        return {"State": dict(self.state), "HostConfig": dict(self.hostconfig)}

    def update_container(self, cid: str, mem_limit: int, memswap_limit: int) -> None:
        if 0 < mem_limit < _linux.MIN_MEMORY or mem_limit < 0:
            raise RuntimeError("Minimum memory limit allowed is 6MB")
        self.updates.append({"mem_limit": mem_limit, "memswap_limit": memswap_limit})
        self.hostconfig.update(Memory=mem_limit, MemorySwap=memswap_limit)
        if self.state["Running"]:
            self._apply()

    def _apply(self) -> None:
        memory, memswap = self.hostconfig["Memory"], self.hostconfig["MemorySwap"]
        (self.host.cgroup / "memory.max").write_text(f"{memory or 'max'}\n")
        swap = "max" if memswap in (-1, 0) or not memory else str(memswap - memory)
        (self.host.cgroup / "memory.swap.max").write_text(f"{swap}\n")

    def exec_create(self, cid: str, argv: list[str], **_: Any) -> dict[str, str]:
        return {"Id": "hog"}

    def exec_start(self, exec_id: str, detach: bool = False) -> None:
        self.group_at_hog = self.host.read("memory.oom.group")
        if self.oom == "group" and self.group_at_hog == "1":
            (self.host.cgroup / "memory.events").write_text(EVENTS.format(1))
            self._dying = 2

    def exec_inspect(self, exec_id: str) -> dict[str, Any]:
        return {"Running": bool(self.state["Running"]), "Pid": 0, "ExitCode": None}

    def start(self) -> None:
        """``docker start``: a new cgroup with the kernel's defaults and the engine's record."""
        v2_cgroup(self.host.cgroup)
        self.state.update(Running=True, Pid=PID, OOMKilled=False, ExitCode=0,
                          Status="running")
        self._apply()


def context(engine: FakeEngine) -> ChaosContext:
    """The chaos context over a sandbox with one service, ``api``, run by ``engine``."""
    box = FakeSandbox({"api": CID}, api=engine, on_restart=lambda _: engine.start())
    return ChaosContext(box, run_id="r")  # type: ignore[arg-type]


# -- finding the cgroup --------------------------------------------------------------------


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_a_v2_host_finds_the_containers_one_cgroup_in_either_driver_layout(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str) -> None:
    host = fake_v2_host(tmp_path, monkeypatch, layout)
    assert _cgroup.host_version() == 2
    found = _cgroup.of_pid(PID)
    assert found.version == 2 and found.dirs == {"": host.cgroup}
    assert found.folder("memory") == found.folder("io") == found.procs_folder() == host.cgroup
    assert found.memory_usage() == 50 * MiB and found.oom_kills() == 0


def test_a_v1_host_finds_one_directory_per_controller(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, proc = tmp_path / "cgroup", tmp_path / "proc"
    path = f"system.slice/docker-{CID}.scope"
    for name in ("memory", "pids", "systemd"):
        (root / name / path).mkdir(parents=True)
    (root / "unified").mkdir()  # a hybrid host: the empty v2 tree does not make it v2
    (root / "unified" / "cgroup.controllers").write_text("")
    (root / "memory" / path / "memory.usage_in_bytes").write_text(f"{7 * MiB}\n")
    (root / "memory" / path / "memory.oom_control").write_text(
        "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    (proc / str(PID)).mkdir(parents=True)
    (proc / str(PID) / "cgroup").write_text(
        f"9:name=systemd:/{path}\n8:pids:/{path}\n4:memory:/{path}\n"
        f"7:blkio:/{path}\n0::/\n")
    monkeypatch.setattr(_cgroup, "ROOT", root)
    monkeypatch.setattr(_cgroup, "PROC", proc)
    assert _cgroup.host_version() == 1
    found = _cgroup.of_pid(PID)
    assert found.version == 1 and sorted(found.dirs) == ["memory", "pids", "systemd"]
    assert found.memory_usage() == 7 * MiB and found.oom_kills() == 2
    assert found.procs_folder() == root / "pids" / path
    with pytest.raises(ChaosError) as err:  # blkio is listed but not mounted
        found.require("io", fault="io_throttle", target="db")
    assert err.value.message == (f"chaos fault 'io_throttle' on 'db': host cgroup v1: no blkio "
                                 f"controller for pid {PID} (is {root / 'blkio'} mounted?)")


def test_this_hosts_version_is_what_its_cgroup_mount_says() -> None:
    assert _cgroup.host_version() == (2 if Path("/sys/fs/cgroup/cgroup.controllers").exists()
                                      else 1)
    mine = _cgroup.of_pid(os.getpid())
    assert mine.version == _cgroup.host_version() and mine.dirs


def test_v1_memory_restore_keeps_the_total_above_the_limit_at_every_write(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "memory"
    folder.mkdir()
    (folder / "memory.limit_in_bytes").write_text(f"{16 * MiB}\n")
    (folder / "memory.memsw.limit_in_bytes").write_text(f"{16 * MiB}\n")
    writes: list[tuple[str, str]] = []
    monkeypatch.setattr(_cgroup.ContainerCgroup, "write",
                        lambda self, c, name, value: writes.append((name, value)))
    cgroup = _cgroup.ContainerCgroup(PID, 1, {"memory": folder})
    cgroup.restore_memory({"memory.limit_in_bytes": str(256 * MiB),
                           "memory.memsw.limit_in_bytes": str(512 * MiB)})
    assert writes == [("memory.memsw.limit_in_bytes", "-1"),  # raise the total first
                      ("memory.limit_in_bytes", str(256 * MiB)),
                      ("memory.memsw.limit_in_bytes", str(512 * MiB))]
    writes.clear()
    cgroup.restore_memory(None)
    assert writes == [("memory.memsw.limit_in_bytes", "-1"), ("memory.limit_in_bytes", "-1"),
                      ("memory.memsw.limit_in_bytes", "-1")]


# -- memory_limit and oom_kill on v2 -------------------------------------------------------


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_memory_limit_on_v2_writes_memory_max_and_puts_max_back_exactly(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str) -> None:
    host = fake_v2_host(tmp_path, monkeypatch, layout)
    engine = FakeEngine(host)
    fault = MemoryLimit(MemoryLimitConfig(limit_mb=64), context(engine), "api")
    record = fault.undo_record()  # the engine journals it before injecting
    assert record is not None and record["kernel"] == {"memory.max": "max",
                                                       "memory.swap.max": "max"}
    assert fault.inject() == "memory limit of api: 64 MiB (was no limit)"
    assert host.read("memory.max") == str(64 * MiB) and host.read("memory.swap.max") == "0"

    assert fault.rollback() == "memory limit of api restored"
    assert host.read("memory.max") == "max" and host.read("memory.swap.max") == "max"
    assert engine.hostconfig["Memory"] == _linux.host_memory()  # the engine's "none"

    fault.inject()  # again, then undone from the journal record as gc would
    assert MemoryLimit.undo(record, UndoEnv(api=engine)) == f"memory limit of {CID[:12]} " \
                                                          "restored"
    assert host.read("memory.max") == "max" and host.read("memory.swap.max") == "max"


def test_a_record_without_the_kernels_files_still_gives_v2_no_limit_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    host = fake_v2_host(tmp_path, monkeypatch)
    engine = FakeEngine(host)
    MemoryLimit(MemoryLimitConfig(limit_mb=64), context(engine), "api").inject()
    old = {"container": CID, "memory": {"memory": 0, "memswap": 0}}  # an older clnrm's record
    assert MemoryLimit.undo(old, UndoEnv(api=engine)).startswith("memory limit of")
    assert host.read("memory.max") == "max" and host.read("memory.swap.max") == "max"


def test_memory_limit_on_v2_restores_a_previous_limit_and_its_swap(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    host = fake_v2_host(tmp_path, monkeypatch, memory_max=str(256 * MiB),
                        swap_max=str(256 * MiB))
    engine = FakeEngine(host, memory=256 * MiB)
    fault = MemoryLimit(MemoryLimitConfig(limit_mb=100), context(engine), "api")
    assert fault.inject() == "memory limit of api: 100 MiB (was 256 MiB)"
    assert host.read("memory.max") == str(100 * MiB)
    fault.rollback()
    assert (host.read("memory.max"), host.read("memory.swap.max")) == (str(256 * MiB),
                                                                       str(256 * MiB))
    assert engine.updates[-1] == {"mem_limit": 256 * MiB, "memswap_limit": 512 * MiB}


def test_oom_kill_on_v2_kills_the_group_and_rollback_restores_limit_and_group(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    host = fake_v2_host(tmp_path, monkeypatch)
    engine = FakeEngine(host)
    fault = OomKill(OomKillConfig(margin_mb=8, timeout=5), context(engine), "api")
    before = fault.undo_record()
    assert before is not None and before["kernel"]["memory.max"] == "max"
    detail = fault.inject()
    assert engine.group_at_hog == "1"  # set before the hog, so the kernel takes the box
    assert engine.updates[0]["mem_limit"] == 58 * MiB  # usage 50 MiB + margin 8
    assert detail == ("OOM-killed api's main process (the whole container, "
                      "memory.oom.group=1; limit lowered to 58 MiB, exit code 137, "
                      "OOMKilled=True, kernel OOM kills seen +1)")
    record = fault.undo_record()
    assert record is not None and record["oom_group"] == [str(host.cgroup), "0"]
    assert not host.cgroup.exists()  # gone with the container
    assert OomKill.undo(record, UndoEnv(api=engine)).startswith("memory limit of")

    assert fault.rollback() == "memory limit restored; started api again"
    assert engine.state["Running"]
    assert host.read("memory.max") == "max" and host.read("memory.swap.max") == "max"
    assert host.read("memory.oom.group") == "0"


def test_oom_kill_on_v2_that_did_not_happen_is_rolled_back_in_place(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    host = fake_v2_host(tmp_path, monkeypatch)
    engine = FakeEngine(host, oom="none")
    fault = OomKill(OomKillConfig(margin_mb=8, timeout=0.3), context(engine), "api")
    record = fault.undo_record()  # journalled before inject: a SIGKILL may come any time
    assert record is not None and record["oom_group"] == [str(host.cgroup), "0"]
    with pytest.raises(ChaosError, match=r"did not OOM-kill api within 0.3 s"):
        fault.inject()
    assert host.read("memory.oom.group") == "1" and host.read("memory.max") == str(58 * MiB)
    assert OomKill.undo(record, UndoEnv(api=engine)).startswith("memory limit of")
    assert host.read("memory.oom.group") == "0" and host.read("memory.max") == "max"

    with pytest.raises(ChaosError):
        fault.inject()
    assert fault.rollback() == "memory limit restored; api is running"
    assert host.read("memory.oom.group") == "0" and host.read("memory.max") == "max"
    assert host.read("memory.swap.max") == "max"


# -- io_throttle on v2 ---------------------------------------------------------------------


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_io_throttle_on_v2_writes_one_io_max_line_and_restores_it_exactly(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str) -> None:
    host = fake_v2_host(tmp_path, monkeypatch, layout)
    # another limit on the same disk (someone's riops) must survive the fault
    (host.cgroup / "io.max").write_text("8:0 rbps=max wbps=max riops=100 wiops=max\n")
    engine = FakeEngine(host)
    config = IoThrottleConfig(device="8:0", write_bps="1MiB", read_iops=50)
    fault = IoThrottle(config, context(engine), "api")
    assert fault.inject() == "throttled api on disk 8:0: write_bps=1048576, read_iops=50"
    assert host.read("io.max") == "8:0 rbps=max wbps=1048576 riops=50 wiops=max"
    record = fault.undo_record()
    assert record == {"cgroup": str(host.cgroup), "version": 2, "device": "8:0",
                      "old": {"write_bps": "max", "read_iops": "100"}}

    assert fault.rollback() == "lifted the I/O throttle of api"
    assert host.read("io.max") == "8:0 rbps=max wbps=max riops=100 wiops=max"

    fault.inject()
    assert IoThrottle.undo(record, UndoEnv(api=engine)) == \
        f"lifted the I/O throttle of {host.cgroup}"
    assert host.read("io.max") == "8:0 rbps=max wbps=max riops=100 wiops=max"


def test_io_throttle_reads_its_disks_line_among_others(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    host = fake_v2_host(tmp_path, monkeypatch)
    (host.cgroup / "io.max").write_text("259:0 rbps=1 wbps=2 riops=3 wiops=4\n"
                                        "8:0 rbps=max wbps=4096 riops=max wiops=max\n")
    cgroup = _cgroup.of_pid(PID)
    assert cgroup.io_limits("8:0") == {"read_bps": "max", "write_bps": "4096",
                                       "read_iops": "max", "write_iops": "max"}
    assert cgroup.io_limits("8:16") == dict.fromkeys(_cgroup.IO_KEYS, "max")


def test_io_throttle_undo_of_an_old_v1_record_still_lifts(tmp_path: Path) -> None:
    folder = tmp_path / "blkio"
    folder.mkdir()
    for name in _cgroup.V1_THROTTLES.values():
        (folder / name).write_text("8:0 10\n")
    record = {"cgroup": str(folder), "device": "8:0", "old": {"write_iops": 0}}
    assert IoThrottle.undo(record, UndoEnv(api=None)).startswith("lifted the I/O throttle")
    assert (folder / "blkio.throttle.write_iops_device").read_text() == "8:0 0"


@pytest.mark.parametrize(("fault", "config", "missing"), [
    (IoThrottle, IoThrottleConfig(device="8:0", read_bps=1), "io"),
    (MemoryLimit, MemoryLimitConfig(limit_mb=64), "memory"),
    (OomKill, OomKillConfig(), "memory"),
])
def test_a_missing_v2_controller_is_one_line_naming_fault_version_and_controller(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: Any, config: Any,
        missing: str) -> None:
    host = fake_v2_host(tmp_path, monkeypatch, controllers="cpu pids")
    engine = FakeEngine(host)
    with pytest.raises(ChaosError) as err:
        fault(config, context(engine), "api").inject()
    assert err.value.message == (
        f"chaos fault {fault.type!r} on 'api': host cgroup v2: the {missing} controller is "
        f"not enabled for {host.cgroup} (its cgroup.controllers: cpu pids)")
    assert engine.updates == []  # refused before anything was changed


# -- memory_pressure on v2 -----------------------------------------------------------------


class HogEngine(FakeEngine):
    """Runs the hog's real shell on the host, so the fault waits on a real allocation."""

    procs: list[subprocess.Popen[bytes]]

    def exec_start(self, exec_id: str, detach: bool = False) -> None:
        self.procs.append(subprocess.Popen(self.argv))

    def exec_create(self, cid: str, argv: list[str], **_: Any) -> dict[str, str]:
        self.argv = argv
        return {"Id": "hog"}

    def exec_inspect(self, exec_id: str) -> dict[str, Any]:
        proc = self.procs[-1]
        return {"Running": proc.poll() is None, "Pid": proc.pid, "ExitCode": proc.returncode}


def test_memory_pressure_on_v2_reports_memory_current_and_frees_on_rollback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    host = fake_v2_host(tmp_path, monkeypatch)
    engine = HogEngine(host)
    engine.procs = []
    fault = MemoryPressure(MemoryPressureConfig(mb=4, timeout=20), context(engine), "api")
    try:
        detail = fault.inject()
        assert detail.startswith("holding ") and detail.endswith(
            " MiB in api (cgroup usage 50 -> 50 MiB)")
        assert fault.rollback() == "freed the memory held in api"
        assert engine.procs[0].wait(5) == -9
    finally:
        for proc in engine.procs:
            proc.kill()
            proc.wait(5)


# -- a real cgroup2 tree -------------------------------------------------------------------


@dataclass
class RealTree:
    root: Path
    cgroup: Path
    procs: list[subprocess.Popen[bytes]]

    def spawn(self, nofile: int | None = None) -> int:
        """A sleeping process of ours moved into the test's cgroup (with a lowered soft
        open-files limit: one "forked during the fault")."""
        soft_hard = (nofile, resource.getrlimit(resource.RLIMIT_NOFILE)[1]) if nofile else None

        def lower() -> None:
            if soft_hard:
                resource.setrlimit(resource.RLIMIT_NOFILE, soft_hard)

        proc = subprocess.Popen(["sleep", "60"], preexec_fn=lower)  # noqa: PLW1509
        self.procs.append(proc)
        (self.cgroup / "cgroup.procs").write_text(str(proc.pid))
        return proc.pid


@pytest.fixture
def cgroup2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RealTree]:
    """A cgroup2 hierarchy mounted for the test, with one child cgroup of ours."""
    if os.geteuid() != 0 or not sys.platform.startswith("linux"):
        pytest.skip("mounting cgroup2 needs root on Linux")
    mount = tmp_path / "cg2"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "cgroup2", "none", str(mount)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"the kernel refused a cgroup2 mount: {done.stderr.strip()}")
    child = mount / f"clnrm-test-{secrets.token_hex(4)}"
    tree = RealTree(mount, child, [])
    try:
        child.mkdir()
        monkeypatch.setattr(_cgroup, "ROOT", mount)
        yield tree
    finally:
        for proc in tree.procs:
            proc.kill()
            proc.wait(5)
        deadline = time.monotonic() + 5
        while child.exists() and time.monotonic() < deadline:
            try:
                child.rmdir()
            except OSError:  # the killed processes are still leaving the cgroup
                time.sleep(0.05)
        subprocess.run(["umount", "-l", str(mount)], check=False)


class PidEngine:
    """Only what ``fd_exhaustion`` asks the engine: the container's first pid."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def inspect_container(self, cid: str) -> dict[str, Any]:
        return {"State": {"Running": True, "Pid": self.pid}}


def test_a_real_cgroup2_tree_is_found_from_proc_and_lists_its_processes(
        cgroup2: RealTree) -> None:
    first, second = cgroup2.spawn(), cgroup2.spawn()
    assert _cgroup.host_version() == 2
    found = _cgroup.of_pid(first)
    assert found.dirs == {"": cgroup2.cgroup} and found.version == 2
    assert sorted(int(p) for p in (found.procs_folder() / "cgroup.procs").read_text()
                  .split()) == sorted([first, second])


def test_fd_exhaustion_on_a_real_cgroup2_tree_lowers_and_restores_every_process(
        cgroup2: RealTree) -> None:
    first, second = cgroup2.spawn(), cgroup2.spawn()
    before = _linux.nofile(first)
    engine = PidEngine(first)
    fault = FdExhaustion(FdExhaustionConfig(limit=7, processes="all"),
                         context(engine), "api")  # type: ignore[arg-type]
    assert fault.inject() == f"open-files limit of api (2 process(es)): {before[0]} -> 7"
    assert _linux.nofile(first) == _linux.nofile(second) == (7, before[1])
    forked = cgroup2.spawn(nofile=7)  # started during the fault, with its low limit
    record = fault.undo_record()
    assert record is not None and record["cgroup"] == str(cgroup2.cgroup)

    assert fault.rollback() == "open-files limit restored on 3 process(es) of api"
    assert _linux.nofile(first) == _linux.nofile(second) == _linux.nofile(forked) == before

    again = FdExhaustion(FdExhaustionConfig(limit=7, processes="all"),
                         context(engine), "api")  # type: ignore[arg-type]
    again.inject()
    record = again.undo_record()
    assert record is not None and _linux.nofile(forked) == (7, before[1])
    assert FdExhaustion.undo(record, UndoEnv(api=engine)) == \
        "open-files limit restored on 3 process(es)"
    assert _linux.nofile(first) == _linux.nofile(forked) == before


def test_faults_needing_a_controller_the_real_tree_lacks_say_which(
        cgroup2: RealTree) -> None:
    pid = cgroup2.spawn()
    enabled = (cgroup2.cgroup / "cgroup.controllers").read_text().split()
    if "io" in enabled:
        pytest.skip("this kernel gives the cgroup2 tree the io controller")
    engine = PidEngine(pid)
    config = IoThrottleConfig(device="8:0", read_bps=1)
    fault = IoThrottle(config, context(engine), "api")  # type: ignore[arg-type]
    with pytest.raises(ChaosError) as err:
        fault.inject()
    assert err.value.message == (
        f"chaos fault 'io_throttle' on 'api': host cgroup v2: the io controller is not "
        f"enabled for {cgroup2.cgroup} (its cgroup.controllers: {' '.join(enabled) or 'none'})")
    assert "\n" not in err.value.message
    assert fault.rollback() == "nothing was changed"

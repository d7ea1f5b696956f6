"""The non-proxy faults without an engine: their typed configs, catalog entries, and the
checks they make before touching anything.

Bad parameters are located load errors with the plugin's own words (what is allowed,
what was given); the effects themselves are tested on the demo system in
tests/integration/test_chaos_faults.py.
"""

from __future__ import annotations

import os
import subprocess
from textwrap import dedent
from typing import Any

import pytest
from pydantic import ValidationError

from clnrm.chaos.catalog import fault_types
from clnrm.chaos.faults import _linux, netfilter
from clnrm.chaos.faults.clock import ClockSkew, ClockSkewConfig
from clnrm.chaos.faults.container import SignalConfig, StopConfig
from clnrm.chaos.faults.netfilter import Partition, PartitionConfig
from clnrm.chaos.faults.resource import DiskFill, DiskFillConfig, IoThrottleConfig, data_root_disk
from clnrm.errors import ChaosError, ScenarioError
from clnrm.scenario import loads_scenario

MINE = {
    "partition": "network", "dns_failure": "network",
    "kill": "container", "stop": "container", "pause": "container", "restart": "container",
    "oom_kill": "container", "signal": "container",
    "cpu_limit": "resource", "cpu_stress": "resource", "memory_limit": "resource",
    "memory_pressure": "resource", "disk_fill": "resource", "fd_exhaustion": "resource",
    "io_throttle": "resource",
    "clock_skew": "application",
}

BASE = dedent("""
    [meta]
    name = "exp"
    [services.db]
    image = "x"
    [services.api]
    image = "x"
    [[steps]]
    name = "s"
    command = ["true"]
    [[chaos.faults]]
""")
FIRST_PARAM_LINE = 13


def load_fault(body: str) -> dict[str, Any]:
    sc = loads_scenario(BASE + dedent(body), source="exp.clnrm.toml")
    assert sc.chaos is not None
    return sc.chaos.faults[0].params


def load_error(body: str) -> str:
    with pytest.raises(ScenarioError) as err:
        load_fault(body)
    return str(err.value)


# -- catalog -----------------------------------------------------------------------------


def test_every_fault_is_in_the_catalog_with_its_category() -> None:
    types = fault_types()
    assert {name: types[name].category for name in MINE} == MINE
    assert all(not types[name].proxied for name in MINE)


@pytest.mark.parametrize("name", sorted(MINE))
def test_describe_documents_every_parameter(name: str) -> None:
    entry = fault_types()[name].describe()
    assert entry["type"] == name and entry["summary"] and len(entry["summary"]) <= 90
    for key, schema in entry["parameters"].items():
        assert schema.get("description"), f"{name}.{key} has no description"


def test_describe_shows_the_toml_spelling_of_partition_peers() -> None:
    entry = Partition.describe()
    assert set(entry["parameters"]) == {"with", "mode", "direction"}
    assert entry["parameters"]["mode"]["enum"] == ["drop", "reject"]
    assert entry["required"] == []


def test_required_parameters_are_listed() -> None:
    types = fault_types()
    assert types["cpu_limit"].describe()["required"] == ["cpus"]
    assert types["memory_limit"].describe()["required"] == ["limit_mb"]
    assert types["clock_skew"].describe()["required"] == ["offset"]


# -- located load errors -----------------------------------------------------------------


def test_an_unknown_parameter_names_the_valid_ones() -> None:
    text = load_error("""
        type = "stop"
        target = "api"
        timout = "5s"
    """)
    assert f"exp.clnrm.toml:{FIRST_PARAM_LINE + 2}: [chaos.faults[0].timout]" in text
    assert "unknown parameter" in text and "parameters of stop: restart, timeout" in text


def test_partition_mode_and_peers_are_checked() -> None:
    assert "Input should be 'drop' or 'reject'" in load_error("""
        type = "partition"
        target = "api"
        mode = "block"
    """)
    assert "at least 1 item" in load_error("""
        type = "partition"
        target = "api"
        with = []
    """)
    assert load_fault("""
        type = "partition"
        target = "api"
        with = ["db"]
        duration = "5s"
    """) == {"with": ["db"]}  # duration is the engine's, not the fault's


def test_signal_names_are_normalised_and_unknown_ones_refused() -> None:
    assert SignalConfig(signal="term").signal == "SIGTERM"
    assert SignalConfig(signal=" sigstop ").signal == "SIGSTOP"
    text = load_error("""
        type = "signal"
        target = "api"
        signal = "SIGFOO"
    """)
    assert "unknown signal 'SIGFOO'; use a name such as SIGTERM" in text


def test_durations_read_as_everywhere_else() -> None:
    assert StopConfig.model_validate({"timeout": "1m30s"}).timeout == 90.0
    with pytest.raises(ValidationError):
        StopConfig.model_validate({"timeout": "forever"})


def test_disk_fill_needs_exactly_one_size_and_an_absolute_path() -> None:
    assert "give exactly one of mb (a size) or percent" in load_error("""
        type = "disk_fill"
        target = "api"
    """)
    with pytest.raises(ValidationError, match="give exactly one"):
        DiskFillConfig(mb=5, percent=50)
    with pytest.raises(ValidationError, match=r"absolute directory path without '\.\.'"):
        DiskFillConfig(mb=5, path="tmp")
    with pytest.raises(ValidationError, match="absolute directory path"):
        DiskFillConfig(mb=5, path="/tmp/../etc")
    assert DiskFillConfig(percent=50, path="/var/tmp/").path == "/var/tmp"


def test_io_throttle_reads_sizes_and_needs_some_limit() -> None:
    cfg = IoThrottleConfig.model_validate({"write_bps": "1MiB", "read_bps": "500kb"})
    assert (cfg.write_bps, cfg.read_bps) == (1 << 20, 500_000)
    assert IoThrottleConfig(read_iops=10).read_iops == 10
    with pytest.raises(ValidationError, match="at least one of read_bps, write_bps"):
        IoThrottleConfig()
    assert 'expected a size such as 1048576, "512KiB" or "1MB", got \'fast\'' in load_error("""
        type = "io_throttle"
        target = "db"
        write_bps = "fast"
    """)
    with pytest.raises(ValidationError, match="String should match pattern"):
        IoThrottleConfig(read_iops=1, device="vda")


def test_clock_offsets_are_signed_durations() -> None:
    def offset(value: object) -> float:
        return ClockSkewConfig.model_validate({"offset": value}).offset

    assert [offset(v) for v in ("+1h", "-90s", "1m30s", -30, 3600)] == \
        [3600.0, -90.0, 90.0, -30.0, 3600.0]
    assert "offset must not be zero" in load_error("""
        type = "clock_skew"
        target = "api"
        offset = 0
    """)
    with pytest.raises(ValidationError, match=r'expected an offset such as "\+1h"'):
        offset("soon")
    with pytest.raises(ValidationError, match="longer than a year"):
        offset("-400d")


@pytest.mark.parametrize(("fault", "params", "message"), [
    ("cpu_limit", {}, "Field required"),
    ("cpu_limit", {"cpus": 0}, "greater than 0"),
    ("cpu_stress", {"workers": 0}, "greater than or equal to 1"),
    ("memory_limit", {"limit_mb": 5}, "greater than or equal to 6"),
    ("memory_pressure", {"mb": -1}, "greater than or equal to 1"),
    ("fd_exhaustion", {"processes": "some"}, "Input should be 'main' or 'all'"),
    ("oom_kill", {"margin_mb": 0}, "greater than or equal to 1"),
    ("kill", {"restart": "maybe"}, "valid boolean"),
    ("dns_failure", {"mode": "nxdomain"}, "Input should be 'drop' or 'reject'"),
    ("pause", {"for": "5s"}, "Extra inputs are not permitted"),
])
def test_bad_values_are_refused_with_what_is_allowed(fault: str, params: dict[str, Any],
                                                      message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        fault_types()[fault].Config.model_validate(params)


# -- checks before touching anything -----------------------------------------------------


class FakeApi:
    def __init__(self, image: str = "redis:7") -> None:
        self.image = image

    def inspect_container(self, cid: str) -> dict[str, Any]:
        return {"Config": {"Image": self.image}, "State": {"Running": True, "Pid": 1}}

    def info(self) -> dict[str, Any]:
        return {"DockerRootDir": "/proc"}


class FakeContext:
    """Services by name; the container pid is this test process, whose root is the host's."""

    run_id = "unit"

    def __init__(self, services: list[str]) -> None:
        self._services = services
        self.api = FakeApi()

    def services(self) -> list[str]:
        return list(self._services)

    def container_id(self, service: str) -> str:
        if service not in self._services:
            raise ChaosError(f"{service!r} is not a service of this test", target=service)
        return f"id-{service}"

    def container_pid(self, service: str) -> int:
        return os.getpid()


def test_clock_skew_refuses_images_without_the_python_otel_hook() -> None:
    fault = ClockSkew(ClockSkewConfig(offset="1h"), FakeContext(["cache"]), "cache")  # type: ignore[arg-type]
    with pytest.raises(ChaosError) as err:
        fault.inject()
    assert "clock_skew needs a clnrm/python-otel based image; redis:7 has no clnrm_freeze" \
        in err.value.message
    assert "FROM clnrm/python-otel" in (err.value.hint or "")


def test_partition_refuses_itself_and_unknown_peers() -> None:
    ctx = FakeContext(["api", "db"])
    with pytest.raises(ChaosError, match="cannot be partitioned from itself"):
        Partition(PartitionConfig.model_validate({"with": ["api"]}), ctx, "api").inject()  # type: ignore[arg-type]
    with pytest.raises(ChaosError, match="'dbb' is not a service of this test"):
        Partition(PartitionConfig.model_validate({"with": ["dbb"]}), ctx, "api").inject()  # type: ignore[arg-type]


def test_each_injection_has_its_own_rule_tag() -> None:
    ctx = FakeContext(["api", "db"])
    one = Partition(PartitionConfig(), ctx, "api")  # type: ignore[arg-type]
    two = Partition(PartitionConfig(), ctx, "api")  # type: ignore[arg-type]
    assert one.tag != two.tag and one.tag.startswith("clnrm-chaos-unit-")
    assert one.undo_record() == {"container": "id-api", "tag": one.tag}


def test_rollback_deletes_only_rules_bearing_the_injections_tag(
        monkeypatch: pytest.MonkeyPatch) -> None:
    listing = "\n".join([
        "-P INPUT ACCEPT",
        "-A INPUT -s 172.18.0.3/32 -m comment --comment clnrm-chaos-r-aaaa -j DROP",
        "-A INPUT -s 172.18.0.3/32 -m comment --comment clnrm-chaos-r-bbbb -j DROP",
        '-A OUTPUT -d 172.18.0.3/32 -p tcp -m comment --comment "clnrm-chaos-r-aaaa" '
        "-j REJECT --reject-with tcp-reset",
        "-A OUTPUT -d 172.18.0.9/32 -m comment --comment clnrm-chaos-r-aaaa-x -j DROP",
    ])

    def fake_run(pid: int, argv: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(argv, 0, stdout=listing, stderr="")

    monkeypatch.setattr(netfilter.netns, "run_in_netns", fake_run)
    assert netfilter.tagged_rules(1, "clnrm-chaos-r-aaaa") == [
        ["-D", "INPUT", "-s", "172.18.0.3/32", "-m", "comment", "--comment",
         "clnrm-chaos-r-aaaa", "-j", "DROP"],
        ["-D", "OUTPUT", "-d", "172.18.0.3/32", "-p", "tcp", "-m", "comment", "--comment",
         "clnrm-chaos-r-aaaa", "-j", "REJECT", "--reject-with", "tcp-reset"],
    ]


def test_io_throttle_explains_a_data_root_without_a_disk() -> None:
    with pytest.raises(ChaosError, match=r"data root /proc is on a virtual filesystem"):
        data_root_disk(FakeApi())


def test_disk_fill_files_are_unique_and_hidden() -> None:
    ctx = FakeContext(["api"])
    one = DiskFill(DiskFillConfig(mb=1), ctx, "api")  # type: ignore[arg-type]
    two = DiskFill(DiskFillConfig(mb=1, path="/"), ctx, "api")  # type: ignore[arg-type]
    assert one.file.startswith("/tmp/.clnrm-disk-fill-") and two.file.startswith("/.clnrm-")
    assert one.file != DiskFill(DiskFillConfig(mb=1), ctx, "api").file  # type: ignore[arg-type]


def test_restoring_no_memory_limit_uses_the_hosts_ram_in_the_engine() -> None:
    calls: list[dict[str, Any]] = []

    class Api:
        def update_container(self, cid: str, **kw: Any) -> None:
            calls.append(kw)

        def inspect_container(self, cid: str) -> dict[str, Any]:
            return {"State": {"Running": False}, "HostConfig": {"Memory": 64 << 20,
                                                                "MemorySwap": 64 << 20}}

    _linux.restore_memory(Api(), "c", {"memory": 0, "memswap": 0})
    ram = _linux.host_memory()
    assert calls == [{"mem_limit": ram, "memswap_limit": ram}]
    _linux.restore_memory(Api(), "c", {"memory": 256 << 20, "memswap": -1})
    assert calls[-1] == {"mem_limit": 256 << 20, "memswap_limit": -1}
    assert _linux.memory_limits(Api(), "c") == {"memory": 64 << 20, "memswap": 64 << 20}


def test_the_memory_hog_is_plain_shell() -> None:
    argv = _linux.hog_argv(3 << 20)
    assert argv[:2] == ["sh", "-c"] and "head -c 3145728 /dev/zero | tr '\\0' x" in argv[2]
    printing = argv[2].replace("while :; do sleep 1; done", 'printf %s "${#x}"')
    done = subprocess.run([*argv[:2], printing],
                          capture_output=True, text=True, timeout=10, check=True)
    assert done.stdout == str(3 << 20)

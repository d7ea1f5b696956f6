"""What a fault may touch: the containers of the current test, and nothing else.

Faults never get the engine client to roam with; they ask the context for a
service of *this* test by name, and the context refuses anything else.  That is how
"faults only target containers and networks of the current run" holds for every
plugin, third-party ones included.
"""

from __future__ import annotations

import random
import subprocess
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from clnrm.chaos import netns
from clnrm.errors import ChaosError

if TYPE_CHECKING:
    from clnrm.backends.docker import DockerSandbox
    from clnrm.chaos.journal import Journal
    from clnrm.chaos.proxy_manager import ProxyManager
    from clnrm.results import ExecResult


@dataclass
class UndoEnv:
    """What ``Fault.undo`` gets in ``clnrm gc``: the engine's low-level client only."""

    api: Any
    notes: list[str] = field(default_factory=list)


class ChaosContext:
    """The current test's services, as faults may see and change them."""

    def __init__(self, box: DockerSandbox, *, run_id: str, seed: int = 0,
                 journal: Journal | None = None) -> None:
        self.box = box
        self.run_id = run_id
        self.seed = seed
        self.journal = journal
        self.proxies: ProxyManager | None = None  # set by the engine when a fault needs one

    @property
    def api(self) -> Any:
        """The engine's low-level client (``docker.APIClient``)."""
        return self.box.api

    @property
    def network(self) -> str:
        """Name of the test's shared network."""
        return self.box.network_name

    def services(self) -> list[str]:
        return self.box.service_names()

    def container_id(self, service: str) -> str:
        cid = self.box.container_id(service)
        if cid is None:
            raise ChaosError(f"{service!r} is not a service of this test "
                             f"(services: {', '.join(self.services()) or 'none'})",
                             target=service)
        return cid

    def container_pid(self, service: str) -> int:
        """Host pid of the service's first process (changes on restart: ask each time)."""
        try:
            return netns.container_pid(self.api, self.container_id(service))
        except ChaosError as exc:
            raise ChaosError(f"{service}: {exc.message}", target=service) from exc

    def main_pid(self, service: str) -> int:
        """Host pid of the service's main program: the child of docker-init when the
        container runs with ``init``, else the first process."""
        pid = self.container_pid(service)
        try:
            with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as fh:
                children = [int(c) for c in fh.read().split()]
        except OSError:
            children = []
        exe = _comm(pid)
        return children[0] if exe in ("docker-init", "tini") and children else pid

    def ip(self, service: str) -> str:
        """The service's address on the test network."""
        ip = self.box.address_of(self.container_id(service))
        if not ip:
            raise ChaosError(f"{service!r} has no address on the test network", target=service)
        return ip

    def ips(self, service: str) -> list[str]:
        """Every address of the service (the test network and its topology links)."""
        nets = self.api.inspect_container(self.container_id(service))["NetworkSettings"]
        return sorted({n.get("IPAddress") for n in (nets.get("Networks") or {}).values()
                       if n.get("IPAddress")})

    def state(self, service: str) -> dict[str, Any]:
        """The engine's ``State`` of the service's container."""
        return dict(self.api.inspect_container(self.container_id(service))["State"])

    def nsenter(self, service: str, argv: Sequence[str], *, timeout: float = 10.0,
                check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a host program in the service's network namespace."""
        return netns.run_in_netns(self.container_pid(service), argv, timeout=timeout,
                                  check=check)

    def iptables(self, service: str, *rule: str, table: str = "filter",
                 check: bool = True) -> bool:
        return netns.iptables(self.container_pid(service), *rule, table=table, check=check)

    def exec(self, service: str, argv: list[str], *, timeout: float = 30.0) -> ExecResult:
        """Run argv inside the service's container and wait for it."""
        return self.box.exec_in(self.container_id(service), argv, env=None, workdir=None,
                                timeout=timeout)

    def exec_background(self, service: str, argv: list[str]) -> str:
        """Start argv inside the container without waiting (stress processes); the exec id."""
        cid = self.container_id(service)
        exec_id = self.api.exec_create(cid, argv, stdout=False, stderr=False)["Id"]
        self.api.exec_start(exec_id, detach=True)
        return str(exec_id)

    def exec_pid(self, exec_id: str) -> int:
        """Host pid of a background exec (0 once it has ended)."""
        info = self.api.exec_inspect(exec_id)
        return int(info.get("Pid") or 0) if info.get("Running") else 0

    def restart(self, service: str) -> None:
        """Start the service again after a kill or stop, release its start gate, and put
        its proxied ports back behind the chaos proxy (the netns is new)."""
        self.box.restart_service(service)
        if self.proxies is not None:
            self.proxies.reinstall(service)

    def rng(self, salt: str) -> random.Random:
        """A generator fixed by the run's seed and ``salt`` (a fault's id), so one seed
        replays the same experiment whatever else runs."""
        return random.Random(self.seed * 1_000_003 + zlib.crc32(salt.encode()))


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8") as fh:
            return fh.read().strip()
    except OSError:
        return ""

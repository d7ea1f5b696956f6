"""Network faults made of netfilter rules in the target's own network namespace.

``partition`` cuts the target off from some services, ``dns_failure`` from Docker's
embedded DNS server.  The rules are added with the host's ``iptables`` through
``nsenter --net`` (the image needs no tools), inside the target's namespace only, so
no other container or the host is affected, and nothing has to be proxied: a
partition also cuts connections opened before it (pools, keep-alive), as a real one
would.

Every rule carries ``-m comment --comment clnrm-chaos-<run>-<token>``, unique to one
injection, and rollback deletes exactly the rules bearing it: two faults on one
target, or the chaos proxy's own rules, are never disturbed.  ``clnrm gc`` does the
same from the journal (container id + tag) after a SIGKILL.  A container that
restarted meanwhile has a fresh namespace without the rules: nothing left to do.
"""

from __future__ import annotations

import secrets
import shlex
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import structlog
from pydantic import ConfigDict, Field

from clnrm.chaos import netns
from clnrm.chaos.base import C, Fault, FaultConfig
from clnrm.errors import ChaosError

if TYPE_CHECKING:
    from clnrm.chaos.context import ChaosContext, UndoEnv

log = structlog.get_logger("clnrm.chaos")

EMBEDDED_DNS = "127.0.0.11"
"""Docker's DNS server on user-defined networks (every clnrm network is one)."""

Mode = Literal["drop", "reject"]


def new_tag(run_id: str) -> str:
    """The comment that marks one injection's rules (iptables allows 256 characters)."""
    return f"clnrm-chaos-{run_id[:24]}-{secrets.token_hex(4)}"


def tagged_rules(pid: int, tag: str, table: str = "filter") -> list[list[str]]:
    """The ``-D`` argv of every rule of ``table`` in the netns of ``pid`` bearing ``tag``."""
    listing = netns.run_in_netns(pid, ["iptables", "-w", "5", "-t", table, "-S"]).stdout
    deletes = []
    for line in listing.splitlines():
        words = shlex.split(line)
        if words[:1] == ["-A"] and _has_comment(words, tag):
            deletes.append(["-D", *words[1:]])
    return deletes


def _has_comment(words: list[str], tag: str) -> bool:
    return any(a == "--comment" and b == tag for a, b in pairwise(words))


def delete_tagged(pid: int, tag: str, table: str = "filter") -> int:
    """Delete our rules; how many were deleted."""
    deletes = tagged_rules(pid, tag, table)
    for argv in deletes:
        netns.iptables(pid, *argv, table=table)
    return len(deletes)


def undo_tagged(api: Any, record: dict[str, Any]) -> str:
    """``clnrm gc``: delete the rules of ``record["tag"]`` from the recorded container."""
    cid, tag = str(record.get("container", "")), str(record.get("tag", ""))
    if not cid or not tag:
        return "incomplete record: nothing undone"
    try:
        pid = netns.container_pid(api, cid)
    except Exception:
        return f"container {cid[:12]} is not running: its rules went with its namespace"
    removed = delete_tagged(pid, tag)
    return f"deleted {removed} rule(s) tagged {tag} in container {cid[:12]}"


class _NetfilterFault(Fault[C]):
    """Shared bookkeeping: the tag, the container, deleting our rules."""

    category: ClassVar[Literal["network"]] = "network"

    def __init__(self, config: C, ctx: ChaosContext, target: str) -> None:
        super().__init__(config, ctx, target)
        self.tag = new_tag(ctx.run_id)

    def _add(self, chain: str, *rule: str) -> None:
        """Insert at the top of ``chain``, before anything else there may accept first."""
        self.ctx.iptables(self.target, "-I", chain, "-m", "comment", "--comment", self.tag,
                          *rule)

    def rollback(self) -> str:
        try:
            pid = self.ctx.container_pid(self.target)
        except ChaosError:
            return f"{self.target} is not running: its rules went with its namespace"
        removed = delete_tagged(pid, self.tag)
        log.debug("chaos.rules_deleted", target=self.target, tag=self.tag, rules=removed)
        return f"deleted {removed} rule(s) in {self.target}"

    def undo_record(self) -> dict[str, Any] | None:
        return {"container": self.cid, "tag": self.tag}

    @classmethod
    def undo(cls, record: dict[str, Any], env: UndoEnv) -> str:
        return undo_tagged(env.api, record)


def _verdict(mode: Mode, *match: str) -> list[list[str]]:
    """Rule bodies for ``mode``: a TCP reset for TCP when rejecting, so a connect fails at
    once with ECONNREFUSED rather than an ICMP error some stacks retry."""
    if mode == "drop":
        return [[*match, "-j", "DROP"]]
    return [[*match, "-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset"],
            [*match, "-j", "REJECT", "--reject-with", "icmp-port-unreachable"]]


class PartitionConfig(FaultConfig):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    peers: list[str] | None = Field(default=None, alias="with", min_length=1)
    """Services cut off from the target (``with = ["db", "cache"]``); default: all others."""
    mode: Mode = "drop"
    """``drop``: packets vanish (connects and reads time out); ``reject``: refused at once."""
    direction: Literal["both", "ingress", "egress"] = "both"
    """``ingress``: the peers cannot reach the target; ``egress``: the target cannot reach them."""


class Partition(_NetfilterFault[PartitionConfig]):
    """Cuts the target off from some services, both ways, including established connections.

    Rules match every address the peers have (the test network and their topology
    links), so no other path is left between them.  Addresses are read at injection:
    a peer that restarts with a new address during the partition escapes it.
    """

    type = "partition"
    summary = "cut the target off from other services (iptables DROP/REJECT in its netns)"
    Config = PartitionConfig

    def inject(self) -> str:
        cfg = self.config
        _ = self.cid  # fail before any rule if the target is gone
        peers = self._peers(cfg)
        cut: list[str] = []
        for peer in peers:
            for ip in self.ctx.ips(peer):
                if cfg.direction in ("both", "ingress"):
                    for body in _verdict(cfg.mode, "INPUT", "-s", ip):
                        self._add(*body)
                if cfg.direction in ("both", "egress"):
                    for body in _verdict(cfg.mode, "OUTPUT", "-d", ip):
                        self._add(*body)
                cut.append(f"{peer} ({ip})")
        if not cut:
            raise ChaosError("none of the peers has an address (are they running?)",
                             fault=self.type, target=self.target)
        arrows = {"both": "<->", "ingress": "<-", "egress": "->"}[cfg.direction]
        return f"partitioned {self.target} {arrows} {', '.join(cut)} ({cfg.mode})"

    def _peers(self, cfg: PartitionConfig) -> list[str]:
        services = self.ctx.services()
        if cfg.peers is None:
            return [s for s in services if s != self.target]
        for peer in cfg.peers:
            if peer == self.target:
                raise ChaosError("a service cannot be partitioned from itself",
                                 fault=self.type, target=self.target,
                                 hint="list other services in with = [...]")
            self.ctx.container_id(peer)  # a clear error for a name that is not a service
        return list(dict.fromkeys(cfg.peers))


class DnsFailureConfig(FaultConfig):
    mode: Mode = "drop"
    """``drop``: lookups time out (the resolver's timeout, glibc: 5 s x 2 tries);
    ``reject``: they fail at once."""


class DnsFailure(_NetfilterFault[DnsFailureConfig]):
    """The target cannot resolve names: its queries to Docker's embedded DNS are blocked.

    The engine's ``nat OUTPUT`` rules DNAT ``127.0.0.11:53`` to a random port of the
    embedded server before the ``filter`` table sees a packet, so a rule on
    ``--dport 53`` would never match.  The rules match the connection's original
    destination instead (``-m conntrack --ctorigdst 127.0.0.11 --ctorigdstport 53``),
    which bites after the DNAT whatever port the engine chose.  Other nameservers in
    the container's ``resolv.conf`` (custom ``dns``) are blocked on port 53 as well.
    Connections already open keep working; new connections by name fail.
    """

    type = "dns_failure"
    summary = "the target cannot resolve names (its DNS queries are dropped or rejected)"
    Config = DnsFailureConfig

    def inject(self) -> str:
        cfg = self.config
        _ = self.cid  # fail before any rule if the target is gone
        servers = self._nameservers()
        for proto in ("udp", "tcp"):
            for server in servers:
                if server == EMBEDDED_DNS:
                    match = ["OUTPUT", "-d", f"{EMBEDDED_DNS}/32", "-p", proto, "-m", "conntrack",
                             "--ctorigdst", EMBEDDED_DNS, "--ctorigdstport", "53"]
                else:
                    match = ["OUTPUT", "-d", server, "-p", proto, "--dport", "53"]
                verdict = (["-j", "DROP"] if cfg.mode == "drop" else
                           ["-j", "REJECT", "--reject-with",
                            "tcp-reset" if proto == "tcp" else "icmp-port-unreachable"])
                self._add(*match, *verdict)
        return f"DNS {'dropped' if cfg.mode == 'drop' else 'rejected'} for {self.target} " \
               f"({', '.join(servers)})"

    def _nameservers(self) -> list[str]:
        """The embedded server plus whatever else the container's resolv.conf names (read
        through ``/proc/<pid>/root``, so the image needs no tools)."""
        servers = [EMBEDDED_DNS]
        path = Path(f"/proc/{self.ctx.container_pid(self.target)}/root/etc/resolv.conf")
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return servers
        for line in text.splitlines():
            words = line.split()
            if (len(words) >= 2 and words[0] == "nameserver" and ":" not in words[1]
                    and words[1] not in servers):
                servers.append(words[1])
        return servers


FAULTS: list[type[Fault[Any]]] = [Partition, DnsFailure]

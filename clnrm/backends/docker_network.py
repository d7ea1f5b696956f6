"""Link networks: the small private networks that enforce a declared topology.

Each link (two services, maybe the step container) gets an internal bridge
network with an explicit small subnet.  The engine's default address pools
hold only about thirty networks, which a few topologies side by side would
exhaust; a /29 per link from :data:`LINK_SUBNETS_ENV` (default
172.16.0.0/16, just below Docker's own pools, and skipped where the host has
a route) leaves room for thousands.
"""

from __future__ import annotations

import ipaddress
import os
import random
import socket
from collections.abc import Iterator, Sequence
from typing import Any, Final

import structlog

from clnrm.errors import BackendError

log = structlog.get_logger("clnrm.docker")

ICC_OFF: Final = {"com.docker.network.bridge.enable_icc": "false"}
"""On the test network of a linked sandbox: containers reach the gateway (the OTLP
receiver) but not each other."""
LINK_SUBNETS_ENV: Final = "CLNRM_LINK_SUBNETS"
_DEFAULT_LINK_SUBNETS: Final = "172.16.0.0/16"
_CANDIDATES: Final = 40


def create_link_network(api: Any, name: str, members: Sequence[str],
                        labels: dict[str, str]) -> str:
    """Create one link network (internal, labelled like the rest of the run); its id."""
    from docker.errors import APIError
    from docker.types import IPAMConfig, IPAMPool

    labels = {**labels, "clnrm.link": ",".join(members)[:200]}
    last: Exception | None = None
    for subnet in link_subnets(len(members)):
        try:
            pool = IPAMPool(subnet=str(subnet), gateway=str(next(subnet.hosts())))
            net = api.create_network(name, driver="bridge", internal=True, labels=labels,
                                     check_duplicate=True, ipam=IPAMConfig(pool_configs=[pool]))
            return str(net["Id"])
        except APIError as exc:
            last = exc
            if "overlap" not in str(exc).lower():  # only a taken subnet is worth another try
                break
    detail = (getattr(last, "explanation", None) or str(last)) if last else "no free subnet"
    raise BackendError(f"could not create link network {name} for {', '.join(members)}: "
                       f"{str(detail).strip()}", backend="docker",
                       hint=f"set {LINK_SUBNETS_ENV} to a private range this host does not "
                            f"use (default {_DEFAULT_LINK_SUBNETS})")


def link_subnets(members: int) -> Iterator[ipaddress.IPv4Network]:
    """Random candidate subnets just big enough for ``members`` (+ gateway, network, broadcast),
    skipping any the host routes."""
    text = os.environ.get(LINK_SUBNETS_ENV, _DEFAULT_LINK_SUBNETS)
    try:
        pool = ipaddress.IPv4Network(text.strip(), strict=False)
    except ValueError:
        log.warning("link_subnets.invalid", value=text, using=_DEFAULT_LINK_SUBNETS)
        pool = ipaddress.IPv4Network(_DEFAULT_LINK_SUBNETS)
    prefix = 32 - max(3, (members + 3 - 1).bit_length())
    routed = _host_routes()
    count = 2 ** (prefix - pool.prefixlen) if prefix >= pool.prefixlen else 0
    for _ in range(min(_CANDIDATES, count)):
        index = random.randrange(count)
        subnet = ipaddress.IPv4Network((int(pool.network_address) + (index << (32 - prefix)),
                                        prefix))
        if not any(subnet.overlaps(r) for r in routed):
            yield subnet


def _host_routes() -> list[ipaddress.IPv4Network]:
    """Destinations in this host's routing table (without the default route)."""
    routes = []
    try:
        with open("/proc/net/route", encoding="ascii") as fh:
            next(fh, None)
            for line in fh:
                fields = line.split()
                dest, mask = (int(fields[1], 16), int(fields[7], 16))
                if mask == 0:
                    continue
                net = ipaddress.IPv4Address(socket.ntohl(dest))
                bits = bin(mask).count("1")
                routes.append(ipaddress.IPv4Network((net, bits), strict=False))
    except (OSError, ValueError, IndexError):
        pass
    return routes



"""The environment a measurement was taken in, so baselines compare like with like.

A latency measured on a 2-CPU laptop means nothing next to one from a 32-CPU CI
runner, and an engine upgrade can move every figure.  Baselines are therefore
kept per fingerprint: the backend, the CPUs the engine sees, the engine's version
and the kernel's ``major.minor`` (patch releases come too often to split on).
A run is compared only with baselines of the same :attr:`Fingerprint.key`.
"""

from __future__ import annotations

import os
import platform
import re
from typing import Any

from pydantic import BaseModel, ConfigDict


class Fingerprint(BaseModel):
    """What decides whether two measurements may be compared."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    backend: str  # docker | local
    cpus: int
    engine: str  # "27.3.1" for docker, "none" for the local backend
    kernel: str  # "6.8"

    @property
    def key(self) -> str:
        """Stable text key, e.g. ``docker-27.3.1/cpus=2/kernel=6.8``."""
        return f"{self.backend}-{self.engine}/cpus={self.cpus}/kernel={self.kernel}"

    def __str__(self) -> str:
        return self.key


def kernel_minor(release: str) -> str:
    """``"6.8.0-45-generic"`` -> ``"6.8"``; anything unreadable is kept as it is."""
    match = re.match(r"(\d+)\.(\d+)", release.strip())
    return f"{match.group(1)}.{match.group(2)}" if match else (release.strip() or "unknown")


def from_engine_info(info: dict[str, Any]) -> Fingerprint:
    """From ``docker info`` (``APIClient.info()``): CPUs and kernel as the engine sees them."""
    return Fingerprint(backend="docker", cpus=int(info.get("NCPU") or os.cpu_count() or 1),
                       engine=str(info.get("ServerVersion") or "unknown"),
                       kernel=kernel_minor(str(info.get("KernelVersion") or platform.release())))


def local_fingerprint() -> Fingerprint:
    """The host itself (the local backend runs services as host processes)."""
    return Fingerprint(backend="local", cpus=os.cpu_count() or 1, engine="none",
                       kernel=kernel_minor(platform.release()))


def fingerprint_of(box: Any) -> Fingerprint:
    """The fingerprint of a sandbox's backend: the engine's view for docker, else the host."""
    api = getattr(box, "_api", None)
    if api is not None:
        return from_engine_info(api.info())
    return local_fingerprint()


def current_fingerprint(backend: str = "docker") -> Fingerprint:
    """This machine's fingerprint for ``backend`` (asks the engine for docker)."""
    if backend == "local":
        return local_fingerprint()
    from clnrm.backends.docker import docker_client

    return from_engine_info(docker_client().api.info())


def parse_key(key: str) -> Fingerprint:
    """The inverse of :attr:`Fingerprint.key` (``docker-27.3.1/cpus=2/kernel=6.8``)."""
    from clnrm.errors import PerformanceError

    match = re.fullmatch(r"([a-z]+)-(.+)/cpus=(\d+)/kernel=(.+)", key.strip())
    if not match:
        raise PerformanceError(f"{key!r} is not a fingerprint key",
                               hint="keys look like docker-27.3.1/cpus=2/kernel=6.8; "
                                    "`clnrm perf baseline list` shows the stored ones")
    return Fingerprint(backend=match.group(1), engine=match.group(2),
                       cpus=int(match.group(3)), kernel=match.group(4))

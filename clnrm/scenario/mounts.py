"""Refuse bind mounts that hand a test container the host.

A test file is code someone else may have written.  Mounting the container
engine's socket, ``/`` or ``/etc`` read-write gives whatever runs in the
container root on the machine running the tests.  So a service volume whose
host path is sensitive is a load error unless the file opts in with the
top-level key ``allow_host_mounts = true`` or the command line passes
``--allow-host-mounts`` (:func:`allowing_host_mounts`).

Sensitive means, after resolving symlinks and ``..``:

* the engine's socket, by any path that resolves to it (``docker.sock``,
  ``containerd.sock``, ``podman.sock`` and the socket ``DOCKER_HOST`` names);
  ``read_only`` does not help: a read-only bind of a socket still allows
  ``connect()``, and the engine API behind it is full control;
* inside or equal to a system path (:data:`SYSTEM_PATHS`) or a credential
  folder of the user's home (:data:`HOME_SECRETS`);
* a parent of any of those or of the home itself (``/``, ``/var``, ``/home``,
  the home): the mount would contain them.

Prefixes match whole path components: ``/etc`` refuses ``/etc/passwd`` but not
``/etcetera``.  Named volumes and relative paths are resolved like the rest
(relative ones against the current directory), so ``../../etc`` is refused too.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Final

from clnrm.scenario.diagnostics import Problem
from clnrm.scenario.locate import KeyPath
from clnrm.scenario.model import ServiceConfig

SYSTEM_PATHS: Final = (
    "/etc", "/proc", "/sys", "/dev", "/boot", "/root", "/run", "/var/run", "/var/lib/docker",
    "/var/lib/containerd",
)  # fmt: skip
"""Host paths a test container may not mount (nor any path inside or above them)."""
HOME_SECRETS: Final = (".ssh", ".aws", ".docker", ".kube", ".gnupg", ".config/gcloud", ".azure")
"""Folders of the user's home holding credentials (the home itself and its parents too)."""
ENGINE_SOCKETS: Final = ("docker.sock", "containerd.sock", "podman.sock", "dockershim.sock")

OPT_IN_HINT: Final = (
    "remove the mount (copy the files you need into the image or a folder of the project), "
    "or opt in with allow_host_mounts = true at the top of the file or --allow-host-mounts"
)

_allowed: ContextVar[bool] = ContextVar("clnrm_allow_host_mounts", default=False)


@contextmanager
def allowing_host_mounts(enabled: bool = True) -> Iterator[None]:
    """Inside the block, files load as if each had ``allow_host_mounts = true`` (the CLI flag)."""
    token = _allowed.set(enabled or _allowed.get())
    try:
        yield
    finally:
        _allowed.reset(token)


def host_mount_problems(
    services: Mapping[str, ServiceConfig],
    origin: Mapping[str, KeyPath],
    *,
    allowed: bool = False,
) -> list[Problem]:
    """One problem per refused volume, located at ``services.NAME.volumes[i]``."""
    if allowed or _allowed.get():
        return []
    problems = []
    for name, config in services.items():
        for index, volume in enumerate(config.volumes):
            why = sensitive_reason(volume.host_path)
            if why is None:
                continue
            problems.append(
                Problem(
                    f"service '{name}' mounts host path {volume.host_path!r}: {why}",
                    (*origin.get(name, ("services", name)), "volumes", index),
                    OPT_IN_HINT,
                )
            )
    return problems


def sensitive_reason(host_path: str) -> str | None:
    """Why mounting ``host_path`` would expose the host, or ``None`` if it would not."""
    raw = os.path.expanduser(host_path) if host_path.startswith("~") else host_path
    written = Path(os.path.abspath(raw))
    real = _resolved(raw)
    if real != written:
        # the path as written counts too: resolution may be denied or differ on the engine
        why = _reason(written, "it")
        if why is not None:
            return why
    return _reason(real, "it" if real == written else f"it resolves to {real}, which")


def _resolved(raw: str) -> Path:
    try:
        return Path(os.path.realpath(raw))
    except OSError:  # e.g. /proc/1/root: permission denied while resolving
        return Path(os.path.abspath(raw))


def _reason(real: Path, lead: str) -> str | None:
    if real.name in ENGINE_SOCKETS or real in _engine_sockets():
        return (
            f"{lead} is the container engine's socket: it gives the container root on the "
            "host; read_only does not help (a read-only bind of a socket still allows connect)"
        )
    if real == Path("/"):
        return f"{lead} is the host's root folder: the container could read and change the host"
    for sensitive, kind in _sensitive_paths():
        if real == sensitive:
            return f"{lead} is the host's {kind} folder {sensitive}"
        if sensitive in real.parents:
            return f"{lead} is inside the host's {kind} folder {sensitive}"
        if real in sensitive.parents:
            return f"{lead} contains the host's {kind} folder {sensitive}"
    home = _home()
    if home is not None and (real == home or real in home.parents):
        return f"{lead} is or contains the user's home folder {home}"
    return None


def _home() -> Path | None:
    try:
        return Path(os.path.realpath(Path.home()))
    except (RuntimeError, KeyError):
        return None


def _sensitive_paths() -> list[tuple[Path, str]]:
    """System paths (as written and resolved), then the home's credential folders, in order."""
    paths: dict[Path, str] = {}
    for text in SYSTEM_PATHS:
        paths.setdefault(Path(text), "system")
        paths.setdefault(Path(os.path.realpath(text)), "system")
    home = _home()
    if home is not None:
        for secret in HOME_SECRETS:
            paths.setdefault(home / secret, "credential")
    return list(paths.items())


def _engine_sockets() -> set[Path]:
    sockets = {Path(os.path.realpath(f"/var/run/{name}")) for name in ENGINE_SOCKETS}
    host = os.environ.get("DOCKER_HOST", "")
    if host.startswith("unix://"):
        sockets.add(Path(os.path.realpath(host[len("unix://") :])))
    return sockets

"""``clnrm doctor``: can this machine run clnrm, and if not, what to do about it.

Each check is data (:class:`DoctorCheck`): what was looked at, what was found, and a
fix a user can type. Required checks (the engine, the default step image, the
self-test image, free disk) make ``clnrm doctor`` exit 1 when they fail; optional
parts (network-fault tools, the memory, Ray, the demo images) only warn, since the
core loop (``init``, ``validate``, ``run``, reports) works without them.

Nothing here starts, pulls or builds anything: it only asks the engine and the host.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, computed_field

from clnrm import __version__

GIB: Final = 1 << 30
DISK_FAIL_BYTES: Final = 2 * GIB
"""Below this, image builds and run artifacts fail part-way: a required check fails."""
DISK_WARN_BYTES: Final = 10 * GIB
"""The local images take ~1.3 GiB, their build caches and wheels as much again."""
REQUIRED_IMAGES: Final = frozenset({"busybox", "python-otel"})
"""The default step image, and the one ``clnrm self-test`` and ``clnrm init``'s test need."""
ENGINE_FIX: Final = ("start the Docker engine (Docker Desktop, or `sudo systemctl start docker` "
                     "on Linux), or point DOCKER_HOST at one; without an engine only "
                     "`--backend local` runs")


class CheckStatus(StrEnum):
    OK = "ok"
    WARN = "warn"
    """Something optional is missing or out of date; clnrm's core loop still works."""
    FAIL = "fail"
    SKIP = "skip"
    """Could not be checked because something it depends on failed (named in summary)."""


class DoctorCheck(BaseModel):
    """One thing ``clnrm doctor`` looked at."""

    model_config = ConfigDict(frozen=True)

    name: str
    status: CheckStatus
    summary: str
    """What was found, e.g. ``Docker 26.1.5 (API 1.45), linux/amd64``."""
    fix: str | None = None
    """A command or step that makes the check pass; None when it passes."""
    required: bool = False
    """A required check that fails makes ``clnrm doctor`` exit 1."""


class DoctorReport(BaseModel):
    """Every check of one ``clnrm doctor`` run (the ``--format json`` document)."""

    model_config = ConfigDict(frozen=True)

    clnrm_version: str
    python: str
    platform: str
    checks: list[DoctorCheck]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        """True when no required check failed or was skipped."""
        return not any(c.required and c.status in (CheckStatus.FAIL, CheckStatus.SKIP)
                       for c in self.checks)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1


def diagnose(client_factory: Callable[[], Any] | None = None) -> DoctorReport:
    """Run every check; ``client_factory`` makes the engine client (default: clnrm's own)."""
    if client_factory is None:
        from clnrm.backends.docker import docker_client

        client_factory = docker_client
    engine, client, info = check_engine(client_factory)
    checks = [engine, check_cgroup(info), check_network_fault_tools()]
    checks += check_images(client)
    checks += [check_memory(), check_ray(), check_disk(info)]
    return DoctorReport(clnrm_version=__version__, python=platform.python_version(),
                        platform=f"{sys.platform}/{platform.machine()}", checks=checks)


def check_engine(client_factory: Callable[[], Any]) -> tuple[DoctorCheck, Any, dict[str, Any]]:
    """The engine answers, and its version; returns the client and ``docker info`` too."""
    try:
        client = client_factory()
        version = client.version()
        info = client.info()
    except Exception as exc:  # any failure here is the answer, not a bug
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return (DoctorCheck(name="engine", status=CheckStatus.FAIL, required=True,
                            summary=f"not reachable: {first}", fix=ENGINE_FIX), None, {})
    where = getattr(getattr(client, "api", None), "base_url", "") or ""
    summary = (f"Docker {version.get('Version', '?')} (API {version.get('ApiVersion', '?')}), "
               f"{version.get('Os', '?')}/{version.get('Arch', '?')}"
               + (f" at {where}" if where else ""))
    return DoctorCheck(name="engine", status=CheckStatus.OK, required=True,
                       summary=summary), client, info


def check_cgroup(info: dict[str, Any]) -> DoctorCheck:
    """The cgroup version the resource faults (cpu/memory/io pressure) will write to.

    Both v1 and v2 are supported (``clnrm.chaos.faults._cgroup``); an engine that does
    not say which is a warning, since a fault may then fail at its first write.
    """
    if not info:
        return DoctorCheck(name="cgroup", status=CheckStatus.SKIP, summary="engine not reachable")
    version = str(info.get("CgroupVersion") or "")
    driver = info.get("CgroupDriver") or "?"
    if version in ("1", "2"):
        return DoctorCheck(name="cgroup", status=CheckStatus.OK,
                           summary=f"cgroup v{version} ({driver} driver)")
    return DoctorCheck(name="cgroup", status=CheckStatus.WARN,
                       summary=f"the engine does not report its cgroup version ({driver} driver)",
                       fix="resource faults support cgroup v1 and v2; check `docker info` "
                           "shows a Cgroup Version")


def check_network_fault_tools() -> DoctorCheck:
    """Network faults enter a container's netns from the host with nsenter and iptables."""
    missing = [tool for tool in ("nsenter", "iptables") if _which(tool) is None]
    if missing:
        packages = " ".join({"nsenter": "util-linux", "iptables": "iptables"}[t] for t in missing)
        return DoctorCheck(name="network faults", status=CheckStatus.WARN,
                           summary=f"{' and '.join(missing)} not found: network faults "
                                   "(partition, iptables drops) cannot run",
                           fix=f"sudo apt-get install -y {packages} (on Linux; Docker Desktop "
                               "hides container namespaces: use the proxy faults there)")
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        return DoctorCheck(name="network faults", status=CheckStatus.WARN,
                           summary="nsenter and iptables found, but entering a container's "
                                   "network namespace needs root",
                           fix="run chaos experiments with network faults as root (sudo)")
    return DoctorCheck(name="network faults", status=CheckStatus.OK,
                       summary="nsenter and iptables found, running as root")


def check_images(client: Any) -> list[DoctorCheck]:
    """Each catalogue image: present, and built from the current recipe (its content hash)."""
    from clnrm.images import HASH_LABEL, KNOWN_IMAGES, RecipeContext, content_hash

    checks = []
    for name, spec in KNOWN_IMAGES.items():
        required = name in REQUIRED_IMAGES
        label = f"image {name}"
        if client is None:
            checks.append(DoctorCheck(name=label, status=CheckStatus.SKIP, required=required,
                                      summary="engine not reachable"))
            continue
        build = f"clnrm images build {name}"
        try:
            image = _local_image(client, spec.tag)
        except Exception as exc:
            checks.append(DoctorCheck(name=label, status=CheckStatus.FAIL, required=required,
                                      summary=f"cannot look up {spec.tag}: {exc}", fix=build))
            continue
        if image is None:
            checks.append(DoctorCheck(
                name=label, status=CheckStatus.FAIL if required else CheckStatus.WARN,
                required=required, summary=f"{spec.tag} missing", fix=build))
            continue
        short = str(image.id).removeprefix("sha256:")[:12]
        try:
            digest = content_hash(spec, spec.recipe.inputs(RecipeContext(client=client,
                                                                         spec=spec)))
        except Exception as exc:
            first = str(exc).splitlines()[0]
            checks.append(DoctorCheck(
                name=label, status=CheckStatus.WARN, required=required,
                summary=f"{spec.tag} present ({short}); cannot tell if current: {first}",
                fix=build))
            continue
        if image.labels.get(HASH_LABEL) != digest:
            checks.append(DoctorCheck(
                name=label, status=CheckStatus.WARN, required=required,
                summary=f"{spec.tag} present ({short}) but built from an older recipe",
                fix=build))
            continue
        checks.append(DoctorCheck(name=label, status=CheckStatus.OK, required=required,
                                  summary=f"{spec.tag} present and current ({short})"))
    return checks


def check_memory() -> DoctorCheck:
    """Where the shared memory lives, and whether its SQLite file reads.

    Read-only SQLite, without starting Chroma: doctor must not take the store's writer
    role or wait behind one. ``clnrm memory check`` looks deeper (the index on disk).
    """
    from clnrm.extras import installed

    if not installed("memory"):
        return DoctorCheck(name="memory", status=CheckStatus.WARN,
                           summary="the memory extra (chromadb, scikit-learn) is not installed; "
                                   "memory, perf baselines and the swarm need it",
                           fix="pip install 'clnrm[memory]'")
    from clnrm.memory._open import resolve_location

    where = resolve_location(None)
    if isinstance(where, str):
        return DoctorCheck(name="memory", status=CheckStatus.OK,
                           summary=f"Chroma server {where} ($CLNRM_MEMORY; not probed)")
    if not where.exists():
        parent = _existing_parent(where)
        if not os.access(parent, os.W_OK):
            return DoctorCheck(name="memory", status=CheckStatus.WARN,
                               summary=f"{where} does not exist and {parent} is not writable",
                               fix="set CLNRM_MEMORY to a writable folder, or pass --memory")
        return DoctorCheck(name="memory", status=CheckStatus.OK,
                           summary=f"{where} (not created yet; made on first use)")
    database = where / "chroma" / "chroma.sqlite3"
    if not database.is_file():
        return DoctorCheck(name="memory", status=CheckStatus.WARN,
                           summary=f"{where} exists but holds no chroma/chroma.sqlite3",
                           fix="clnrm memory check (or point CLNRM_MEMORY at the store)")
    try:
        records = _read_store(database)
    except Exception as exc:  # sqlite3.Error, OSError: the message is the finding
        return DoctorCheck(name="memory", status=CheckStatus.WARN,
                           summary=f"{database}: cannot read: {exc}",
                           fix="clnrm memory check (then clnrm memory repair if it says so)")
    return DoctorCheck(name="memory", status=CheckStatus.OK,
                       summary=f"{where}: {records} records, SQLite quick_check ok")


def check_ray() -> DoctorCheck:
    """Ray runs the agent swarm (``clnrm swarm``); everything else works without it."""
    from importlib.metadata import PackageNotFoundError, version

    from clnrm.extras import installed

    if not installed("swarm"):
        return DoctorCheck(name="ray", status=CheckStatus.WARN,
                           summary="not installed: `clnrm swarm` needs it",
                           fix="pip install 'clnrm[swarm]'")
    try:
        found = version("ray")
    except PackageNotFoundError:
        found = "?"
    return DoctorCheck(name="ray", status=CheckStatus.OK, summary=f"ray {found}")


def check_disk(info: dict[str, Any]) -> DoctorCheck:
    """Free space where the engine keeps images (when visible from here), else the home."""
    root = Path(str(info.get("DockerRootDir") or ""))
    if not str(root) or str(root) == "." or not root.exists():
        root = Path.home()
    try:
        free = shutil.disk_usage(root).free
    except OSError as exc:
        return DoctorCheck(name="disk", status=CheckStatus.WARN,
                           summary=f"cannot read free space of {root}: {exc}")
    text = f"{free / GIB:.1f} GiB free on {root}"
    fix = "free space: `docker image prune`, `clnrm gc`, or remove old .clnrm/runs"
    if free < DISK_FAIL_BYTES:
        return DoctorCheck(name="disk", status=CheckStatus.FAIL, required=True,
                           summary=text + f" (needs {DISK_FAIL_BYTES // GIB} GiB)", fix=fix)
    if free < DISK_WARN_BYTES:
        return DoctorCheck(name="disk", status=CheckStatus.WARN, required=True,
                           summary=text + f" (under {DISK_WARN_BYTES // GIB} GiB)", fix=fix)
    return DoctorCheck(name="disk", status=CheckStatus.OK, required=True, summary=text)


def _read_store(database: Path) -> int:
    """Records in a Chroma SQLite file, read-only, after SQLite's own quick_check."""
    import sqlite3
    from contextlib import closing

    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)) as db:
        verdict = db.execute("PRAGMA quick_check").fetchone()[0]
        if verdict != "ok":
            raise sqlite3.DatabaseError(f"quick_check: {verdict}")
        return int(db.execute("SELECT count(*) FROM embeddings").fetchone()[0])


def _local_image(client: Any, ref: str) -> Any | None:
    from clnrm.images._engine import local_image

    return local_image(client, ref)


def _which(tool: str) -> str | None:
    """``shutil.which`` plus the sbin folders a non-root PATH often lacks."""
    found = shutil.which(tool)
    if found:
        return found
    for folder in ("/usr/sbin", "/sbin", "/usr/bin"):
        if Path(folder, tool).is_file():
            return str(Path(folder, tool))
    return None


def _existing_parent(path: Path) -> Path:
    for parent in path.parents:
        if parent.exists():
            return parent
    return Path("/")

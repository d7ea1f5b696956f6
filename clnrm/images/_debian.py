"""Recipe for ``clnrm/debian:bookworm``: ``debootstrap --variant=minbase``, imported via the API.

No registry is reachable, so the Debian base is bootstrapped on the host from the
host's own apt mirror (see ``_mirror``) and imported as a single-layer image.
debootstrap needs root; downloaded packages are kept in ``~/.cache/clnrm/debootstrap``
so a rebuild fetches nothing new.

Users who have a registry (and hosts where debootstrap cannot run: macOS, Docker
Desktop, no root) opt in with ``clnrm images build --pull``: the base is then Debian's
own ``debian:bookworm-slim`` with the same apt/dpkg config. An image made that way is
labelled so later builds without ``--pull`` keep it (until ``--force``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from importlib import resources
from pathlib import Path
from typing import Final

from clnrm.errors import BackendError
from clnrm.images._engine import build_files, import_rootfs, local_image
from clnrm.images._host import ensure_host_packages, is_root, run_streaming
from clnrm.images._mirror import MIRROR_ENV, SUITE, debian_mirror
from clnrm.images._model import RecipeContext
from clnrm.images._wheels import cache_root

VARIANT: Final = "minbase"
REGISTRY_BASE: Final = "debian:bookworm-slim"
"""What ``--pull`` builds ``clnrm/debian`` FROM (Debian's own minbase-like image)."""
BASE_LABEL: Final = "clnrm.image.base"
"""Set to :data:`REGISTRY_BASE` on a ``clnrm/debian`` made with ``--pull``."""
PULL_HINT: Final = (f"or, with a registry, take Debian's image ({REGISTRY_BASE}) instead: "
                    "clnrm images build --pull")
DEBOOTSTRAP_TIMEOUT_S: Final = 1200
CONFIG_CHANGES: Final = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    'CMD ["bash"]',
)
"""Image config applied at import (``docker import --change``)."""
_DROPPED_FROM_ROOTFS: Final = ("dev", "proc", "sys")
"""Directories kept empty in the image: the engine mounts its own there."""
_TRIMMED: Final = (
    "var/cache/apt/archives/*.deb",
    "var/cache/apt/*.bin",
    "var/lib/apt/lists/*_*",
    "usr/share/doc/*/*",
    "usr/share/man/*",
    "usr/share/info/*",
    "usr/share/locale/*",
    "usr/share/lintian/*",
)
"""Globs removed from the bootstrapped tree (names in ``_KEPT`` survive)."""
_KEPT: Final = frozenset({"copyright", "locale.alias"})
_DATA_FILES: Final = {
    "etc/apt/apt.conf.d/docker-clean": "apt-clean.conf",
    "etc/dpkg/dpkg.cfg.d/docker-excludes": "dpkg-excludes.cfg",
}


class DebianRootfsRecipe:
    """Bootstrap a minimal bookworm root filesystem and import it as one layer."""

    failure_hint = (
        "debootstrap needs root and the Debian mirror; the mirror is taken from the host's "
        f"apt sources (override with {MIRROR_ENV}=http://your-mirror/debian); the full log "
        "is in the debootstrap output above"
    )

    def inputs(self, ctx: RecipeContext) -> dict[str, str]:
        if _from_registry(ctx):
            return {"source": REGISTRY_BASE, "dockerfile": _registry_dockerfile(),
                    **{dest: _data_text(src) for dest, src in _DATA_FILES.items()}}
        mirror = debian_mirror()
        return {
            "suite": SUITE,
            "variant": VARIANT,
            "mirror": mirror,
            "include": ",".join(_includes(mirror)),
            "changes": json.dumps(CONFIG_CHANGES),
            "dropped": ",".join(_DROPPED_FROM_ROOTFS),
            "trimmed": ",".join(_TRIMMED),
            **{dest: _data_text(src) for dest, src in _DATA_FILES.items()},
        }

    def build(self, ctx: RecipeContext, labels: dict[str, str]) -> str:
        if _from_registry(ctx):
            files: dict[str, bytes | Path] = {"Dockerfile": _registry_dockerfile().encode()}
            files.update({src: _data_text(src).encode() for src in _DATA_FILES.values()})
            return build_files(ctx, files, labels=labels, failure_hint=(
                f"--pull builds FROM {REGISTRY_BASE}: check `docker pull {REGISTRY_BASE}` "
                "works (registry reachable, logged in)"))
        if not sys.platform.startswith("linux"):
            raise BackendError(
                f"building {ctx.spec.tag} runs debootstrap, which needs a Linux host",
                backend="docker",
                hint=f"build the images on Linux as root, {PULL_HINT}",
            )
        if not is_root():
            raise BackendError(
                f"building {ctx.spec.tag} needs root (debootstrap creates device nodes "
                "and chroots)",
                backend="docker",
                hint=f"run it as root: sudo clnrm images build {ctx.spec.name}, {PULL_HINT}",
            )
        ensure_host_packages(
            ["debootstrap", "debian-archive-keyring"],
            present=_has_debootstrap,
            why=f"build {ctx.spec.tag}",
            emit=ctx.emit,
        )
        mirror = debian_mirror()
        workdir = Path(tempfile.mkdtemp(prefix="clnrm-debian-"))
        try:
            rootfs = workdir / "rootfs"
            self._bootstrap(ctx, rootfs, mirror)
            _finish_rootfs(rootfs)
            tar_path = workdir / "rootfs.tar"
            ctx.emit("packing root filesystem")
            _pack(rootfs, tar_path)
            ctx.emit(f"importing {tar_path.stat().st_size // (1 << 20)} MiB as {ctx.spec.tag}")
            label_change = "LABEL " + " ".join(
                f"{key}={json.dumps(value)}" for key, value in sorted(labels.items())
            )
            return import_rootfs(
                ctx.client,
                tar_path=tar_path,
                tag=ctx.spec.tag,
                changes=[*CONFIG_CHANGES, label_change],
                failure_hint=self.failure_hint,
            )
        finally:
            _release(workdir)

    def _bootstrap(self, ctx: RecipeContext, rootfs: Path, mirror: str) -> None:
        packages = cache_root() / "debootstrap"
        packages.mkdir(parents=True, exist_ok=True)
        argv = [_debootstrap_path(), f"--variant={VARIANT}", f"--cache-dir={packages}"]
        includes = _includes(mirror)
        if includes:
            argv.append("--include=" + ",".join(includes))
        argv += [SUITE, str(rootfs), mirror]
        ctx.emit(" ".join(argv))
        outcome = run_streaming(argv, emit=ctx.emit, timeout=DEBOOTSTRAP_TIMEOUT_S)
        if outcome.ok:
            return
        log_tail = _tail(rootfs / "debootstrap" / "debootstrap.log", 15)
        raise BackendError(
            f"debootstrap of {SUITE} from {mirror} failed (exit {outcome.returncode}):\n"
            f"{outcome.tail_text()}" + (f"\ndebootstrap.log ends:\n{log_tail}" if log_tail else ""),
            backend="docker",
            hint=self.failure_hint,
        )


def _from_registry(ctx: RecipeContext) -> bool:
    """``--pull`` now, or the present image was made with it (and no ``--force``)."""
    if ctx.pull:
        return True
    if ctx.force:
        return False
    present = local_image(ctx.client, ctx.spec.tag)
    return present is not None and (present.labels or {}).get(BASE_LABEL) == REGISTRY_BASE


def _registry_dockerfile() -> str:
    lines = [f"FROM {REGISTRY_BASE}",
             *(f"COPY {src} /{dest}" for dest, src in _DATA_FILES.items()),
             f"LABEL {BASE_LABEL}={REGISTRY_BASE}",
             *CONFIG_CHANGES]
    return "\n".join(lines) + "\n"


def _includes(mirror: str) -> list[str]:
    # apt in the image needs CA certificates to talk to an https mirror at all.
    return ["ca-certificates"] if mirror.startswith("https://") else []


def _has_debootstrap() -> bool:
    return (
        _debootstrap_path() != ""
        and Path("/usr/share/keyrings/debian-archive-keyring.gpg").is_file()
    )


def _debootstrap_path() -> str:
    found = shutil.which("debootstrap")
    if found:
        return found
    for candidate in ("/usr/sbin/debootstrap", "/sbin/debootstrap"):
        if Path(candidate).is_file():
            return candidate
    return ""


def _data_text(name: str) -> str:
    return resources.files("clnrm.images").joinpath("debian", name).read_text()


def _finish_rootfs(rootfs: Path) -> None:
    """Add the apt/dpkg config, then drop caches, package lists, manuals and translations.

    The same paths the dpkg excludes keep out of later installs (as Debian's slim images
    do); copyright files and ``locale.alias`` stay.
    """
    for dest, src in _DATA_FILES.items():
        target = rootfs / dest
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(_data_text(src))
    for pattern in _TRIMMED:
        for path in rootfs.glob(pattern):
            if path.name in _KEPT or path.is_symlink():
                continue
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()


def _pack(rootfs: Path, tar_path: Path) -> None:
    top_dropped = {f"./{name}/" for name in _DROPPED_FROM_ROOTFS}

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        if any(info.name.startswith(prefix) for prefix in top_dropped):
            return None
        info.uname = info.gname = ""
        return info

    with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(str(rootfs), arcname=".", filter=keep)


def _release(workdir: Path) -> None:
    """Unmount anything left mounted below ``workdir`` (a failed debootstrap may), then delete.

    The tree is only deleted once nothing is mounted inside it, so a stuck ``/proc``
    mount can never make ``rmtree`` walk into the host's ``/proc`` or ``/sys``.
    """
    prefix = str(workdir) + "/"
    for mountpoint in sorted(_mounts_below(prefix), key=len, reverse=True):
        subprocess.run(["umount", "-l", mountpoint], check=False, capture_output=True)
    if _mounts_below(prefix):
        return
    shutil.rmtree(workdir, ignore_errors=True)


def _mounts_below(prefix: str) -> list[str]:
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return []
    points = [line.split()[1].replace("\\040", " ") for line in lines if len(line.split()) > 1]
    return [point for point in points if point.startswith(prefix)]


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""

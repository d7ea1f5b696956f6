"""Recipe for ``clnrm/busybox:latest``: ``FROM scratch`` plus the host's static busybox.

The binary comes from Debian's ``busybox-static`` (installed with apt-get when missing).
It must be statically linked: a ``FROM scratch`` image has no dynamic loader.
"""

from __future__ import annotations

import hashlib
import struct
from importlib import resources
from pathlib import Path
from typing import Final

from clnrm.errors import BackendError
from clnrm.images._engine import build_files
from clnrm.images._host import ensure_host_packages
from clnrm.images._model import RecipeContext

HOST_BUSYBOX: Final = Path("/bin/busybox")
_CONTEXT_FILES: Final = ("Dockerfile", "passwd", "group")
_PT_INTERP: Final = 3


class BusyboxRecipe:
    """Copy the host's static busybox into an empty image and install its applets in /bin."""

    failure_hint = (
        "the busybox image needs only the engine and the host's /bin/busybox from "
        "busybox-static; check `file /bin/busybox` says statically linked"
    )

    def inputs(self, ctx: RecipeContext) -> dict[str, str]:
        binary = static_busybox(ctx)
        found = {name: _data_text(name) for name in _CONTEXT_FILES}
        found["busybox.sha256"] = hashlib.sha256(binary.read_bytes()).hexdigest()
        return found

    def build(self, ctx: RecipeContext, labels: dict[str, str]) -> str:
        binary = static_busybox(ctx)
        files: dict[str, bytes | Path] = {
            name: _data_text(name).encode() for name in _CONTEXT_FILES
        }
        files["busybox"] = binary
        return build_files(ctx, files, labels=labels, failure_hint=self.failure_hint)


def static_busybox(ctx: RecipeContext) -> Path:
    """The host's busybox binary, installing ``busybox-static`` if there is none."""
    ensure_host_packages(
        ["busybox-static"],
        present=HOST_BUSYBOX.exists,
        why=f"build {ctx.spec.tag}",
        emit=ctx.emit,
    )
    binary = HOST_BUSYBOX.resolve()
    if not is_static_elf(binary):
        raise BackendError(
            f"{binary} is dynamically linked, so it cannot run in a FROM scratch image",
            backend="docker",
            hint="install Debian's static build instead (it replaces the dynamic one): "
            "apt-get install -y busybox-static",
        )
    return binary


def is_static_elf(path: Path) -> bool:
    """True for an ELF executable without a ``PT_INTERP`` header (needs no dynamic loader)."""
    try:
        with path.open("rb") as fh:
            header = fh.read(64)
            if len(header) < 52 or header[:4] != b"\x7fELF":
                return False
            order = "<" if header[5] == 1 else ">"
            if header[4] == 2:
                (phoff,) = struct.unpack_from(order + "Q", header, 32)
                phentsize, phnum = struct.unpack_from(order + "HH", header, 54)
            else:
                (phoff,) = struct.unpack_from(order + "I", header, 28)
                phentsize, phnum = struct.unpack_from(order + "HH", header, 42)
            fh.seek(phoff)
            table = fh.read(phentsize * phnum)
    except OSError:
        return False
    for index in range(phnum):
        entry = table[index * phentsize : index * phentsize + 4]
        if len(entry) == 4 and struct.unpack(order + "I", entry)[0] == _PT_INTERP:
            return False
    return True


def _data_text(name: str) -> str:
    return resources.files("clnrm.images").joinpath("busybox", name).read_text()

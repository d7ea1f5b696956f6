"""Recipe for ``clnrm/busybox:latest``: ``FROM scratch`` plus Debian's static busybox.

The binary is installed from ``busybox-static`` in a throwaway build stage ``FROM``
the local ``clnrm/debian`` image, then copied into an empty image. Nothing comes from
the host: Docker Desktop and macOS hosts have no ``/bin/busybox``, and a host's own
busybox may be dynamically linked (useless in a ``FROM scratch`` image).
"""

from __future__ import annotations

import struct
from importlib import resources
from pathlib import Path
from typing import Final

from clnrm.errors import BackendError
from clnrm.images._engine import build_files, local_image
from clnrm.images._model import DEBIAN_IMAGE, RecipeContext

_CONTEXT_FILES: Final = ("Dockerfile", "passwd", "group")
_PT_INTERP: Final = 3


class BusyboxRecipe:
    """Install busybox-static in a Debian stage; copy the one binary into an empty image."""

    failure_hint = (
        f"the busybox image is built FROM {DEBIAN_IMAGE} (apt installs busybox-static in "
        "a build stage): check that image runs `apt-get update`, i.e. reaches the Debian mirror"
    )

    def inputs(self, ctx: RecipeContext) -> dict[str, str]:
        base = local_image(ctx.client, DEBIAN_IMAGE)
        if base is None:
            raise BackendError(
                f"{ctx.spec.tag} is built FROM {DEBIAN_IMAGE}, which is not present",
                backend="docker",
                hint="clnrm images build busybox (builds the Debian base first)",
            )
        found = {name: _data_text(name) for name in _CONTEXT_FILES}
        found["base"] = str(base.id)
        return found

    def build(self, ctx: RecipeContext, labels: dict[str, str]) -> str:
        files: dict[str, bytes | Path] = {
            name: _data_text(name).encode() for name in _CONTEXT_FILES
        }
        return build_files(ctx, files, labels=labels, failure_hint=self.failure_hint)


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

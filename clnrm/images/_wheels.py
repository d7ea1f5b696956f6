"""Wheels for images, downloaded on the host (containers do not reach PyPI) and cached.

The cache lives in ``$XDG_CACHE_HOME/clnrm/wheels/<key>`` (``~/.cache`` when unset);
``<key>`` hashes the requirements text and the target interpreter and platform, so a
filled directory is reused offline and never mixed with another target's wheels.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import platform
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from clnrm.errors import BackendError
from clnrm.images._host import run_streaming

IMAGE_PYTHON_VERSION: Final = "3.11"
"""Debian bookworm's ``python3``: the interpreter the wheels are chosen for."""
IMAGE_GLIBC_MINOR: Final = 36
"""Bookworm ships glibc 2.36, so manylinux_2_5 ... manylinux_2_36 wheels run there."""
_COMPLETE_MARKER: Final = ".complete"
_ARCH_ALIASES: Final = {"amd64": "x86_64", "arm64": "aarch64"}


@dataclass(frozen=True)
class WheelTarget:
    """The interpreter and platform tags that ``pip download`` selects wheels for."""

    python_version: str
    abi: str
    platforms: tuple[str, ...]

    def describe(self) -> str:
        return f"cp{self.abi[2:]}-{self.platforms[0]}"

    def pip_args(self) -> list[str]:
        args = [
            "--only-binary=:all:",
            "--implementation",
            "cp",
            "--python-version",
            self.python_version,
            "--abi",
            self.abi,
        ]
        for tag in self.platforms:
            args += ["--platform", tag]
        return args


def wheel_target(machine: str | None = None) -> WheelTarget:
    """Target for bookworm's CPython 3.11 on ``machine`` (default: this host's ``uname -m``).

    Images run on the local engine, so the host architecture is the image architecture.
    """
    arch = (machine or platform.machine()).lower()
    arch = _ARCH_ALIASES.get(arch, arch)
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(IMAGE_GLIBC_MINOR, 4, -1)]
    tags.append(f"manylinux2014_{arch}")
    if arch in ("x86_64", "i686"):
        tags += [f"manylinux2010_{arch}", f"manylinux1_{arch}"]
    abi = "cp" + IMAGE_PYTHON_VERSION.replace(".", "")
    return WheelTarget(python_version=IMAGE_PYTHON_VERSION, abi=abi, platforms=tuple(tags))


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/clnrm`` or ``~/.cache/clnrm``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "clnrm"


def wheels_key(requirements: str, target: WheelTarget) -> str:
    """Short hash naming the cache directory for these requirements on this target."""
    text = "\n".join([requirements, target.python_version, target.abi, *target.platforms])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def ensure_wheels(requirements: str, target: WheelTarget, *, emit: Callable[[str], None]) -> Path:
    """Directory holding every wheel of ``requirements`` for ``target``, downloading if needed."""
    key = wheels_key(requirements, target)
    dest = cache_root() / "wheels" / key
    if (dest / _COMPLETE_MARKER).is_file():
        emit(f"wheels: cached in {dest}")
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = dest.parent / f".{key}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        (staging / "requirements.txt").write_text(requirements)
        emit(f"wheels: downloading for {target.describe()} into {dest}")
        argv = [
            *_pip_command(),
            "download",
            "--disable-pip-version-check",
            "--no-input",
            "--progress-bar",
            "off",
            *target.pip_args(),
            "--dest",
            str(staging),
            "-r",
            str(staging / "requirements.txt"),
        ]
        outcome = run_streaming(argv, emit=emit, timeout=900)
        wheels = sorted(staging.glob("*.whl"))
        if not outcome.ok or not wheels:
            raise BackendError(
                "downloading wheels for clnrm/python-otel failed (pip download on the host):\n"
                + outcome.tail_text(),
                backend="docker",
                hint=(
                    "PyPI must be reachable from this host once; after that the wheels are "
                    f"reused offline from {dest}. Check pip's index/proxy settings "
                    "(pip config list) and retry `clnrm images build python-otel`"
                ),
            )
        manifest = "".join(f"{_sha256(w)}  {w.name}\n" for w in wheels)
        (staging / _COMPLETE_MARKER).write_text(manifest)
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(staging, dest)
        emit(f"wheels: {len(wheels)} wheels cached in {dest}")
        return dest
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _pip_command() -> list[str]:
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    for name in ("pip3", "pip"):
        found = shutil.which(name)
        if found:
            return [found]
    raise BackendError(
        "pip is needed on the host to download wheels for clnrm/python-otel, but none was found",
        backend="docker",
        hint="install it: `python3 -m ensurepip` or `apt-get install -y python3-pip`",
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

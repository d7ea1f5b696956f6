"""Paths a user typed: read or write them without hanging, flooding memory or clobbering.

A command line hands clnrm whatever the user typed, and a path can name far
more than a file: ``/dev/zero`` reads forever, ``/dev/urandom`` never ends,
a FIFO blocks until someone writes, a directory cannot be read, and replacing
``/dev/full`` as root swaps a device node for a regular file.  Every command
that reads or writes a user-given path goes through here, so each of those
cases becomes one :class:`PathError` (exit 2, one line) decided before any
byte is read or written:

- :func:`read_regular_file` reads a regular file (or stdin, where a command
  offers ``-``), at most ``limit`` bytes;
- :func:`check_output_file` accepts a path to write when it is absent or a
  regular file in an existing folder;
- :func:`check_folder` accepts a path that is, or can become, a folder.

Only ``os.stat``/``os.open`` are used, so importing this module costs nothing.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import BinaryIO, Final

from clnrm.errors import ClnrmError

STDIN: Final = "-"
"""The argument that means "read standard input", where a command offers it."""
_CHUNK: Final = 1 << 20


class PathError(ClnrmError):
    """A user-given path cannot be used as asked; ``str()`` is ``PATH: REASON``."""

    def __init__(self, path: Path | str, reason: str, *, hint: str | None = None) -> None:
        super().__init__(f"{path}: {reason}", hint=hint)
        self.path = Path(path)
        self.reason = reason


def kind_of(mode: int) -> str:
    """What a non-regular file is, in words (``a directory``, ``a FIFO (named pipe)``...)."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISREG(mode):
        return "a regular file"
    return "a special file"


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def read_regular_file(path: Path | str, *, limit: int, what: str = "file",
                      allow_stdin: bool = False) -> bytes:
    """The bytes of ``path``, refusing anything but a regular file of at most ``limit`` bytes.

    The type is checked with ``stat`` before opening (opening a device can have
    effects of its own), then again on the open descriptor, which is opened
    non-blocking so a FIFO swapped in between cannot hang the open.  At most
    ``limit + 1`` bytes are read, so a file that grows while being read is
    refused too.  With ``allow_stdin``, ``-`` reads standard input under the same limit.
    """
    if allow_stdin and str(path) == STDIN:
        return _read_limited(sys.stdin.buffer, limit, "<stdin>", what)
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            raise PathError(path, f"{kind_of(mode)}, not a regular {what}")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise PathError(path, f"cannot read {what}: {_reason(exc)}") from None
    with os.fdopen(fd, "rb", buffering=0) as fh:
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise PathError(path, f"{kind_of(info.st_mode)}, not a regular {what}")
            if info.st_size > limit:
                raise PathError(path, f"{what} is {_size(info.st_size)}, over the "
                                      f"{_size(limit)} limit")
            os.set_blocking(fd, True)
            return _read_limited(fh, limit, path, what)
        except OSError as exc:
            raise PathError(path, f"cannot read {what}: {_reason(exc)}") from None


def _read_limited(fh: BinaryIO, limit: int, path: Path | str, what: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = fh.read(min(_CHUNK, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        raise PathError(path, f"{what} is over the {_size(limit)} limit")
    return b"".join(chunks)


def _size(n: int) -> str:
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return f"{n >> 20} MiB"
    return f"{n} bytes"


def check_output_file(path: Path | str, *, what: str = "file") -> Path:
    """``path`` if clnrm may create or replace it: absent, or a regular file (symlinks followed).

    Refusing everything else up front is what keeps an atomic ``os.replace``
    from swapping a device node, FIFO or folder for a regular file.
    """
    path = Path(path)
    try:
        mode: int | None = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise PathError(path, f"cannot write {what}: {_reason(exc)}") from None
    if mode is None:
        try:
            parent_mode = os.stat(path.parent).st_mode
        except OSError as exc:
            raise PathError(path, f"cannot write {what}: {path.parent}: {_reason(exc)}") from None
        if not stat.S_ISDIR(parent_mode):
            raise PathError(path, f"cannot write {what}: {path.parent} is "
                                  f"{kind_of(parent_mode)}")
    elif not stat.S_ISREG(mode):
        raise PathError(path, f"{kind_of(mode)}; clnrm only writes a new or regular {what}")
    return path


def check_folder(path: Path | str, *, what: str = "folder") -> Path:
    """``path`` if it is a folder, or absent with its nearest existing ancestor a folder."""
    path = Path(path)
    probe = path
    while True:
        try:
            mode = os.stat(probe).st_mode
        except (FileNotFoundError, NotADirectoryError):  # walk up to what exists
            if probe.parent == probe:
                break
            probe = probe.parent
            continue
        except OSError as exc:
            raise PathError(path, f"cannot use as {what}: {_reason(exc)}") from None
        if not stat.S_ISDIR(mode):
            where = "" if probe == path else f" ({probe} is {kind_of(mode)})"
            reason = kind_of(mode) if probe == path else "cannot be created"
            raise PathError(path, f"{reason}, not a {what}{where}")
        break
    return path


def os_error(path: Path | str, exc: OSError, doing: str) -> PathError:
    """An ``OSError`` met while ``doing`` something with ``path``, as one clear line."""
    where = exc.filename if exc.filename not in (None, str(path)) else None
    reason = f"{where}: {_reason(exc)}" if where else _reason(exc)
    return PathError(path, f"cannot {doing}: {reason}")

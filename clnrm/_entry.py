"""The ``clnrm`` console script: help and version without importing typer.

Importing typer and rich costs about eight bare Python start-ups, which made
``clnrm --help`` slow on every call.  Help is a pure function of the CLI's code
and of the terminal it is printed on, so this module replays the bytes typer
printed the last time for the same command line, code and terminal, and falls
through to :func:`clnrm.cli.main` for everything else:

- ``-V``/``--version`` print ``clnrm X.Y.Z`` from :mod:`clnrm` (no typer at all);
- ``clnrm``, ``clnrm --help`` and ``clnrm WORD... --help`` (command names only)
  are answered from ``$XDG_CACHE_HOME/clnrm/help`` when an entry's key matches;
  on a miss typer runs as usual while its output is copied, and the entry is
  written when it exits 0 (or 2 for the bare ``clnrm``, which prints the help);
- an entry holds a key (clnrm's and Python's version, the command line, the terminal
  size, which streams are terminals, the stream encoding, every environment variable
  rich or typer read) and the size and mtime of every file of every non-stdlib module
  that was loaded while typer rendered it (clnrm, memory, typer, rich, click...).
  Change any of them and typer prints (and re-caches) the help itself, so the cache
  can never show text typer would not.

``CLNRM_HELP_CACHE=0`` turns the cache off (tests compare both paths with it).
"""

from __future__ import annotations

import os
import sys

_ENV = ("COLUMNS", "LINES", "JUPYTER_COLUMNS", "JUPYTER_LINES", "NO_COLOR", "FORCE_COLOR",
        "PY_COLORS", "TTY_INTERACTIVE", "TTY_COMPATIBLE", "COLORTERM", "TERM", "TERMINAL_WIDTH",
        "_TYPER_FORCE_DISABLE_TERMINAL", "GITHUB_ACTIONS", "TYPER_USE_RICH",
        "DATABRICKS_RUNTIME_VERSION", "PYTHONIOENCODING", "LANG", "LANGUAGE", "LC_ALL",
        "LC_CTYPE", "LC_MESSAGES")
_MAX_WORDS = 3  # clnrm perf baseline save --help


def help_request(argv: list[str]) -> bool:
    """Whether ``argv`` only asks for help: nothing, or command names then ``--help``."""
    if not argv:
        return True
    *words, last = argv
    return (last == "--help" and len(words) <= _MAX_WORDS
            and all(w[:1].isalpha() and w.replace("-", "").isalnum() and w.isascii()
                    for w in words))


def _cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "clnrm", "help")


def _stamp(path: str) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return "-"
    return f"{st.st_size}:{st.st_mtime_ns}"


def _terminal() -> str:
    """What rich measures: the first standard stream with a size, and which are terminals."""
    size = "none"
    for fd in (0, 1, 2):
        try:
            size = "x".join(map(str, os.get_terminal_size(fd)))
            break
        except (OSError, ValueError):
            continue
    ttys = "".join("1" if os.isatty(fd) else "0" for fd in (0, 1, 2))
    return f"{size} {ttys} {getattr(sys.stdout, 'encoding', None)}"


def cache_key(argv: list[str]) -> str:
    """One line that changes whenever typer, given the same code, could print different
    help for ``argv`` (the code is checked file by file: :func:`_sources_unchanged`)."""
    from clnrm import __version__

    parts = [__version__, sys.version.split()[0], " ".join(argv) or "-", _terminal()]
    parts += [f"{name}={os.environ[name]}" for name in _ENV if name in os.environ]
    return "|".join(parts).replace("\n", " ")


def _entry_path(argv: list[str]) -> str:
    name = "_".join(["clnrm", *argv[:-1]]) if argv else "clnrm-no-arguments"
    return os.path.join(_cache_dir(), name + ".help")


def _replay(argv: list[str], key: str) -> int | None:
    """Write a cached answer and return its exit code; None when there is none for ``key``."""
    try:
        with open(_entry_path(argv), "rb") as fh:
            blob = fh.read()
    except OSError:
        return None
    head, sep, rest = blob.partition(b"\n")
    if not sep or head.decode("utf-8", "replace") != key:
        return None
    sources, sep, rest = rest.partition(b"\n")
    if not sep or not _sources_unchanged(sources.decode("utf-8", "replace")):
        return None
    meta, sep, rest = rest.partition(b"\n")
    try:
        code, out_len = (int(x) for x in meta.split())
    except ValueError:
        return None
    try:
        _write_all(1, rest[:out_len])
        _write_all(2, rest[out_len:])
    except BrokenPipeError:  # `clnrm --help | head -1`: exit 1 and say nothing, as typer does
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        return 1
    return code


def _loaded_sources() -> str:
    """``path<TAB>stamp`` of every file of a loaded module outside the standard library
    (which the Python version in the key covers), NUL-separated."""
    import sysconfig

    stdlib = tuple(os.path.join(sysconfig.get_paths()[k], "") for k in ("stdlib", "platstdlib"))
    files = set()
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if not isinstance(path, str) or "\n" in path or "\0" in path or "\t" in path:
            continue
        if path.startswith(stdlib) and "-packages" + os.sep not in path:
            continue
        files.add(path)
    return "\0".join(f"{path}\t{_stamp(path)}" for path in sorted(files))


def _sources_unchanged(recorded: str) -> bool:
    for item in recorded.split("\0"):
        path, sep, stamp = item.partition("\t")
        if not sep or _stamp(path) != stamp:
            return False
    return bool(recorded)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


class _Copy:
    """A text stream that forwards to ``stream`` and keeps what was written."""

    def __init__(self, stream: object) -> None:
        self._stream = stream
        self.text: list[str] = []

    def write(self, s: str) -> int:
        written: int = self._stream.write(s)  # type: ignore[attr-defined]
        self.text.append(s)  # after the stream took it: click probes with b"" (TypeError)
        return written

    def __getattr__(self, name: str) -> object:  # isatty, fileno, encoding, flush...
        return getattr(self._stream, name)


def _run_and_record(argv: list[str], key: str) -> None:
    """Run typer as usual, then keep what it printed under ``key`` (best effort)."""
    from clnrm.cli import main

    out, err = _Copy(sys.stdout), _Copy(sys.stderr)
    real = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err  # type: ignore[assignment]
    code: object = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if exc.code is not None else 0
        raise
    finally:
        sys.stdout, sys.stderr = real
        if isinstance(code, int) and (code == 0 or (not argv and code == 2)):
            try:
                _store(argv, key, code, "".join(out.text), "".join(err.text))
            except Exception:  # noqa: BLE001 - the cache may never break the command
                pass


def _store(argv: list[str], key: str, code: int, out: str, err: str) -> None:
    enc = getattr(sys.stdout, "encoding", None) or "utf-8"
    try:
        out_b = out.encode(enc, "replace")
        err_b = err.encode(getattr(sys.stderr, "encoding", None) or "utf-8", "replace")
        path = _entry_path(argv)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(key.encode("utf-8") + b"\n" + _loaded_sources().encode("utf-8") + b"\n"
                     + f"{code} {len(out_b)}\n".encode() + out_b + err_b)
        os.replace(tmp, path)  # readers see the old entry or the whole new one
    except (OSError, UnicodeError):
        pass  # a read-only home just means typer answers every time


def main() -> None:
    """Console-script entry point (``clnrm``)."""
    argv = sys.argv[1:]
    if argv in (["-V"], ["--version"]):
        from clnrm import __version__

        print(f"clnrm {__version__}")
        raise SystemExit(0)
    cached = (help_request(argv) and os.environ.get("CLNRM_HELP_CACHE", "1") != "0"
              and not any(k.endswith("_COMPLETE") for k in os.environ))
    if cached:
        key = cache_key(argv)
        code = _replay(argv, key)
        if code is not None:
            raise SystemExit(code)
        _run_and_record(argv, key)
        return
    from clnrm.cli import main as typer_main

    typer_main()

"""Which Debian mirror ``debootstrap`` uses: the one this host's apt already uses.

Order: ``$CLNRM_DEBIAN_MIRROR``; a host apt source for ``bookworm`` with ``main``; a host
source whose URI ends in ``/debian`` (a Debian archive of another release carries
bookworm too); ``http://deb.debian.org/debian``. Security and non-HTTP sources are
never picked, and files other than ``*.list``/``*.sources`` are not read (so a source
renamed to ``*.disabled`` stays off).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

SUITE: Final = "bookworm"
DEFAULT_MIRROR: Final = "http://deb.debian.org/debian"
MIRROR_ENV: Final = "CLNRM_DEBIAN_MIRROR"


@dataclass(frozen=True)
class AptSource:
    """One ``deb`` source line (or deb822 stanza, one per URI) of the host's apt."""

    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]


def read_apt_sources(apt_dir: Path = Path("/etc/apt")) -> list[AptSource]:
    """Every enabled binary (``deb``) source of ``apt_dir``, in apt's reading order."""
    sources: list[AptSource] = []
    main_list = apt_dir / "sources.list"
    if main_list.is_file():
        sources += parse_one_line_sources(_read(main_list))
    parts = apt_dir / "sources.list.d"
    if parts.is_dir():
        for path in sorted(parts.iterdir()):
            if path.suffix == ".list":
                sources += parse_one_line_sources(_read(path))
            elif path.suffix == ".sources":
                sources += parse_deb822_sources(_read(path))
    return sources


def parse_one_line_sources(text: str) -> list[AptSource]:
    """Parse ``deb [opts] URI SUITE COMPONENT...`` lines; ``deb-src`` and comments are skipped."""
    found: list[AptSource] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line.startswith("deb ") and not line.startswith("deb\t"):
            continue
        rest = line[3:].strip()
        if rest.startswith("["):
            closing = rest.find("]")
            if closing < 0:
                continue
            rest = rest[closing + 1 :].strip()
        fields = rest.split()
        if len(fields) >= 2:
            found.append(AptSource(fields[0], (fields[1],), tuple(fields[2:])))
    return found


def parse_deb822_sources(text: str) -> list[AptSource]:
    """Parse deb822 ``.sources`` stanzas with ``Types: deb`` that are not ``Enabled: no``."""
    found: list[AptSource] = []
    for stanza in _stanzas(text):
        if "deb" not in stanza.get("types", "").split():
            continue
        if stanza.get("enabled", "yes").strip().lower() == "no":
            continue
        suites = tuple(stanza.get("suites", "").split())
        components = tuple(stanza.get("components", "").split())
        for uri in stanza.get("uris", "").split():
            found.append(AptSource(uri, suites, components))
    return found


def choose_mirror(sources: Iterable[AptSource], env: Mapping[str, str] | None = None) -> str:
    """The mirror URI to bootstrap ``bookworm`` from (see the module docstring for the order)."""
    env = os.environ if env is None else env
    override = env.get(MIRROR_ENV, "").strip()
    if override:
        return override.rstrip("/")
    usable = [s for s in sources if _is_archive(s.uri)]
    for source in usable:
        if SUITE in source.suites and "main" in source.components:
            return source.uri.rstrip("/")
    for source in usable:
        if source.uri.rstrip("/").endswith("/debian"):
            return source.uri.rstrip("/")
    return DEFAULT_MIRROR


def debian_mirror() -> str:
    """``choose_mirror`` over this host's apt sources."""
    return choose_mirror(read_apt_sources())


def _is_archive(uri: str) -> bool:
    return uri.startswith(("http://", "https://")) and "security" not in uri


def _stanzas(text: str) -> list[dict[str, str]]:
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    key: str | None = None
    for raw in [*text.splitlines(), ""]:
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if current:
                stanzas.append(current)
            current, key = {}, None
            continue
        if raw[0] in " \t" and key is not None:
            current[key] += " " + raw.strip()
            continue
        name, sep, value = raw.partition(":")
        if sep:
            key = name.strip().lower()
            current[key] = value.strip()
    return stanzas


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""

"""Map TOML key paths to the 1-based line where they are written.

tomli returns plain dicts with no positions, so a validation error on
``expect.span[2].kind`` could not say where to look.  :class:`LineIndex` scans
the text once (strings, comments, arrays and inline tables, TOML 1.1
multi-line inline tables included) and records the first line of every key,
table header and array element, using the same path shape pydantic uses for
``loc`` (array-of-tables and array elements get an integer index).

The scanner never raises: on text it cannot follow it simply stops, and
lookups fall back to the nearest recorded parent.
"""

from __future__ import annotations

import re
from typing import Final, TypeAlias

KeyPath: TypeAlias = tuple[str | int, ...]
"""A location inside a TOML document, e.g. ``("expect", "span", 2, "kind")``."""

_BARE_KEY: Final = re.compile(r"[A-Za-z0-9_-]+")
_SCALAR: Final = re.compile(r"[^,\]\}\s#]+")
_TIME_TAIL: Final = re.compile(r" \d{2}:\d{2}[^,\]\}\s#]*")  # "1979-05-27 07:32:00"
_MAX_DEPTH: Final = 200


def format_key_path(path: KeyPath) -> str:
    """``("expect", "span", 2, "kind")`` -> ``expect.span[2].kind`` (TOML-quoting odd keys)."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        text = part if _BARE_KEY.fullmatch(part) else '"' + part.replace('"', '\\"') + '"'
        out += f".{text}" if out else text
    return out


class _Stop(Exception):
    """The scanner reached text it cannot follow; keep what was indexed so far."""


class LineIndex:
    """First line of each key path in one TOML text."""

    def __init__(self, text: str) -> None:
        self._lines: dict[KeyPath, int] = {}
        self._text = text
        self._pos = 0
        self._line = 1
        self._aot_counts: dict[KeyPath, int] = {}
        try:
            self._document()
        except (_Stop, IndexError, RecursionError):
            pass
        del self._text

    # -- lookup ---------------------------------------------------------------------

    def line_of(self, path: KeyPath) -> int | None:
        """Line of ``path``, else of its nearest recorded parent, else ``None``."""
        probe = tuple(path)
        while probe:
            line = self._lines.get(probe)
            if line is not None:
                return line
            probe = probe[:-1]
        return None

    def deepest(self) -> tuple[KeyPath, int] | None:
        """The most deeply nested path recorded, with its line (first one on ties).

        Used when a parser gave up on nesting depth without a position: the
        scanner records paths down to its own depth limit, which is past any
        limit clnrm enforces, so the deepest one points at the offending value.
        """
        best: tuple[KeyPath, int] | None = None
        for path, line in self._lines.items():
            if best is None or len(path) > len(best[0]):
                best = (path, line)
        return best

    def exact(self, path: KeyPath) -> int | None:
        """Line of exactly ``path`` (no parent fallback)."""
        return self._lines.get(tuple(path))

    def __len__(self) -> int:
        return len(self._lines)

    # -- scanning -------------------------------------------------------------------

    def _record(self, path: KeyPath, line: int) -> None:
        self._lines.setdefault(path, line)

    def _peek(self, n: int = 1) -> str:
        return self._text[self._pos : self._pos + n]

    def _advance(self, n: int = 1) -> None:
        chunk = self._text[self._pos : self._pos + n]
        self._line += chunk.count("\n")
        self._pos += n

    def _skip_blank(self, newlines: bool) -> None:
        """Skip spaces, comments and (if ``newlines``) line breaks."""
        text = self._text
        while self._pos < len(text):
            ch = text[self._pos]
            if ch in " \t\r":
                self._pos += 1
            elif ch == "\n" and newlines:
                self._pos += 1
                self._line += 1
            elif ch == "#":
                end = text.find("\n", self._pos)
                self._pos = len(text) if end < 0 else end
            else:
                return

    def _document(self) -> None:
        current: KeyPath = ()
        text = self._text
        while True:
            self._skip_blank(newlines=True)
            if self._pos >= len(text):
                return
            line = self._line
            if self._peek(2) == "[[":
                self._advance(2)
                keys = self._key()
                self._skip_blank(newlines=False)
                if self._peek(2) != "]]":
                    raise _Stop
                self._advance(2)
                parent = self._concrete(keys[:-1])
                full = parent + keys[-1:]
                index = self._aot_counts.get(full, 0)
                self._aot_counts[full] = index + 1
                self._record_prefixes(full, line)
                current = (*full, index)
                self._record(current, line)
            elif self._peek() == "[":
                self._advance()
                keys = self._key()
                self._skip_blank(newlines=False)
                if self._peek() != "]":
                    raise _Stop
                self._advance()
                current = self._concrete(keys)
                self._record_prefixes(current, line)
            else:
                self._key_value(current, depth=0)
            self._skip_to_line_end()

    def _skip_to_line_end(self) -> None:
        self._skip_blank(newlines=False)
        if self._pos < len(self._text) and self._text[self._pos] != "\n":
            raise _Stop  # two statements on one line: not TOML we can follow

    def _concrete(self, keys: KeyPath) -> KeyPath:
        """Resolve a header's keys, entering the last element of any array of tables."""
        path: KeyPath = ()
        for key in keys:
            path += (key,)
            count = self._aot_counts.get(path)
            if count:
                path += (count - 1,)
        return path

    def _record_prefixes(self, path: KeyPath, line: int) -> None:
        for end in range(1, len(path) + 1):
            self._record(path[:end], line)

    def _key_value(self, base: KeyPath, depth: int) -> None:
        line = self._line
        keys = self._key()
        self._skip_blank(newlines=False)
        if self._peek() != "=":
            raise _Stop
        self._advance()
        self._skip_blank(newlines=False)
        full = base + keys
        for end in range(len(base) + 1, len(full) + 1):
            self._record(full[:end], line)
        self._value(full, depth + 1)

    def _key(self) -> KeyPath:
        parts: list[str] = []
        while True:
            self._skip_blank(newlines=False)
            ch = self._peek()
            if ch == '"' or ch == "'":
                parts.append(self._string_value())
            else:
                match = _BARE_KEY.match(self._text, self._pos)
                if not match:
                    raise _Stop
                parts.append(match.group())
                self._advance(match.end() - self._pos)
            self._skip_blank(newlines=False)
            if self._peek() != ".":
                return tuple(parts)
            self._advance()

    def _string_value(self) -> str:
        """Consume a string token; return its raw content (escapes left as written)."""
        quote3 = self._peek(3)
        if quote3 in ('"""', "'''"):
            self._advance(3)
            end = self._text.find(quote3, self._pos)
            if end < 0:
                raise _Stop
            while self._text.startswith(quote3[0], end + 3):
                end += 1  # up to two quotes may sit right before the closing delimiter
            raw = self._text[self._pos : end]
            self._advance(end + 3 - self._pos)
            return raw
        quote = self._peek()
        self._advance()
        start = self._pos
        text = self._text
        while self._pos < len(text):
            ch = text[self._pos]
            if ch == "\\" and quote == '"':
                self._pos += 2
                continue
            if ch == "\n":
                raise _Stop
            if ch == quote:
                raw = text[start : self._pos]
                self._pos += 1
                return raw.replace('\\"', '"') if quote == '"' else raw
            self._pos += 1
        raise _Stop

    def _value(self, path: KeyPath, depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise _Stop
        ch = self._peek()
        if ch in ('"', "'"):
            self._string_value()
        elif ch == "[":
            self._array(path, depth)
        elif ch == "{":
            self._inline_table(path, depth)
        else:
            match = _SCALAR.match(self._text, self._pos)
            if not match:
                raise _Stop
            self._advance(match.end() - self._pos)
            follow = _TIME_TAIL.match(self._text, self._pos)
            if follow:
                self._advance(follow.end() - self._pos)

    def _array(self, path: KeyPath, depth: int) -> None:
        self._advance()  # [
        index = 0
        while True:
            self._skip_blank(newlines=True)
            if self._peek() == "]":
                self._advance()
                return
            if not self._peek():
                raise _Stop
            self._record((*path, index), self._line)
            self._value((*path, index), depth + 1)
            self._skip_blank(newlines=True)
            if self._peek() == ",":
                self._advance()
                index += 1

    def _inline_table(self, path: KeyPath, depth: int) -> None:
        self._advance()  # {
        while True:
            self._skip_blank(newlines=True)
            ch = self._peek()
            if ch == "}":
                self._advance()
                return
            if ch == ",":
                self._advance()
                continue
            if not ch:
                raise _Stop
            self._key_value(path, depth + 1)

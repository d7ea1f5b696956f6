"""The contract every span validator meets, and where its results point.

A validator is a small object with a ``name`` and one method; it reads its
own table of :class:`~clnrm.scenario.expect.Expect` and returns one
:class:`~clnrm.results.ValidationResult` per entry or rule, in declaration
order.  Failures are results, never exceptions: :func:`clnrm.validators.validate`
turns an exception escaping a validator into an ERROR result so one broken
plugin cannot hide the verdicts of the others.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Protocol, TypeAlias, runtime_checkable

from clnrm.results import ValidationResult, ValidationStatus
from clnrm.scenario.expect import Expect
from clnrm.scenario.locate import KeyPath, LineIndex, format_key_path
from clnrm.validators.index import SpanIndex

Source: TypeAlias = str | Path | None
"""The TOML file the expectations came from; ``None`` when built in code."""


@lru_cache(maxsize=64)
def _line_index(path: str, mtime_ns: int, size: int) -> LineIndex | None:
    """One index per file version: 50 expectations must not re-read the file 50 times."""
    del mtime_ns, size  # only part of the cache key, so an edited file is re-read
    try:
        text = Path(path).read_bytes().decode("utf-8-sig", errors="replace")
    except OSError:
        return None
    return LineIndex(text)


class Declarations:
    """Turns a key path into ``file:line [expect.span[2]]`` for ``declared_at``.

    Never raises: an unreadable file or a path the line index could not
    follow (templated files, say) degrades to ``file [key]`` or ``key``.
    """

    def __init__(self, source: Source = None) -> None:
        self.file = os.fspath(source) if source is not None else None
        self._index: LineIndex | None = None
        self._lines: dict[str, int] = {}
        if self.file is not None:
            try:
                stat = os.stat(self.file)
            except OSError:
                return
            self._index = _line_index(os.path.abspath(self.file), stat.st_mtime_ns, stat.st_size)

    def at(self, path: KeyPath, *aliases: KeyPath) -> str:
        """Where ``path`` (or, if written that way, one of its ``aliases``) was declared."""
        chosen, line = path, None
        if self._index is not None:
            for candidate in (path, *aliases):
                line = self._index.exact(candidate)
                if line is not None:
                    chosen = candidate
                    break
            else:
                line = self._index.line_of(path)
        key = format_key_path(chosen)
        if self.file is None:
            return key
        if line is None:
            return f"{self.file} [{key}]"
        text = f"{self.file}:{line} [{key}]"
        self._lines[text] = line
        return text

    def line_for(self, declared_at: str | None) -> int:
        """The line behind a string :meth:`at` returned; unknown lines sort last."""
        return self._lines.get(declared_at or "", 1 << 30)


@runtime_checkable
class SpanValidator(Protocol):
    """One kind of ``[expect.*]`` table, judged against the spans of a test.

    ``name`` is the ``validator`` field of each result (``span``, ``graph``,
    ...).  ``validate`` returns nothing when its table is absent, and must not
    mutate ``expect`` or the index; it may read any view of the index, which
    is built once for all validators.
    """

    name: str

    def validate(
        self, expect: Expect, index: SpanIndex, where: Declarations
    ) -> list[ValidationResult]: ...


def verdict(
    validator: str,
    expectation: str,
    ok: bool,
    *,
    expected: str,
    seen: str,
    declared_at: str,
    message: str = "",
) -> ValidationResult:
    """A PASS or FAIL result; the message defaults to one line built from the rest."""
    status = ValidationStatus.PASS if ok else ValidationStatus.FAIL
    if not message:
        message = f"{expectation}: ok" if ok else f"{expectation}: expected {expected}; saw {seen}"
    return ValidationResult(
        validator=validator,
        expectation=expectation,
        status=status,
        message=message,
        expected=expected,
        seen=seen,
        declared_at=declared_at,
    )

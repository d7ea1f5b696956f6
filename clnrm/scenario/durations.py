"""Durations as test authors write them: ``30``, ``1.5``, ``"30s"``, ``"5m"``, ``"1m30s"``.

Upstream clnrm wrote a parser for ``"30s"``/``"5m"``/``"2h"``/``"1d"`` but never
wired it to a field, so files full of ``timeout = "60s"`` silently meant
nothing.  Here every timeout-like key goes through :func:`parse_duration`, and
a value it cannot read is an error rather than a default.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Final

from pydantic import BeforeValidator

_UNIT_SECONDS: Final[dict[str, float]] = {
    "ms": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "secs": 1.0,
    "m": 60.0,
    "min": 60.0,
    "mins": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "d": 86400.0,
}
_PART: Final = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|secs|sec|s|mins|min|m|hr|h|d)")
_WHOLE: Final = re.compile(r"\s*(?:\d+(?:\.\d+)?\s*(?:ms|secs|sec|s|mins|min|m|hr|h|d)\s*)+")
_MAX_SECONDS: Final = 366 * 86400.0  # a year: anything longer is a typo, not a timeout

DURATION_HINT: Final = (
    'write a number of seconds (30) or a string such as "500ms", "30s", "5m", "2h", "1m30s"'
)


def parse_duration(value: object) -> float:
    """Return ``value`` in seconds, or raise ``ValueError`` saying what is accepted.

    Numbers are seconds.  Strings are one or more ``<number><unit>`` parts
    (units ms, s, m, h, d) or a bare number.  Booleans, negatives, NaN and
    durations over a year are refused because each is far likelier a mistake
    than an intent.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration, got a boolean ({value!r})")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = _parse_text(value)
    else:
        raise ValueError(f"expected a duration, got {type(value).__name__}")
    if math.isnan(seconds) or seconds < 0:
        raise ValueError(f"duration must be zero or positive, got {value!r}")
    if seconds > _MAX_SECONDS:
        raise ValueError(f"duration {value!r} is longer than a year")
    return seconds


def _parse_text(text: str) -> float:
    stripped = text.strip().lower()
    if len(stripped) > 64:
        raise ValueError(f"not a duration: {text[:40]!r}...")
    try:
        return float(stripped)
    except ValueError:
        pass
    if not stripped or not _WHOLE.fullmatch(stripped):
        raise ValueError(f"not a duration: {text!r}")
    return sum(float(num) * _UNIT_SECONDS[unit] for num, unit in _PART.findall(stripped))


def _coerce(value: object) -> object:
    # None passes through so ``Duration | None`` fields keep their default meaning.
    return None if value is None else parse_duration(value)


Duration = Annotated[float, BeforeValidator(_coerce)]
"""Seconds as ``float``; TOML may give a number or a duration string."""

"""How validators compare values and word what they saw.

Kept in one place so every validator quotes spans, counts and bounds the same
way; a report reader learns the phrasing once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Final

from clnrm.otel.span import AttrValue
from clnrm.scenario.expect import CountBound

MAX_LISTED: Final = 5
"""How many span names a ``seen`` sentence lists before summarising the rest."""


def attr_text(value: AttrValue) -> str | None:
    """An attribute value as the text a TOML ``attrs`` table holds, ``None`` if absent.

    The loader stores ``attrs`` values as text (``true`` -> ``"true"``,
    ``200`` -> ``"200"``), so span values are written the same way: upstream
    compared JSON strings only, which made ``http.status_code = 200`` never
    match an integer attribute.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"), default=str)


def attr_matches(value: AttrValue, expected: str) -> bool:
    """Text equality, plus numeric equality (``2.0`` matches ``"2"``) and list forms.

    A list matches its JSON text (``["a","b"]``) or its comma-joined text (``a,b``).
    """
    text = attr_text(value)
    if text is None:
        return False
    if text == expected:
        return True
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return float(expected) == float(value)
        except ValueError:
            return False
    if isinstance(value, list):
        return ",".join(attr_text(v) or "" for v in value) == expected
    return False


def quoted(text: str, limit: int = 60) -> str:
    """``'text'``, clipped so one odd value cannot flood a report line."""
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return repr(text)


def listing(counts: Mapping[str, int]) -> str:
    """``http.get (2), db.query (1)``, most frequent first, at most 5 names."""
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    listed = ", ".join(f"{name} ({count})" for name, count in ranked[:MAX_LISTED])
    rest = len(ranked) - MAX_LISTED
    more = f" and {rest} more name{'s' if rest != 1 else ''}" if rest > 0 else ""
    return listed + more


def plural(count: int, noun: str) -> str:
    """``1 span`` / ``3 spans``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def name_counts(counts: Mapping[str, int], noun: str = "span") -> str:
    """``3 spans named: http.get (2), db.query (1)``; ``no spans`` when empty."""
    total = sum(counts.values())
    if total == 0:
        return f"no {noun}s"
    return f"{plural(total, noun)} named: {listing(counts)}"


def count_names(names: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    return counts


def bound_text(bound: CountBound) -> str:
    """``exactly 3`` / ``between 2 and 5`` / ``at least 2`` / ``at most 5``; eq wins."""
    if bound.eq is not None:
        return f"exactly {bound.eq}"
    if bound.gte is not None and bound.lte is not None:
        return f"between {bound.gte} and {bound.lte}"
    if bound.gte is not None:
        return f"at least {bound.gte}"
    if bound.lte is not None:
        return f"at most {bound.lte}"
    return "any number"


def bound_holds(bound: CountBound, value: int) -> bool:
    """Upstream's rule: ``eq`` alone decides when given, else ``gte`` and ``lte`` both apply."""
    if bound.eq is not None:
        return value == bound.eq
    if bound.gte is not None and value < bound.gte:
        return False
    return bound.lte is None or value <= bound.lte


def ms(value: float) -> str:
    """Milliseconds with no noise: ``12 ms``, ``0.25 ms``."""
    return f"{value:.3f}".rstrip("0").rstrip(".") + " ms"

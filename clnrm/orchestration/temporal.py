"""``[[orchestration.temporal]]``: ordering and gap limits between service moments.

Judged after the run from the recorded timeline, never from the schedule:
"api ready within 5 s of db ready" is a claim about what happened, and a
dependency edge only makes it likely.
"""

from __future__ import annotations

from collections.abc import Sequence

from clnrm.results import ServiceTimeline, ValidationResult
from clnrm.scenario.layers import TemporalConstraint, split_event
from clnrm.validators.base import Declarations, verdict


def describe_constraint(c: TemporalConstraint) -> str:
    if c.description:
        return c.description
    if c.within is not None:
        return f"{c.then} within {c.within:g} s of {c.first}"
    return f"{c.then} after {c.first}"


def _moment(rows: dict[str, ServiceTimeline], event: str) -> float | None:
    service, moment = split_event(event)
    row = rows.get(service)
    if row is None:
        return None
    return row.start_s if moment == "start" else row.ready_s


def judge_temporal(constraints: Sequence[TemporalConstraint], timeline: Sequence[ServiceTimeline],
                   where: Declarations) -> list[ValidationResult]:
    """One PASS/FAIL per constraint: ``then`` at or after ``first``, and within ``within``."""
    rows = {r.service: r for r in timeline}
    results = []
    for i, c in enumerate(constraints):
        expected = (f"{c.then} 0..{c.within:g} s after {c.first}" if c.within is not None
                    else f"{c.then} at or after {c.first}")
        first, then = _moment(rows, c.first), _moment(rows, c.then)
        if first is None or then is None:
            never = [e for e, t in ((c.first, first), (c.then, then)) if t is None]
            ok, seen = False, " and ".join(never) + " never happened (the start failed or stopped)"
        else:
            gap = then - first
            ok = gap >= 0 and (c.within is None or gap <= c.within)
            relation = f"{gap:.3f} s after" if gap >= 0 else f"{-gap:.3f} s before"
            seen = (f"{c.then} {relation} {c.first} "
                    f"({c.first} at {first:.3f} s, {c.then} at {then:.3f} s)")
        results.append(verdict("temporal", describe_constraint(c), ok, expected=expected,
                               seen=seen, declared_at=where.at(("orchestration", "temporal", i))))
    return results

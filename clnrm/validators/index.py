"""One pass over the spans, shared by every validator.

A test file may carry dozens of expectations and a run may hold a million
spans; rescanning the list per expectation is what made the naive approach
slow (see ``bench/validate.py``).  :class:`SpanIndex` groups spans by name
once, and builds the costlier views (span id lookup, per-name status, error
and event tallies) lazily, the first time a validator asks, so a file that
only counts spans never pays for parent lookups.

Callers may rely on: lists returned are the index's own (do not mutate
them); name order is first appearance in the span list; ``parent_of``
resolves within the span's own trace, so hand-written spans that reuse ids
like ``"1"`` across traces still link correctly.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from fnmatch import fnmatchcase
from functools import cached_property
from itertools import chain
from operator import attrgetter
from typing import Final

from clnrm.otel.span import Span

GLOB_CHARS: Final = frozenset("*?[")


def is_glob(pattern: str) -> bool:
    return not GLOB_CHARS.isdisjoint(pattern)


def name_matches(name: str, pattern: str) -> bool:
    """One span name against a name-or-glob, by the rule of :meth:`SpanIndex.names_matching`."""
    return name == pattern or (is_glob(pattern) and fnmatchcase(name, pattern))


_name_status: Final = attrgetter("name", "status")
_attributes: Final = attrgetter("attributes")
_events: Final = attrgetter("events")


def _error_flag(span: Span) -> bool:
    """Upstream's ``error = true`` attribute (bool or text)."""
    flag = span.attributes.get("error")
    return flag is True or (isinstance(flag, str) and flag.lower() == "true")


def _declared_events(span: Span) -> int:
    """Upstream's ``event.count`` attribute as a number (0 when absent or not a count)."""
    declared = span.attributes.get("event.count")
    if isinstance(declared, bool) or declared is None:
        return 0
    if isinstance(declared, int | float):
        return max(int(declared), 0)
    if isinstance(declared, str) and declared.strip().isdigit():
        return int(declared)
    return 0


class SpanIndex:
    """The spans of one test, grouped for the validators."""

    def __init__(self, spans: Sequence[Span]) -> None:
        self.spans: Final = spans
        by_name: dict[str, list[Span]] = {}
        get = by_name.get
        for span in spans:
            group = get(span.name)
            if group is None:
                by_name[span.name] = [span]
            else:
                group.append(span)
        self.by_name: Final = by_name
        self._glob_cache: dict[str, list[str]] = {}
        self._ids_named: dict[str, dict[str, Span] | None] = {}

    def __len__(self) -> int:
        return len(self.spans)

    # -- names -----------------------------------------------------------------------

    @cached_property
    def name_counts(self) -> dict[str, int]:
        return {name: len(group) for name, group in self.by_name.items()}

    def names_matching(self, pattern: str) -> list[str]:
        """Span names equal to ``pattern`` or, if it has ``*?[``, matching it as a glob.

        A literal name always matches itself, so ``GET /users/[id]`` finds
        spans of exactly that name even though ``[id]`` is glob syntax.
        """
        if not is_glob(pattern):
            return [pattern] if pattern in self.by_name else []
        found = self._glob_cache.get(pattern)
        if found is None:
            found = [n for n in self.by_name if n == pattern or fnmatchcase(n, pattern)]
            self._glob_cache[pattern] = found
        return found

    def named(self, pattern: str) -> list[Span]:
        """Spans whose name matches ``pattern`` (see :meth:`names_matching`)."""
        names = self.names_matching(pattern)
        if len(names) == 1:
            return self.by_name[names[0]]
        return [span for name in names for span in self.by_name[name]]

    def count_named(self, pattern: str) -> int:
        return sum(len(self.by_name[name]) for name in self.names_matching(pattern))

    def counts_of(self, names: Sequence[str]) -> dict[str, int]:
        return {name: len(self.by_name[name]) for name in names}

    # -- parent links ------------------------------------------------------------------

    @cached_property
    def id_maps(self) -> tuple[dict[str, Span], dict[str, list[Span]]]:
        """Span id -> span, plus every span of ids that occur more than once.

        The second map is empty for real exports (ids are random 64-bit
        values); hand-written spans often reuse ``"1"``, ``"2"`` per trace.
        """
        by_id = {span.span_id: span for span in self.spans}
        shared: dict[str, list[Span]] = {}
        if len(by_id) != len(self.spans):
            seen: set[str] = set()
            for span in self.spans:
                if span.span_id in seen:
                    shared[span.span_id] = []
                seen.add(span.span_id)
            for span in self.spans:
                if span.span_id in shared:
                    shared[span.span_id].append(span)
        return by_id, shared

    def parent_of(self, span: Span) -> Span | None:
        """The span's parent in the same trace, ``None`` for roots and unknown parents."""
        parent_id = span.parent_span_id
        if parent_id is None:
            return None
        by_id, shared = self.id_maps
        parent = by_id.get(parent_id)
        if parent is not None and parent.trace_id == span.trace_id:
            return parent
        for candidate in shared.get(parent_id, ()):
            if candidate.trace_id == span.trace_id:
                return candidate
        return None

    def parent_named(self, span: Span, pattern: str) -> Span | None:
        """The span's parent if its name matches ``pattern`` (as :meth:`names_matching`).

        Same answer as :meth:`parent_of` plus a name test, but looked up among
        the spans of that name only: building the full id map costs ~0.6 s per
        million spans (one random insert each), while the candidates of a name
        are few.  Where a trace reuses one span id the two may pick different
        spans of that id; the full lookup is used when the named spans
        themselves repeat an id.
        """
        parent_id = span.parent_span_id
        if parent_id is None:
            return None
        ids: dict[str, Span] | None
        if pattern in self._ids_named:
            ids = self._ids_named[pattern]
        else:
            named = self.named(pattern)
            ids = {other.span_id: other for other in named}
            if len(ids) != len(named):
                ids = None
            self._ids_named[pattern] = ids
        if ids is None:
            parent = self.parent_of(span)
            return parent if parent is not None and name_matches(parent.name, pattern) else None
        parent = ids.get(parent_id)
        return parent if parent is not None and parent.trace_id == span.trace_id else None

    def parent_names(self, spans: Sequence[Span]) -> dict[str, int]:
        """Parent name -> count for ``spans``; ``<root>`` and ``<missing parent>`` included."""
        counts: dict[str, int] = {}
        for span in spans:
            parent = self.parent_of(span)
            if parent is not None:
                key = parent.name
            elif span.parent_span_id is None:
                key = "<root>"
            else:
                key = "<missing parent>"
            counts[key] = counts.get(key, 0) + 1
        return counts

    # -- per-name tallies --------------------------------------------------------------

    # The tallies below walk the flat span list, never the per-name groups: spans
    # of one name are scattered in memory, and over 1M spans a walk in group order
    # measured ~6x slower than one in list (allocation) order.  C-level map/Counter
    # do the bulk; per-span Python runs only for the few spans that have events or
    # carry upstream's ``error`` / ``event.count`` attributes.

    @cached_property
    def status_counts(self) -> dict[str, dict[str, int]]:
        """Span name -> status -> count (status as :class:`Span` carries it)."""
        tallies: dict[str, dict[str, int]] = {name: {} for name in self.by_name}
        for (name, status), count in Counter(map(_name_status, self.spans)).items():
            tallies[name][status] = count
        return tallies

    @cached_property
    def attribute_keys(self) -> frozenset[str]:
        """Every attribute key any span carries: one C-level pass that lets the rules
        looking for rare keys (``error``, ``event.count``, forbidden and external-service
        keys) skip the per-span scan when no span has them, the usual case."""
        return frozenset(chain.from_iterable(map(_attributes, self.spans)))

    @cached_property
    def error_counts(self) -> dict[str, int]:
        """Span name -> spans with ERROR status or ``error = true`` (names with none omitted).

        A span that is both counts once.
        """
        out: dict[str, int] = {}
        for name, statuses in self.status_counts.items():
            if statuses.get("ERROR"):
                out[name] = statuses["ERROR"]
        flagged = ([span for span in self.spans if "error" in span.attributes]
                   if "error" in self.attribute_keys else [])
        for span in flagged:
            if span.status != "ERROR" and _error_flag(span):
                out[span.name] = out.get(span.name, 0) + 1
        return out

    @cached_property
    def event_counts(self) -> dict[str, int]:
        """Span name -> events on spans of that name (names with none omitted).

        Per span: the events list, or upstream's ``event.count`` attribute when
        that is larger.  Sources that only summarise events set ``event.count``
        (upstream summed that attribute alone and ignored real events);
        taking the larger never counts one event twice.
        """
        out: dict[str, int] = {}
        for span in filter(_events, self.spans):
            out[span.name] = out.get(span.name, 0) + len(span.events)
        declared = ([span for span in self.spans if "event.count" in span.attributes]
                    if "event.count" in self.attribute_keys else [])
        for span in declared:
            extra = _declared_events(span) - len(span.events)
            if extra > 0:
                out[span.name] = out.get(span.name, 0) + extra
        return out

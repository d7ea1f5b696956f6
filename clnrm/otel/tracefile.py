"""Read an existing trace export for ``clnrm run --traces FILE``.

Three formats, told apart by content (never by file name):

- OTLP JSON: one ``ExportTraceServiceRequest`` document, or one per line as
  the collector's file exporter writes them;
- Jaeger JSON: ``{"data": [{"traceID", "spans", "processes"}]}``;
- clnrm's own ``spans.jsonl``: one :meth:`Span.to_dict` object per line (the
  upstream stdout span lines, ``name``/``trace_id``/``span_id``..., also fit).

Every shape is a typed pydantic schema; anything it rejects becomes a
:class:`~clnrm.errors.ScenarioError` naming the file, the line and the key
path (``resourceSpans[0].scopeSpans[0].spans[3].traceId``), so the CLI prints
one located message and exits 2.  Validation runs in pydantic-core and the
garbage collector is paused while a file loads (measured on 100k spans:
spans.jsonl 0.5 s instead of 0.9 s, a 50 MB OTLP JSON document 1.5 s instead
of 2.4 s).

A trace file is untrusted input, so beyond its shape a file is refused (exit 2,
located) when it is not a regular file, is over ``MAX_TRACE_FILE_BYTES``, holds
no span at all, repeats a span id within a trace, or nests spans deeper than
:data:`~clnrm.otel.digest.MAX_SPAN_DEPTH`; times must fit OTLP's uint64
nanoseconds.
"""

from __future__ import annotations

import bisect
import gc
import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Required

from pydantic import AliasChoices, Field, TypeAdapter, ValidationError
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from clnrm.errors import ScenarioError
from clnrm.otel.decode import (
    OtlpDecodeError,
    clean_loc,
    friendly_message,
    json_syntax_error,
    key_path,
    spans_from_json_object,
    status_from_attributes,
)
from clnrm.otel.digest import MAX_SPAN_DEPTH, span_depths
from clnrm.otel.jaeger import JAEGER_ADAPTER, JaegerValueError, spans_from_jaeger
from clnrm.otel.otlp_json import REQUEST_ADAPTER
from clnrm.otel.span import Span, SpanEvent
from clnrm.paths import STDIN, PathError, read_regular_file

MAX_TRACE_FILE_BYTES: Final = 128 << 20
"""Largest trace file read (about 350k spans of OTLP JSON; loading takes ~13x its size in RAM)."""

FORMATS_HINT: Final = (
    "clnrm reads OTLP JSON ({\"resourceSpans\": [...]}, one request or one per line), "
    "Jaeger JSON ({\"data\": [{\"traceID\", \"spans\", \"processes\"}]}) and its own "
    "spans.jsonl (one span object per line)")
UINT64_MAX: Final = 2**64 - 1
_WS: Final = re.compile(r"\s*")


# both spellings as literals rather than a lower() validator: no Python call per line
KindName = Literal["internal", "server", "client", "producer", "consumer", "unspecified",
                   "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER", "UNSPECIFIED"]
"""A span kind as ``spans.jsonl`` (or upstream's stdout lines) may spell it."""
StatusName = Literal["UNSET", "OK", "ERROR", "unset", "ok", "error"]
"""A span status as ``spans.jsonl`` may spell it."""


class EventRecord(TypedDict, total=False):
    name: Required[str]
    time_unix_nano: Annotated[int, Field(ge=0, le=UINT64_MAX)] | None
    attributes: dict[str, Any]


class SpanRecord(TypedDict, total=False):
    """One line of ``spans.jsonl`` (``Span.to_dict()``); events may be bare names."""

    name: Required[str]
    trace_id: Required[Annotated[str, Field(pattern=r"^[0-9a-fA-F]{32}$")]]
    span_id: Required[Annotated[str, Field(pattern=r"^[0-9a-fA-F]{16}$")]]
    parent_span_id: Annotated[str, Field(pattern=r"^(?:[0-9a-fA-F]{16})?$")] | None
    start_time_unix_nano: Annotated[int, Field(ge=0, le=UINT64_MAX)] | None
    end_time_unix_nano: Annotated[int, Field(ge=0, le=UINT64_MAX)] | None
    kind: KindName
    status: StatusName
    status_message: str
    attributes: dict[str, Any]
    events: list[EventRecord | str]
    resource: Annotated[dict[str, Any], Field(validation_alias=AliasChoices(
        "resource", "resource_attributes"))]
    scope: str | None


SPAN_RECORD_ADAPTER: Final = TypeAdapter(SpanRecord)
"""Validates one ``spans.jsonl`` line."""


def load_trace_file(path: Path | str, *, allow_stdin: bool = False) -> list[Span]:
    """Every span in ``path`` (``-`` is stdin when ``allow_stdin``).

    Raises ScenarioError, nothing else: for a path that is not a regular file,
    a file over ``MAX_TRACE_FILE_BYTES``, and a file without any span, too.
    """
    stdin = allow_stdin and str(path) == STDIN
    name: Path | str = "<stdin>" if stdin else Path(path)
    try:
        raw = read_regular_file(path, limit=MAX_TRACE_FILE_BYTES, what="trace file",
                                allow_stdin=allow_stdin)
    except PathError as exc:
        raise ScenarioError(exc.reason, file=name) from None
    return load_trace_bytes(raw, file=name)


def load_trace_bytes(raw: bytes, *, file: Path | str | None = None) -> list[Span]:
    """:func:`load_trace_file` for bytes already read (stdin, say)."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ScenarioError(f"not UTF-8 text (byte {exc.start})", file=file, line=line,
                            hint=FORMATS_HINT) from None
    with _gc_paused():
        return parse_trace_text(text, file=file)


def parse_trace_text(text: str, *, file: Path | str | None = None) -> list[Span]:
    """The parser behind :func:`load_trace_file`, for text already in memory."""
    lines = text.splitlines()
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        raise ScenarioError("no spans: the trace file is empty" if not text else
                            "no spans: the trace file holds only whitespace", file=file)
    head = lines[first].strip()
    if head.startswith("{") and head.endswith("}"):
        spans, origin = _parse_lines(lines, first, file)
    else:
        spans, origin = _parse_document(text, file), _Origin(text)
    _check_tree(spans, origin, file)
    return spans


def _parse_document(text: str, file: Path | str | None) -> list[Span]:
    """One pretty-printed document: OTLP or Jaeger, told apart by its top-level keys."""
    if not text.lstrip().startswith("{"):
        err = json_syntax_error(text, "")
        if err.line is not None and not text.lstrip().startswith("["):
            raise ScenarioError(err.message, file=file, line=err.line, hint=FORMATS_HINT)
        raise ScenarioError("a trace file must hold a JSON object (or one per line)",
                            file=file, line=1, hint=FORMATS_HINT)
    # a substring test, not a parse: the validator below is the one pass over the text
    if '"resourceSpans"' in text or '"resource_spans"' in text:
        return _validate(text, file, "OTLP JSON", REQUEST_ADAPTER.validate_json,
                         spans_from_json_object)
    if '"data"' in text:
        return _validate(text, file, "Jaeger JSON", JAEGER_ADAPTER.validate_json,
                         spans_from_jaeger)
    keys = _top_level_keys(text)
    if keys is None:
        err = json_syntax_error(text, "")
        raise ScenarioError(err.message, file=file, line=err.line, hint=FORMATS_HINT)
    raise ScenarioError(f"not a trace export: top-level keys {sorted(keys)}", file=file,
                        line=1, hint=FORMATS_HINT)


def _validate(text: str, file: Path | str | None, fmt: str, validate: Callable[[str], Any],
              convert: Callable[[Any], list[Span]]) -> list[Span]:
    try:
        data = validate(text)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        if err["type"] == "json_invalid":
            syntax = json_syntax_error(text, str(err.get("ctx", {}).get("error", err["msg"])))
            where = f" (column {syntax.column})" if syntax.column else ""
            raise ScenarioError(f"{syntax.message}{where}", file=file, line=syntax.line,
                                hint=FORMATS_HINT) from None
        loc = clean_loc(err["loc"])
        raise ScenarioError(f"{fmt}: {friendly_message(err)}", file=file,
                            line=line_of(text, loc), key_path=key_path(loc) or None,
                            hint=_hint(fmt)) from None
    try:
        return convert(data)
    except JaegerValueError as exc:
        raise ScenarioError(f"{fmt}: {exc.message}", file=file, line=line_of(text, exc.loc),
                            key_path=key_path(exc.loc), hint=_hint(fmt)) from None


def _parse_lines(lines: list[str], first: int,
                 file: Path | str | None) -> tuple[list[Span], _Origin]:
    """JSON Lines: the first record decides the format for the whole file."""
    head = lines[first]
    # substring tests, not a parse: a one-line OTLP export can be the whole file
    if '"resourceSpans"' in head or '"resource_spans"' in head:
        fmt = "OTLP JSON"
    elif '"trace_id"' in head and '"span_id"' in head:
        fmt = "spans.jsonl"
    elif '"data"' in head:
        fmt = "Jaeger JSON"
    else:
        keys = sorted(_load_head(head, first + 1, file))
        raise ScenarioError(f"not a trace record: keys {keys[:8]}", file=file,
                            line=first + 1, hint=FORMATS_HINT)
    adapter, convert = _LINE_FORMATS[fmt]
    validate = adapter.validate_json
    out: list[Span] = []
    origin = _Origin(None, lines)
    for index in range(first, len(lines)):
        line = lines[index]
        if not line or line.isspace():
            continue
        origin.starts.append(len(out))
        origin.numbers.append(index + 1)
        try:
            out.extend(convert(validate(line)))
        except ValidationError as exc:
            raise _line_error(exc, line, index + 1, file, fmt) from None
        except JaegerValueError as exc:
            raise ScenarioError(f"{fmt}: {exc.message}", file=file, line=index + 1,
                                key_path=key_path(exc.loc), hint=_hint(fmt)) from None
    return out, origin


def _load_head(line: str, number: int, file: Path | str | None) -> dict[str, Any]:
    try:
        head = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ScenarioError(f"invalid JSON: {exc.msg} (column {exc.colno})", file=file,
                            line=number, hint=FORMATS_HINT) from None
    if not isinstance(head, dict):
        raise ScenarioError("a trace record must be a JSON object", file=file, line=number,
                            hint=FORMATS_HINT)
    return head


def _line_error(exc: ValidationError, line: str, number: int, file: Path | str | None,
                fmt: str) -> ScenarioError:
    err = exc.errors(include_url=False)[0]
    if err["type"] == "json_invalid":
        syntax: OtlpDecodeError = json_syntax_error(line, str(err.get("ctx", {}).get("error")))
        where = f" (column {syntax.column})" if syntax.column else ""
        return ScenarioError(f"{syntax.message}{where}", file=file, line=number,
                             hint=FORMATS_HINT)
    loc = clean_loc(err["loc"])
    return ScenarioError(f"{fmt}: {friendly_message(err)}", file=file, line=number,
                         key_path=key_path(loc) or None, hint=_hint(fmt))


def _spans_from_record(rec: SpanRecord) -> list[Span]:
    attributes = rec.get("attributes") or {}
    events = [SpanEvent(e) if isinstance(e, str) else
              SpanEvent(e["name"], e.get("time_unix_nano"), e.get("attributes") or {})
              for e in rec.get("events") or ()]
    parent = rec.get("parent_span_id")
    status = rec.get("status")
    return [Span(
        name=rec["name"], trace_id=rec["trace_id"].lower(), span_id=rec["span_id"].lower(),
        parent_span_id=parent.lower() if parent else None,
        start_time_unix_nano=rec.get("start_time_unix_nano"),
        end_time_unix_nano=rec.get("end_time_unix_nano"),
        kind=rec.get("kind", "internal").lower(),
        status=status.upper() if status else status_from_attributes(attributes),
        status_message=rec.get("status_message", ""),
        attributes=attributes, events=events, resource=rec.get("resource") or {},
        scope=rec.get("scope"))]


_LINE_FORMATS: Final[dict[str, tuple[TypeAdapter[Any], Callable[[Any], list[Span]]]]] = {
    "OTLP JSON": (REQUEST_ADAPTER, spans_from_json_object),
    "spans.jsonl": (SPAN_RECORD_ADAPTER, _spans_from_record),
    "Jaeger JSON": (JAEGER_ADAPTER, spans_from_jaeger),
}


def _hint(fmt: str) -> str:
    if fmt == "OTLP JSON":
        return ("OTLP JSON follows the proto3 JSON mapping: ids are hex strings, 64-bit "
                "integers may be strings, attribute values are {\"stringValue\": ...} objects")
    if fmt == "Jaeger JSON":
        return "Jaeger ids are hex strings, times are microseconds, tags are {key, type, value}"
    return "each line is one span: name, trace_id (32 hex), span_id (16 hex), and optional fields"


# -- checks over the whole file ----------------------------------------------------------


def _check_tree(spans: list[Span], origin: _Origin, file: Path | str | None) -> None:
    """Refuse a span id repeated within a trace and a tree deeper than MAX_SPAN_DEPTH.

    Both are checked after parsing because they span records; ``origin`` then finds
    the line and key path of the culprit.
    """
    ids = [(span.trace_id, span.span_id) for span in spans]
    seen: dict[tuple[str, str], int] = {}
    for index, span in enumerate(spans if len(set(ids)) != len(ids) else ()):
        first = seen.setdefault(ids[index], index)
        if first != index:
            line, path = origin.locate(first, "id")
            earlier = f" (first at line {line})" if line is not None else ""
            line, path = origin.locate(index, "id")
            raise ScenarioError(f"duplicate span id {span.span_id} in trace {span.trace_id}"
                                f"{earlier}: a span id must be unique within its trace",
                                file=file, line=line, key_path=path)
    if len(spans) <= MAX_SPAN_DEPTH:
        return
    depths = span_depths(spans)
    # the first span past the cap in file order: where the problem starts to show
    deepest = next((i for i, d in enumerate(depths) if d > MAX_SPAN_DEPTH), None)
    if deepest is not None:
        line, path = origin.locate(deepest, None)
        raise ScenarioError(
            f"span {spans[deepest].name!r} is nested {depths[deepest]} levels deep; clnrm "
            f"judges span trees at most {MAX_SPAN_DEPTH} levels deep", file=file, line=line,
            key_path=path)


_SPAN_CONTAINERS: Final = (("resourceSpans", "resource_spans"), ("scopeSpans", "scope_spans"),
                           ("spans",))
_ID_KEYS: Final = ("spanId", "span_id", "spanID")


class _Origin:
    """Where each parsed span came from: one document, or one record per line.

    Only used on the error path, so it parses the culprit's text again rather than
    keeping per-span positions around for every file that loads fine.
    """

    def __init__(self, text: str | None, lines: list[str] | None = None) -> None:
        self.text = text
        self.lines = lines
        self.starts: list[int] = []  # index of the first span of each record
        self.numbers: list[int] = []  # 1-based line of each record

    def locate(self, index: int, key: str | None) -> tuple[int | None, str | None]:
        """Line and key path of span ``index`` (and of its id field when ``key``)."""
        if self.text is not None:
            text, offset, line = self.text, index, None
        else:
            record = bisect.bisect_right(self.starts, index) - 1
            line = self.numbers[record]
            assert self.lines is not None
            text, offset = self.lines[line - 1], index - self.starts[record]
        try:
            loc = _span_loc(json.loads(text), offset, key is not None)
        except (ValueError, RecursionError):
            loc = None
        if loc is None:
            return line, None
        if line is None:
            line = line_of(text, loc)
        return line, key_path(loc) or None


def _span_loc(data: Any, offset: int, with_id: bool) -> list[str | int] | None:
    """Key path of the ``offset``-th span of one OTLP request, Jaeger export or span line."""
    if not isinstance(data, dict):
        return None
    if "data" in data and isinstance(data["data"], list):  # Jaeger
        for ti, trace in enumerate(data["data"]):
            spans = trace.get("spans") if isinstance(trace, dict) else None
            if isinstance(spans, list):
                if offset < len(spans):
                    return _with_id(["data", ti, "spans", offset], spans[offset], with_id)
                offset -= len(spans)
        return None
    if "trace_id" in data or "span_id" in data:  # spans.jsonl: one span per line
        return _with_id([], data, with_id)
    return _nested_loc(data, _SPAN_CONTAINERS, [], [offset], with_id)


def _nested_loc(node: dict[str, Any], keys: tuple[tuple[str, ...], ...],
                prefix: list[str | int], offset: list[int],
                with_id: bool) -> list[str | int] | None:
    name = next((k for k in keys[0] if isinstance(node.get(k), list)), None)
    if name is None:
        return None
    for i, item in enumerate(node[name]):
        if not isinstance(item, dict):
            continue
        if len(keys) == 1:
            if offset[0] == 0:
                return _with_id([*prefix, name, i], item, with_id)
            offset[0] -= 1
            continue
        found = _nested_loc(item, keys[1:], [*prefix, name, i], offset, with_id)
        if found is not None:
            return found
    return None


def _with_id(loc: list[str | int], span: Any, with_id: bool) -> list[str | int]:
    if with_id and isinstance(span, dict):
        found = next((k for k in _ID_KEYS if k in span), None)
        if found is not None:
            return [*loc, found]
    return loc


# -- locating a key path in JSON text ------------------------------------------------


def _top_level_keys(text: str) -> set[str] | None:
    """Keys of the outer object, without parsing the (possibly huge) values twice."""
    try:
        keys: set[str] = set()
        decoder = json.JSONDecoder()
        i = _WS.match(text, text.index("{") + 1).end()  # type: ignore[union-attr]
        while text[i] != "}":
            key, i = json.decoder.scanstring(text, i + 1)  # type: ignore[attr-defined]
            keys.add(key)
            i = _WS.match(text, i).end() + 1  # type: ignore[union-attr]  # the ':'
            i = _skip_value(decoder, text, i)
            if text[i] == ",":
                i = _WS.match(text, i + 1).end()  # type: ignore[union-attr]
        return keys
    except (ValueError, IndexError, RecursionError):
        return None


def line_of(text: str, loc: list[str | int]) -> int | None:
    """1-based line where the value at ``loc`` starts (or its deepest existing parent)."""
    decoder = json.JSONDecoder()
    i = _WS.match(text, 0).end()  # type: ignore[union-attr]
    found = i
    try:
        for part in loc:
            if isinstance(part, int):
                if text[i] != "[":
                    break
                i = _WS.match(text, i + 1).end()  # type: ignore[union-attr]
                for _ in range(part):
                    i = _skip_value(decoder, text, i)
                    i = _WS.match(text, i + 1).end()  # type: ignore[union-attr]  # past ','
            else:
                if text[i] != "{":
                    break
                i = _WS.match(text, i + 1).end()  # type: ignore[union-attr]
                while text[i] == '"':
                    key, i = json.decoder.scanstring(text, i + 1)  # type: ignore[attr-defined]
                    i = _WS.match(text, _WS.match(text, i).end() + 1).end()  # type: ignore
                    if key == part:
                        break
                    i = _skip_value(decoder, text, i)
                    if text[i] == ",":
                        i = _WS.match(text, i + 1).end()  # type: ignore[union-attr]
                else:
                    break
            found = i
    except (ValueError, IndexError, RecursionError):
        pass
    return text.count("\n", 0, found) + 1


def _skip_value(decoder: json.JSONDecoder, text: str, i: int) -> int:
    _, end = decoder.raw_decode(text, _WS.match(text, i).end())  # type: ignore[union-attr]
    return int(_WS.match(text, end).end())  # type: ignore[union-attr]


_gc_lock = threading.Lock()
_gc_depth = 0


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while a file loads: millions of new objects, no cycles.

    Counted, so nested or concurrent loads re-enable it only when the last one ends,
    and only if it was enabled before.
    """
    global _gc_depth
    with _gc_lock:
        was_enabled = gc.isenabled() if _gc_depth == 0 else True
        _gc_depth += 1
        gc.disable()
    try:
        yield
    finally:
        with _gc_lock:
            _gc_depth -= 1
            if _gc_depth == 0 and was_enabled:
                gc.enable()

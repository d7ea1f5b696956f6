"""The render budget: how much time, output and value size one template may use.

Jinja's sandbox stops a template from reaching Python internals, but not from
working for minutes or building gigabytes: nested ``{% for %}`` loops multiply
(``range`` alone is capped at 100 000 items), ``'a' * 1000000`` in a loop
prints a megabyte per turn, and ``'%0300000000d' % 1`` or ``center(300000000)``
build one 300 MB string.  A :class:`RenderBudget` bounds all of it:

* **time** -- one deadline for the whole render (every pass), checked on each
  loop turn, call, filter, operator and printed value;
* **loop turns** -- per pass, over all loops together (nesting multiplies);
* **output** -- characters produced per pass: every ``{{ }}`` value (also
  inside macros and ``{% set %}`` blocks) plus each loop turn's literal text,
  and the final stream;
* **value size** -- no single value (string, list, table; shared references
  counted each time) may exceed :data:`MAX_VALUE_SIZE`; expanding filters and
  operators are estimated *before* they run, so the big value is never built.
  (``truncate`` and other filters that cannot grow their input are checked after.)

Exceeding a limit raises :class:`RenderLimitError`; the template module turns
it into a :class:`~clnrm.errors.ScenarioError` with the template line.  The
numbers are documented in ``docs/toml-reference.md`` (Templates: limits).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Mapping
from functools import wraps
from typing import Any, Final

from jinja2 import Undefined, nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst

RENDER_SECONDS: Final = 10.0
"""Wall-clock seconds one file's render may take, all passes together."""
MAX_RENDERED_CHARS: Final = 8 * 2**20
"""Characters one pass may produce (printed values plus loop text), and the output size."""
MAX_LOOP_TURNS: Final = 1_000_000
"""Loop turns per pass, all ``{% for %}`` loops together."""
MAX_VALUE_SIZE: Final = 1_000_000
"""Size of one value: characters of a string, plus one per list item or table entry."""

_TEXT: Final = (str, bytes)
_SEQUENCES: Final = (str, list, tuple)
_COLLECTIONS: Final = (list, tuple, set, frozenset)
_WIDE: Final = re.compile(r"\d{3}|\*")
_FORMAT_SPEC: Final = re.compile(r"%(?:\([^)]*\))?[#0 +\-]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?.")


class RenderLimitError(Exception):
    """A template went over its render budget; the message says which limit and by what."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


def value_size(value: Any, limit: int = MAX_VALUE_SIZE) -> int:
    """Characters plus container entries of ``value``, counting shared references each time.

    Stops counting once past ``limit`` (the answer is then just "over"), so the
    cost is bounded even for ``[big] * 1000000``.
    """
    kind = type(value)
    if kind is str:
        return len(value)
    if kind is int or kind is float or kind is bool:
        return 1
    total = 0
    stack = [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, _TEXT):
            total += len(item)
        elif isinstance(item, Mapping):
            total += len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, _COLLECTIONS):
            total += len(item)
            stack.extend(item)
        elif not isinstance(item, Undefined) and item is not None:
            total += 1
    return total


class RenderBudget:
    """Limits for one render; shared by its passes (the deadline) and reset per pass (counts)."""

    def __init__(
        self,
        *,
        seconds: float = RENDER_SECONDS,
        max_chars: int = MAX_RENDERED_CHARS,
        max_turns: int = MAX_LOOP_TURNS,
        max_value: int = MAX_VALUE_SIZE,
    ) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.max_chars = max_chars
        self.max_turns = max_turns
        self.max_value = max_value
        self.produced = 0
        self.turns = 0
        self._ticks = 0

    def new_pass(self) -> None:
        """Counts start again for each pass; the deadline does not."""
        self.produced = 0
        self.turns = 0

    def tick(self) -> None:
        """Check the deadline every 32nd call (each step between is bounded by the size limit)."""
        self._ticks += 1
        if self._ticks & 31 == 0 and time.monotonic() > self.deadline:
            raise RenderLimitError(
                f"template took longer than {self.seconds:g} s to render",
                "templates are for generating a test file, not for computation; "
                "reduce loop sizes or nesting",
            )

    def charge(self, chars: int) -> None:
        """Count ``chars`` produced characters against the output limit."""
        self.produced += chars
        if self.produced > self.max_chars:
            raise RenderLimitError(
                f"template output would exceed {self.max_chars:,} characters",
                "a test file needs far less; check loop sizes and repeated large values",
            )

    def check_value(self, value: Any, what: str) -> Any:
        if isinstance(value, str | list | tuple | dict | set | frozenset | Mapping):
            self.check_size(value_size(value, self.max_value), what)
        return value

    def check_size(self, size: int, what: str) -> None:
        if size > self.max_value:
            raise RenderLimitError(
                f"{what} would be larger than {self.max_value:,} characters/items",
                f"values in templates are limited to {self.max_value:,} characters or items",
            )

    # -- hooks called from compiled templates ---------------------------------------

    def loop(self, iterable: Any, body_chars: int) -> Iterator[Any]:
        """Iterate as ``{% for %}`` would, counting turns, time and the body's literal text."""
        for item in iterable:
            self.turns += 1
            if self.turns > self.max_turns:
                raise RenderLimitError(
                    f"template loops turned more than {self.max_turns:,} times",
                    "nested loops multiply; a test file rarely needs more than a few hundred",
                )
            self.tick()
            if body_chars:
                self.charge(body_chars)
            yield item

    def concat(self, parts: tuple[Any, ...]) -> str:
        """``a ~ b``: estimated before joining, so doubling a value cannot run away."""
        self.tick()
        size = 0
        for part in parts:
            size += len(part) if type(part) is str else value_size(part, self.max_value)
        if size > self.max_value:
            self.check_size(size, "'~' result")
        return "".join([part if type(part) is str else str(part) for part in parts])

    def printed(self, value: Any) -> Any:
        """Every ``{{ }}`` value passes here (the environment's finalize)."""
        self.tick()
        if isinstance(value, str):
            self.produced += len(value)
            if self.produced > self.max_chars:
                self.charge(0)
        return value

    def binop_size(self, operator: str, left: Any, right: Any) -> None:
        """Refuse ``*``, ``+`` and ``%`` results over the value limit before building them."""
        self.tick()
        if not isinstance(left, _SEQUENCES) and not isinstance(right, _SEQUENCES):
            return  # numbers: '**' is checked by the caller, the rest cannot grow big
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, _SEQUENCES) and isinstance(times, int):
                    self.check_size(value_size(seq) * max(times, 0), "'*' result")
        elif operator == "+" and isinstance(left, _SEQUENCES):
            self.check_size(value_size(left) + value_size(right), "'+' result")
        elif operator == "%" and isinstance(left, str):
            self.check_size(format_size(left, right), "'%' result")

    def guard_filter(self, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        """``func`` with the budget checked before (estimate) and after (result size)."""
        estimate = _ESTIMATES.get(name)
        skip = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0

        @wraps(func)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            self.tick()
            if estimate is not None and len(args) > skip:
                self.check_size(estimate(*args[skip:], **kwargs), f"'{name}' filter result")
            return self.check_value(func(*args, **kwargs), f"'{name}' filter result")

        return guarded


# -- size estimates of expanding filters and operators ------------------------------


def format_size(fmt: str, values: Any) -> int:
    """Upper bound of ``fmt % values``: the text, every width and precision, every value."""
    if not _WIDE.search(fmt):
        # no width/precision over 99 and no '*': at most 100 characters per two of the text
        return len(fmt) * 51 + value_size(values)
    numbers = [v for v in _as_tuple(values) if isinstance(v, int) and not isinstance(v, bool)]
    star = max((abs(n) for n in numbers), default=0)
    total = len(fmt) + value_size(values)
    for width, precision in _FORMAT_SPEC.findall(fmt):
        for part in (width, precision):
            if part:
                total += star if part == "*" else int(part)
    return total


def _as_tuple(values: Any) -> tuple[Any, ...]:
    if isinstance(values, tuple):
        return values
    if isinstance(values, Mapping):
        return tuple(values.values())
    return (values,)


def _int(value: Any, default: int = 0) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return abs(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return abs(int(value))
    return default


def _lines(value: Any) -> int:
    return str(value).count("\n") + 1 if isinstance(value, str) else 1


def _center(value: Any, width: Any = 80, *_: Any, **__: Any) -> int:
    return value_size(value) + _int(width)


def _indent(value: Any, width: Any = 4, *_: Any, **kwargs: Any) -> int:
    width = kwargs.get("width", width)
    per_line = len(width) if isinstance(width, str) else _int(width)
    return value_size(value) + _lines(value) * per_line


def _wordwrap(value: Any, width: Any = 79, *args: Any, **kwargs: Any) -> int:
    wrap = kwargs.get("wrapstring", args[1] if len(args) > 1 else "\n")
    size = value_size(value)
    return size + (size + _lines(value)) * len(str(wrap or "\n"))


def _join(value: Any, d: Any = "", *args: Any, **kwargs: Any) -> int:
    sep = kwargs.get("sep", kwargs.get("d", d))
    items = value if isinstance(value, list | tuple | str) else ()
    return value_size(value) + len(items) * len(str(sep or ""))


def _replace(value: Any, old: Any = None, new: Any = None, *_: Any, **kwargs: Any) -> int:
    old = kwargs.get("from", old)
    new = kwargs.get("to", new)
    text = str(value) if isinstance(value, str) else ""
    hits = len(text) + 1 if not old else text.count(str(old))
    return len(text) + hits * len(str(new or ""))


def _format(value: Any, *args: Any, **kwargs: Any) -> int:
    return format_size(str(value), kwargs or args)


def _urlize(value: Any, *args: Any, **kwargs: Any) -> int:
    extra = sum(len(str(v)) for v in (*args, *kwargs.values()) if isinstance(v, str))
    return value_size(value) * (3 + extra)


def _batch(value: Any, linecount: Any = 1, fill_with: Any = None, *_: Any, **__: Any) -> int:
    # only the fill pads the last batch up to linecount items
    return value_size(value) + (_int(linecount, 1) if fill_with is not None else 0)


def _slice(value: Any, slices: Any = 1, *_: Any, **__: Any) -> int:
    return value_size(value) + _int(slices, 1) * 2


def _tojson(value: Any, indent: Any = None, *_: Any, **kwargs: Any) -> int:
    indent = kwargs.get("indent", indent)
    return value_size(value) * (8 + _int(indent) * 4)


_ESTIMATES: Final[dict[str, Callable[..., int]]] = {
    "center": _center,
    "indent": _indent,
    "wordwrap": _wordwrap,
    "join": _join,
    "replace": _replace,
    "format": _format,
    "urlize": _urlize,
    "batch": _batch,
    "slice": _slice,
    "tojson": _tojson,
}


# -- code generation ----------------------------------------------------------------


def _body_literal_chars(body: list[nodes.Node]) -> int:
    """Literal characters one loop turn outputs (nested loops count their own)."""
    total = 0
    stack: list[nodes.Node] = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, nodes.For):
            continue
        if isinstance(node, nodes.TemplateData):
            total += len(node.data)
        elif isinstance(node, nodes.Const) and isinstance(node.value, str):
            total += len(node.value)
        stack.extend(node.iter_child_nodes())
    return total


class BudgetCodeGenerator(CodeGenerator):
    """Jinja's code generator with loops and ``~`` routed through the environment's budget."""

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        if not getattr(node, "clnrm_budgeted", False):
            node.iter = nodes.Call(
                nodes.EnvironmentAttribute("clnrm_loop"),
                [node.iter, nodes.Const(_body_literal_chars(node.body))],
                [],
                None,
                None,
                lineno=node.lineno,
            )
            node.clnrm_budgeted = True  # type: ignore[attr-defined]
        super().visit_For(node, frame)

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        if frame.eval_ctx.volatile or frame.eval_ctx.autoescape:
            super().visit_Concat(node, frame)
            return
        self.write("environment.clnrm_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")

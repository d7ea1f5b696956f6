"""Render ``{{ }}`` / ``{% %}`` test files with a sandboxed, Tera-flavoured Jinja2.

Upstream renders with Tera.  Jinja2 reads the same expression syntax for
everything the compatibility corpus uses once Tera's keyword arguments and
functions are provided (``default(value=...)``, ``env(name=...)``...).  What
Jinja cannot parse (Tera's ``m::macro()`` calls) becomes a located
:class:`~clnrm.errors.ScenarioError`, never a traceback.

Safety: the environment is ``ImmutableSandboxedEnvironment`` with no loader, so
a template can neither read files (``include``/``import``/``extends`` are
refused with a located error) nor reach Python internals: attribute access is
limited to table keys (``vars.db.host``) and loop variables.

Variables, lowest to highest precedence: upstream's defaults (``svc``,
``env``, ``endpoint``, ``exporter``, ``image``, ``freeze_clock``, ``token``),
the environment variables of the same meaning (``SERVICE_NAME``...), the
file's ``[vars]``, then the caller's ``variables``.  Each is visible top-level
and as ``vars.<name>``.  Because ``[vars]`` lives in the file being rendered,
the file is rendered twice: leniently to read ``[vars]``/``[determinism]``,
then strictly with them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import tomli
from jinja2 import ChainableUndefined, StrictUndefined, TemplateSyntaxError, Undefined
from jinja2.exceptions import SecurityError, TemplateError, UndefinedError
from jinja2.runtime import LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment

from clnrm.errors import ScenarioError
from clnrm.redact import register_secret
from clnrm.scenario.template_budget import (
    BudgetCodeGenerator,
    RenderBudget,
    RenderLimitError,
)
from clnrm.scenario.template_functions import (
    RenderRuntime,
    TemplateFunctionError,
    tera_filters,
    toml_encode,
)

TEMPLATE_MARKERS: Final = ("{{", "{%", "{#")

DEFAULT_VARIABLES: Final[tuple[tuple[str, str, str], ...]] = (
    ("svc", "SERVICE_NAME", "clnrm"),
    ("env", "ENV", "ci"),
    ("endpoint", "OTEL_ENDPOINT", "http://localhost:4318"),
    ("exporter", "OTEL_TRACES_EXPORTER", "otlp"),
    ("image", "CLNRM_IMAGE", "clnrm/busybox:latest"),
    ("freeze_clock", "FREEZE_CLOCK", "2025-01-01T00:00:00Z"),
    ("token", "OTEL_TOKEN", ""),
)
"""(name, environment variable, default) as upstream's ``TemplateContext::with_defaults``."""

_FILE_TAG: Final = re.compile(r"\{%-?\s*(include|import|extends|from)\b")
_JINJA_COMMENT: Final = re.compile(r"\{#.*?#\}", re.S)
_TRIPLE: Final = re.compile(r'"""|\'\'\'')
_TEMPLATE_NAME: Final = "<template>"

SYNTAX_HINT: Final = (
    "templates use Jinja2 syntax with Tera's functions: {{ vars.x }}, "
    "{{ x | default(value='y') }}, {% if %}...{% endif %}, {% for %}...{% endfor %}"
)


def is_template(text: str) -> bool:
    """Upstream's rule (``{{``, ``{%`` or ``{#`` anywhere), ignoring shell's ``${#var}``."""
    return "{{" in text or "{%" in text or "{#" in text.replace("${#", "")


class TeraUndefined(StrictUndefined):
    """Undefined values as Tera treats them: printing or looping fails, tests are false.

    ``{% if vars.flag %}`` and ``{% if env(name='CI') == 'true' %}`` are
    simply false when the value is missing, which upstream files rely on.
    """

    __slots__ = ()

    # StrictUndefined raises in these four (typed as returning Never); Tera's undefined
    # answers instead, which is the point of this class.
    def __bool__(self) -> bool:  # type: ignore[override]
        return False

    def __eq__(self, other: object) -> bool:  # type: ignore[override]
        return isinstance(other, Undefined)

    def __ne__(self, other: object) -> bool:  # type: ignore[override]
        return not isinstance(other, Undefined)

    def __hash__(self) -> int:  # type: ignore[override]
        return id(type(self))


class _Placeholder(ChainableUndefined):
    """First-pass undefined: renders as nothing so ``[vars]`` can be read before it is known."""

    __slots__ = ()


class _EnvValue(str):
    """The ``env`` variable ("ci") that is also Tera's ``env(name=...)`` function.

    Jinja has one namespace for variables and functions, Tera two; upstream
    files use both ``{{ env }}`` and ``{{ env(name="HOME") }}``.
    """

    _undefined: type[Undefined]

    def __new__(cls, value: str, undefined: type[Undefined]) -> _EnvValue:
        obj = super().__new__(cls, value)
        obj._undefined = undefined
        return obj

    def __call__(self, name: object = None, default: object = None) -> Any:
        if not isinstance(name, str) or not name:
            raise TemplateFunctionError("env() needs name='VARIABLE'")
        value = os.environ.get(name)
        if value is not None:
            register_secret(name, value)  # masked in reports and logs if the name looks secret
            return value
        if default is not None and not isinstance(default, Undefined):
            return default
        return self._undefined(hint=f"environment variable {name!r} is not set", name=name)


class _Sandbox(ImmutableSandboxedEnvironment):
    """No attribute access beyond table keys and ``loop``; every step within the render budget.

    Loops, ``~``, ``*``/``+``/``%``, calls, filters and printed values all pass
    through :class:`~clnrm.scenario.template_budget.RenderBudget`.
    """

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = BudgetCodeGenerator

    def __init__(self, budget: RenderBudget, **options: Any) -> None:
        super().__init__(**options)
        self.budget = budget
        self.clnrm_loop = budget.loop
        self.clnrm_concat = budget.concat

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        __self.budget.tick()
        if isinstance(__obj, LoopContext) and args:
            # loop(children) in a recursive for: its turns count like any other loop's
            args = (__self.budget.loop(args[0], 0), *args[1:])
        result = super().call(__context, __obj, *args, **kwargs)
        name = getattr(__obj, "__name__", None) or type(__obj).__name__
        return __self.budget.check_value(result, f"result of {name}()")

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, Undefined):
            return super().getattr(obj, attribute)
        if isinstance(obj, Mapping):
            return self._key(obj, attribute)
        if isinstance(obj, LoopContext) and not attribute.startswith("_"):
            return super().getattr(obj, attribute)
        return self.undefined(
            f"templates cannot read attributes of values ({type(obj).__name__}.{attribute})",
            obj=obj,
            name=attribute,
            exc=SecurityError,
        )

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(obj, Undefined):
            return super().getitem(obj, argument)
        if isinstance(obj, Mapping):
            return self._key(obj, argument)
        if isinstance(obj, str | list | tuple) and isinstance(argument, int | slice):
            try:
                return obj[argument]
            except IndexError:
                return self.undefined(f"index {argument} is out of range", obj=obj)
        return self.undefined(
            f"templates cannot index {type(obj).__name__} with {argument!r:.40}",
            obj=obj,
            exc=SecurityError,
        )

    def _key(self, table: Mapping[Any, Any], key: Any) -> Any:
        try:
            if key in table:
                return table[key]
        except TypeError:
            pass
        return self.undefined(f"{key!r:.60} is not defined", obj=table, name=str(key))

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and not (_small_number(left) and _small_number(right, 128)):
            raise SecurityError("'**' is limited to small numbers in templates")
        self.budget.binop_size(operator, left, right)
        return super().call_binop(context, operator, left, right)


def _as_toml_text(value: Any) -> Any:
    """Print values as TOML (and Tera) spell them: ``true``, ``["a", "b"]``, not Python's repr."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple | dict):
        return toml_encode(value)
    return value


def _small_number(value: Any, limit: float = 1e12) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and abs(value) <= limit


def template_variables(
    file_vars: Mapping[str, Any] | None = None,
    variables: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """defaults < environment < ``[vars]`` < ``variables``; what ``{{ name }}`` resolves to."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {
        name: environ.get(key, default) for name, key, default in DEFAULT_VARIABLES
    }
    for _, key, _ in DEFAULT_VARIABLES:
        register_secret(key, environ.get(key))  # OTEL_TOKEN
    values.update(file_vars or {})
    values.update(variables or {})
    return values


def render_template(
    text: str,
    *,
    variables: Mapping[str, Any] | None = None,
    file: Path | str | None = None,
    budget: RenderBudget | None = None,
) -> str:
    """Render a test file; raise ``ScenarioError`` (with the template line) on any problem.

    ``budget`` bounds time, loop turns, output and value sizes over all passes
    (the documented defaults when not given); going over it is a located error.
    """
    budget = budget or RenderBudget()
    source = _prepare(text, file)
    first = _render_pass(
        source, variables=variables, file_vars=None, lenient=True, runtime=RenderRuntime(),
        budget=budget, file=file,
    )  # fmt: skip
    file_vars, matrix, seed, clock = _first_pass_facts(first)
    if seed is not None or clock is not None:
        # [vars] may call now_*/uuid_* too: read them again with the seeded clock and RNG
        # so that a file with [determinism] renders identically every time.
        again = _render_pass(
            source, variables=variables, file_vars=None, lenient=True,
            runtime=RenderRuntime(seed=seed, freeze_clock=clock), budget=budget, file=file,
        )  # fmt: skip
        file_vars, matrix, _, _ = _first_pass_facts(again)
    runtime = RenderRuntime(seed=seed, freeze_clock=clock)
    rendered = _render_pass(
        source,
        variables=variables,
        file_vars=file_vars,
        lenient=False,
        runtime=runtime,
        matrix=matrix,
        file=file,
        budget=budget,
    )
    assert rendered is not None
    return rendered


def _prepare(text: str, file: Path | str | None) -> str:
    """Refuse file tags; keep shell's ``${#`` and TOML comment lines out of the template."""
    uncommented = _JINJA_COMMENT.sub(lambda m: "\n" * m.group().count("\n"), text)
    match = _FILE_TAG.search(uncommented)
    if match:
        raise ScenarioError(
            f"templates cannot include or import files ({{% {match.group(1)} %}}); "
            "each test file is rendered on its own",
            file=file,
            line=uncommented.count("\n", 0, match.start()) + 1,
            hint="inline the macros you need with {% macro %} in this file, "
            "or share values through [vars] / --var",
        )
    lines = text.split("\n")
    open_quote: str | None = None
    for number, line in enumerate(lines):
        stripped = line.lstrip()
        if (open_quote is None and stripped.startswith("#") and "{{" in line
                and not any(tag in line for tag in ("{%", "%}", "{#", "#}"))):
            # A TOML comment's text never reaches the parsed file, so its
            # {{ }} examples must not be able to fail the render.
            lines[number] = "{% raw %}" + line + "{% endraw %}"
            continue
        for quote in _TRIPLE.findall(line):
            if open_quote is None:
                open_quote = quote
            elif quote == open_quote:
                open_quote = None
    return "\n".join(lines).replace("${#", "{{ '${#' }}")


def _render_pass(
    source: str,
    *,
    variables: Mapping[str, Any] | None,
    file_vars: Mapping[str, Any] | None,
    lenient: bool,
    runtime: RenderRuntime,
    budget: RenderBudget,
    matrix: Mapping[str, Any] | None = None,
    file: Path | str | None = None,
) -> str | None:
    undefined: type[Undefined] = _Placeholder if lenient else TeraUndefined
    budget.new_pass()
    env = _Sandbox(
        budget,
        undefined=undefined,
        keep_trailing_newline=True,
        autoescape=False,
        finalize=lambda value: budget.printed(_as_toml_text(value)),
    )
    env.filters.update(tera_filters())
    env.filters = {name: budget.guard_filter(name, f) for name, f in env.filters.items()}
    for name in ("cycler", "joiner", "namespace", "lipsum"):
        env.globals.pop(name, None)  # object helpers that only make sense with attribute access
    env.globals.update(runtime.functions())
    values = template_variables(file_vars, variables)
    if isinstance(values.get("env"), str):
        values["env"] = _EnvValue(values["env"], undefined)
    context: dict[str, Any] = {**values, "vars": values, "matrix": dict(matrix or {}), "otel": {}}
    try:
        return _streamed(env.from_string(source).generate(context), budget)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a located ScenarioError
        if lenient and not isinstance(exc, RenderLimitError):
            return None  # over budget is final: a later pass would only spend it again
        raise _located(exc, source, file) from exc


def _streamed(chunks: Any, budget: RenderBudget) -> str:
    """Join the render and check its size.

    Everything a render can repeat (printed values, each loop turn's text) is
    already charged while it is produced; what is left is the file's own text.
    """
    out = "".join(chunks)
    if len(out) > budget.max_chars:
        raise RenderLimitError(
            f"rendered file would exceed {budget.max_chars:,} characters",
            "a test file needs far less; check loop sizes and repeated large values",
        )
    return out


def _located(exc: BaseException, source: str, file: Path | str | None) -> ScenarioError:
    line = _template_line(exc)
    hint = None
    if isinstance(exc, RenderLimitError):
        message = f"template refused (render limit): {exc}"
        hint = exc.hint
    elif isinstance(exc, TemplateSyntaxError):
        message = f"template syntax error: {exc.message}"
        text = source.split("\n")[line - 1] if line and line <= source.count("\n") + 1 else ""
        hint = (
            "Tera-only syntax (macro calls like m::name(...)) is not supported; " + SYNTAX_HINT
            if "::" in text
            else SYNTAX_HINT
        )
    elif isinstance(exc, SecurityError):
        message = f"template refused: {exc}"
        hint = "templates may read variables and table keys only (no attributes, files or methods)"
    elif isinstance(exc, UndefinedError):
        message = f"template error: {exc}"
        hint = (
            "define it in [vars], pass it with --var NAME=VALUE, "
            "or write {{ x | default(value='...') }}"
        )
    elif isinstance(exc, TemplateFunctionError | TemplateError):
        message = f"template error: {exc}"
    elif isinstance(exc, RecursionError):
        message = "template is nested too deeply to render"
    else:
        message = f"template error: {type(exc).__name__}: {str(exc)[:200]}"
    return ScenarioError(message, file=file, line=line, hint=hint)


def _template_line(exc: BaseException) -> int | None:
    if isinstance(exc, TemplateSyntaxError) and exc.lineno:
        return exc.lineno
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == _TEMPLATE_NAME:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _first_pass_facts(
    rendered: str | None,
) -> tuple[dict[str, Any], dict[str, Any], int | None, str | None]:
    """``[vars]``, ``[matrix]``, seed and frozen clock from the lenient render (best effort)."""
    parsed = _parse_quietly(rendered) if rendered is not None else None
    if parsed is None and rendered is not None:
        parsed = {"vars": (_parse_quietly(_vars_section(rendered)) or {}).get("vars", {})}
    data = parsed or {}

    def table(key: str) -> dict[str, Any]:
        value = data.get(key)
        return value if isinstance(value, dict) else {}

    file_vars, matrix, det = table("vars"), table("matrix"), table("determinism")
    seed = det.get("seed")
    seed = seed if isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0 else None
    clock = det.get("freeze_clock")
    if isinstance(clock, datetime):
        clock = clock.isoformat()
    return file_vars, matrix, seed, clock if isinstance(clock, str) else None


def _parse_quietly(text: str) -> dict[str, Any] | None:
    try:
        return tomli.loads(text)
    except (tomli.TOMLDecodeError, RecursionError, ValueError):
        return None


def _vars_section(text: str) -> str:
    """Just the ``[vars]`` / ``[vars.*]`` tables, for when the whole first pass is not TOML."""
    keep, inside = [], False
    for line in text.split("\n"):
        header = re.match(r"\s*\[+\s*([^\]]*)\]", line)
        if header:
            inside = header.group(1).strip() == "vars" or header.group(1).strip().startswith(
                "vars."
            )
        if inside:
            keep.append(line)
    return "\n".join(keep)

"""Load a test file: read, render, parse, validate, normalise, with every failure located.

Each stage can fail on user input, and each failure becomes a
:class:`~clnrm.errors.ScenarioError` carrying file, line, key path and a
hint: TOML syntax (tomli's line), templates (Jinja's line), types and
unknown keys (pydantic's location mapped through :class:`LineIndex`), and
cross-field rules.  Unknown keys, and keys that are accepted but have no effect
(:mod:`clnrm.scenario.no_effect`), are warnings unless ``strict``; warnings are
returned on ``Scenario.warnings``.  Nothing a file contains may escape as
another exception type: an unexpected one is reported as an internal error
(a bug in clnrm) with the file name, instead of a traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

import tomli
from pydantic import BaseModel, ValidationError

from clnrm.errors import ScenarioError
from clnrm.redact import register_scenario_secrets
from clnrm.scenario.diagnostics import Problem, error_problem, real_path, unknown_key_problem
from clnrm.scenario.locate import KeyPath, LineIndex, format_key_path
from clnrm.scenario.model import LoadWarning, Scenario
from clnrm.scenario.no_effect import inert_key_problems
from clnrm.scenario.normalise import normalise
from clnrm.scenario.raw import RawTestFile

MAX_DEPTH: Final = 64
MAX_FILE_BYTES: Final = 16 * 1024 * 1024
INTERNAL_ERROR: Final = "internal error while loading"

M = TypeVar("M", bound=BaseModel)


@dataclass
class LoadResult:
    """Everything learnt from one file; ``errors`` empty means ``scenario`` is set."""

    path: Path | None
    scenario: Scenario | None = None
    warnings: list[LoadWarning] = field(default_factory=list)
    errors: list[ScenarioError] = field(default_factory=list)


def load_scenario(
    path: str | Path, *, strict: bool = False, variables: dict[str, str] | None = None
) -> Scenario:
    """Load one test file or raise the first located ``ScenarioError``.

    The raised error has a ``problems`` attribute listing every error found
    in the file (the first one included), for tools that show them all.
    """
    result = load_file(path, strict=strict, variables=variables)
    return _scenario_or_raise(result)


def loads_scenario(
    text: str,
    *,
    source: str | Path | None = None,
    strict: bool = False,
    variables: dict[str, str] | None = None,
) -> Scenario:
    """Like :func:`load_scenario` for text already in memory; ``source`` names it in messages."""
    file = Path(source) if source is not None else None
    return _scenario_or_raise(_guarded(file, lambda: _load_text(text, file, strict, variables)))


def load_file(
    path: str | Path, *, strict: bool = False, variables: dict[str, str] | None = None
) -> LoadResult:
    """Load one test file and report instead of raising (what ``validate`` needs)."""
    file = Path(path)
    return _guarded(file, lambda: _load_text(read_text(file), file, strict, variables))


def _scenario_or_raise(result: LoadResult) -> Scenario:
    if result.errors:
        first = result.errors[0]
        first.problems = list(result.errors)  # type: ignore[attr-defined]
        raise first
    assert result.scenario is not None
    return result.scenario


def _guarded(file: Path | None, load: Callable[[], LoadResult]) -> LoadResult:
    try:
        return load()
    except ScenarioError as exc:
        return LoadResult(file, errors=[exc])
    except Exception as exc:  # noqa: BLE001 - a file must never produce a traceback
        return LoadResult(
            file,
            errors=[
                ScenarioError(
                    f"{INTERNAL_ERROR}: {type(exc).__name__}: {str(exc)[:200]}",
                    file=file,
                    hint="this is a bug in clnrm; please report it with the file attached",
                )
            ],
        )


def read_text(file: Path) -> str:
    """The file as text; unreadable, oversized or non-UTF-8 files are located errors."""
    try:
        if file.stat().st_size > MAX_FILE_BYTES:
            raise ScenarioError(f"file is larger than {MAX_FILE_BYTES // 2**20} MB", file=file)
        data = file.read_bytes()
    except OSError as exc:
        raise ScenarioError(f"cannot read file: {exc.strerror or exc}", file=file) from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ScenarioError(
            f"file is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})",
            file=file,
            line=line,
            hint="TOML files must be UTF-8; re-save the file as UTF-8",
        ) from exc


def _load_text(
    text: str, file: Path | None, strict: bool, variables: Mapping[str, str] | None
) -> LoadResult:
    templated = _is_template(text)
    if templated:
        from clnrm.scenario.template import render_template

        rendered = render_template(text, variables=variables, file=file)
    else:
        rendered = text
    note = ""
    if templated and rendered.count("\n") != text.count("\n"):
        note = " (line of the rendered template)"
    data = parse_toml(rendered, file, templated=templated, note=note)
    index = LineIndex(rendered)
    raw, unknown, errors = validate_document(data, RawTestFile)
    result = LoadResult(file)
    scenario = None
    if raw is not None and not errors:
        file_vars = dict(raw.vars)
        file_vars.update(variables or {})
        scenario, errors = normalise(raw, vars_=file_vars)
        unknown = unknown + inert_key_problems(data)
    if strict:
        errors = unknown + errors
    else:
        result.warnings = [
            _warning(problem, file, index, note) for problem in _by_line(unknown, index)
        ]
    result.errors = [to_error(problem, file, index, note) for problem in _by_line(errors, index)]
    if scenario is not None and not result.errors:
        register_scenario_secrets(scenario)  # masked in reports and logs from now on
        scenario.source = str(file) if file is not None else None
        scenario.templated = templated
        scenario.warnings = list(result.warnings)
        result.scenario = scenario
    return result


def _is_template(text: str) -> bool:
    """:func:`clnrm.scenario.template.is_template`, importing the template engine (Jinja,
    a tenth of a run's start-up) only for a file that has a tag opener at all."""
    if "{{" not in text and "{%" not in text and "{#" not in text:
        return False
    from clnrm.scenario.template import is_template

    return is_template(text)


def parse_toml(
    text: str, file: Path | None, *, templated: bool = False, note: str = ""
) -> dict[str, Any]:
    """tomli, with its errors located and nesting bounded."""
    try:
        data = tomli.loads(text)
    except tomli.TOMLDecodeError as exc:
        after = " after template rendering" if templated else ""
        message = f"not valid TOML{after}: {exc.msg} (column {exc.colno}){note}"
        raise ScenarioError(
            message, file=file, line=exc.lineno, hint=_toml_hint(exc, text)
        ) from exc
    except RecursionError as exc:
        # tomli recurses per level and gives no position; our scanner is bounded
        # (it stops at its own depth limit) and knows where the deepest value starts.
        deepest = LineIndex(text).deepest()
        raise ScenarioError(
            f"arrays or inline tables are nested too deeply to read (over {MAX_DEPTH} levels)",
            file=file,
            line=deepest[1] if deepest else None,
            key_path=_clip(format_key_path(deepest[0][:6])) + "..." if deepest else None,
            hint=f"clnrm accepts at most {MAX_DEPTH} levels of nesting",
        ) from exc
    deep = _too_deep(data)
    if deep is not None:
        raise ScenarioError(
            f"value is nested more than {MAX_DEPTH} levels deep",
            file=file,
            line=LineIndex(text).line_of(deep),
            key_path=_clip(format_key_path(deep[:6])) + "...",
        )
    return data


def _toml_hint(exc: tomli.TOMLDecodeError, text: str) -> str | None:
    msg = exc.msg.lower()
    lines = text.split("\n")
    line = lines[exc.lineno - 1] if 0 < exc.lineno <= len(lines) else ""
    if "overwrite" in msg or "twice" in msg or "redefine" in msg:
        return "a key or table is defined twice; keep one definition"
    if "illegal character '\\n'" in msg or ("newline" in msg and line.count('"') % 2 == 1):
        return 'a "string" cannot span lines; use """triple-quoted""" strings for multi-line text'
    if "{{" in line or "{%" in line:
        return "template tags must render to valid TOML (put {{ }} inside quoted strings)"
    if "expected ']'" in msg:
        return "a table header needs its closing bracket, e.g. [services.db]"
    return None


def _too_deep(data: Any) -> KeyPath | None:
    stack: list[tuple[Any, KeyPath]] = [(data, ())]
    while stack:
        node, path = stack.pop()
        if len(path) > MAX_DEPTH:
            return path
        if isinstance(node, dict):
            stack.extend((value, (*path, key)) for key, value in node.items())
        elif isinstance(node, list):
            stack.extend((value, (*path, i)) for i, value in enumerate(node))
    return None


def validate_document(
    data: dict[str, Any], model: type[M]
) -> tuple[M | None, list[Problem], list[Problem]]:
    """Validate ``data``; unknown keys are removed and returned apart from real errors.

    Returns ``(instance or None, unknown-key problems, other problems)``.  The
    caller decides whether unknown keys are warnings or errors.
    """
    unknown: list[Problem] = []
    seen: set[KeyPath] = set()
    for _ in range(MAX_DEPTH):
        try:
            return model.model_validate(data), unknown, []
        except ValidationError as exc:
            issues = exc.errors(include_url=False)
        others = [
            error_problem(issue, data) for issue in issues if issue["type"] != "extra_forbidden"
        ]
        extras = [
            real_path(tuple(issue["loc"]), data, missing=False)
            for issue in issues
            if issue["type"] == "extra_forbidden"
        ]
        for path in extras:
            if path and path not in seen:
                seen.add(path)
                unknown.append(unknown_key_problem(model, path))
                _delete(data, path)
        if others or not extras:
            return None, unknown, others or [Problem("the file does not match the test format")]
    return None, unknown, [Problem("too many unknown keys to report")]


def _delete(data: Any, path: KeyPath) -> None:
    node = data
    for part in path[:-1]:
        node = node[part]
    if isinstance(node, dict):
        node.pop(path[-1], None)


def _by_line(problems: list[Problem], index: LineIndex) -> list[Problem]:
    return sorted(
        problems, key=lambda p: p.line or (index.line_of(p.path) if p.path else None) or 0
    )


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def to_error(
    problem: Problem, file: Path | None, index: LineIndex, note: str = ""
) -> ScenarioError:
    """A located ``ScenarioError`` for one problem."""
    line = problem.line or (index.line_of(problem.path) if problem.path else None)
    key = _clip(format_key_path(problem.path)) if problem.path else None
    return ScenarioError(
        problem.message + (note if line else ""),
        file=file,
        line=line,
        key_path=key,
        hint=problem.hint,
    )


def _warning(problem: Problem, file: Path | None, index: LineIndex, note: str) -> LoadWarning:
    error = to_error(problem, file, index, note)
    return LoadWarning(
        message=error.message,
        file=str(file) if file is not None else None,
        line=error.line,
        key_path=error.key_path,
        hint=error.hint,
    )


__all__ = [
    "INTERNAL_ERROR",
    "LoadResult",
    "load_file",
    "load_scenario",
    "loads_scenario",
    "parse_toml",
    "read_text",
    "to_error",
    "validate_document",
]

"""Turn pydantic's validation errors into messages a test author can act on.

pydantic says ``('expect', 'span', 0, 'kind') Input should be 'internal', ...``;
the author needs ``file:12: [expect.span[0].kind] must be one of internal,
server, client, producer, consumer; got 'srv'`` and, for an unknown key, the
keys that *are* valid with a "did you mean".  This module does that
translation; :mod:`clnrm.scenario.loader` adds the file and line.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from pydantic import AliasChoices, BaseModel

from clnrm.scenario.locate import KeyPath, format_key_path


@dataclass
class Problem:
    """One finding before it is tied to a file: message, where (key path), and a hint."""

    message: str
    path: KeyPath | None = None
    hint: str | None = None
    line: int | None = None  # set when known directly (syntax errors), else looked up from path


_EXPECTED: Final[dict[str, str]] = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "a boolean (true or false)",
    "bool_parsing": "a boolean (true or false)",
    "list_type": "an array",
    "tuple_type": "an array",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
}

KEY_HINTS: Final[dict[str, str]] = {
    "template": "[template.*] tables are not read (upstream ignored them too); put template "
    "variables in [vars]",
    "expected_output_contains": "use expected_output_regex (escape regex characters with \\\\)",
    "should_fail": "use expected_exit_code = <non-zero code>",
    "expect_failure": "use expected_exit_code = <non-zero code>",
    "retry": "use retry_on_failure = true and max_retries = N",
    "cleanup": "clnrm always removes every container, network and volume it created",
    "otel_expectations": "use the [[expect.*]] tables",
    "ServiceConfig.name": "a service's name is its table key: [services.NAME]",
    "ServiceConfig.wait_for_ready": "services are always waited for (health_check, or TCP for "
    "network_service) before steps run",
    "ServiceConfig.env_vars": 'use env = { NAME = "value" }',
    "Step.depends_on": "steps run in file order; depends_on belongs to services",
    "Step.run": "steps take command = [...] (or a shell string); "
    'run = "..." belongs to [[scenario]]',
}
"""Extra advice for unknown keys seen in upstream files, by ``Model.key`` or bare ``key``."""


def toml_type(value: object) -> str:
    """TOML's name for a Python value produced by tomli."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "table"
    return "date/time" if value is not None else "nothing"


def short(value: object, limit: int = 60) -> str:
    """A bounded repr for messages (inputs may be megabytes long)."""
    if isinstance(value, dict | list):
        text = repr(value) if len(value) < 20 else f"<{toml_type(value)} of {len(value)} items>"
    elif isinstance(value, str) and len(value) > limit * 4:
        text = repr(value[: limit * 2])
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def real_path(loc: tuple[Any, ...], data: object, *, missing: bool) -> KeyPath:
    """Keep only loc parts that exist in the data (drops pydantic's union/alias tags)."""
    path: list[str | int] = []
    node = data
    for position, part in enumerate(loc):
        last = position == len(loc) - 1
        if (isinstance(node, dict) and part in node) or (
                isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)):
            node = node[part]
            path.append(part)
        elif last and missing and isinstance(part, str):
            path.append(part)
    return tuple(path)


def model_at(root: type[BaseModel], path: KeyPath) -> type[BaseModel] | None:
    """The model class that validates the table at ``path`` (``None`` if not a model)."""
    annotation: Any = root
    for part in path:
        annotation = _unwrap(annotation, part)
        if annotation is None:
            return None
    model = _unwrap(annotation, None)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _unwrap(annotation: Any, part: str | int | None) -> Any:
    """Step from a type to the type of ``part`` inside it (``None`` = just strip wrappers)."""
    for _ in range(10):
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            annotation = options[0] if options else None
        else:
            break
    if part is None:
        return annotation
    origin = typing.get_origin(annotation)
    if isinstance(part, int):
        return (
            typing.get_args(annotation)[0]
            if origin is list and typing.get_args(annotation)
            else None
        )
    if origin is dict and len(typing.get_args(annotation)) == 2:
        return typing.get_args(annotation)[1]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        for name, field in annotation.model_fields.items():
            if part == name or part in _aliases(field):
                return field.annotation
    return None


def _aliases(field: Any) -> list[str]:
    names: list[str] = []
    if isinstance(field.alias, str):
        names.append(field.alias)
    alias = field.validation_alias
    if isinstance(alias, str):
        names.append(alias)
    elif isinstance(alias, AliasChoices):
        names.extend(choice for choice in alias.choices if isinstance(choice, str))
    return names


def valid_keys(model: type[BaseModel]) -> list[str]:
    """Keys a table accepts, as the author would write them (aliases, not field names)."""
    keys: list[str] = []
    for name, field in model.model_fields.items():
        if field.exclude and name not in ("resource_attrs_must_match", "span_attrs_forbid_keys"):
            continue
        aliases = _aliases(field)
        keys.append(field.alias if isinstance(field.alias, str) else name)
        keys.extend(alias for alias in aliases if alias not in keys)
    return list(dict.fromkeys(keys))


def unknown_key_problem(root: type[BaseModel], path: KeyPath) -> Problem:
    """``unknown key 'imgae' in [services.db]`` with the valid keys and a did-you-mean."""
    key = short(str(path[-1]), 80).strip("'")
    parent = path[:-1]
    model = model_at(root, parent)
    where = f"[{format_key_path(parent)}]" if parent else "the top level"
    kind = "table or key" if not parent else "key"
    message = f"unknown {kind} '{key}' in {where}"
    advice = KEY_HINTS.get(f"{model.__name__}.{key}" if model else key) or KEY_HINTS.get(key)
    hints: list[str] = [advice.rstrip(".") + "."] if advice else []
    if model is not None:
        keys = valid_keys(model)
        close = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
        if close and not advice:
            hints.append(f"did you mean '{close[0]}'?")
        hints.append("Valid keys: " + ", ".join(keys))
    return Problem(message, path, " ".join(hints) or None)


def error_problem(error: Mapping[str, Any], data: object) -> Problem:
    """Any other pydantic error, phrased for TOML."""
    kind = error.get("type", "")
    value = error.get("input")
    path = real_path(tuple(error.get("loc", ())), data, missing=kind == "missing")
    msg = str(error.get("msg", "is invalid"))
    if kind == "missing":
        return Problem(f"required key '{path[-1] if path else '?'}' is missing", path)
    if kind == "literal_error":
        expected = str(error.get("ctx", {}).get("expected", ""))
        options = expected.replace("'", "").replace(" or ", ", ")
        return Problem(f"must be one of {options}; got {short(value)}", path)
    if kind in _EXPECTED:
        return Problem(f"expected {_EXPECTED[kind]}, got {toml_type(value)} {short(value)}", path)
    if kind == "string_too_short":
        return Problem("must not be empty", path)
    if kind in ("value_error", "assertion_error"):
        text = (
            msg.split(", ", 1)[1]
            if msg.startswith(("Value error, ", "Assertion failed, "))
            else msg
        )
        return Problem(text, path, _value_hint(text))
    text = msg[:1].lower() + msg[1:]
    text = text.replace("input should be", "must be")
    return Problem(f"{text}; got {short(value)}", path)


def _value_hint(text: str) -> str | None:
    if "duration" in text:
        from clnrm.scenario.durations import DURATION_HINT

        return DURATION_HINT
    if "regular expression" in text:
        return "patterns use Python's re syntax; escape literal characters such as . ( [ with \\\\"
    return None

"""Keep secret values out of reports and logs.

A test file can read any environment variable (``{{ env(name="API_TOKEN") }}``)
and hand it to a container; the rendered value then travels into step
commands, step output, error messages and span data, and from there into the
JSON/JUnit/HTML reports, the terminal and the logs.  The container must get
the real value; nothing clnrm writes may show it.

What counts as secret: the value of a variable whose *name* looks secret
(:data:`SECRET_NAME`: TOKEN, SECRET, PASSWORD, PASSWD, PASSPHRASE, KEY,
CREDENTIAL, AUTH, PRIVATE, SESSION, COOKIE; case-insensitive), when it is

* read through ``env()`` in a template (registered while rendering), or
* given in a service's or step's ``env`` table, in ``[vars]`` / ``--var``, or
  as an ``[otel]`` header (registered when the file loads;
  :func:`register_scenario_secrets`).

Every such value of at least :data:`MIN_SECRET_LENGTH` characters is replaced
by :data:`MASK` wherever it occurs in a report (:func:`redacted`), the
terminal result, and every structlog line (:func:`redacting`).
Shorter values are not masked: masking ``"1"`` everywhere would destroy the
report while hiding nothing.  The registry is per process and only grows.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, TypeVar

SECRET_NAME: Final = re.compile(
    r"TOKEN|SECRET|PASSWORD|PASSWD|PASSPHRASE|KEY|CREDENTIAL|AUTH|PRIVATE|SESSION|COOKIE",
    re.IGNORECASE,
)
MASK: Final = "***"
MIN_SECRET_LENGTH: Final = 3

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None

T = TypeVar("T")


def looks_secret(name: str) -> bool:
    """True when a variable or key named ``name`` probably holds a secret."""
    return bool(SECRET_NAME.search(name))


def register_secret(name: str, value: object) -> None:
    """Remember ``value`` for masking if ``name`` looks secret (and the value is long enough)."""
    if not looks_secret(name) or not isinstance(value, str) or len(value) < MIN_SECRET_LENGTH:
        return
    global _pattern
    with _lock:
        if value not in _secrets:
            _secrets.add(value)
            # longest first, so a secret containing another is masked whole
            ordered = sorted(_secrets, key=len, reverse=True)
            _pattern = re.compile("|".join(re.escape(s) for s in ordered))


def register_table(table: Mapping[str, object] | None) -> None:
    for name, value in (table or {}).items():
        register_secret(str(name), value)


def register_scenario_secrets(scenario: Any) -> None:
    """Register a loaded scenario's secret-looking values: service and step ``env``,
    ``[vars]`` (and ``--var``), ``[otel]`` headers."""
    for service in getattr(scenario, "services", {}).values():
        register_table(service.env)
    steps: list[Any] = list(getattr(scenario, "steps", []))
    for block in getattr(scenario, "scenarios", []):
        steps.extend(block.steps)
    for step in steps:
        register_table(step.env)
    register_table({k: v for k, v in getattr(scenario, "vars", {}).items() if isinstance(v, str)})
    otel = getattr(scenario, "otel", None)
    if otel is not None:
        register_table(getattr(otel, "headers", None))


def forget_secrets() -> None:
    """Empty the registry (tests)."""
    global _pattern
    with _lock:
        _secrets.clear()
        _pattern = None


def redact_text(text: str) -> str:
    pattern = _pattern
    return text if pattern is None else pattern.sub(MASK, text)


def redact_value(value: T) -> T:
    """``value`` with every registered secret masked in its strings (dicts, lists, tuples)."""
    if _pattern is None:
        return value
    return _walk(value)  # type: ignore[no-any-return]


def _walk(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {key: _walk(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        items = [_walk(item) for item in value]
        return items if isinstance(value, list) else tuple(items)
    return value


def redacted(result: T) -> T:
    """A pydantic result (e.g. ``RunResult``) with secrets masked; the same object if none."""
    if _pattern is None:
        return result
    model = type(result)
    data = result.model_dump()  # type: ignore[attr-defined]
    return model.model_validate(_walk(data))  # type: ignore[attr-defined,no-any-return]


def redacting(renderer: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap structlog's final renderer so the rendered line (exceptions too) is masked."""

    def render(logger: object, method: str, event: dict[str, Any]) -> Any:
        line = renderer(logger, method, event)
        return redact_text(line) if isinstance(line, str) and _pattern is not None else line

    return render


def registered_count() -> int:
    return len(_secrets)


__all__: Iterable[str] = (
    "MASK",
    "SECRET_NAME",
    "forget_secrets",
    "looks_secret",
    "redacting",
    "redact_text",
    "redact_value",
    "redacted",
    "register_scenario_secrets",
    "register_secret",
)

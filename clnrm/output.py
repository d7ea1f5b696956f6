"""The one JSON envelope every ``--format json`` output shares.

Every machine-readable document clnrm prints is one JSON object with the same
four top-level fields before the command's own ones:

- ``schema_version``: the version of *this* output contract (an integer, bumped
  only when a field is removed or changes meaning; new fields do not bump it);
- ``clnrm_version``: the version of clnrm that printed it;
- ``command``: which command printed it (``"run"``, ``"memory stats"``...), so a
  consumer can pick the schema in ``docs/schemas/`` without knowing the argv;
- ``error``: ``null``, or ``{"message", "file", "line", "key", "hint"}`` when the
  command stopped on bad input (exit code 2).

Why the payload is merged at the top level rather than nested under a key:
``clnrm run --format json`` has been read as a ``RunResult`` (``doc["tests"]``,
``RunResult.model_validate_json``) by tests, the perf layer and users; merging
keeps every one of them working.  A payload that is a *list* (``validate``,
``chaos list``, ``memory query``...) cannot carry fields, so it goes under one
named key per command (:data:`LIST_KEYS`).  A payload field that would clash
with an envelope field is renamed with the ``store_`` prefix (``memory stats``'
own ``schema_version`` of the store becomes ``store_schema_version``, ``memory
check``'s ``error`` becomes ``store_error``).

On exit 2 the document is still printed, on stdout, with ``error`` set and the
payload fields that were known (often none); the human message still goes to
stderr.  The CLI marks the command that owes a JSON document with
:func:`expect_json`; the shared failure paths call :func:`emit_error`, which
prints it once.  Each schema is in ``docs/schemas/<command>.schema.json``
(``docs/outputs.md`` lists them); ``tests/unit/test_output_schemas.py`` checks
real outputs against them.
"""

from __future__ import annotations

import json
from typing import Any, Final

from clnrm import __version__

SCHEMA_VERSION: Final = 1
"""Version of the output contract (see the module docstring for when it changes)."""

ENVELOPE_KEYS: Final = ("schema_version", "clnrm_version", "command", "error")

LIST_KEYS: Final[dict[str, str]] = {
    "validate": "files",
    "self-test": "checks",
    "chaos list": "faults",
    "plugins": "services",
    "gc": "runs",
    "memory query": "hits",
    "perf baseline list": "baselines",
    "perf baseline save": "saved",
    "perf baseline diff": "diffs",
    "heal list": "remediations",
    "heal stats": "arms",
}
"""Commands whose payload is a list, and the key it is printed under."""

_RENAMED: Final = {"schema_version": "store_schema_version", "command": "store_command",
                   "error": "store_error"}
"""Payload fields renamed so they cannot clash with the envelope (a payload's own
``clnrm_version``, as ``doctor`` has, is the same value and is kept once)."""

_pending: dict[str, Any] = {"command": None}


def expect_json(command: str | None) -> None:
    """Say that the running command owes one JSON document (``None``: it does not).

    Called at the start of every command with ``--format json`` so a failure on
    the way (:func:`emit_error`) still prints the document.  A CLI process runs one
    command; in-process test runners call commands repeatedly, so every command
    sets or clears it.
    """
    _pending["command"] = command


def envelope(command: str, payload: Any = None, *, error: dict[str, Any] | None = None
             ) -> dict[str, Any]:
    """The document for ``command``: envelope fields, then the payload's fields.

    ``payload`` is a mapping (merged), a list (under ``LIST_KEYS[command]``), a
    pydantic model or anything ``pydantic_core.to_jsonable_python`` can turn into
    one of those, or ``None`` (nothing known: an early error).
    """
    doc: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "clnrm_version": __version__,
                           "command": command}
    if payload is not None:
        from pydantic_core import to_jsonable_python

        data = to_jsonable_python(payload)
        if isinstance(data, list):
            doc[LIST_KEYS.get(command, "items")] = data
        elif isinstance(data, dict):
            for key, value in data.items():
                if key != "clnrm_version":
                    doc[_RENAMED.get(key, key)] = value
        else:
            doc["value"] = data
    elif command in LIST_KEYS:
        doc[LIST_KEYS[command]] = []
    doc["error"] = error
    return doc


def render(command: str, payload: Any = None, *, error: dict[str, Any] | None = None,
           indent: int | None = 2) -> str:
    """:func:`envelope` as JSON text with secret values masked (no trailing newline)."""
    from clnrm.redact import redact_value

    doc = redact_value(envelope(command, payload, error=error))
    text = json.dumps(doc, indent=indent, ensure_ascii=False)
    # a lone surrogate (undecodable step output) becomes the JSON escape \udcXX: valid JSON
    # that every stdout encoding can carry
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def emit(command: str, payload: Any = None, *, error: dict[str, Any] | None = None,
         indent: int | None = 2) -> None:
    """Print the document for ``command`` on stdout; it is no longer owed."""
    import typer

    _pending["command"] = None
    typer.echo(render(command, payload, error=error, indent=indent))


def error_info(exc: BaseException | str) -> dict[str, Any]:
    """``{"message", "file", "line", "key", "hint"}`` of an error (unknown parts ``null``).

    A :class:`~clnrm.errors.ScenarioError` gives its location; an error wrapping
    several (``causes``, e.g. every invalid file of a run) takes the first one's.
    """
    if isinstance(exc, str):
        return {"message": exc, "file": None, "line": None, "key": None, "hint": None}
    where = exc
    causes = getattr(exc, "causes", None)
    if causes:
        where = causes[0]
    file = getattr(where, "file", None) or getattr(where, "filename", None)
    line = getattr(where, "line", None)
    return {"message": str(getattr(exc, "message", None) or exc),
            "file": str(file) if file else None,
            "line": line if isinstance(line, int) else None,
            "key": getattr(where, "key_path", None) or getattr(where, "key", None),
            "hint": getattr(exc, "hint", None) or getattr(where, "hint", None)}


_GROUPS: Final = {"clnrm.memory.cli": "memory", "clnrm.perf.cli": "perf",
                   "clnrm.swarm.cli": "swarm"}


def current_command() -> str | None:
    """The running command's name (``"memory stats"``, ``"perf baseline list"``) when it
    was given ``--format json``, from click's context; else ``None``.

    The command groups are typer apps of their own (delegated so ``clnrm --help`` stays
    fast), so the group's name comes from the module that defines the command.
    """
    ctx = _click_context()
    if ctx is None or str(ctx.params.get("fmt", "")) != "json":
        return None
    names = []
    node = ctx
    while node is not None and node.parent is not None:
        names.append(node.info_name or "")
        node = node.parent
    callback = getattr(ctx.command, "callback", None)
    group = _GROUPS.get(getattr(callback, "__module__", ""), "")
    return " ".join([group, *reversed(names)]).strip() or None


def _click_context() -> Any:
    """The current click context: typer >= 0.17 runs its own copy of click."""
    try:
        from typer._click.globals import get_current_context
    except ImportError:  # older typer: plain click
        from click import get_current_context
    return get_current_context(silent=True)


def emit_error(exc: BaseException | str, payload: Any = None) -> None:
    """Print the owed JSON document with ``error`` set, if the command owes one (it said
    so with :func:`expect_json`, or it was given ``--format json``)."""
    command = _pending["command"] or current_command()
    if command is None:
        return
    info = error_info(exc)
    if not isinstance(info["key"], str):
        info["key"] = None
    # memory and perf print one line (scripts read the last line), the others indent
    one_line = command.split(" ")[0] in ("memory", "perf")
    emit(command, payload, error=info, indent=None if one_line else 2)


def strip_envelope(data: Any) -> Any:
    """A document without the envelope fields: for readers of an output as a file
    format (a baseline file printed by ``perf baseline show --format json``)."""
    if isinstance(data, dict):
        return {k: v for k, v in data.items() if k not in ENVELOPE_KEYS}
    return data


def strip_envelope_text(text: str) -> str:
    """:func:`strip_envelope` on JSON text; text that is not a JSON object is returned as it
    is, so the reader's own parser reports it as before."""
    try:
        data = json.loads(text)
    except ValueError:
        return text
    if not isinstance(data, dict) or "schema_version" not in data:
        return text
    return json.dumps(strip_envelope(data))

"""Lenient input shapes that upstream files use and upstream itself rejected.

Each coercer accepts one extra spelling whose meaning is unambiguous (a shell
string for a command, ``"8080:80"`` for a port, ``["K=V"]`` for env) and turns
it into the one canonical shape the runner reads.  Anything else is left
untouched so pydantic reports it with its normal, located message.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final

from pydantic import BeforeValidator

_PORT_SPEC: Final = re.compile(
    r"(?:(?:\[[0-9a-fA-F:.]+\]|[0-9.]+):)?(?:(\d{1,5}):)?(\d{1,5})(?:/(tcp|udp|sctp))?"
)


def _scalar_text(value: object) -> object:
    """TOML scalars as text: ``true`` -> ``"true"``, ``3000`` -> ``"3000"``; others unchanged."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


def shell_command(value: object) -> object:
    """A TOML string is a shell line: ``"a && b"`` -> ``["sh", "-c", "a && b"]``.

    Upstream required an array and joined it with spaces before running it
    under ``sh -c`` (losing quoting); we keep arrays as argv and give strings
    their obvious shell meaning.  Numbers inside arrays become text.
    """
    if isinstance(value, str):
        if not value.strip():
            raise ValueError("command must not be empty")
        return ["sh", "-c", value]
    if isinstance(value, list):
        if not value:
            raise ValueError("command must not be an empty array")
        return [_scalar_text(v) if isinstance(v, int | float) else v for v in value]
    return value


def container_port(value: object) -> object:
    """``8080`` / ``"8080"`` / ``"18080:8080"`` / ``"127.0.0.1:18080:8080/tcp"`` -> ``8080``.

    clnrm never publishes ports to the host (services talk over the test
    network), so only the container side of a Docker-style mapping matters.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        match = _PORT_SPEC.fullmatch(value.strip())
        if not match:
            raise ValueError(f"not a port or 'host:container' mapping: {value[:60]!r}")
        value = int(match.group(2))
    if isinstance(value, int) and not 1 <= value <= 65535:
        raise ValueError(f"port must be 1-65535, got {value}")
    return value


def volume_spec(value: object) -> object:
    """Docker's ``"host:container[:ro|rw]"`` string -> the table form."""
    if not isinstance(value, str):
        return value
    parts = value.split(":")
    read_only = False
    if len(parts) == 3 and parts[2] in ("ro", "rw"):
        read_only = parts.pop() == "ro"
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise ValueError(f"volume must be 'host_path:container_path[:ro]', got {value[:80]!r}")
    return {"host_path": parts[0], "container_path": parts[1], "read_only": read_only}


def env_table(value: object) -> object:
    """Env as a table; also ``["K=V", ...]`` (compose style) and scalar values as text."""
    if isinstance(value, list):
        table: dict[str, Any] = {}
        for item in value:
            if not isinstance(item, str) or "=" not in item:
                raise ValueError(f"env list entries must be 'NAME=value' strings, got {item!r:.60}")
            name, _, text = item.partition("=")
            table[name] = text
        return table
    if isinstance(value, dict):
        return {k: _scalar_text(v) for k, v in value.items()}
    return value


def scalar_map(value: object) -> object:
    """A ``{key = value}`` table of text; numbers/booleans are stringified.

    ``["key=value", ...]`` is read as the same table: upstream files write
    span attributes that way, and the meaning is unambiguous.
    """
    if isinstance(value, list) and value and all(isinstance(v, str) and "=" in v for v in value):
        return dict(item.split("=", 1) for item in value)
    if isinstance(value, dict):
        return {k: _scalar_text(v) for k, v in value.items()}
    return value


_PROTOCOL_ALIASES: Final = {
    "json": "http/json",
    "protobuf": "http/protobuf",
    "http": "http/protobuf",
}


def otlp_protocol(value: object) -> object:
    """``"json"``/``"protobuf"``/``"http"`` name exactly one OTLP protocol each; spell it fully."""
    if isinstance(value, str):
        return _PROTOCOL_ALIASES.get(value.strip().lower(), value)
    return value


def upper_text(value: object) -> object:
    """Case-insensitive enums (``"ok"`` -> ``"OK"``), as upstream's status check is."""
    return value.upper() if isinstance(value, str) else value


def lower_text(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def health_check_shape(value: object) -> object:
    """``health_check = "curl -f ..."`` -> ``{cmd = ["sh", "-c", "curl -f ..."]}``."""
    if isinstance(value, str):
        return {"cmd": shell_command(value)}
    return value


def text_or_number(value: object) -> object:
    return _scalar_text(value)


Command = Annotated[list[str], BeforeValidator(shell_command)]
"""argv; a TOML string ``s`` is loaded as ``["sh", "-c", s]``."""

Port = Annotated[int, BeforeValidator(container_port)]
"""Container port; ``"host:container"`` strings keep only the container side."""

EnvTable = Annotated[dict[str, str], BeforeValidator(env_table)]
"""Environment variables; also accepts a list of ``"NAME=value"`` strings."""

TextMap = Annotated[dict[str, str], BeforeValidator(scalar_map)]
"""A table of text values (numbers and booleans are written as TOML prints them)."""

Text = Annotated[str, BeforeValidator(text_or_number)]
"""Text; a number or boolean is accepted and written as TOML prints it."""

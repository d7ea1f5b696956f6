"""The JSON Schemas (draft 2020-12) of every command's ``--format json`` document.

``docs/schemas/<command>.schema.json`` are written from here
(``python -m clnrm.output_schemas docs/schemas``) and committed: they are the
contract consumers code against, listed in ``docs/outputs.md``.
``tests/unit/test_output_schemas.py`` validates each command's real output
against the committed file, so a change that breaks a consumer fails CI.

Each schema is the envelope of :mod:`clnrm.output` (always required) plus the
command's payload fields, which are required whenever ``error`` is ``null``.
Payloads that are pydantic models take their schema from the model (the run
result, the memory's stats and health, the swarm report); the others are
written here.  Parts owned by a fast-moving layer (a test's ``performance``
block, a baseline's runs) are documented as objects with their stable fields
only, so adding a field there never breaks the contract.
"""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clnrm.output import _RENAMED, LIST_KEYS, SCHEMA_VERSION

DRAFT = "https://json-schema.org/draft/2020-12/schema"

Schema = dict[str, Any]

_LOCATED: Schema = {
    "type": "object",
    "required": ["message", "file", "line", "key", "hint"],
    "properties": {
        "message": {"type": "string"},
        "file": {"type": ["string", "null"]},
        "line": {"type": ["integer", "null"]},
        "key": {"type": ["string", "null"], "description": "dotted key path, e.g. steps[0].name"},
        "hint": {"type": ["string", "null"]},
    },
}


def _envelope_properties(command: str) -> Schema:
    return {
        "schema_version": {"const": SCHEMA_VERSION,
                           "description": "version of this output contract"},
        "clnrm_version": {"type": "string", "description": "clnrm that printed it"},
        "command": {"const": command},
        "error": {"oneOf": [{"type": "null"}, {"$ref": "#/$defs/Error"}],
                  "description": "null, or why the command stopped (exit code 2)"},
    }


def _obj(required: list[str], properties: Schema, **extra: Any) -> Schema:
    return {"type": "object", "required": required, "properties": properties, **extra}


def _model(model: type, *, stubs: dict[str, Schema] | None = None) -> Schema:
    """A pydantic model's serialization schema; ``stubs`` replace some of its ``$defs``."""
    schema = model.model_json_schema(mode="serialization")  # type: ignore[attr-defined]
    defs = schema.get("$defs", {})
    for name, stub in (stubs or {}).items():
        if name in defs:
            defs[name] = stub
    _prune(schema)
    return schema


def _prune(schema: Schema) -> None:
    """Drop ``$defs`` no longer referenced (after stubbing)."""
    defs = schema.get("$defs", {})
    seen: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                name = ref.removeprefix("#/$defs/")
                if name not in seen:
                    seen.add(name)
                    walk(defs.get(name))
            for key, value in node.items():
                if key != "$defs":
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    for name in list(defs):
        if name not in seen:
            del defs[name]
    if not defs:
        schema.pop("$defs", None)


# -- payloads ------------------------------------------------------------------------------

_PERFORMANCE_STUB: Schema = {
    "type": "object",
    "description": "measured latencies, verdicts and advice of the performance layer; "
                   "its fields are described in docs/performance.md (not part of this "
                   "contract, may grow)",
}


def _run() -> Schema:
    from clnrm.results import RunResult

    return _model(RunResult, stubs={"PerformanceResult": _PERFORMANCE_STUB})


def _validate() -> Schema:
    located = copy.deepcopy(_LOCATED)
    return _obj(["path", "kind", "status", "errors", "warnings", "notes"], {
        "path": {"type": "string"},
        "kind": {"type": "string", "description": "test, expectations, ..."},
        "status": {"type": "string", "description": "ok, warning or error"},
        "errors": {"type": "array", "items": located},
        "warnings": {"type": "array", "items": located},
        "notes": {"type": "array", "items": {"type": "string"}},
    })


def _self_test() -> Schema:
    from clnrm.selftest import SelfTestCheck

    return _model(SelfTestCheck)


def _chaos_list() -> Schema:
    return _obj(["type", "category", "summary", "proxied", "parameters", "required"], {
        "type": {"type": "string"},
        "category": {"enum": ["network", "container", "resource", "application"]},
        "summary": {"type": "string"},
        "proxied": {"type": "boolean"},
        "parameters": {"type": "object", "description": "JSON Schema properties of the "
                                                        "fault's configuration"},
        "required": {"type": "array", "items": {"type": "string"}},
    })


def _plugins() -> Schema:
    return _obj(["name", "description", "module"], {
        "name": {"type": "string"}, "description": {"type": "string"},
        "module": {"type": "string", "description": "where the service type is defined"}})


def _gc() -> Schema:
    from clnrm.gc import RunLeftovers

    leftovers = _model(RunLeftovers)
    defs = leftovers.pop("$defs", {})
    return _obj(["dry_run", "runs"], {"dry_run": {"type": "boolean"},
                                      "runs": {"type": "array", "items": leftovers}},
                **({"$defs": defs} if defs else {}))


def _memory_query() -> Schema:
    return _obj(["score", "record"], {
        "score": {"type": "number"},
        "record": _obj(["id", "kind", "agent", "created_at"], {
            "id": {"type": "string"}, "kind": {"type": "string"}, "agent": {"type": "string"},
            "created_at": {"type": "string"}}, description="one memory record (docs/memory.md)"),
    })


def _memory_stats() -> Schema:
    from clnrm.memory.types import MemoryStats

    return _renamed(_model(MemoryStats))


def _memory_check() -> Schema:
    from clnrm.memory._repair import StoreHealth

    return _renamed(_model(StoreHealth))


def _memory_repair() -> Schema:
    from clnrm.memory._repair import RepairReport, StoreHealth

    repair, health = _model(RepairReport), _model(StoreHealth)
    defs = {**repair.pop("$defs", {}), **health.pop("$defs", {})}
    return _obj(["repair", "health"], {"repair": repair, "health": health},
                **({"$defs": defs} if defs else {}))


def _counted(verb: str, extra: str, extra_schema: Schema) -> Callable[[], Schema]:
    return lambda: _obj([verb, extra], {verb: {"type": "integer", "minimum": 0},
                                        extra: extra_schema})


def _baseline_list() -> Schema:
    from clnrm.perf.baseline import BaselineSummary

    return _model(BaselineSummary)


def _baseline_show() -> Schema:
    return _obj(["scenario", "fingerprint", "runs"], {
        "scenario": {"type": "string"},
        "fingerprint": {"type": "object", "description": "the environment the runs are from"},
        "runs": {"type": "array", "items": {
            "type": "object", "required": ["run_id", "metrics"],
            "properties": {"run_id": {"type": "string"}, "metrics": {"type": "object"}}}},
    }, description="also a baseline file for [performance] baseline (the envelope fields "
                   "are ignored when it is read)")


def _baseline_save() -> Schema:
    return _obj(["scenario", "run_id", "fingerprint", "metrics", "baseline_runs"], {
        "scenario": {"type": "string"}, "run_id": {"type": "string"},
        "fingerprint": {"type": "string"}, "metrics": {"type": "integer", "minimum": 0},
        "baseline_runs": {"type": "integer", "minimum": 0}})


def _baseline_diff() -> Schema:
    verdict = _obj(["metric", "message", "fails", "regressed", "confidence"], {
        "metric": {"type": "string"}, "message": {"type": "string"},
        "fails": {"type": "boolean"}, "regressed": {"type": "boolean"},
        "confidence": {"type": "number"}})
    return _obj(["scenario", "run_id", "fingerprint", "baseline_runs", "verdicts"], {
        "scenario": {"type": "string"}, "run_id": {"type": "string"},
        "fingerprint": {"type": "string"}, "baseline_runs": {"type": "integer"},
        "verdicts": {"type": "array", "items": verdict}})


def _baseline_forget() -> Schema:
    return _obj(["scenario", "fingerprint", "forgotten_runs"], {
        "scenario": {"type": "string"}, "fingerprint": {"type": ["string", "null"]},
        "forgotten_runs": {"type": "integer", "minimum": 0}})


def _swarm_run() -> Schema:
    from clnrm.agents.negotiation import SwarmReport

    return _model(SwarmReport)


def _doctor() -> Schema | None:
    """``clnrm doctor`` (when this clnrm has it): its model's schema."""
    try:
        from clnrm import doctor  # type: ignore[attr-defined]
    except ImportError:
        return None
    model = getattr(doctor, "DoctorReport", None)
    return _renamed(_model(model)) if model is not None else None


def _heal_list() -> Schema:
    return _obj(["name", "summary", "classes", "proposal", "parameters"], {
        "name": {"type": "string"}, "summary": {"type": "string"},
        "classes": {"type": "array", "items": {"type": "string"},
                    "description": "failure classes the remediation addresses"},
        "proposal": {"type": "boolean", "description": "only proposes a patch to the file"},
        "parameters": {"type": "object", "description": "typed config and its defaults"}})


def _heal_stats() -> Schema:
    number = {"type": "number"}
    return _obj(["failure_class", "remediation", "tries", "successes", "mean_cost_s",
                 "preference"], {
        "failure_class": {"type": "string"}, "remediation": {"type": "string"},
        "tries": number, "successes": number, "mean_cost_s": number,
        "preference": {"type": "number", "description": "posterior mean of healing"}})


def _heal_propose() -> Schema:
    text = {"type": ["string", "null"]}
    return _obj(["file", "outcome", "failure_class", "patch", "applied", "evidence"], {
        "file": {"type": "string"}, "outcome": {"type": "string"}, "failure_class": text,
        "patch": text, "applied": {"type": "boolean"}, "evidence": {"type": "string"}})


def _memory_serve() -> Schema:
    from clnrm.memory.chroma_server import ServerRecord

    return _model(ServerRecord)


def _memory_stop() -> Schema:
    server = _memory_serve()
    defs = server.pop("$defs", {})
    server.pop("title", None)
    return _obj(["stopped"], {"stopped": {"anyOf": [server, {"type": "null"}],
                                          "description": "the server stopped, null: none ran"}},
                **({"$defs": defs} if defs else {}))


def _renamed(schema: Schema) -> Schema:
    """Payload fields that clash with the envelope, under their ``store_`` names."""
    props = schema.get("properties", {})
    for old, new in _RENAMED.items():
        if old in props:
            props[new] = props.pop(old)
    schema["required"] = [_RENAMED.get(r, r) for r in schema.get("required", [])]
    return schema


PAYLOADS: dict[str, Callable[[], Schema | None]] = {
    "run": _run,
    "chaos run": _run,
    "validate": _validate,
    "self-test": _self_test,
    "chaos list": _chaos_list,
    "plugins": _plugins,
    "gc": _gc,
    "memory query": _memory_query,
    "memory stats": _memory_stats,
    "memory export": _counted("exported", "file", {"type": "string"}),
    "memory import": _counted("imported", "file", {"type": "string"}),
    "memory forget": _counted("forgotten", "before", {"type": "string"}),
    "memory check": _memory_check,
    "memory repair": _memory_repair,
    "memory serve": _memory_serve,
    "memory stop": _memory_stop,
    "perf baseline list": _baseline_list,
    "perf baseline show": _baseline_show,
    "perf baseline save": _baseline_save,
    "perf baseline diff": _baseline_diff,
    "perf baseline forget": _baseline_forget,
    "swarm run": _swarm_run,
    "doctor": _doctor,
    "heal list": _heal_list,
    "heal stats": _heal_stats,
    "heal propose": _heal_propose,
}
"""Every command with ``--format json``, and how its payload's schema is made."""


def file_name(command: str) -> str:
    return command.replace(" ", "-") + ".schema.json"


def command_schema(command: str) -> Schema | None:
    """The whole document schema of ``command`` (``None``: this clnrm lacks the command)."""
    payload = PAYLOADS[command]()
    if payload is None:
        return None
    payload = copy.deepcopy(payload)
    defs: Schema = {"Error": _LOCATED}
    key = LIST_KEYS.get(command)
    if key is not None and payload.get("type") == "object" and key not in payload.get(
            "properties", {}):
        defs.update(payload.pop("$defs", {}))
        payload.pop("title", None)
        properties = {key: {"type": "array", "items": payload}}
        required = [key]
    else:
        defs.update(payload.pop("$defs", {}))
        properties = payload.get("properties", {})
        required = payload.get("required", [])
    return {
        "$schema": DRAFT,
        "$id": f"https://clnrm.dev/schemas/{file_name(command)}",
        "title": f"clnrm {command} --format json",
        "description": (f"The document `clnrm {command} --format json` prints (also on exit "
                        "code 2, then with `error` set). Envelope: docs/outputs.md."),
        "type": "object",
        "required": ["schema_version", "clnrm_version", "command", "error"],
        "properties": {**properties, **_envelope_properties(command)},
        "if": {"properties": {"error": {"type": "null"}}},
        "then": {"required": required},
        "$defs": defs,
    }


def write_schemas(folder: Path) -> list[Path]:
    """Write every command's schema into ``folder``; returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for command in PAYLOADS:
        schema = command_schema(command)
        if schema is None:
            continue
        path = folder / file_name(command)
        path.write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n",
                        encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_schemas(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/schemas")):
        print(written_path)

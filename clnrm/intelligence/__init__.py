"""The intelligence layer: tests generated from traces.

``mine`` learns what a system always (or reliably) does from recorded traces;
``render_all`` writes one readable ``.clnrm.toml`` per request type from it.
Names resolve lazily so ``clnrm --help`` (which imports :mod:`.cli`) stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Corpus": "corpus", "build_corpus": "corpus", "load_corpus": "corpus",
    "mine": "mine",
    "MinedPatterns": "patterns", "MiningOptions": "patterns", "RequestTypePatterns": "patterns",
    "Evidence": "patterns", "SpanPattern": "patterns",
    "GeneratedTest": "write", "render": "write", "render_all": "write",
    "generate_tests": "generate", "write_tests": "generate",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'clnrm.intelligence' has no attribute {name!r}")
    return getattr(import_module(f"clnrm.intelligence.{module}"), name)


__all__ = sorted(_EXPORTS)

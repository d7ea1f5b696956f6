"""clnrm: hermetic integration tests as TOML, run in real Docker, judged on spans.

Kept import-light on purpose: ``clnrm --help`` must start fast, so heavy
dependencies (docker, ray, chromadb, sklearn, pydantic) are imported where used.
The public names below are lazy re-exports: ``import clnrm`` costs nothing, and
``clnrm.run`` imports the runner on first use.

    >>> import clnrm
    >>> result = clnrm.run(["tests/e2e"], backend="docker")   # doctest: +SKIP
    >>> result.exit_code                                       # doctest: +SKIP
    0
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from clnrm.api import run
    from clnrm.errors import BackendError, ClnrmError, ScenarioError
    from clnrm.results import (
        Outcome,
        RunResult,
        StepResult,
        TestResult,
        ValidationResult,
        ValidationStatus,
    )
    from clnrm.testing import assert_passed, scenario_files

_LAZY = {
    "BackendError": "clnrm.errors",
    "ClnrmError": "clnrm.errors",
    "Outcome": "clnrm.results",
    "RunResult": "clnrm.results",
    "ScenarioError": "clnrm.errors",
    "StepResult": "clnrm.results",
    "TestResult": "clnrm.results",
    "ValidationResult": "clnrm.results",
    "ValidationStatus": "clnrm.results",
    "assert_passed": "clnrm.testing",
    "run": "clnrm.api",
    "scenario_files": "clnrm.testing",
}

# Literal (not computed) so type checkers and linters see the public surface; a unit
# test keeps it sorted and equal to the lazy table.
__all__ = [
    "BackendError",
    "ClnrmError",
    "Outcome",
    "RunResult",
    "ScenarioError",
    "StepResult",
    "TestResult",
    "ValidationResult",
    "ValidationStatus",
    "__version__",
    "assert_passed",
    "run",
    "scenario_files",
]


def __getattr__(name: str) -> Any:
    """PEP 562: import a public name's module on first access, then cache the name."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'clnrm' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})

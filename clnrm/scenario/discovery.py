"""Find test files under the paths a user names, and validate them one outcome per file.

``run`` and ``validate`` walk differently on purpose: ``run`` looks for test
files only (``*.clnrm.toml``, ``*.toml``, ``*.clnrm.toml.tera``; never the
project's ``cleanroom.toml``), while ``validate`` checks every TOML file it
finds, the project file included (with its own model), so a broken
``cleanroom.toml`` is caught as early as a broken test.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from clnrm.errors import ScenarioError
from clnrm.scenario.loader import load_file
from clnrm.scenario.model import LoadWarning, Scenario
from clnrm.scenario.project import ProjectConfig, is_project_file, load_project_config

RUN_PATTERNS: Final = ("*.toml", "*.clnrm.toml.tera")
VALIDATE_PATTERNS: Final = ("*.toml", "*.toml.tera")
SKIPPED_FILE_NAMES: Final = frozenset({"pyproject.toml", "Cargo.toml", "rust-toolchain.toml"})
"""TOML files of other tools that commonly sit next to tests."""
SKIPPED_DIR_NAMES: Final = frozenset({"node_modules", "__pycache__", "target"})


@dataclass
class ValidationOutcome:
    """The verdict on one file: ``ok``, ``warnings`` (usable) or ``error`` (not usable)."""

    path: Path
    kind: Literal["test", "project"] = "test"
    warnings: list[LoadWarning] = field(default_factory=list)
    errors: list[ScenarioError] = field(default_factory=list)
    scenario: Scenario | None = None
    project: ProjectConfig | None = None

    @property
    def status(self) -> Literal["ok", "warnings", "error"]:
        if self.errors:
            return "error"
        return "warnings" if self.warnings else "ok"

    @property
    def notes(self) -> list[str]:
        """What the author should know about a valid file that is neither warning nor error."""
        if self.scenario is not None and self.scenario.expectations_only:
            return [f"{self.path}: has only expectations, nothing to run: judge a trace export "
                    "with it (clnrm run FILE --traces EXPORT), or add [[steps]] that produce "
                    "the spans"]
        return []

    @property
    def ok(self) -> bool:
        """True unless the file has errors (warnings do not fail validation)."""
        return not self.errors


def discover_test_files(paths: Iterable[str | Path]) -> list[Path]:
    """Test files named by ``paths`` (files as given; folders walked), sorted, no duplicates.

    A folder yields ``*.clnrm.toml``, ``*.toml`` and ``*.clnrm.toml.tera``
    files, skipping ``cleanroom.toml``, other tools' TOML files, hidden folders
    and dependency folders.  A path that does not exist is returned as is so
    the caller reports it (loading it gives a located "cannot read" error).
    """
    return _collect(paths, RUN_PATTERNS, include_project=False)


def validate_paths(paths: Iterable[str | Path], *, strict: bool = False) -> list[ValidationOutcome]:
    """Load every TOML file under ``paths``: one outcome per file, never raising for a file."""
    outcomes: list[ValidationOutcome] = []
    for path in _collect(paths, VALIDATE_PATTERNS, include_project=True):
        outcomes.append(validate_file(path, strict=strict))
    return outcomes


def validate_file(path: Path, *, strict: bool = False) -> ValidationOutcome:
    """Validate one file as a test, or as the project file if it is ``cleanroom.toml``."""
    if is_project_file(path):
        outcome = ValidationOutcome(path, kind="project")
        try:
            outcome.project, outcome.warnings = load_project_config(path, strict=strict)
        except ScenarioError as exc:
            outcome.errors = list(getattr(exc, "problems", [exc]))
        return outcome
    result = load_file(path, strict=strict)
    return ValidationOutcome(
        path, warnings=result.warnings, errors=result.errors, scenario=result.scenario
    )


def _collect(
    paths: Iterable[str | Path], patterns: tuple[str, ...], *, include_project: bool
) -> list[Path]:
    found: dict[Path, None] = {}
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for file in sorted(_walk(path, patterns)):
                if is_project_file(file) and not include_project:
                    continue
                found.setdefault(file, None)
        else:
            found.setdefault(path, None)
    return list(found)


def _walk(root: Path, patterns: tuple[str, ...]) -> Iterator[Path]:
    for pattern in patterns:
        for file in root.rglob(pattern):
            relative = file.relative_to(root).parts[:-1]
            if any(part.startswith(".") or part in SKIPPED_DIR_NAMES for part in relative):
                continue
            if file.name in SKIPPED_FILE_NAMES or not file.is_file():
                continue
            yield file

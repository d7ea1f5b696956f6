"""The clnrm test format: typed model, TOML loader, templates, discovery.

Importing this package pulls in pydantic, tomli and jinja2 only.

    load_scenario(path, strict=False, variables=None) -> Scenario    raises ScenarioError
    validate_paths(paths, strict=False) -> list[ValidationOutcome]   never raises for a file
    discover_test_files(paths) -> list[Path]

Warnings (unknown keys and the like) are on ``Scenario.warnings`` and
``ValidationOutcome.warnings``; with ``strict=True`` they are errors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from clnrm.scenario.discovery import (
    ValidationOutcome,
    discover_test_files,
    validate_file,
    validate_paths,
)
from clnrm.scenario.durations import parse_duration
from clnrm.scenario.expect import (
    CountBound,
    CountExpectation,
    Expect,
    GraphExpectation,
    HermeticityExpectation,
    OrderExpectation,
    PerformanceExpectation,
    ResilienceExpectation,
    SpanExpectation,
    StatusExpectation,
    WindowExpectation,
)
from clnrm.scenario.layers import (
    Chaos,
    FaultSpec,
    Intelligence,
    Layers,
    Orchestration,
    Performance,
    SelfHealing,
)
from clnrm.scenario.loader import LoadResult, load_file, load_scenario, loads_scenario
from clnrm.scenario.model import (
    Determinism,
    HealthCheck,
    Limits,
    LoadWarning,
    OtelConfig,
    ReportConfig,
    Scenario,
    ScenarioBlock,
    ServiceConfig,
    Step,
    Volume,
)
from clnrm.scenario.project import ProjectConfig, load_project_config

if TYPE_CHECKING:
    from clnrm.scenario.template import is_template, render_template

__all__ = [
    "Chaos",
    "CountBound",
    "CountExpectation",
    "Determinism",
    "Expect",
    "FaultSpec",
    "GraphExpectation",
    "HealthCheck",
    "HermeticityExpectation",
    "Intelligence",
    "Layers",
    "Limits",
    "LoadResult",
    "LoadWarning",
    "OrderExpectation",
    "Orchestration",
    "OtelConfig",
    "Performance",
    "PerformanceExpectation",
    "ProjectConfig",
    "ReportConfig",
    "ResilienceExpectation",
    "Scenario",
    "ScenarioBlock",
    "SelfHealing",
    "ServiceConfig",
    "SpanExpectation",
    "StatusExpectation",
    "Step",
    "ValidationOutcome",
    "Volume",
    "WindowExpectation",
    "discover_test_files",
    "is_template",
    "load_file",
    "load_project_config",
    "load_scenario",
    "loads_scenario",
    "parse_duration",
    "render_template",
    "validate_file",
    "validate_paths",
]


def __getattr__(name: str) -> Any:
    """The template functions load Jinja, which a file without tags never needs."""
    if name in ("is_template", "render_template"):
        from clnrm.scenario import template

        return getattr(template, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""``cleanroom.toml``: project-wide defaults, validated with its own small model.

Upstream reads this file into ``CleanroomConfig`` (``config/project.rs``) and
requires every section; here every section is optional with upstream's
defaults, so a project file only states what it changes.  It is validated by
``validate_paths`` like a test file (located errors, unknown-key warnings)
but is never run, and ``clnrm run`` does not read it: every section but
``[project]`` is accepted for compatibility and reported as having no effect
(:func:`clnrm.scenario.no_effect.project_file_problems`), so nobody believes a
setting there is applied.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field

from clnrm.errors import ScenarioError
from clnrm.scenario.coerce import lower_text
from clnrm.scenario.durations import Duration
from clnrm.scenario.loader import parse_toml, read_text, to_error, validate_document
from clnrm.scenario.locate import LineIndex
from clnrm.scenario.model import LoadWarning
from clnrm.scenario.model_base import Model
from clnrm.scenario.no_effect import project_file_problems

PROJECT_FILE_NAME = "cleanroom.toml"


class ProjectInfo(Model):
    name: str = Field(default="cleanroom-project", min_length=1)
    version: str | None = None
    description: str | None = None


class CliDefaults(Model):
    parallel: bool = False
    jobs: int = Field(default=4, ge=1)
    output_format: Literal["auto", "human", "json", "junit", "tap"] = "human"
    fail_fast: bool = False
    watch: bool = False
    interactive: bool = False


class ContainerDefaults(Model):
    """Container settings; clnrm never pulls, so ``pull_policy`` is accepted but not acted on."""

    reuse_enabled: bool = True
    default_image: str | None = None  # None: clnrm's own default step image
    pull_policy: Literal["always", "if-not-present", "never"] = "if-not-present"
    cleanup_policy: Literal["always", "on-success", "never", "on-failure"] = "always"
    max_containers: int = Field(default=10, ge=1)
    startup_timeout: Duration = 60.0


class ServiceDefaults(Model):
    default_timeout: Duration = 30.0
    health_check_interval: Duration = 5.0
    health_check_timeout: Duration = 10.0
    max_retries: int = Field(default=3, ge=0)


class ObservabilitySettings(Model):
    enable_tracing: bool = True
    enable_metrics: bool = True
    enable_logging: bool = True
    log_level: Annotated[Literal["debug", "info", "warn", "error"], BeforeValidator(lower_text)] = (
        "info"
    )
    metrics_port: int = Field(default=9090, ge=1, le=65535)
    traces_endpoint: str | None = None


class PluginSettings(Model):
    auto_discover: bool = True
    plugin_dir: str = "./plugins"
    enabled_plugins: list[str] = Field(default_factory=list)


class PerformanceSettings(Model):
    container_pool_size: int = Field(default=5, ge=0)
    lazy_initialization: bool = True
    cache_compiled_tests: bool = True
    parallel_step_execution: bool = False


class TestExecutionDefaults(Model):
    __test__ = False  # not a pytest class, despite the name

    default_timeout: Duration = 300.0
    step_timeout: Duration = 60.0
    retry_on_failure: bool = False
    retry_count: int = Field(default=3, ge=0)
    test_dir: str = "./tests"


class ReportingSettings(Model):
    generate_html: bool = True
    generate_junit: bool = False
    report_dir: str = "./reports"
    include_timestamps: bool = True
    include_logs: bool = True


class SecuritySettings(Model):
    hermetic_isolation: bool = True
    network_isolation: bool = True
    file_system_isolation: bool = True
    security_level: Annotated[Literal["low", "medium", "high"], BeforeValidator(lower_text)] = (
        "medium"
    )


class ProjectConfig(Model):
    """The whole ``cleanroom.toml``; every section optional."""

    project: ProjectInfo = Field(default_factory=ProjectInfo)
    cli: CliDefaults = Field(default_factory=CliDefaults)
    containers: ContainerDefaults = Field(default_factory=ContainerDefaults)
    services: ServiceDefaults = Field(default_factory=ServiceDefaults)
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)
    plugins: PluginSettings = Field(default_factory=PluginSettings)
    performance: PerformanceSettings = Field(default_factory=PerformanceSettings)
    test_execution: TestExecutionDefaults = Field(default_factory=TestExecutionDefaults)
    reporting: ReportingSettings = Field(default_factory=ReportingSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)


def is_project_file(path: Path) -> bool:
    return path.name == PROJECT_FILE_NAME


def load_project_config(
    path: str | Path, *, strict: bool = False
) -> tuple[ProjectConfig, list[LoadWarning]]:
    """Load ``cleanroom.toml``; raise the first located ``ScenarioError`` if it is invalid."""
    file = Path(path)
    text = read_text(file)
    data = parse_toml(text, file)
    index = LineIndex(text)
    config, unknown, errors = validate_document(data, ProjectConfig)
    if config is not None:
        unknown = sorted(unknown + project_file_problems(data),
                         key=lambda p: index.line_of(p.path or ()) or 0)
    problems = unknown + errors if strict else errors
    if problems or config is None:
        located = [to_error(problem, file, index) for problem in problems]
        if not located:
            located = [ScenarioError("the project file is invalid", file=file)]
        located[0].problems = located  # type: ignore[attr-defined]
        raise located[0]
    warnings = [
        LoadWarning(
            message=e.message, file=str(file), line=e.line, key_path=e.key_path, hint=e.hint
        )
        for e in (to_error(problem, file, index) for problem in unknown)
    ]
    return config, warnings

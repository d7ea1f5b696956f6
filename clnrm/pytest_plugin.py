"""Run clnrm test files as pytest items, so one ``pytest`` run covers both.

The plugin is installed with clnrm (entry point ``pytest11``) but stays off
until asked, so it never hijacks a project's ordinary test suite.  Turn it on
with either::

    pytest --clnrm tests/            # on the command line
    [pytest]                         # or in pytest.ini / [tool.pytest.ini_options]
    clnrm = true

Then every ``*.clnrm.toml`` file pytest walks past becomes one item named
after the test (``tests/api.clnrm.toml::api_smoke``), marked ``clnrm`` so
``-m clnrm`` / ``-m "not clnrm"`` select it.  Options:

``--clnrm-backend docker|local``
    where tests run (default ``docker``; ``local`` runs steps as processes).
``--clnrm-image-map FROM=TO``
    use a local image for one a file names; repeatable.

A file that does not load is a collection error showing the located message
(``file:line [key] ...``) and no traceback.  An item passes when the test's
outcome is ``passed``, is skipped when clnrm skipped it, and otherwise fails
with the test's message, its failing steps and its failing validations; step
output is attached as report sections.  Each item is its own clnrm run (own
run id, own network), started through :class:`clnrm.runner.Runner` exactly as
``clnrm run`` does, so verdicts agree with the CLI.

clnrm modules are imported only when the plugin is enabled, keeping pytest
start-up unchanged for projects that merely have clnrm installed.

Fixtures (always available, no ``--clnrm`` needed, since asking for one is the opt-in):

``clnrm_run``
    a callable ``clnrm_run(paths, **options) -> RunResult`` that runs test files
    through :func:`clnrm.run` with ``--clnrm-backend`` / ``--clnrm-image-map`` as
    defaults; pair it with :func:`clnrm.testing.scenario_files` to parametrize
    over a folder and :func:`clnrm.testing.assert_passed` to fail with clnrm's
    explanation.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from clnrm.results import RunResult, TestResult
    from clnrm.scenario.model import Scenario

SUFFIX = ".clnrm.toml"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("clnrm", "clnrm hermetic integration tests")
    group.addoption("--clnrm", action="store_true", default=False,
                    help=f"collect *{SUFFIX} files as tests (or set 'clnrm = true' in the ini)")
    group.addoption("--clnrm-backend", choices=("docker", "local"), default="docker",
                    help="where clnrm tests run (default: docker)")
    group.addoption("--clnrm-image-map", action="append", default=[], metavar="FROM=TO",
                    help="use a local image for one a test file names; repeatable")
    parser.addini("clnrm", type="bool", default=False,
                  help=f"collect *{SUFFIX} files as tests (same as --clnrm)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"clnrm: a clnrm test file (*{SUFFIX}) run as one item")
    if _enabled(config):
        _image_map(config)  # a bad FROM=TO is a usage error before anything runs


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> ClnrmFile | None:
    if file_path.name.endswith(SUFFIX) and _enabled(parent.config):
        return ClnrmFile.from_parent(parent, path=file_path)
    return None


@pytest.fixture
def clnrm_run(request: pytest.FixtureRequest) -> Callable[..., RunResult]:
    """Run clnrm test files from a test: ``result = clnrm_run("api.clnrm.toml", seed=7)``.

    Returns :func:`clnrm.run`'s typed RunResult, so a test asserts on outcomes, spans,
    validations or perf figures rather than on an exit code.  The command line's
    ``--clnrm-backend`` and ``--clnrm-image-map`` are the defaults (keyword options
    win; an ``image_map`` given is merged over the command line's), so one switch moves
    a whole suite to ``local``.  Each run's id, backend and outcomes go to the test's
    ``user_properties`` (JUnit XML shows them) and failing steps' output to its report
    sections, as for collected ``*.clnrm.toml`` items.
    """
    from clnrm.api import run

    node = request.node
    config = request.config

    def clnrm_run(paths: Any, **options: Any) -> RunResult:
        options.setdefault("backend", config.getoption("clnrm_backend"))
        options["image_map"] = {**_image_map(config), **(options.get("image_map") or {})}
        result = run(paths, **options)
        node.user_properties += [("clnrm.run_id", result.run_id),
                                 ("clnrm.backend", result.backend)]
        for test in result.tests:
            node.user_properties.append((f"clnrm.outcome.{test.name}", test.outcome.value))
            for step in test.steps:
                if step.outcome.value in ("failed", "error"):
                    for stream in ("stdout", "stderr"):
                        text = getattr(step, stream)
                        if text:
                            node.add_report_section(
                                "call", f"{test.name} step {step.name} {stream}", text)
        return result

    return clnrm_run


def _enabled(config: pytest.Config) -> bool:
    return bool(config.getoption("clnrm") or config.getini("clnrm"))


def _image_map(config: pytest.Config) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for item in config.getoption("clnrm_image_map"):
        src, sep, dst = item.partition("=")
        if not (sep and src and dst):
            raise pytest.UsageError(f"--clnrm-image-map {item!r}: expected FROM=TO, e.g. "
                                    "alpine:latest=clnrm/busybox:latest")
        mapping[src] = dst
    return mapping


class ClnrmFile(pytest.File):
    """One test file; loading happens here so a bad file fails collection, not a run."""

    def collect(self) -> list[ClnrmItem]:
        from clnrm.scenario import load_scenario

        scenario = load_scenario(self.path)
        item = ClnrmItem.from_parent(self, name=scenario.name, scenario=scenario)
        for warning in getattr(scenario, "warnings", []):
            item.warn(ClnrmScenarioWarning(str(warning)))
        return [item]

    # pytest's own Collector.repr_failure drops Node's `style` parameter; so does this one
    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> Any:  # type: ignore[override]
        from clnrm.errors import ClnrmError

        if isinstance(excinfo.value, ClnrmError):
            return str(excinfo.value)  # already located: file:line [key] message + hint
        return super().repr_failure(excinfo)


class ClnrmScenarioWarning(pytest.PytestWarning):
    """A test file loaded with warnings (unknown keys and such) that ``--strict`` would reject."""


class ScenarioNotPassed(Exception):
    """Ends an item whose test did not pass; carries the result for :meth:`repr_failure`.

    Not a :class:`~clnrm.errors.ClnrmError`: a failed test is a result, and this
    exception exists only because pytest marks an item failed by an exception.
    """

    def __init__(self, test: TestResult) -> None:
        super().__init__(test.message or test.outcome.value)
        self.test = test


class ClnrmItem(pytest.Item):
    """One clnrm test, run on its own through :class:`clnrm.runner.Runner`."""

    def __init__(self, *, scenario: Scenario, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scenario = scenario
        self.result: TestResult | None = None
        self.add_marker("clnrm")

    def runtest(self) -> None:
        from clnrm.results import Outcome
        from clnrm.runner import Runner, RunOptions

        options = RunOptions(backend=self.config.getoption("clnrm_backend"),
                             image_map=_image_map(self.config))
        run = Runner(options).run([self.scenario])
        [test] = run.tests
        self.result = test
        self.user_properties += [("clnrm.run_id", run.run_id), ("clnrm.backend", run.backend),
                                 ("clnrm.outcome", test.outcome.value)]
        for step in test.steps:
            for stream in ("stdout", "stderr"):
                text = getattr(step, stream)
                if text:
                    self.add_report_section("call", f"step {step.name} {stream}", text)
        if test.outcome is Outcome.SKIPPED:
            pytest.skip(test.message or "skipped by clnrm")
        if test.outcome is not Outcome.PASSED:
            raise ScenarioNotPassed(test)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> Any:
        from clnrm.errors import ClnrmError

        if isinstance(excinfo.value, ScenarioNotPassed):
            return describe_failure(excinfo.value.test)
        if isinstance(excinfo.value, ClnrmError):  # set-up: missing image, engine down
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"clnrm test {self.name!r}"


def describe_failure(test: TestResult) -> str:
    """The test's message, then each failing step and failing validation, for a terminal."""
    from clnrm.results import Outcome

    lines = [f"clnrm test {test.name!r} {test.outcome.value.upper()}: "
             f"{test.message or 'no message'}"]
    bad_steps = [s for s in test.steps if s.outcome in (Outcome.FAILED, Outcome.ERROR)]
    if bad_steps:
        lines.append("failing steps:")
    for step in bad_steps:
        where = f" in {step.service}" if step.service else ""
        lines.append(f"  {step.name}{where}: {step.message or step.outcome.value}")
        lines.append(f"    $ {shlex.join(step.command)}  (exit code {step.exit_code})")
    bad_checks = test.failed_validations
    if bad_checks:
        lines.append("failing validations:")
    for v in bad_checks:
        lines.append(f"  {v.status.value.upper()} {v.validator} {v.expectation}"
                     + (f": {v.message}" if v.message else ""))
        if v.expected or v.seen:
            lines.append(f"    expected {v.expected or '?'}, seen {v.seen or '?'}")
        if v.declared_at:
            lines.append(f"    declared at {v.declared_at}")
    return "\n".join(lines)

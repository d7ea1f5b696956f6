"""Helpers for people who drive clnrm from pytest.

Why: the opt-in plugin (``pytest --clnrm``) turns each ``*.clnrm.toml`` into an item
but gives a test no say in how it runs.  These helpers let an ordinary pytest test
choose: parametrize over a folder of test files (:func:`scenario_files`), run one
with the ``clnrm_run`` fixture (:mod:`clnrm.pytest_plugin`), assert on the typed
result and fail with clnrm's own explanation (:func:`assert_passed`)::

    import pytest
    from clnrm.testing import assert_passed, scenario_files

    @pytest.mark.parametrize("path", scenario_files("tests/e2e"))
    def test_e2e(clnrm_run, path):
        assert_passed(clnrm_run(path))

Import-light: nothing from clnrm's runner or pydantic is imported until a helper runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clnrm.results import RunResult, TestResult


def scenario_files(*folders: str | os.PathLike[str], root: str | os.PathLike[str] | None = None,
                   ) -> list[Any]:
    """The test files under ``folders`` (walked exactly as ``clnrm run FOLDER`` walks them),
    sorted, as ``pytest.param(path, id=...)`` so each test is named after its file.

    Relative folders are resolved against ``root``, else the current directory -- pass
    ``root=Path(__file__).parent`` to make a test module independent of where pytest
    was started.  An empty or missing folder yields an empty list (pytest then reports
    the test as skipped with "got empty parameter set", which is visible, not silent).
    Without pytest installed, plain :class:`~pathlib.Path` objects are returned.
    """
    from clnrm.scenario.discovery import discover_test_files

    base = Path(root) if root is not None else Path.cwd()
    wanted = [base / f for f in folders] or [base]
    files = [f for f in discover_test_files(wanted) if f.is_file()]
    try:
        import pytest
    except ImportError:  # pragma: no cover - pytest is how this module is meant to be used
        return files
    return [pytest.param(f, id=_test_id(f, base)) for f in files]


def _test_id(path: Path, base: Path) -> str:
    try:
        rel = path.resolve().relative_to(base.resolve())
    except ValueError:
        rel = Path(path.name)
    name = rel.as_posix()
    for suffix in (".clnrm.toml.tera", ".clnrm.toml", ".toml"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def describe(result: RunResult) -> str:
    """Every test that did not pass, with its failing steps and validations, for a message."""
    from clnrm.pytest_plugin import describe_failure
    from clnrm.results import Outcome

    bad = [t for t in result.tests if t.outcome is not Outcome.PASSED]
    if not bad:
        return f"run {result.run_id}: {len(result.tests)} passed"
    return "\n".join(describe_failure(t) for t in bad)


def assert_passed(result: RunResult | TestResult) -> None:
    """Fail with clnrm's explanation (message, failing steps, failing validations) unless
    every test passed; a skipped test counts as not passed, so nothing goes green unseen."""
    from clnrm.pytest_plugin import describe_failure
    from clnrm.results import Outcome, TestResult

    if isinstance(result, TestResult):
        if result.outcome is not Outcome.PASSED:
            raise AssertionError(describe_failure(result))
        return
    if not result.tests:
        raise AssertionError(f"run {result.run_id} ran no tests")
    if any(t.outcome is not Outcome.PASSED for t in result.tests):
        raise AssertionError(describe(result))

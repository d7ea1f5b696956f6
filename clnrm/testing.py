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

It also holds the test doubles clnrm's own tests (and a plugin's) need, so each is
written once: :class:`FakeSandbox` (a sandbox with no engine behind it, for a layer's
unit tests) and :class:`~clnrm.otel.sink.InMemorySpanSink` (the receiver's in-memory
sink, re-exported here).

Import-light: nothing from clnrm's runner or pydantic is imported until a helper runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clnrm.otel.sink import InMemorySpanSink
    from clnrm.results import RunResult, TestResult

__all__ = ["FakeSandbox", "InMemorySpanSink", "assert_passed", "describe", "scenario_files"]


def __getattr__(name: str) -> Any:
    if name == "InMemorySpanSink":  # lazily: the sink module is not needed to run a file
        return import_module("clnrm.otel.sink").InMemorySpanSink
    raise AttributeError(f"module 'clnrm.testing' has no attribute {name!r}")


class FakeSandbox:
    """The part of a sandbox that layers use (the chaos context, the perf session), with no
    engine behind it: named services with container ids, a network name, an engine client
    of the test's choosing.

    Why: a layer's unit test needs "the services of this test" without Docker; one fake
    that follows :class:`clnrm.backends.docker.DockerSandbox` keeps the tests' fakes from
    drifting apart.  ``services`` maps a name to its container id, or lists names (their
    ids are ``cid-<name>``).  ``api`` is what the context hands faults as the engine's
    low-level client (``None``: a fault that needs one fails).  Restarts are recorded in
    :attr:`restarted`, then ``on_restart`` runs.
    """

    supports_chaos = True  # the chaos engine refuses sandboxes without it (local backend)

    def __init__(self, services: Mapping[str, str] | Iterable[str] = (), *, api: Any = None,
                 network_name: str = "net", addresses: Mapping[str, str] | None = None,
                 on_restart: Callable[[str], None] | None = None) -> None:
        self.api = api
        self.network_name = network_name
        self._ids = (dict(services) if isinstance(services, Mapping)
                     else {name: f"cid-{name}" for name in services})
        self._addresses = dict(addresses or {})
        self._on_restart = on_restart
        self.restarted: list[str] = []

    def service_names(self) -> list[str]:
        return list(self._ids)

    def container_id(self, service: str) -> str | None:
        """The service's container id; ``None`` for a name that is not a service here."""
        return self._ids.get(service)

    def address_of(self, cid: str) -> str | None:
        """The container's address on the test network, from ``addresses`` (by service)."""
        service = next((s for s, c in self._ids.items() if c == cid), None)
        return self._addresses.get(service) if service is not None else None

    def restart_service(self, service: str) -> None:
        self.restarted.append(service)
        if self._on_restart is not None:
            self._on_restart(service)


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

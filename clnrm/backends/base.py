"""The two-level backend interface: a Backend per run, a Sandbox per test.

A :class:`Sandbox` owns everything one test creates (network, containers or
processes) and is a context manager, so cleanup is structural: leaving the
``with`` block, by return, exception, Ctrl-C or SIGTERM, removes it all.
The Backend adds run-wide reaping by label for the cases a ``finally`` cannot
cover (SIGKILL): see :mod:`clnrm.gc`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from types import TracebackType
from typing import Self

from clnrm.plugins.base import ServiceSpec
from clnrm.results import ExecResult

ProgressCallback = Callable[[str], None]
"""Receives short human messages ("starting db", "step 3/20") for progress bars."""


class Sandbox(ABC):
    """Isolated place where one test's services and steps run."""

    #: address a receiver must bind to so this sandbox's containers (and only they,
    #: plus the host) can reach it: the test network's gateway, or loopback
    otlp_host: str = "127.0.0.1"

    @abstractmethod
    def extend_env(self, env: dict[str, str]) -> None:
        """Add variables for every service started and step run from now on."""

    @abstractmethod
    def start_service(self, spec: ServiceSpec, *, timeout: float) -> None:
        """Start a service and block until it is ready; raise ReadinessError if it never is."""

    @abstractmethod
    def exec(self, service: str | None, argv: list[str], *, env: dict[str, str] | None = None,
             workdir: str | None = None, timeout: float | None = None) -> ExecResult:
        """Run argv in ``service`` (or the default step environment when None)."""

    @abstractmethod
    def logs(self, service: str, *, tail: int = 20) -> str:
        """Last lines a service printed, for error messages."""

    @abstractmethod
    def close(self) -> None:
        """Remove everything this sandbox created; safe to call twice."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class Backend(ABC):
    """Creates sandboxes for one run; every resource is tagged with ``run_id``."""

    name: str

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id

    @abstractmethod
    def sandbox(self, test_slug: str, *, default_image: str, env: dict[str, str]) -> Sandbox:
        """A fresh, empty sandbox for one test."""

    def limitations(self) -> list[str]:
        """What this backend cannot isolate, shown to the user before the run."""
        return []

    def preflight(self, images: set[str]) -> None:  # noqa: B027 - optional hook
        """Fail fast (before any test starts) when the run cannot possibly work."""

    def reap(self) -> None:  # noqa: B027 - optional hook
        """Remove anything of this run still alive (interrupt path)."""

"""The two-level backend interface: a Backend per run, a Sandbox per test.

A :class:`Sandbox` owns everything one test creates (network, containers or
processes) and is a context manager, so cleanup is structural: leaving the
``with`` block, by return, exception, Ctrl-C or SIGTERM, removes it all.
The Backend adds run-wide reaping by label for the cases a ``finally`` cannot
cover (SIGKILL): see :mod:`clnrm.gc`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Self

from clnrm.plugins.base import ServiceSpec
from clnrm.results import ExecResult

ProgressCallback = Callable[[str], None]
"""Receives short human messages ("starting db", "step 3/20") for progress bars."""

STEPS_MEMBER: Final = "__steps__"
"""Stands for the step container in a network link (see :meth:`Backend.sandbox`)."""


@dataclass(frozen=True, slots=True)
class ServiceState:
    """What the engine says about a started service right now."""

    running: bool
    exit_code: int | None = None
    status: str = ""  # the engine's word for it: running, exited, dead, ...
    oom_killed: bool = False  # the kernel killed it at its memory limit (State.OOMKilled)
    restarts: int = 0  # how often the engine restarted it (its restart policy)


class ServiceHandle(ABC):
    """A started service, as readiness probes see it.

    Probes need only these five things, so one probe implementation serves
    every backend (testcontainers' wait strategies work the same way).
    """

    name: str

    @abstractmethod
    def state(self) -> ServiceState:
        """Running or not (with exit code) at this moment."""

    @abstractmethod
    def address(self) -> str | None:
        """An address this host can reach the service's ports at; None if it has none yet."""

    @abstractmethod
    def exec(self, argv: list[str], *, timeout: float | None) -> ExecResult:
        """Run argv inside the service (or beside it, for host processes)."""

    @abstractmethod
    def logs(self, *, tail: int = 20) -> str:
        """Last lines the service printed."""

    def follow_logs(self) -> LogStream | None:
        """Lines as they are printed, from the first; None when the backend cannot stream."""
        return None


class LogStream(ABC):
    """An iterator of log lines that another thread may close to stop it."""

    @abstractmethod
    def __iter__(self) -> Iterator[str]: ...

    @abstractmethod
    def close(self) -> None: ...


class Sandbox(ABC):
    """Isolated place where one test's services and steps run."""

    #: address a receiver must bind to so this sandbox's containers (and only they,
    #: plus the host) can reach it: the test network's gateway, or loopback
    otlp_host: str = "127.0.0.1"
    #: whether ``links`` (a declared topology) really limit who reaches whom
    enforces_links: bool = False

    @abstractmethod
    def extend_env(self, env: dict[str, str]) -> None:
        """Add variables for every service started and step run from now on."""

    @abstractmethod
    def launch(self, spec: ServiceSpec) -> ServiceHandle:
        """Create and start a service without waiting for it to be ready."""

    def hold(self, specs: Sequence[ServiceSpec]) -> None:  # noqa: B027 - optional hook
        """Get these services as close to started as possible without running them yet
        (their dependencies are not ready); :meth:`launch` finishes the start."""

    def prepare_steps(self) -> None:  # noqa: B027 - optional hook
        """Start whatever runs steps that name no service now, beside the receiver and the
        services, instead of at the first such step."""

    def order_shutdown(self, stop_after: dict[str, set[str]]) -> None:  # noqa: B027
        """Remove a service only after every service in ``stop_after[service]`` is gone
        (its dependants), so teardown runs in reverse dependency order."""

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
    def sandbox(self, test_slug: str, *, default_image: str, env: dict[str, str],
                links: Sequence[Sequence[str]] | None = None) -> Sandbox:
        """A fresh, empty sandbox for one test.

        ``links`` None: every service reaches every other.  Otherwise only the
        members of one link (service names, :data:`STEPS_MEMBER` for the step
        container) reach each other; a backend that cannot enforce this says
        so in :meth:`limitations`.
        """

    def prepare(self, test_slug: str, *, default_image: str,  # noqa: B027 - optional hook
                env: dict[str, str], links: Sequence[Sequence[str]] | None = None,
                steps: bool = False) -> None:
        """Start making the sandbox :meth:`sandbox` will soon be asked for with these same
        arguments (and its step container, with ``steps``), beside the caller's own set-up.
        A prepared sandbox nobody asks for is removed by :meth:`finish`."""

    def limitations(self) -> list[str]:
        """What this backend cannot isolate, shown to the user before the run."""
        return []

    def preflight(self, images: set[str]) -> None:  # noqa: B027 - optional hook
        """Fail fast (before any test starts) when the run cannot possibly work."""

    def reap(self) -> None:  # noqa: B027 - optional hook
        """Remove anything of this run still alive (interrupt path)."""

    def finish(self) -> None:  # noqa: B027 - optional hook
        """Wait for housekeeping left running beside the tests, and remove sandboxes
        :meth:`prepare` made that no test took."""

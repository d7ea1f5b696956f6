"""Retry with backoff and a circuit breaker, per dependency and per process.

Stdlib only, so the rules can be tested without the image. The breaker guards each
*attempt*, inside the retry loop: an outage opens it after ``threshold`` failed
attempts and the remaining retries are refused at once instead of sleeping through
their backoff. Only infrastructure failures (``DependencyError``) count and are retried;
a bug in a query is raised as it is.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, TypeVar

if TYPE_CHECKING:
    from demoapp.config import Settings

_T = TypeVar("_T")

FailureKind = Literal["timeout", "unavailable", "circuit_open"]
CircuitState = Literal["closed", "open", "half_open"]


class DependencyError(Exception):
    """A dependency (``db``, ``cache``, ``api``) did not answer usefully.

    ``kind`` decides the caller's answer: ``timeout`` (504 at the gateway),
    ``unavailable`` (502/503) or ``circuit_open`` (refused without trying, 503).
    """

    def __init__(self, dependency: str, kind: FailureKind, detail: str) -> None:
        super().__init__(f"{dependency} {kind.replace('_', ' ')}: {detail}")
        self.dependency = dependency
        self.kind = kind
        self.detail = detail


@dataclass
class RetryPolicy:
    """``retries`` extra attempts; the n-th waits ``backoff * 2**(n-1)`` (capped), half jittered.

    The jitter comes from ``rng``, seeded from ``CLNRM_SEED`` by the services, so a
    seeded run backs off identically every time.
    """

    retries: int
    backoff_s: float
    max_backoff_s: float
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, retry: int) -> float:
        ceiling = min(self.max_backoff_s, self.backoff_s * 2 ** max(retry - 1, 0))
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)

    def without_retries(self) -> RetryPolicy:
        return RetryPolicy(0, self.backoff_s, self.max_backoff_s, self.rng)


StateListener = Callable[[str, CircuitState], None]
"""``on_change(name, new_state)``: told of every transition (the services add a span event)."""


class CircuitBreaker:
    """Closed -> open after ``threshold`` consecutive failures -> half-open after ``open_s``.

    Half-open lets exactly one trial call through; its success closes the circuit, its
    failure opens it again for another ``open_s``. Disabled (``enabled=False``) it
    admits everything and keeps no state, which is the default of the demo.
    """

    def __init__(self, name: str, *, enabled: bool, threshold: int, open_s: float,
                 clock: Callable[[], float] = time.monotonic,
                 on_change: StateListener | None = None) -> None:
        self.name = name
        self.enabled = enabled
        self.threshold = threshold
        self.open_s = open_s
        self._clock = clock
        self._on_change = on_change
        self._lock = threading.Lock()
        self._state: CircuitState = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._trial_running = False

    @property
    def state(self) -> CircuitState:
        with self._lock:
            if self._state == "open" and self._clock() - self._opened_at >= self.open_s:
                return "half_open"
            return self._state

    def acquire(self) -> None:
        """Admit one attempt or raise ``DependencyError(kind="circuit_open")``."""
        if not self.enabled:
            return
        changed: CircuitState | None = None
        with self._lock:
            if self._state == "open":
                if self._clock() - self._opened_at < self.open_s:
                    raise DependencyError(self.name, "circuit_open", "circuit breaker is open")
                self._state = changed = "half_open"
            if self._state == "half_open":
                if self._trial_running:
                    raise DependencyError(self.name, "circuit_open",
                                          "circuit breaker is half-open, trial call running")
                self._trial_running = True
        self._notify(changed)

    def success(self) -> None:
        if not self.enabled:
            return
        changed: CircuitState | None = None
        with self._lock:
            self._failures = 0
            self._trial_running = False
            if self._state != "closed":
                self._state = changed = "closed"
        self._notify(changed)

    def failure(self) -> None:
        if not self.enabled:
            return
        changed: CircuitState | None = None
        with self._lock:
            self._failures += 1
            self._trial_running = False
            if self._state == "half_open" or self._failures >= self.threshold:
                if self._state != "open":
                    changed = "open"
                self._state = "open"
                self._opened_at = self._clock()
        self._notify(changed)

    def release(self) -> None:
        """End an attempt that proved nothing about the dependency (a bug, an interrupt)."""
        with self._lock:
            self._trial_running = False

    def _notify(self, state: CircuitState | None) -> None:
        if state is not None and self._on_change is not None:
            self._on_change(self.name, state)


def call_with_retry(attempt: Callable[[int], _T], *, policy: RetryPolicy,
                    breaker: CircuitBreaker,
                    sleep: Callable[[float], None] = time.sleep) -> _T:
    """``attempt(n)`` for n = 0, 1, ... until it returns, retries run out or the circuit opens.

    ``DependencyError`` is a failure (counted by the breaker, retried); any other
    exception ends the call at once and leaves the breaker alone.
    """
    retry = 0
    while True:
        breaker.acquire()
        try:
            result = attempt(retry)
        except DependencyError:
            breaker.failure()
            if retry >= policy.retries:
                raise
            retry += 1
            sleep(policy.delay(retry))
            continue
        except BaseException:
            breaker.release()
            raise
        breaker.success()
        return result


def breakers(settings: Settings,
             on_change: StateListener | None = None) -> Callable[[str], CircuitBreaker]:
    """A maker of one breaker per dependency name, all set by the same switches."""

    def make(name: str) -> CircuitBreaker:
        return CircuitBreaker(name, enabled=settings.circuit_breaker,
                              threshold=settings.cb_threshold, open_s=settings.cb_open_s,
                              on_change=on_change)

    return make

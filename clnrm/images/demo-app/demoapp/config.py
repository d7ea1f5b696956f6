"""Settings of one demo service, read once from the environment.

Every resilience pattern is switched here, so a chaos scenario changes behaviour with
``[services.api.env]`` alone (docs/demo.md lists the variables). An invalid value is
reported on stderr and replaced by its default: a service that refuses to start over a
typo in a tuning knob would hide the fault a test is about.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

_T = TypeVar("_T")
_ON = frozenset({"1", "on", "true", "yes"})
_OFF = frozenset({"0", "off", "false", "no", ""})

DEFAULT_PORTS = {"gateway": 8080, "api": 8000, "worker": 8001}


@dataclass(frozen=True)
class Settings:
    """What a role needs; defaults give a healthy system with modest resilience."""

    role: str
    port: int
    api_url: str
    redis_url: str
    database_url: str
    queue: str
    timeout_s: float
    """TIMEOUT_MS: limit of one attempt of any call to a dependency."""
    retries: int
    """RETRIES: extra attempts after a failed one (idempotent calls and the queue only)."""
    backoff_s: float
    """RETRY_BACKOFF_MS: first backoff; doubles per retry, half of it random (jitter)."""
    max_backoff_s: float
    circuit_breaker: bool
    cb_threshold: int
    """CB_FAILURE_THRESHOLD: consecutive failed attempts that open a dependency's circuit."""
    cb_open_s: float
    """CB_OPEN_MS: how long an open circuit refuses calls before one trial call."""
    fallback_stale_cache: bool
    cache_ttl_s: float
    """CACHE_TTL_S: age below which a cached read is served without asking the database."""
    work_s: float
    """WORK_MS: simulated work per job in the worker (to build a backlog in load tests)."""
    fixed_delay_s: float
    """FIXED_DELAY_MS (api): serve ``GET /v1/delay``, answering after exactly this long and
    asking no dependency; 0 (default) leaves the route out.  A service whose latency is
    set exactly, so a regression bench knows the true shift (bench/regression_e2e.py)."""
    db_read_delay_s: float
    """DB_READ_DELAY_MS (api): exact extra time inside every database read's span
    (after the query, the connection already back in the pool); a known slowdown."""
    seed: int | None

    @classmethod
    def from_env(cls, role: str, env: Mapping[str, str] | None = None) -> Settings:
        source = os.environ if env is None else env
        read = _Reader(source)
        return cls(
            role=role,
            port=read.number("PORT", DEFAULT_PORTS.get(role, 8000), int, minimum=1),
            api_url=read.text("API_URL", "http://api:8000").rstrip("/"),
            redis_url=read.text("REDIS_URL", "redis://cache:6379/0"),
            database_url=read.text("DATABASE_URL", "postgresql://demo:demo@db:5432/demo"),
            queue=read.text("JOB_QUEUE", "jobs"),
            timeout_s=read.number("TIMEOUT_MS", 1000, int, minimum=1) / 1000,
            retries=read.number("RETRIES", 2, int, minimum=0),
            backoff_s=read.number("RETRY_BACKOFF_MS", 50, int, minimum=0) / 1000,
            max_backoff_s=read.number("RETRY_BACKOFF_MAX_MS", 1000, int, minimum=0) / 1000,
            circuit_breaker=read.switch("CIRCUIT_BREAKER", False),
            cb_threshold=read.number("CB_FAILURE_THRESHOLD", 5, int, minimum=1),
            cb_open_s=read.number("CB_OPEN_MS", 5000, int, minimum=0) / 1000,
            fallback_stale_cache=read.switch("FALLBACK_STALE_CACHE", False),
            cache_ttl_s=read.number("CACHE_TTL_S", 30.0, float, minimum=0),
            work_s=read.number("WORK_MS", 0, int, minimum=0) / 1000,
            fixed_delay_s=read.number("FIXED_DELAY_MS", 0.0, float, minimum=0) / 1000,
            db_read_delay_s=read.number("DB_READ_DELAY_MS", 0.0, float, minimum=0) / 1000,
            seed=read.optional_int("CLNRM_SEED"),
        )


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def text(self, name: str, default: str) -> str:
        return self.env.get(name) or default

    def switch(self, name: str, default: bool) -> bool:
        raw = self.env.get(name)
        if raw is None:
            return default
        value = raw.strip().lower()
        if value in _ON:
            return True
        if value in _OFF:
            return False
        return _invalid(name, raw, default, "on or off")

    def number(self, name: str, default: _T, kind: Callable[[str], _T], *,
               minimum: float) -> _T:
        raw = self.env.get(name)
        if raw is None or raw.strip() == "":
            return default
        try:
            value = kind(raw.strip())
        except ValueError:
            return _invalid(name, raw, default, f"a {kind.__name__}")
        if value != value or value in (float("inf"), float("-inf")):  # nan, inf
            return _invalid(name, raw, default, f"a finite {kind.__name__}")
        if value < minimum:  # type: ignore[operator]
            return _invalid(name, raw, default, f"at least {minimum:g}")
        return value

    def optional_int(self, name: str) -> int | None:
        raw = self.env.get(name)
        if not raw:
            return None
        try:
            return int(raw)
        except ValueError:
            return _invalid(name, raw, None, "an integer")


def _invalid(name: str, raw: str, default: _T, wanted: str) -> _T:
    print(f"demo-app: ignoring {name}={raw!r} (want {wanted}); using {default!r}",
          file=sys.stderr)
    return default

"""The built-in remediation catalog, registered like any plugin (entry point
``healing_remediations`` names :mod:`clnrm.healing.builtin`, which imports this module only
when the catalog is asked for, so a run that never heals does not pay for it).  Each
changes only the environment; the two port fixes only propose a patch to the test file
(``clnrm heal propose``, applied with --apply).
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from clnrm.healing.environment import EnvironmentChange, ServiceChange
from clnrm.healing.model import Classification
from clnrm.healing.model import FailureClass as F
from clnrm.healing.remedies import Remediation, RemediationConfig

if TYPE_CHECKING:
    from clnrm.scenario.model import Scenario


def _service(diag: Classification, sc: Scenario) -> str | None:
    svc = diag.context.service
    return svc if svc is not None and svc in sc.services else None


def _has_setup_limit(sc: Scenario, svc: str) -> bool:
    cfg = sc.services[svc]
    return cfg.health_check is not None or any(p.timeout is not None for p in cfg.readiness)


LEVELS = 3
"""Magnitudes of a scalable remediation: x2, x4, x8 of its first step by default."""


def _power(factor: float, level: int, cap: float) -> float:
    """``factor`` at ``level`` (factor, factor**2, ...), at most ``cap``."""
    return min(factor**level, cap)


class _ScaleConfig(RemediationConfig):
    factor: float = Field(default=2.0, ge=1.0, le=20.0)  # level 1; level k: factor**k
    backoff_s: float = Field(default=1.0, gt=0)


class ExtendReadiness(Remediation[_ScaleConfig]):
    name = "extend_readiness"
    summary = "longer readiness with backoff: probe limits and health-check retries x factor"
    classes = frozenset({F.readiness_timeout, F.slow_start, F.dependency_not_ready,
                         F.resource_starvation})
    Config: ClassVar[type[RemediationConfig]] = _ScaleConfig
    max_level = LEVELS

    def why_not(self, diag: Classification, sc: Scenario) -> str | None:
        svc = _service(diag, sc)
        if svc is None:
            return "no service to wait longer for"
        if not _has_setup_limit(sc, svc):
            return f"{svc!r} has no readiness limit of its own (clnrm's start limit applies)"
        return None

    def change(self, diag: Classification, sc: Scenario) -> EnvironmentChange:
        cfg = self.config
        svc = _service(diag, sc)
        assert svc is not None
        factor = _power(cfg.factor, self.level, 20.0)
        return EnvironmentChange(
            summary=f"readiness of {svc!r}: limits x{factor:g}, backoff {cfg.backoff_s:g} s",
            services={svc: ServiceChange(probe_timeout_factor=factor,
                                         probe_interval_s=cfg.backoff_s,
                                         health_check_retries_factor=factor)})


class _TimeoutConfig(RemediationConfig):
    factor: float = Field(default=2.0, ge=1.0, le=20.0)  # level 1; level k: factor**k
    floor_s: float = Field(default=5.0, gt=0)  # level 1; doubles per level


class ExtendTimeout(Remediation[_TimeoutConfig]):
    """Set-up limits only: a probe's own limit, never a step's ``timeout`` or a
    performance expectation (those are expectations, and this class cannot name them)."""

    name = "extend_timeout"
    summary = "longer set-up limit (readiness probe timeouts, at least floor_s)"
    classes = frozenset({F.slow_start, F.readiness_timeout})
    Config: ClassVar[type[RemediationConfig]] = _TimeoutConfig
    max_level = LEVELS

    def why_not(self, diag: Classification, sc: Scenario) -> str | None:
        svc = _service(diag, sc)
        if svc is None or not any(p.timeout for p in sc.services[svc].readiness):
            return "no set-up limit of its own to extend"
        return None

    def change(self, diag: Classification, sc: Scenario) -> EnvironmentChange:
        cfg = self.config
        svc = _service(diag, sc)
        assert svc is not None
        factor = _power(cfg.factor, self.level, 20.0)
        floor = cfg.floor_s * 2 ** (self.level - 1)
        return EnvironmentChange(
            summary=f"set-up limit of {svc!r} x{factor:g} (at least {floor:g} s)",
            services={svc: ServiceChange(probe_timeout_factor=factor,
                                         probe_timeout_floor_s=floor)})


class StartOrder(Remediation[RemediationConfig]):
    name = "start_order"
    summary = "start the service after the dependency it needed (depends_on + tcp readiness)"
    classes = frozenset({F.dependency_not_ready, F.crashed_on_start})

    def _dependency(self, diag: Classification, sc: Scenario) -> str | None:
        svc = _service(diag, sc)
        if svc is None:
            return None
        if diag.dependency in sc.services and diag.dependency != svc:
            return diag.dependency
        others = [n for n in sc.services if n != svc and n not in sc.services[svc].depends_on
                  and svc not in sc.services[n].depends_on]
        return others[0] if len(others) == 1 else None

    def why_not(self, diag: Classification, sc: Scenario) -> str | None:
        return None if self._dependency(diag, sc) else "no undeclared dependency to wait for"

    def change(self, diag: Classification, sc: Scenario) -> EnvironmentChange:
        svc, dep = _service(diag, sc), self._dependency(diag, sc)
        assert svc is not None and dep is not None
        ports = sc.services[dep].ports
        return EnvironmentChange(
            summary=f"start {svc!r} after {dep!r} is ready",
            services={svc: ServiceChange(add_depends_on=[dep])},
            wait_for={dep: int(ports[0])} if ports else {})


class _RestartConfig(RemediationConfig):
    retries: int = Field(default=1, ge=1, le=20)  # level 1; doubles per level


class RestartService(Remediation[_RestartConfig]):
    name = "restart_service"
    summary = "restart the service when it exits during start (restart = on-failure:N)"
    classes = frozenset({F.crashed_on_start, F.dependency_not_ready, F.oom_killed})
    Config: ClassVar[type[RemediationConfig]] = _RestartConfig
    max_level = LEVELS

    def why_not(self, diag: Classification, sc: Scenario) -> str | None:
        svc = _service(diag, sc)
        if svc is None:
            return "no service to restart"
        if sc.services[svc].restart not in (None, "no"):
            return f"{svc!r} already restarts ({sc.services[svc].restart})"
        return None

    def change(self, diag: Classification, sc: Scenario) -> EnvironmentChange:
        svc = _service(diag, sc)
        assert svc is not None
        retries = min(self.config.retries * 2 ** (self.level - 1), 20)
        return EnvironmentChange(summary=f"restart {svc!r} on failure, up to {retries}x",
                                 services={svc: ServiceChange(
                                     restart=f"on-failure:{retries}")})


class _LimitConfig(RemediationConfig):
    factor: float = Field(default=2.0, gt=1.0, le=64.0)  # level 1; level k: factor**k
    ceiling: float = Field(default=4096.0, gt=0)  # MiB for memory, cores for cpus


class _CpuConfig(_LimitConfig):
    factor: float = Field(default=4.0, gt=1.0, le=100.0)
    ceiling: float = Field(default=2.0, gt=0)


class _RaiseLimit(Remediation[_LimitConfig]):
    """Raise a declared resource limit of the failing service (compose's ``memory`` /
    ``cpus``) by ``factor``, at most to ``ceiling``; never invent a limit the file lacks."""

    resource: ClassVar[Literal["memory", "cpus"]]
    unit: ClassVar[float] = 1.0  # ceiling's unit in the key's unit
    whole: ClassVar[bool] = False  # the key takes whole numbers (bytes)
    max_level = LEVELS

    def why_not(self, diag: Classification, sc: Scenario) -> str | None:
        svc = _service(diag, sc)
        if svc is None or getattr(sc.services[svc], self.resource) is None:
            return f"no {self.resource} limit declared on the service"
        return None

    def change(self, diag: Classification, sc: Scenario) -> EnvironmentChange:
        cfg = self.config
        svc = _service(diag, sc)
        assert svc is not None
        now = getattr(sc.services[svc], self.resource) or 0
        new = max(now, min(now * cfg.factor**self.level, cfg.ceiling * self.unit))
        if self.whole:
            new = int(new)
        return EnvironmentChange(summary=f"{self.resource} of {svc!r}: {self._says(now)} -> "
                                         f"{self._says(new)}",
                                 services={svc: ServiceChange(**{self.resource: new})})

    def _says(self, value: float) -> str:
        return f"{value:g}"


class RaiseMemoryLimit(_RaiseLimit):
    name = "raise_memory_limit"
    summary = "raise the service's memory limit x factor (at most ceiling MiB)"
    classes = frozenset({F.oom_killed, F.resource_starvation, F.crashed_on_start})
    Config: ClassVar[type[RemediationConfig]] = _LimitConfig
    resource = "memory"
    unit = 2.0**20
    whole = True

    def _says(self, value: float) -> str:
        return f"{int(value) >> 20} MiB"


class RaiseCpuLimit(_RaiseLimit):
    name = "raise_cpu_limit"
    summary = "raise the service's cpus limit x factor (at most ceiling cores)"
    classes = frozenset({F.resource_starvation, F.slow_start, F.readiness_timeout})
    Config: ClassVar[type[RemediationConfig]] = _CpuConfig
    resource = "cpus"


class RetryStep(Remediation[RemediationConfig]):
    """A rerun, unchanged; only for a failure the rerun policy found flaky, and the
    flakiness is reported with the heal (never silent)."""

    name = "retry_step"
    summary = "rerun the test unchanged (flaky: the flakiness is reported)"
    classes = frozenset({F.flaky, F.crashed_on_start})

    def change(self, diag: Classification, sc: Scenario) -> EnvironmentChange:
        runs = len(diag.reruns) + 1
        passed = sum(diag.reruns)
        return EnvironmentChange(summary=f"rerun unchanged (flaky: passed {passed} of "
                                         f"{runs} runs before)")


_IMAGE: re.Pattern[str] = re.compile(r"image '([^']+)'")


class RebuildImage(Remediation[RemediationConfig]):
    name = "rebuild_image"
    summary = "build a missing clnrm image locally (clnrm images build NAME); never pulls"
    classes = frozenset({F.image_missing})

    @staticmethod
    def catalog_name(diag: Classification) -> str | None:
        from clnrm.images._catalog import spec_for_tag

        m = next((m for e in diag.evidence if (m := _IMAGE.search(e))), None)
        spec = spec_for_tag(m.group(1)) if m else None
        return spec.name if spec is not None else None

    def why_not(self, diag: Classification, sc: Scenario) -> str | None:
        if self.catalog_name(diag) is None:
            return "not one of clnrm's images: load it (docker load) or map it (--image-map)"
        return None

    def change(self, diag: Classification, sc: Scenario) -> EnvironmentChange:
        name = self.catalog_name(diag)
        assert name is not None
        return EnvironmentChange(summary=f"clnrm images build {name}", rebuild_images=[name])


class FixPort(Remediation[RemediationConfig]):
    name = "fix_port"
    summary = "propose a patch to the test file: the port the service really listens on"
    classes = frozenset({F.port_or_config_mismatch})
    proposal = True

    def why_not(self, diag: Classification, sc: Scenario) -> str | None:
        if diag.port is None or diag.seen_port is None or not sc.source:
            return "the evidence names no declared and seen port"
        return None

    def change(self, diag: Classification, sc: Scenario) -> EnvironmentChange:
        assert diag.port is not None and diag.seen_port is not None and sc.source
        patch = port_patch(Path(sc.source), diag.port, diag.seen_port)
        return EnvironmentChange(summary=f"proposed: port {diag.port} -> {diag.seen_port} in "
                                         f"{sc.source}", rerun=False, patch=patch)


class FreePort(Remediation[RemediationConfig]):
    name = "free_port"
    summary = "propose a patch to the test file: another port, when the declared one is taken"
    classes = frozenset({F.port_or_config_mismatch})
    proposal = True

    def why_not(self, diag: Classification, sc: Scenario) -> str | None:
        if not any("in use" in e for e in diag.evidence) or diag.port is None or not sc.source:
            return "no port clash in the evidence"
        return None

    def change(self, diag: Classification, sc: Scenario) -> EnvironmentChange:
        assert diag.port is not None and sc.source
        taken = {p for cfg in sc.services.values() for p in cfg.ports}
        free = next(p for p in range(diag.port + 1, 65535) if p not in taken)
        return EnvironmentChange(summary=f"proposed: port {diag.port} -> {free}", rerun=False,
                                 patch=port_patch(Path(sc.source), diag.port, free))


def port_patch(path: Path, old: int, new: int) -> str:
    """A unified diff replacing ``old`` with ``new`` on the lines of ``path`` that declare
    ports (``port``, ``ports``, ``tcp``); empty when the file names no such line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return ""
    pattern = re.compile(rf"(?<!\d){old}(?!\d)")
    lines = text.splitlines(keepends=True)
    patched = [pattern.sub(str(new), line) if re.search(r"\b(port|ports|tcp)\b", line)
               else line for line in lines]
    return "".join(difflib.unified_diff(lines, patched, f"a/{path.name}", f"b/{path.name}"))


BUILTIN: tuple[type[Remediation[Any]], ...] = (
    RetryStep, ExtendReadiness, ExtendTimeout, StartOrder, RestartService, RaiseMemoryLimit,
    RaiseCpuLimit, RebuildImage, FixPort, FreePort)


"""The only change a remediation can make: the environment, never an expectation.

A remediation returns an :class:`EnvironmentChange` (typed data), and
:func:`apply_change` is the one function that turns it into a changed scenario.
The change's fields can only name readiness, start order, resources and restart
policy, so a remediation cannot express "skip this step" or "accept exit 1";
:func:`check_environment_only` then compares everything else of the scenario
before and after (steps, expectations, timeouts, commands, images, env) and
refuses the change if anything outside the environment moved, so even a buggy
third-party remediation cannot weaken a test.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from clnrm.errors import ClnrmError

if TYPE_CHECKING:
    from clnrm.scenario.model import Scenario

ENVIRONMENT_KEYS: frozenset[str] = frozenset({
    "readiness", "health_check", "depends_on", "memory", "cpus", "restart"})
"""The keys of a ``[services.NAME]`` table a remediation may change."""


class HealingRuleError(ClnrmError):
    """A remediation tried to change something other than the environment."""


class ServiceChange(BaseModel):
    """What changes for one service; every field is an environment knob."""

    model_config = ConfigDict(extra="forbid")

    probe_timeout_factor: float = Field(default=1.0, ge=1.0, le=20.0)
    probe_timeout_floor_s: float | None = Field(default=None, gt=0)
    probe_interval_s: float | None = Field(default=None, gt=0)  # backoff between attempts
    health_check_retries_factor: float = Field(default=1.0, ge=1.0, le=20.0)
    add_depends_on: list[str] = Field(default_factory=list)
    memory: int | None = Field(default=None, gt=0)  # bytes; only ever raised
    cpus: float | None = Field(default=None, gt=0)  # only ever raised
    restart: str | None = None


class EnvironmentChange(BaseModel):
    """A remediation's whole effect on one rerun."""

    model_config = ConfigDict(extra="forbid")

    summary: str
    services: dict[str, ServiceChange] = Field(default_factory=dict)
    wait_for: dict[str, int] = Field(default_factory=dict)  # service -> tcp port to probe
    rebuild_images: list[str] = Field(default_factory=list)
    rerun: bool = True  # False: nothing to rerun (a proposal)
    patch: str | None = None  # a proposed TOML patch, applied only by the user (--apply)


def apply_change(sc: Scenario, change: EnvironmentChange) -> Scenario:
    """``sc`` with ``change`` applied, as a new scenario; raises HealingRuleError when the
    result differs from ``sc`` anywhere outside :data:`ENVIRONMENT_KEYS`."""
    from clnrm.scenario.model import ReadinessProbe

    out = sc.model_copy(deep=True)
    for name, sv in change.services.items():
        cfg = out.services.get(name)
        if cfg is None:
            raise HealingRuleError(f"remediation names service {name!r}, not in {sc.name!r}")
        for probe in cfg.readiness:
            base = probe.timeout
            if base is not None:
                probe.timeout = base * sv.probe_timeout_factor
                if sv.probe_timeout_floor_s is not None:
                    probe.timeout = max(probe.timeout, sv.probe_timeout_floor_s)
            if sv.probe_interval_s is not None and probe.command is not None:
                probe.interval = max(probe.interval or 0.0, sv.probe_interval_s)
        if cfg.health_check is not None:
            hc = cfg.health_check
            hc.retries = max(1, round(hc.retries * sv.health_check_retries_factor))
            if sv.probe_interval_s is not None:
                hc.interval = max(hc.interval, sv.probe_interval_s)
        for dep in sv.add_depends_on:
            if dep not in out.services:
                raise HealingRuleError(f"cannot wait for {dep!r}: not a service of {sc.name!r}")
            if dep not in cfg.depends_on and dep != name:
                cfg.depends_on.append(dep)
        if sv.memory is not None and (cfg.memory is None or sv.memory > cfg.memory):
            cfg.memory = sv.memory
        if sv.cpus is not None and (cfg.cpus is None or sv.cpus > cfg.cpus):
            cfg.cpus = sv.cpus
        if sv.restart is not None:
            cfg.restart = sv.restart
    for name, port in change.wait_for.items():
        cfg = out.services.get(name)
        if cfg is not None and not cfg.readiness and cfg.health_check is None:
            cfg.readiness = [ReadinessProbe(tcp=port)]
    check_environment_only(sc, out)
    return out


def expectation_view(sc: Scenario) -> dict[str, Any]:
    """Everything of ``sc`` a remediation must leave alone, as plain data."""
    data = sc.model_dump(mode="json", exclude={"services", "warnings"})
    data["services"] = {name: cfg.model_dump(mode="json", exclude=set(ENVIRONMENT_KEYS))
                        for name, cfg in sc.services.items()}
    return data


def check_environment_only(before: Scenario, after: Scenario) -> None:
    """Raise HealingRuleError naming the first non-environment key that changed."""
    a, b = expectation_view(before), expectation_view(after)
    if a == b:
        return
    changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    raise HealingRuleError(
        f"a remediation may change only the environment (readiness, order, resources, "
        f"restarts); it changed {', '.join(changed)} of {before.name!r}",
        hint="write the fix to the test file as a proposed patch (clnrm heal propose)")


__all__ = ["ENVIRONMENT_KEYS", "EnvironmentChange", "HealingRuleError", "ServiceChange",
           "apply_change", "check_environment_only", "expectation_view"]

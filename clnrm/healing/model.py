"""The healer's data: failure classes, a classification with its evidence, what was tried.

Every verdict the healer gives is data a report renders (``"healing"`` in ``--format
json``), never prose computed by the renderer; the evidence is quoted from what the
run recorded (step output, readiness messages, log tails, validation verdicts) so a
reader can check the class without rerunning anything.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class FailureClass(StrEnum):
    """Why a test failed, in the terms a remediation can act on."""

    readiness_timeout = "readiness_timeout"  # a probe's own limit ran out, service alive
    slow_start = "slow_start"  # the service was still starting when the start limit ran out
    dependency_not_ready = "dependency_not_ready"  # it needed another service not yet up
    oom_killed = "oom_killed"  # the kernel killed it at its memory limit
    crashed_on_start = "crashed_on_start"  # it exited before ready (maybe transiently)
    resource_starvation = "resource_starvation"  # CPU/memory/disk/fd exhausted, not OOM
    flaky = "flaky"  # passes on some unchanged reruns, fails on others
    port_or_config_mismatch = "port_or_config_mismatch"  # the file names a wrong port/host
    image_missing = "image_missing"  # an image is not present locally
    timeout = "timeout"  # a step's own time limit (or the test's) ran out
    product_defect = "product_defect"  # an expectation failed on a healthy environment
    unknown = "unknown"

    @property
    def healable(self) -> bool:
        """Whether an environment change may turn this class green.

        ``product_defect`` never is (the rule the healer exists under);
        ``port_or_config_mismatch`` is fixed in the file, so only proposed;
        ``timeout`` is a step's own limit, which is an expectation.
        """
        return self not in NOT_HEALABLE


NOT_HEALABLE: frozenset[FailureClass] = frozenset({
    FailureClass.product_defect, FailureClass.port_or_config_mismatch,
    FailureClass.timeout, FailureClass.unknown})


class FailureContext(BaseModel):
    """Features of a failure the bandit conditions on (and memory records keep)."""

    model_config = ConfigDict(frozen=True)

    service: str | None = None
    image: str | None = None
    plugin: str | None = None
    probe: str | None = None  # kind of the readiness probe in play (tcp, http, command...)
    fault: str | None = None  # chaos fault type in play, if any
    memory_mb: float | None = None
    cpus: float | None = None

    def features(self) -> dict[str, str]:
        """Discrete features (numbers bucketed), in a stable order."""
        return {"image": _base_image(self.image), "plugin": self.plugin or "-",
                "probe": self.probe or "-", "fault": self.fault or "-",
                "memory": _bucket(self.memory_mb, (64, 512)),
                "cpus": _bucket(self.cpus, (0.25, 1.0))}


def _base_image(image: str | None) -> str:
    if not image:
        return "-"
    return image.rsplit("/", 1)[-1].split(":", 1)[0]


def _bucket(value: float | None, edges: tuple[float, float]) -> str:
    if value is None:
        return "-"
    return "low" if value < edges[0] else "mid" if value < edges[1] else "high"


class Classification(BaseModel):
    """One failed test put in one class, with the quoted lines that decided it."""

    failure_class: FailureClass
    evidence: list[str] = Field(default_factory=list)
    confidence: float = Field(default=1.0, ge=0.0, le=1.0)
    context: FailureContext = Field(default_factory=FailureContext)
    port: int | None = None  # the port the file declares (port_or_config_mismatch)
    seen_port: int | None = None  # the port the service listens on, when it says
    dependency: str | None = None  # dependency_not_ready: the service it needed
    reruns: list[bool] = Field(default_factory=list)  # unchanged reruns: passed or not

    @property
    def evidence_text(self) -> str:
        return "; ".join(self.evidence)[:1200]


class TriedRemediation(BaseModel):
    remediation: str
    outcome: Literal["passed", "failed", "proposed", "skipped"]
    detail: str = ""
    cost_s: float = 0.0
    level: int = 1  # the magnitude tried (1: the remediation's first step)


class EnvironmentRecord(BaseModel):
    """What the ``self_healing`` layer saw of a failed test's services before teardown
    (:mod:`clnrm.healing.layer`): the moment, which services had become ready (None: not
    all of them), and the engine's state of each (status, running, exit_code,
    oom_killed, restarts)."""

    moment: str
    ready: list[str] | None = None
    services: dict[str, dict[str, Any]] = Field(default_factory=dict)

    def down(self) -> dict[str, dict[str, Any]]:
        """The services the engine says were no longer running."""
        return {name: st for name, st in self.services.items() if not st.get("running", True)}


class HealingReport(BaseModel):
    """``"healing"`` of one test in ``--format json`` (the issue's shape, plus context)."""

    failure_class: str
    healed: bool
    attempts: int = 0
    remediation: str | None = None
    tried: list[TriedRemediation] = Field(default_factory=list)
    evidence: str = ""
    why_not: str | None = None  # not healed: why, in words
    confidence: float = 1.0
    patch: str | None = None  # a proposed TOML patch (clnrm heal propose), never applied

    def human(self) -> str:
        if self.healed:
            return (f"healed by {self.remediation} after {self.attempts} attempt(s) "
                    f"[{self.failure_class}]")
        return f"not healed [{self.failure_class}]: {self.why_not or 'no remediation worked'}"


__all__ = ["NOT_HEALABLE", "Classification", "EnvironmentRecord", "FailureClass",
           "FailureContext", "HealingReport", "TriedRemediation"]

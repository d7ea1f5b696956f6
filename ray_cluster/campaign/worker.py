"""One campaign worker: runs one unit at a time, in its own process, as a Ray actor.

A unit is a plain swarm run (:class:`clnrm.agents.negotiation.Swarm`) over plain agents on
:class:`~clnrm.agents.negotiation.LocalHandle` threads inside this process, sharing one
memory connection: no actor per agent per unit, so a unit costs what its scenario runs
cost plus the negotiation.  The actor is restartable (``max_restarts``) and Ray resends the
call a killed incarnation was running (``max_task_retries``), so a SIGKILLed worker costs
one redone unit and the driver never notices; containers the dead incarnation started carry
its pid as owner and are reaped (``clnrm.gc``) by the next unit's dead-run sweep.

The worker returns data only; it never writes the ledger (the driver records, exactly once).
"""

from __future__ import annotations

import os
import secrets
import time
import warnings
from typing import Any, Final

from clnrm.agents.base import Layer, RunSettings
from clnrm.memory import Agent
from clnrm.swarm.campaign.model import Finding, Scalar, UnitResult, UnitSpec

KIND_AGENTS: Final[dict[str, Agent]] = {
    "run": Agent.orchestration, "generate": Agent.intelligence, "chaos": Agent.chaos,
    "performance": Agent.performance, "heal": Agent.self_healing,
}
"""Which agent does each kind of unit work; the architect plans every unit."""

PROBE_ID: Final = "blackboard:clnrm-campaign-probe"
"""A record id that never exists; its kind prefix makes the store really ask (ids without
one are answered "none" locally, with no call to a server)."""


class InfrastructureLost(Exception):  # noqa: N818 - names the condition the driver reacts to
    """Something every unit needs stopped answering during one: the unit proves nothing and
    must not be recorded (the campaign fails, resumably)."""


class MemoryLost(InfrastructureLost):
    """The memory (embedded writer or Chroma server) stopped answering."""


class EngineLost(InfrastructureLost):
    """The Docker engine stopped answering (restarted, socket gone)."""


class CampaignWorker:
    """The body of each worker actor (``ray.remote`` is applied by the driver)."""

    def __init__(self, memory: str, settings: RunSettings, name: str) -> None:
        from clnrm.memory import open_memory

        self.memory = memory
        self.settings = settings
        self.name = name
        self.store = open_memory(memory)
        self.restarted = _reconstructed()
        self._calls = 0

    def info(self) -> dict[str, Any]:
        return {"worker": self.name, "pid": os.getpid(), "restarted": self.restarted}

    def run_unit(self, unit: UnitSpec, text: str, attempt: int) -> dict[str, Any]:
        """Run ``unit`` (its scenario's TOML ``text``, the fault already added); returns
        ``{"result": UnitResult, "finding": Finding | None}`` as JSON-ready dicts."""
        from clnrm.agents.blackboard import Blackboard
        from clnrm.agents.negotiation import LocalHandle, Swarm
        from clnrm.memory.errors import MemoryStoreError
        from clnrm.swarm.actors import AgentSpec, build_agent

        from clnrm.errors import ClnrmError

        self._calls += 1
        retried = self.restarted and self._calls == 1  # Ray resent the call we died in
        started = time.monotonic()
        run_id = f"{unit.id.replace('/', '-')}-{secrets.token_hex(3)}"
        board = Blackboard(self.store)
        agents = [Agent.architect, *(KIND_AGENTS[k] for k in unit.kinds if k in KIND_AGENTS)]
        handles = [LocalHandle(build_agent(AgentSpec(agent=a, memory=self.memory, run_id=run_id,
                                                     settings=self.settings), board))
                   for a in agents]
        try:
            report = Swarm(board, handles, run_id=run_id, memory=self.memory,
                           ray="campaign").run([(unit.scenario, text)])
        except MemoryStoreError as exc:
            raise MemoryLost(f"memory {self.memory} stopped answering: {exc}") from None
        except Exception:
            self._probe()  # a server that died mid-call surfaces as a plain OSError
            raise
        finally:
            for h in handles:
                h.close()
        if report.exit_code == 2 or any(o.status.value == "lost" for o in report.outcomes):
            self._probe()  # a unit broken by a dead memory or engine is not a result
        outcome = {0: "passed", 1: "failed"}.get(report.exit_code, "error")
        facts: dict[str, Scalar] = {
            "swarm_run": run_id, "exit_code": report.exit_code, "worker_pid": os.getpid(),
            "restarted": retried, "scenario": unit.scenario, "kinds": ",".join(unit.kinds)}
        if unit.fault is not None:
            facts.update(fault=unit.fault.fault, fault_target=unit.fault.target)
        runs = [str(o.facts["clnrm_run"]) for o in report.outcomes if "clnrm_run" in o.facts]
        facts["clnrm_runs"] = ",".join(runs)
        facts["healed"] = any(o.facts.get("healed") is True for o in report.outcomes)
        layers = {o.task_id.rsplit("/", 1)[-1]: o.status.value for o in report.outcomes}
        for layer in (Layer.orchestration, Layer.chaos, Layer.performance,
                      Layer.self_healing, Layer.intelligence):
            if layer.value in layers:
                facts[f"layer_{layer.value}"] = layers[layer.value]
        finding: Finding | None = None
        if outcome == "failed":
            try:
                finding = _finding_for(unit, report, text, self.store)
            except ClnrmError as exc:
                facts["finding_error"] = str(exc)[:300]
            if finding is not None:
                facts.update(_finding_facts(finding))
        result = UnitResult(unit=unit.id, index=unit.index, outcome=outcome,  # type: ignore[arg-type]
                            finding=finding.key if finding else None,
                            duration_s=round(time.monotonic() - started, 3), worker=self.name,
                            attempt=attempt + (1 if retried else 0), facts=facts)
        return {"result": result.model_dump(mode="json"),
                "finding": finding.model_dump(mode="json") if finding else None}

    def verify_finding(self, finding: Finding, text: str, folder: str,
                       source: str | None = None) -> dict[str, Any] | None:
        """Write and verify the finding's minimal reproducer (FINDINGS' ``write_reproducer``);
        None when that is not available."""
        try:
            from clnrm.swarm.campaign import findings
        except ImportError:
            return None
        write = getattr(findings, "write_reproducer", None)
        if write is None:
            return None
        from pathlib import Path

        try:
            done: Finding = write(finding, text, Path(folder), source=source)
        except Exception:
            self._probe()
            raise
        return done.model_dump(mode="json")

    def _probe(self) -> None:
        self._probe_memory()
        if self.settings.backend == "docker":
            try:
                from clnrm.backends.docker import docker_client

                docker_client().ping()
            except Exception as exc:
                raise EngineLost(f"the Docker engine stopped answering: {exc}") from None

    def _probe_memory(self) -> None:
        try:
            self.store.get([PROBE_ID])
        except Exception as exc:
            raise MemoryLost(f"memory {self.memory} stopped answering: {exc}") from None

    def close(self) -> None:
        self.store.close()


def _finding_for(unit: UnitSpec, report: Any, text: str, store: Any) -> Finding | None:
    try:
        from clnrm.swarm.campaign import findings
    except ImportError:  # the findings module is optional: a failure is then just a failure
        return None
    make = getattr(findings, "finding_for", None)
    return make(unit, report, text=text, memory=store) if make is not None else None


def _finding_facts(finding: Finding) -> dict[str, Scalar]:
    try:
        from clnrm.swarm.campaign import findings
    except ImportError:
        return {}
    facts = getattr(findings, "finding_facts", None)
    return dict(facts(finding)) if facts is not None else {}


def _reconstructed() -> bool:
    try:
        import ray

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return bool(ray.get_runtime_context().was_current_actor_reconstructed)
    except Exception:  # not inside an actor (tests build a plain CampaignWorker)
        return False

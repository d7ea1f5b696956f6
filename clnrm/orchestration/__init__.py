"""The orchestration layer: start order, readiness, timing and topology of a test's services.

- :mod:`~clnrm.orchestration.graph`: ``depends_on`` -> an acyclic graph (cycles named);
- :mod:`~clnrm.orchestration.schedule`: each service starts the moment its own
  dependencies are ready, and is removed only after its dependants;
- :mod:`~clnrm.orchestration.readiness`: probes (tcp, http, command, log, span);
- :mod:`~clnrm.orchestration.temporal`: "api ready within 5 s of db ready";
- :mod:`~clnrm.orchestration.topology`: who may call whom, as networks and in spans;
- :mod:`~clnrm.orchestration.plan`: all of it decided before the first container.

``agents/orchestrator.py`` is the agent face of this package.
"""

from __future__ import annotations

from clnrm.orchestration.graph import DependencyGraph, dependency_graph
from clnrm.orchestration.plan import OrchestrationPlan, judge_orchestration, plan_orchestration
from clnrm.orchestration.readiness import (
    CommandCheck,
    HttpCheck,
    LogCheck,
    ProbeEnv,
    ReadinessCheck,
    RunningCheck,
    SpanCheck,
    TcpCheck,
    await_ready,
    checks_for,
)
from clnrm.orchestration.schedule import Timeline, run_in_dependency_order
from clnrm.orchestration.temporal import judge_temporal
from clnrm.orchestration.topology import judge_topology, network_links

__all__ = [
    "CommandCheck",
    "DependencyGraph",
    "HttpCheck",
    "LogCheck",
    "OrchestrationPlan",
    "ProbeEnv",
    "ReadinessCheck",
    "RunningCheck",
    "SpanCheck",
    "TcpCheck",
    "Timeline",
    "await_ready",
    "checks_for",
    "dependency_graph",
    "judge_orchestration",
    "judge_temporal",
    "judge_topology",
    "network_links",
    "plan_orchestration",
    "run_in_dependency_order",
]

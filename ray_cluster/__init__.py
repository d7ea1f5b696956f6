"""The swarm on Ray: agents wrapped as actors at the edge, driven through the blackboard.

Nothing here is imported by ``agents/`` or ``clnrm/``; Ray itself is imported
only when a swarm starts (``pip install 'clnrm[swarm]'``).

    run_swarm(files, SwarmOptions(...)) -> SwarmReport     ray_cluster.launch
    Swarm(board, handles).run(files)                       ray_cluster.swarm (no Ray needed)
    start_agents(memory, run_id, settings)                 ray_cluster.actors
    ray_session(address)                                   ray_cluster.session
    swarm_app                                              ray_cluster.cli (``clnrm swarm``)

``cluster.yaml`` (``ray up``) and ``kuberay-raycluster.yaml`` (KubeRay) run the
same swarm on a real cluster; see docs/swarm.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ray_cluster.launch import SwarmOptions, run_swarm
    from ray_cluster.orchestration import RunnerOrchestrator, RunSettings
    from ray_cluster.session import RaySession, SwarmUnavailable, ray_session
    from ray_cluster.swarm import AgentHandle, Decision, LocalHandle, Swarm, SwarmReport

# Lazy, so that mounting ``ray_cluster.cli`` keeps ``clnrm --help`` at typer's cost.
_HOMES = {
    "AgentHandle": "swarm", "Decision": "swarm", "LocalHandle": "swarm", "Swarm": "swarm",
    "SwarmReport": "swarm", "RaySession": "session", "SwarmUnavailable": "session",
    "ray_session": "session", "RunSettings": "orchestration",
    "RunnerOrchestrator": "orchestration", "SwarmOptions": "launch", "run_swarm": "launch",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'ray_cluster' has no attribute {name!r}")
    return getattr(importlib.import_module(f"ray_cluster.{_HOMES[name]}"), name)


__all__ = [
    "AgentHandle",
    "Decision",
    "LocalHandle",
    "RaySession",
    "RunSettings",
    "RunnerOrchestrator",
    "Swarm",
    "SwarmOptions",
    "SwarmReport",
    "SwarmUnavailable",
    "ray_session",
    "run_swarm",
]

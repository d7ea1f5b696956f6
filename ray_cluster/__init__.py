"""The swarm on Ray: agents wrapped as actors at the edge, driven through the blackboard.

Only what is Ray lives here; the agents, the negotiation driver and the run
settings are plain code in ``agents/`` (``agents.negotiation.Swarm`` runs the
same rounds over threads in unit tests).  Nothing here is imported by
``agents/`` or ``clnrm/``; Ray itself is imported only when a swarm starts
(``pip install 'clnrm[swarm]'``).

    run_swarm(files, SwarmOptions(...)) -> SwarmReport     ray_cluster.launch
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
    from ray_cluster.actors import start_agents
    from ray_cluster.launch import SwarmOptions, run_swarm
    from ray_cluster.session import RaySession, SwarmUnavailable, ray_session

# Lazy, so that mounting ``ray_cluster.cli`` keeps ``clnrm --help`` at typer's cost.
_HOMES = {
    "RaySession": "session", "SwarmUnavailable": "session", "ray_session": "session",
    "SwarmOptions": "launch", "run_swarm": "launch", "start_agents": "actors",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'ray_cluster' has no attribute {name!r}")
    return getattr(importlib.import_module(f"ray_cluster.{_HOMES[name]}"), name)


__all__ = [
    "RaySession",
    "SwarmOptions",
    "SwarmUnavailable",
    "ray_session",
    "run_swarm",
    "start_agents",
]

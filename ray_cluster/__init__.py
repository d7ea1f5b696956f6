"""The swarm on Ray: agents wrapped as actors at the edge, driven through the blackboard.

Only what is Ray lives here; the agents, the negotiation driver and the run
settings are plain code in ``agents/`` (``clnrm.agents.negotiation.Swarm`` runs the
same rounds over threads in unit tests).  Nothing here is imported by
``agents/`` or ``clnrm/``; Ray itself is imported only when a swarm starts
(``pip install 'clnrm[swarm]'``).

    run_swarm(files, SwarmOptions(...)) -> SwarmReport     clnrm.swarm.launch
    start_agents(memory, run_id, settings)                 clnrm.swarm.actors
    ray_session(address)                                   clnrm.swarm.session
    swarm_app                                              clnrm.swarm.cli (``clnrm swarm``)

``cluster.yaml`` (``ray up``) and ``kuberay-raycluster.yaml`` (KubeRay) run the
same swarm on a real cluster; see docs/swarm.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clnrm.swarm.actors import start_agents
    from clnrm.swarm.launch import SwarmOptions, run_swarm
    from clnrm.swarm.session import RaySession, SwarmUnavailable, ray_session

# Lazy, so that mounting ``clnrm.swarm.cli`` keeps ``clnrm --help`` at typer's cost.
_HOMES = {
    "RaySession": "session", "SwarmUnavailable": "session", "ray_session": "session",
    "SwarmOptions": "launch", "run_swarm": "launch", "start_agents": "actors",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)


__all__ = [
    "RaySession",
    "SwarmOptions",
    "SwarmUnavailable",
    "ray_session",
    "run_swarm",
    "start_agents",
]

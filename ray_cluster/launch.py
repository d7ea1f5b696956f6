"""One swarm run end to end: memory, Ray, one actor per agent, the driver, and cleanup.

The order of the ``with`` blocks is the cleanup order: actors are killed
first (so no agent starts another container), then Ray stops, then leftovers
of the agents' runs are reaped — their owner processes are dead by then, which
is exactly what ``clnrm gc`` keys on.  Memory closes last, after the driver's
final records.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import structlog
from clnrm.agents.base import RunSettings
from clnrm.agents.blackboard import Blackboard
from clnrm.agents.negotiation import Swarm, SwarmEvent, SwarmReport, new_swarm_run_id
from clnrm.memory import open_memory
from clnrm.memory._open import resolve_location
from clnrm.swarm.session import RaySession, SwarmUnavailable, ray_session
from pydantic import BaseModel, Field

from clnrm.procs import descendants, pid_alive

log = structlog.get_logger("clnrm.swarm")

REAP_WAIT_S = 10.0
STARTUP_TIMEOUT_S = 180.0


class SwarmOptions(BaseModel):
    """``clnrm swarm run`` options, as data (also what tests pass)."""

    address: str | None = None  # ray://HOST:10001 or HOST:6379; None: $RAY_ADDRESS or embedded
    memory: str | None = None  # directory or http://HOST:PORT; None: $CLNRM_MEMORY or default
    settings: RunSettings = Field(default_factory=RunSettings)
    run_id: str | None = None
    num_cpus: int = 2
    max_restarts: int = 3
    max_task_retries: int = 3


def memory_location(memory: str | None) -> str:
    """The location every actor opens: absolute, so a worker's cwd does not matter."""
    return str(resolve_location(memory))


def run_swarm(files: Sequence[tuple[str, str]], options: SwarmOptions, *,
              on_event: SwarmEvent | None = None,
              on_started: Callable[[str, RaySession, list[Any]], None] | None = None,
              ) -> SwarmReport:
    """Run ``(path, TOML text)`` files through the agents; the report says what happened.

    ``on_started(run_id, session, handles)`` is called once every actor is up
    (tests use it to find an actor to kill).
    """
    from clnrm.swarm.actors import start_agents

    location = memory_location(options.memory)
    options = with_absolute_artifacts(options)
    run_id = options.run_id or new_swarm_run_id()
    children: set[int] = set()
    embedded = False
    with open_memory(location) as store:
        board = Blackboard(store)
        try:
            with ray_session(options.address, num_cpus=options.num_cpus) as session:
                embedded = session.embedded
                handles = start_agents(location, run_id, options.settings,
                                       max_restarts=options.max_restarts,
                                       max_task_retries=options.max_task_retries)
                try:
                    _infos(handles)
                    if on_started is not None:
                        on_started(run_id, session, handles)
                    swarm = Swarm(board, handles, run_id=run_id, on_event=on_event,
                                  memory=location, ray=session.address)
                    return swarm.run(files)
                finally:
                    children = descendants(os.getpid())  # every agent incarnation so far
                    _kill(handles)
        finally:
            if embedded and options.settings.backend == "docker":
                _reap_after(children)


def with_absolute_artifacts(options: SwarmOptions) -> SwarmOptions:
    """The artifacts folder every actor writes and reads: absolute, as the memory is, so
    the orchestration agent's spans are where the intelligence agent looks for them."""
    folder = options.settings.artifacts_dir
    if not folder or Path(folder).is_absolute():
        return options
    settings = options.settings.model_copy(update={"artifacts_dir": str(Path(folder).resolve())})
    return options.model_copy(update={"settings": settings})


def _infos(handles: Sequence[Any]) -> list[dict[str, Any]]:
    """Waits until every actor is constructed, so a broken agent fails the run up front."""
    import ray

    try:
        return ray.get([h.actor.info.remote() for h in handles],  # type: ignore[no-any-return]
                       timeout=STARTUP_TIMEOUT_S)
    except Exception as exc:
        raise SwarmUnavailable(f"the agent actors did not start within {STARTUP_TIMEOUT_S:.0f} "
                               f"s: {str(exc)[:600]}",
                               hint="every actor must reach the memory (workers on other hosts "
                                    "need --memory http://HOST:PORT), and agents that start "
                                    "containers need a node started with --resources "
                                    "'{\"clnrm_docker\": 100}' (ray start)") from exc


def _kill(handles: Sequence[Any]) -> None:
    import ray

    for handle in handles:
        with contextlib.suppress(Exception):  # already dead is fine: that is the goal
            ray.kill(handle.actor, no_restart=True)


def _reap_after(pids: set[int]) -> None:
    """Remove containers whose owner agent is gone (a killed actor, an interrupted run).

    Waits for the agents' processes to exit first: ``collect_dead_runs`` leaves
    the runs of live owners alone.
    """
    deadline = time.monotonic() + REAP_WAIT_S
    while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        from clnrm.backends.docker import docker_client
        from clnrm.gc import collect_dead_runs

        for leftovers in collect_dead_runs(docker_client()):
            log.info("swarm.reaped", run=leftovers.run_id, containers=len(leftovers.containers))
    except Exception as exc:  # the engine went away too: `clnrm gc` will do it later
        log.error("swarm.reap_failed", error=str(exc), hint="run `clnrm gc`")

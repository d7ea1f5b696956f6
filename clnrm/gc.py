"""Reaping what runs left behind.

A run cleans up after itself on every exit path Python sees.  SIGKILL is the
one it cannot see, so every resource carries ``clnrm.owner=host:pid:start``;
a run whose owner process is gone from this host is dead and its containers,
networks and volumes are removed by ``clnrm gc`` and at the start of the next
run.  Runs owned by another host are left alone unless ``--all`` is given.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import structlog
from pydantic import BaseModel, ConfigDict, Field

from clnrm.labels import LABEL_OWNER, LABEL_RUN, owner_alive

if TYPE_CHECKING:
    from docker import DockerClient

log = structlog.get_logger("clnrm.gc")


class RunLeftovers(BaseModel):
    """Resources of one run id found in the engine (and chaos faults it left applied)."""

    # built on first use: every ``clnrm run`` imports this module for its dead-run sweep,
    # which nearly always finds nothing, so the schema would be built for nothing
    model_config = ConfigDict(defer_build=True)

    run_id: str
    owner: str
    alive: bool
    containers: list[str] = Field(default_factory=list)
    networks: list[str] = Field(default_factory=list)
    volumes: list[str] = Field(default_factory=list)
    undone: list[str] = Field(default_factory=list)  # chaos faults undone from the journal


def find_leftovers(client: DockerClient) -> list[RunLeftovers]:
    api = client.api
    flt = {"label": LABEL_RUN}
    runs: dict[str, RunLeftovers] = {}
    by_run: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    owners: dict[str, str] = {}
    for c in api.containers(all=True, filters=flt):
        labels = c.get("Labels") or {}
        by_run[labels[LABEL_RUN]]["containers"].append(c["Id"])
        owners.setdefault(labels[LABEL_RUN], labels.get(LABEL_OWNER, ""))
    for n in api.networks(filters=flt):
        labels = n.get("Labels") or {}
        by_run[labels[LABEL_RUN]]["networks"].append(n["Id"])
        owners.setdefault(labels[LABEL_RUN], labels.get(LABEL_OWNER, ""))
    for v in (api.volumes(filters=flt) or {}).get("Volumes") or []:
        labels = v.get("Labels") or {}
        by_run[labels[LABEL_RUN]]["volumes"].append(v["Name"])
        owners.setdefault(labels[LABEL_RUN], labels.get(LABEL_OWNER, ""))
    for run_id, res in by_run.items():
        owner = owners.get(run_id, "")
        runs[run_id] = RunLeftovers(run_id=run_id, owner=owner, alive=owner_alive(owner),
                                    containers=res["containers"], networks=res["networks"],
                                    volumes=res["volumes"])
    return sorted(runs.values(), key=lambda r: r.run_id)


def remove_leftovers(client: DockerClient, leftovers: RunLeftovers) -> None:
    """Containers first (they hold the network), then networks, then volumes."""
    from clnrm.backends.docker import remove_containers

    api = client.api
    remove_containers(client, leftovers.containers)
    for net in leftovers.networks:
        try:
            api.remove_network(net)
        except Exception as exc:
            log.warning("gc.network_failed", network=net[:12], error=str(exc))
    for vol in leftovers.volumes:
        try:
            api.remove_volume(vol, force=True)
        except Exception as exc:
            log.warning("gc.volume_failed", volume=vol, error=str(exc))


def remove_run(client: DockerClient, run_id: str) -> None:
    """Remove everything labelled with ``run_id`` (the interrupt path)."""
    for leftovers in find_leftovers(client):
        if leftovers.run_id == run_id:
            remove_leftovers(client, leftovers)


def collect_dead_runs(client: DockerClient, *, everything: bool = False,
                      dry_run: bool = False) -> list[RunLeftovers]:
    """Remove dead runs' resources (all clnrm runs with ``everything``); return what was found.

    Chaos faults a dead run left applied are undone first, from its journal (a paused
    container unpaused, limits restored, orphaned proxy processes killed): some of that
    outlives the containers, and the report should say what state things were in.
    """
    found = [r for r in find_leftovers(client) if everything or not r.alive]
    if dry_run:
        return found
    from clnrm.chaos.journal import journal_dir, replay_dead_journals

    # the fault catalog replay loads is imported only when a journal is there to replay
    journals = journal_dir()
    undone = (replay_dead_journals(client.api, everything=everything, directory=journals)
              if journals.is_dir() and any(journals.glob("*.jsonl")) else [])
    by_run = {r.run_id: r for r in found}
    for line in undone:
        run_id = line.split(":", 1)[0].removeprefix("run ").strip()
        if run_id not in by_run:  # containers already gone, only the journal was left
            by_run[run_id] = RunLeftovers(run_id=run_id, owner="", alive=False)
            found.append(by_run[run_id])
        by_run[run_id].undone.append(line.split(": ", 1)[1] if ": " in line else line)
    for leftovers in found:
        log.info("gc.remove", run=leftovers.run_id, containers=len(leftovers.containers),
                 networks=len(leftovers.networks), undone=len(leftovers.undone))
        remove_leftovers(client, leftovers)
    return found


class DeadRunSweep:
    """Dead runs' leftovers collected on a thread beside a run's tests, which never touch
    them (other owners).  The Runner starts one before its preflight and joins it at the
    end, so a backend only runs tests and housekeeping stays here."""

    def __init__(self, client: DockerClient | None) -> None:
        self._thread: threading.Thread | None = None
        if client is not None:
            self._thread = threading.Thread(target=self._collect, args=(client,),
                                            name="clnrm-gc", daemon=True)
            self._thread.start()

    @classmethod
    def for_backend(cls, backend: Any) -> DeadRunSweep:
        """A sweep of the engine ``backend`` talks to; nothing for a backend without one
        (``local``: its processes die with the run)."""
        return cls(getattr(backend, "client", None))

    @staticmethod
    def _collect(client: DockerClient) -> None:
        try:
            collect_dead_runs(client)
        except Exception as exc:  # housekeeping: `clnrm gc` reports the same in detail
            text = str(exc).strip().splitlines()
            log.warning("gc.failed", error=text[0] if text else type(exc).__name__)

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None

"""A local multi-node Ray cluster on one machine: a head and Docker-capable workers.

``clnrm swarm cluster up|status|down`` (``ray_cluster/cli.py``) drives it; tests use
:func:`local_cluster` as a context manager.  Each node is one ``ray start --block``
process in a process group of its own, with its own temp dir, ports and resources,
so a node is a real Ray node (its own raylet, object store and workers) that can die
alone, as a machine of a real cluster does.  Nothing here calls ``ray stop``: that
kills every Ray process of the user, the embedded Rays of other ``clnrm`` commands
included.  ``down`` signals the nodes' process groups and then sweeps any process
whose command line names the cluster's folder, so no Ray process outlives it.

The state file (``cluster.json`` in the cluster folder) says where the cluster is;
``status`` and ``down`` need nothing else.  The head has no CPUs and no engine
resource (it schedules, and hosts the agents that start no containers); each worker
declares :data:`~clnrm.swarm.session.ENGINE_RESOURCE`, so the agents that start
containers land on workers, and move to a surviving worker when one dies.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import structlog
from clnrm.swarm.session import ENGINE_RESOURCE, ENGINE_SLOTS
from pydantic import BaseModel, Field, ValidationError

from clnrm.errors import ClnrmError
from clnrm.procs import group_alive, pid_alive, proc_table, with_environ

log = structlog.get_logger("clnrm.swarm.cluster")

STATE_FILE: Final = "cluster.json"
DIR_ENV: Final = "CLNRM_CLUSTER_DIR"
AUTH_MODE_ENV: Final = "RAY_AUTH_MODE"
NODE_ENV: Final = "CLNRM_CLUSTER_NODE"
"""Set to the node's temp dir in its environment: every process of the node inherits it,
so ``down`` finds workers that left the node's process group."""
DEFAULT_DIR: Final = Path("~/.clnrm/cluster")
SOCKET_PATH_MAX: Final = 107  # sun_path; Ray's sockets live under each node's temp dir
SESSION_SUFFIX: Final = len("/session_2026-01-01_00-00-00_000000_1234567/sockets/plasma_store")
READY_TIMEOUT_S: Final = 120.0
STOP_GRACE_S: Final = 2.0
"""SIGTERM to SIGKILL: a raylet drains for ~10 s on SIGTERM, which a throwaway local
cluster does not need (measured: nothing of a node had exited after 9 s)."""
KILL_WAIT_S: Final = 10.0
FAST_HEALTH_CHECKS: Final = {
    # A dead node is noticed in about 3 s instead of Ray's ~30 s default, so its actors
    # restart on a surviving node while the run is still going (one machine: no network
    # hiccups to be patient with).
    "RAY_health_check_initial_delay_ms": "1000",
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}


class ClusterError(ClnrmError):
    """The local cluster cannot be started, found or stopped as asked."""


class ClusterNode(BaseModel):
    """One Ray node: its ``ray start --block`` process leads the node's process group."""

    name: str  # head, w1, w2...
    pid: int
    temp_dir: str
    num_cpus: int
    resources: dict[str, float] = Field(default_factory=dict)
    log: str


class ClusterState(BaseModel):
    """``cluster.json``: what ``status`` and ``down`` need to find the cluster."""

    schema_version: int = 1
    root: str
    address: str  # the GCS, HOST:PORT: `clnrm swarm run --address` on this machine
    client_address: str  # ray://HOST:PORT, the Ray Client server on the head
    started_at: datetime
    nodes: list[ClusterNode]


class NodeStatus(BaseModel):
    name: str
    pid: int
    alive: bool
    processes: int  # processes of the node still running (its process group)
    resources: dict[str, float]


class ClusterStatus(BaseModel):
    """What ``clnrm swarm cluster status --format json`` prints."""

    root: str
    up: bool  # every node's process is running
    address: str | None = None
    client_address: str | None = None
    nodes: list[NodeStatus] = Field(default_factory=list)


def cluster_dir(root: Path | str | None = None) -> Path:
    """``root``, else ``$CLNRM_CLUSTER_DIR``, else ``~/.clnrm/cluster``; absolute."""
    chosen = root or os.environ.get(DIR_ENV) or DEFAULT_DIR
    return Path(chosen).expanduser().resolve()


def read_state(root: Path) -> ClusterState | None:
    path = root / STATE_FILE
    try:
        return ClusterState.model_validate_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValidationError, ValueError) as exc:
        raise ClusterError(f"{path}: not a cluster state file: {str(exc)[:300]}",
                           hint="remove it if no cluster runs there") from exc


def _ray_executable() -> str:
    beside = Path(sys.executable).with_name("ray")
    if beside.exists():
        return str(beside)
    found = shutil.which("ray")
    if found is None:
        raise ClusterError("the `ray` command is not installed", hint="pip install 'clnrm[swarm]'")
    return found


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports: all sockets are held until the last is bound, so the
    kernel cannot hand the same port out twice (Ray refuses a port given to two parts)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def _node_command(ray: str, temp_dir: Path, *, head: bool, gcs_port: int, client_port: int,
                  num_cpus: int, resources: dict[str, float]) -> list[str]:
    # Every port a node opens is its own: two nodes on one host must not collide, and
    # the embedded Rays of other clnrm commands on this machine use Ray's defaults.
    flags = ["--node-manager-port", "--object-manager-port", "--metrics-export-port",
             "--runtime-env-agent-port", "--dashboard-agent-listen-port",
             "--dashboard-agent-grpc-port"]
    taken = {gcs_port, client_port}
    ports = dict(zip(flags, [p for p in free_ports(len(flags) + 2) if p not in taken],
                     strict=False))
    cmd = [ray, "start", "--block", "--disable-usage-stats", "--node-ip-address", "127.0.0.1",
           "--temp-dir", str(temp_dir), "--num-cpus", str(num_cpus),
           "--object-store-memory", str(128 * 1024 * 1024)]
    if head:
        cmd += ["--head", "--port", str(gcs_port), "--ray-client-server-port", str(client_port),
                "--include-dashboard", "false"]
    else:
        cmd += ["--address", f"127.0.0.1:{gcs_port}"]
    if resources:
        cmd += ["--resources", json.dumps(resources)]
    for flag, port in ports.items():
        cmd += [flag, str(port)]
    return cmd


def _check_root(root: Path) -> None:
    longest = len(str(root / "w99")) + SESSION_SUFFIX
    if longest > SOCKET_PATH_MAX:
        raise ClusterError(
            f"cluster folder {root} is too long for Ray's unix sockets "
            f"({longest} > {SOCKET_PATH_MAX} characters below it)",
            hint="pass a shorter --dir, e.g. /tmp/clnrm-cluster")


def cluster_up(root: Path | str | None = None, *, workers: int = 2, port: int | None = None,
               client_port: int | None = None, worker_cpus: int = 1,
               timeout: float = READY_TIMEOUT_S) -> ClusterState:
    """Start a head and ``workers`` worker nodes; returns once every node has joined.

    Refuses when a cluster of this folder is already up; a stale state file (its
    nodes are gone) is swept and replaced.  On any failure the nodes started so far
    are stopped: nothing is left running.
    """
    root = cluster_dir(root)
    if workers < 1:
        raise ClusterError(f"--workers must be at least 1, not {workers}")
    _check_root(root)
    old = read_state(root)
    if old is not None:
        if any(pid_alive(n.pid) for n in old.nodes):
            raise ClusterError(f"a cluster is already up in {root} (address {old.address})",
                               hint="`clnrm swarm cluster down` first, or pass another --dir")
        cluster_down(root)
    root.mkdir(parents=True, exist_ok=True)
    ray = _ray_executable()
    spare = free_ports(2)
    gcs_port = port or spare[0]
    client = client_port or spare[1]
    state = ClusterState(root=str(root), address=f"127.0.0.1:{gcs_port}",
                         client_address=f"ray://127.0.0.1:{client}",
                         started_at=datetime.now(UTC), nodes=[])
    use_token_auth()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **FAST_HEALTH_CHECKS}
    env.pop("RAY_ADDRESS", None)  # a worker joins this head, never one the shell names
    specs: list[tuple[str, int, dict[str, float]]] = [("head", 0, {})]
    specs += [(f"w{i}", worker_cpus, {ENGINE_RESOURCE: float(ENGINE_SLOTS)})
              for i in range(1, workers + 1)]
    try:
        # One node at a time: Ray gives a raylet 30 s (fixed) to register, which several
        # starting together on two loaded cores can miss.  A worker that misses it once
        # gets a second start; the head does not (nothing could join a slow GCS either).
        for name, cpus, resources in specs:
            for attempt in (1, 2):
                node = _start_node(ray, root, name, head=name == "head", gcs_port=gcs_port,
                                   client_port=client, num_cpus=cpus, resources=resources,
                                   env=env)
                state.nodes.append(node)
                _write_state(root, state)  # `down` finds every node started so far
                try:
                    _wait_joined(state, len(state.nodes), timeout)
                    break
                except ClusterError:
                    if name == "head" or attempt == 2 or pid_alive(node.pid):
                        raise
                    _stop_groups([node.pid])  # what the failed start left in its group
                    state.nodes.remove(node)
                    log.warning("cluster.node_retry", node=name, log=node.log)
    except BaseException:
        cluster_down(root)
        raise
    log.info("cluster.up", address=state.address, nodes=[n.name for n in state.nodes])
    return state


def _start_node(ray: str, root: Path, name: str, *, head: bool, gcs_port: int,
                client_port: int, num_cpus: int, resources: dict[str, float],
                env: dict[str, str]) -> ClusterNode:
    temp_dir = root / name
    temp_dir.mkdir(parents=True, exist_ok=True)
    log_path = root / f"{name}.log"
    cmd = _node_command(ray, temp_dir, head=head, gcs_port=gcs_port, client_port=client_port,
                        num_cpus=num_cpus, resources=resources)
    with log_path.open("ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                env={**env, NODE_ENV: str(temp_dir)},
                                stdin=subprocess.DEVNULL, start_new_session=True)
    return ClusterNode(name=name, pid=proc.pid, temp_dir=str(temp_dir), num_cpus=num_cpus,
                       resources=resources, log=str(log_path))


def _wait_joined(state: ClusterState, count: int, timeout: float) -> None:
    """Until ``count`` nodes are alive in the GCS; a node process that exits is an error."""
    deadline = time.monotonic() + timeout
    seen = 0
    while time.monotonic() < deadline:
        for node in state.nodes:
            if not pid_alive(node.pid):
                raise ClusterError(f"Ray node {node.name} exited while starting:\n"
                                   f"{_tail(Path(node.log))}", hint=f"see {node.log}")
        seen = len(alive_nodes(state.address))
        if seen >= count:
            return
        time.sleep(0.5)
    raise ClusterError(f"only {seen} of {count} Ray nodes joined within {timeout:.0f} s",
                       hint=f"see the node logs in {state.root}")


def use_token_auth() -> None:
    """Token authentication on, for this process and the nodes it starts.

    Ray turns it on by itself only for a head when a token exists, never for a node or
    a driver given an explicit address, which then fail with "Authentication token is
    missing".  So the mode is set explicitly (``RAY_AUTH_MODE=token``, what drivers
    need too) and Ray's own token (``~/.ray/auth_token``) is generated if missing.
    ``RAY_AUTH_MODE=disabled`` in the environment is respected.
    """
    if os.environ.get(AUTH_MODE_ENV, "").lower() == "disabled":
        return
    os.environ[AUTH_MODE_ENV] = "token"
    from ray._private.authentication import authentication_token_setup as auth
    from ray._raylet import (  # type: ignore[attr-defined]  # Cython: no stubs
        AuthenticationTokenLoader,
        Config,
    )

    Config.initialize("")  # this process reads the mode again (Ray does the same)
    loader = AuthenticationTokenLoader.instance()
    if not loader.has_token(ignore_auth_mode=True):
        auth.generate_and_save_token()
        loader.reset_cache()


def alive_nodes(address: str) -> list[dict[str, float]]:
    """The total resources of every node the GCS at ``address`` holds alive ([] if none)."""
    host, _, port = address.rpartition(":")
    try:  # Ray's client logs a warning a second while nothing listens: ask only once it does
        socket.create_connection((host, int(port)), timeout=1).close()
    except (OSError, ValueError):
        return []
    try:
        use_token_auth()
        # private, but what `ray status` itself reads (Cython: no stubs)
        from ray._raylet import GcsClient  # type: ignore[attr-defined]
        from ray.core.generated import gcs_pb2

        infos = GcsClient(address=address).get_all_node_info(timeout=2)
    except Exception:  # not up yet, or gone: no nodes
        return []
    alive = gcs_pb2.GcsNodeInfo.GcsNodeState.ALIVE  # type: ignore[attr-defined]
    return [dict(info.resources_total) for info in infos.values() if info.state == alive]


def _write_state(root: Path, state: ClusterState) -> None:
    tmp = root / f".{STATE_FILE}.tmp"
    tmp.write_text(state.model_dump_json(indent=2), encoding="utf-8")
    os.replace(tmp, root / STATE_FILE)


def cluster_status(root: Path | str | None = None) -> ClusterStatus:
    root = cluster_dir(root)
    state = read_state(root)
    if state is None:
        return ClusterStatus(root=str(root), up=False)
    nodes = [NodeStatus(name=n.name, pid=n.pid, alive=pid_alive(n.pid),
                        processes=len(node_processes(n)), resources=n.resources)
             for n in state.nodes]
    return ClusterStatus(root=str(root), up=all(n.alive for n in nodes), address=state.address,
                         client_address=state.client_address, nodes=nodes)


def cluster_down(root: Path | str | None = None) -> int:
    """Stop every node, then every process left of one; idempotent.

    Every node's process group gets SIGTERM at once, SIGKILL after
    :data:`STOP_GRACE_S`; then the node's processes outside its group (workers,
    found by :data:`NODE_ENV` or their temp dir) get SIGKILL.  Returns how many node
    groups and stray processes were still running.
    """
    root = cluster_dir(root)
    state = read_state(root)
    nodes = state.nodes if state else []
    hit = _stop_groups([n.pid for n in nodes])
    folders = [Path(n.temp_dir) for n in nodes] or _subdirs(root)
    strays = {pid for folder in folders for pid in _processes_naming(folder)}
    strays |= {pid for n in nodes for pid in node_processes(n)}
    for pid in strays:  # a process that left its node's group
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    hit += len(strays)
    with contextlib.suppress(FileNotFoundError):
        (root / STATE_FILE).unlink()
    log.info("cluster.down", root=str(root), signalled=hit)
    return hit


def _subdirs(root: Path) -> list[Path]:
    try:
        return [d for d in root.iterdir() if d.is_dir()]
    except OSError:
        return []


def kill_raylet(node: ClusterNode) -> int:
    """SIGKILL the node's raylet, as a crashed machine would lose it; returns its pid."""
    for pid, name in node_processes(node).items():
        if name == "raylet":
            os.kill(pid, signal.SIGKILL)
            return pid
    raise ClusterError(f"node {node.name} has no raylet running")


def node_processes(node: ClusterNode) -> dict[int, str]:
    """``{pid: command name}`` of every process of the node still running.

    The node's process group holds its ``ray start``, raylet and system processes;
    the workers a raylet starts (agent actors) leave that group, so they are found by
    :data:`NODE_ENV`, which every process of the node inherits.
    """
    table = proc_table()
    found = {pid: p.comm for pid, p in table.items() if p.pgid == node.pid}
    for pid in with_environ(f"{NODE_ENV}={node.temp_dir}", table):
        found.setdefault(pid, table[pid].comm)
    return found


def cluster_processes(state: ClusterState) -> dict[int, str]:
    """``{pid: command name}`` of every process of every node still running (tests assert
    it is empty after ``down``)."""
    found: dict[int, str] = {}
    for node in state.nodes:
        found.update(node_processes(node))
    return found


def _stop_groups(pgids: list[int]) -> int:
    live = [g for g in pgids if group_alive(g)]
    for sig, wait in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, KILL_WAIT_S)):
        for pgid in live:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, sig)
        deadline = time.monotonic() + wait
        while any(group_alive(g) for g in live) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not any(group_alive(g) for g in live):
            break
    return len(live)


def _processes_naming(folder: Path) -> list[int]:
    """Live processes with ``folder/`` in their command line (never this process).

    Ray's processes name their node's session dir below it; the node's log file
    beside it (``w1.log``) does not match, so a ``tail -f`` of it is left alone.
    """
    needle = f"{folder}/".encode()
    live = proc_table()
    found = []
    for pid in live:
        if pid == os.getpid():
            continue
        try:
            if needle in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            continue
    return found


def _tail(path: Path, size: int = 1500) -> str:
    try:
        return path.read_text(errors="replace")[-size:]
    except OSError:
        return ""


@contextlib.contextmanager
def local_cluster(root: Path | str, **options: int) -> Iterator[ClusterState]:
    """:func:`cluster_up` for a block, :func:`cluster_down` after it, whatever happens."""
    state = cluster_up(root, **options)
    try:
        yield state
    finally:
        cluster_down(root)

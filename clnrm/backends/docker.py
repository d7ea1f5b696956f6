"""The default backend: each test in its own internal Docker network.

Talks to the engine through the docker SDK's low-level API (one HTTP call per
operation, no CLI processes), which is what keeps clnrm's overhead close to a
hand-written ``docker`` script.  Every container and network carries
``clnrm.run=<run id>`` plus an owner label (host, pid, process start time) so
``clnrm gc`` can tell a live run from the leftovers of a killed one.

Isolation guarantees: networks are ``internal`` (no route out), containers are
never privileged, never on the host network, and never get the Docker socket.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import structlog

from clnrm.backends.base import Backend, Sandbox
from clnrm.errors import BackendError, ReadinessError
from clnrm.plugins.base import ServiceSpec
from clnrm.results import ExecResult

if TYPE_CHECKING:
    from docker import DockerClient

log = structlog.get_logger("clnrm.docker")

LABEL_RUN = "clnrm.run"
LABEL_OWNER = "clnrm.owner"
LABEL_TEST = "clnrm.test"
LABEL_SERVICE = "clnrm.service"
# Default commands that exit at once without a terminal (shells and REPLs): a service
# whose image has one of these and no command of its own is kept alive with a sleeper.
_SHELLS = {"sh", "/bin/sh", "bash", "/bin/bash", "ash", "/bin/ash", "python3", "python",
           "/usr/bin/python3", "node", "irb"}
_RUNNING_GRACE_S = 0.05
"""A 'running' service is checked twice, this far apart, so a command that dies at once
is reported as a readiness error with its logs instead of as a failed first step."""
_KEEP_ALIVE = ["sleep", "infinity"]
_MAX_OUTPUT = 1 << 20  # keep at most 1 MiB of each stream per step
_STEP_CONTAINER = "__steps__"


def docker_client() -> DockerClient:
    """A connected client, or a BackendError that says how to get an engine."""
    try:
        import docker
        from docker.errors import DockerException
    except ImportError as exc:  # pragma: no cover - docker is a core dependency
        raise BackendError("the docker SDK is not installed", backend="docker",
                           hint="pip install clnrm (it depends on docker>=7)") from exc
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except DockerException as exc:
        raise BackendError(
            "cannot reach the Docker engine "
            f"({os.environ.get('DOCKER_HOST', 'unix:///var/run/docker.sock')}): "
            f"{_short(exc)}",
            backend="docker",
            hint="start one with `bash .ci/ensure-docker.sh` (installs docker.io if needed), "
                 "or run without containers using --backend local") from exc
    return client


def owner_label() -> str:
    """``host:pid:starttime`` of this process; start time guards against pid reuse."""
    return f"{socket.gethostname()}:{os.getpid()}:{process_start_time(os.getpid())}"


def process_start_time(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            # field 22 (starttime) comes after the parenthesised command name
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "0"


def _short(exc: BaseException) -> str:
    text = getattr(exc, "explanation", None) or str(exc)
    return str(text).strip().splitlines()[0] if str(text).strip() else type(exc).__name__


def _name_part(text: str) -> str:
    keep = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in text.lower())
    return keep.strip("-.")[:40] or "x"


class DockerSandbox(Sandbox):
    """One test: an internal network plus the containers started on it."""

    def __init__(self, client: DockerClient, run_id: str, test_slug: str, *,
                 default_image: str, env: dict[str, str], owner: str) -> None:
        self._api = client.api
        self._client = client
        self._run_id = run_id
        # the random part lets two tests of one name (or one file twice) run side by side
        self._prefix = f"clnrm-{run_id}-{_name_part(test_slug)[:30]}-{secrets.token_hex(3)}"
        self._default_image = default_image
        self._env = env
        self._labels = {LABEL_RUN: run_id, LABEL_OWNER: owner, LABEL_TEST: test_slug}
        self._containers: dict[str, str] = {}  # service -> container id
        self._lock = threading.Lock()
        self._closed = False
        try:
            net = self._api.create_network(self._prefix, driver="bridge", internal=True,
                                           labels=self._labels, check_duplicate=True)
        except Exception as exc:
            raise BackendError(f"could not create network {self._prefix}: {_short(exc)}",
                               backend="docker") from exc
        self.network_id: str = net["Id"]
        self.network_name = self._prefix
        ipam = self._api.inspect_network(self.network_id)["IPAM"]["Config"] or [{}]
        self.otlp_host = ipam[0].get("Gateway") or "127.0.0.1"
        log.debug("network.created", network=self._prefix)

    def extend_env(self, env: dict[str, str]) -> None:
        self._env = {**self._env, **env}

    # -- services ------------------------------------------------------------

    def start_service(self, spec: ServiceSpec, *, timeout: float) -> None:
        assert spec.image is not None
        command = spec.command
        entrypoint = spec.entrypoint
        if spec.kind == "process" and command is not None:
            entrypoint = []  # a local_process command is run as given, not via the image entrypoint
        elif spec.keep_alive and self._runs_only_a_shell(spec.image):
            command = _KEEP_ALIVE
        cid = self._create(spec.name, spec.image, command=command, entrypoint=entrypoint,
                           env={**self._env, "OTEL_SERVICE_NAME": spec.name, **spec.env},
                           workdir=spec.workdir,
                           volumes=spec.volumes)
        started = time.monotonic()
        self._api.start(cid)
        self._wait_ready(spec, cid, deadline=started + timeout)
        log.debug("service.ready", service=spec.name, seconds=round(time.monotonic() - started, 3))

    def _runs_only_a_shell(self, image: str) -> bool:
        config = self._api.inspect_image(image).get("Config") or {}
        cmd = config.get("Cmd") or []
        return not config.get("Entrypoint") and (not cmd or cmd[0] in _SHELLS)

    def _create(self, service: str, image: str, *, command: list[str] | None,
                entrypoint: list[str] | None, env: dict[str, str], workdir: str | None,
                volumes: tuple[tuple[str, str, bool], ...] = ()) -> str:
        binds = {host: {"bind": ctr, "mode": "ro" if ro else "rw"} for host, ctr, ro in volumes}
        host_config = self._api.create_host_config(
            network_mode=self.network_name, init=True, binds=binds or None,
            privileged=False, auto_remove=False)
        net_config = self._api.create_networking_config(
            {self.network_name: self._api.create_endpoint_config(aliases=[service])})
        name = f"{self._prefix}-{_name_part(service)}"
        try:
            created = self._api.create_container(
                image, command=command, entrypoint=entrypoint, name=name,
                hostname=_name_part(service)[:63], environment=env, working_dir=workdir,
                labels={**self._labels, LABEL_SERVICE: service}, host_config=host_config,
                networking_config=net_config, detach=True)
        except Exception as exc:
            from clnrm.images import ensure_image  # lazy: images pulls in build helpers

            ensure_image(self._client, image)  # raises the clear "build it with ..." error
            raise BackendError(f"could not create container for {service!r}: {_short(exc)}",
                               backend="docker") from exc
        with self._lock:
            self._containers[service] = created["Id"]
        return str(created["Id"])

    def _wait_ready(self, spec: ServiceSpec, cid: str, *, deadline: float) -> None:
        hc = spec.health_check
        attempts = 0
        pause = 0.02
        while True:
            state = self._api.inspect_container(cid)["State"]
            if not state.get("Running"):
                raise ReadinessError(
                    f"service {spec.name!r} exited with code {state.get('ExitCode')} "
                    "before it was ready", service=spec.name, logs=self.logs(spec.name),
                    hint="its command must keep running; check the command and the logs above")
            if spec.readiness == "running":
                if attempts:
                    return
                attempts, pause = 1, _RUNNING_GRACE_S
                time.sleep(pause)
                continue
            if spec.readiness == "tcp" and self._tcp_open(cid, spec.ports[0]):
                return
            if spec.readiness == "health_check" and hc is not None:
                attempts += 1
                res = self._exec_in(cid, hc.cmd, env=None, workdir=None, timeout=hc.timeout)
                if res.exit_code == 0:
                    return
                if attempts >= hc.retries:
                    raise self._not_ready(spec, f"health check {hc.cmd} failed {attempts} times "
                                          f"(last exit {res.exit_code})")
                pause = hc.interval
            if time.monotonic() + pause > deadline:
                what = f"TCP port {spec.ports[0]}" if spec.readiness == "tcp" else \
                    f"health check {hc.cmd if hc else ''}"
                raise self._not_ready(spec, f"{what} not ready within the start timeout")
            time.sleep(pause)
            if spec.readiness == "tcp":
                pause = min(pause * 1.5, 0.25)

    def _not_ready(self, spec: ServiceSpec, what: str) -> ReadinessError:
        return ReadinessError(f"service {spec.name!r}: {what}", service=spec.name,
                              logs=self.logs(spec.name),
                              hint="raise the test's timeout or fix the service's readiness check")

    def _tcp_open(self, cid: str, port: int) -> bool:
        nets = self._api.inspect_container(cid)["NetworkSettings"]["Networks"]
        ip = (nets.get(self.network_name) or {}).get("IPAddress")
        if not ip:
            return False
        try:
            with socket.create_connection((ip, port), timeout=0.5):
                return True
        except OSError:
            return False

    # -- steps ---------------------------------------------------------------

    def exec(self, service: str | None, argv: list[str], *, env: dict[str, str] | None = None,
             workdir: str | None = None, timeout: float | None = None) -> ExecResult:
        cid = self._containers.get(service) if service else self._step_container()
        if cid is None:
            raise BackendError(f"service {service!r} is not running in this test",
                               backend="docker")
        return self._exec_in(cid, argv, env={**self._env, **(env or {})}, workdir=workdir,
                             timeout=timeout)

    def _step_container(self) -> str:
        with self._lock:
            cid = self._containers.get(_STEP_CONTAINER)
        if cid is None:
            cid = self._create(_STEP_CONTAINER, self._default_image, command=_KEEP_ALIVE,
                               entrypoint=None, env=self._env, workdir=None)
            self._api.start(cid)
        return cid

    def _exec_in(self, cid: str, argv: list[str], *, env: dict[str, str] | None,
                 workdir: str | None, timeout: float | None) -> ExecResult:
        started = time.monotonic()
        try:
            exec_id = self._api.exec_create(cid, argv, environment=env, workdir=workdir)["Id"]
        except Exception as exc:
            raise BackendError(f"could not exec {argv!r}: {_short(exc)}", backend="docker") from exc
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["out"] = self._api.exec_start(exec_id, demux=True)
            except Exception as exc:  # surfaced below as a failed step
                box["error"] = exc

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        worker.join(timeout)
        timed_out = worker.is_alive()
        if timed_out:
            self._kill_exec(exec_id)
            worker.join(5)
        out, err = box.get("out") or (None, None)
        info = self._api.exec_inspect(exec_id)
        code = None if timed_out else info.get("ExitCode")
        if "error" in box and not timed_out:
            raise BackendError(f"exec {argv!r} failed: {_short(box['error'])}", backend="docker")
        return ExecResult(exit_code=code, stdout=_decode(out), stderr=_decode(err),
                          duration_s=time.monotonic() - started, timed_out=timed_out)

    def _kill_exec(self, exec_id: str) -> None:
        pid = self._api.exec_inspect(exec_id).get("Pid") or 0
        try:
            if pid > 0:
                os.kill(pid, signal.SIGKILL)  # host pid of the exec'd process (local engine)
        except OSError:
            pass

    def logs(self, service: str, *, tail: int = 20) -> str:
        cid = self._containers.get(service)
        if cid is None:
            return ""
        try:
            return _decode(self._api.logs(cid, tail=tail))
        except Exception:  # logs are best effort inside an error path
            return ""

    # -- cleanup -------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._lock:
            ids = list(self._containers.values())
            self._containers.clear()
        remove_containers(self._client, ids)
        try:
            self._api.remove_network(self.network_id)
        except Exception as exc:
            log.warning("network.remove_failed", network=self.network_name, error=_short(exc))


def remove_containers(client: DockerClient, ids: list[str]) -> None:
    """Force-remove containers concurrently: disposable test containers get no grace period."""
    from docker.errors import NotFound

    def rm(cid: str) -> None:
        try:
            client.api.remove_container(cid, force=True, v=True)
        except NotFound:
            pass
        except Exception as exc:
            log.warning("container.remove_failed", container=cid[:12], error=_short(exc))

    if len(ids) <= 1:
        for cid in ids:
            rm(cid)
        return
    with ThreadPoolExecutor(max_workers=min(8, len(ids))) as pool:
        list(pool.map(rm, ids))


def _decode(data: bytes | None) -> str:
    if not data:
        return ""
    return data[:_MAX_OUTPUT].decode("utf-8", errors="replace")


class DockerBackend(Backend):
    name = "docker"

    def __init__(self, run_id: str, client: DockerClient | None = None) -> None:
        super().__init__(run_id)
        self.client = client or docker_client()
        self.owner = owner_label()

    def sandbox(self, test_slug: str, *, default_image: str, env: dict[str, str]) -> DockerSandbox:
        return DockerSandbox(self.client, self.run_id, test_slug, default_image=default_image,
                             env=env, owner=self.owner)

    def preflight(self, images: set[str]) -> None:
        from clnrm.gc import collect_dead_runs
        from clnrm.images import ensure_image

        collect_dead_runs(self.client)
        for image in sorted(images):
            ensure_image(self.client, image)

    def reap(self) -> None:
        from clnrm.gc import remove_run

        remove_run(self.client, self.run_id)

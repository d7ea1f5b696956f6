"""The default backend: each test in its own internal Docker network.

Talks to the engine through the docker SDK's low-level API (one HTTP call per
operation, no CLI processes), which is what keeps clnrm's overhead close to a
hand-written ``docker`` script.  Every container and network carries
``clnrm.run=<run id>`` plus an owner label (host, pid, process start time) so
``clnrm gc`` can tell a live run from the leftovers of a killed one.

Isolation guarantees: networks are ``internal`` (no route out), containers are
never privileged, never on the host network, and never get the Docker socket.
With a declared topology (``links``) the test network stops carrying traffic
between containers (``enable_icc=false``: they still reach the OTLP receiver
on its gateway) and each link gets a small internal network of its own, so
only linked services can reach each other at all.
"""

from __future__ import annotations

import os
import secrets
import signal
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import structlog

from clnrm.backends.base import STEPS_MEMBER, Backend, Sandbox
from clnrm.backends.docker_network import ICC_OFF, create_link_network
from clnrm.backends.docker_service import DockerService
from clnrm.errors import BackendError
from clnrm.labels import LABEL_OWNER, LABEL_RUN, LABEL_SERVICE, LABEL_TEST, owner_label
from clnrm.plugins.base import ServiceSpec
from clnrm.results import ExecResult

if TYPE_CHECKING:
    from docker import DockerClient

log = structlog.get_logger("clnrm.docker")

# Default commands that exit at once without a terminal (shells and REPLs): a service
# whose image has one of these and no command of its own is kept alive with a sleeper.
_SHELLS = {"sh", "/bin/sh", "bash", "/bin/bash", "ash", "/bin/ash", "python3", "python",
           "/usr/bin/python3", "node", "irb"}
_KEEP_ALIVE = ["sleep", "infinity"]
_MAX_OUTPUT = 1 << 20  # keep at most 1 MiB of each stream per step
_STEP_CONTAINER = STEPS_MEMBER
# Held before its command runs: the trap is set before the sleeper starts, so a running
# sleeper means USR1 will exec the real command (kept as "$@") at once.
_GATE = ('trap \'kill "$!" 2>/dev/null; exec "$@"\' USR1; '
         "sleep 2147483647 & wait; exit 125")
_GATE_SLEEPER = "sleep 2147483647"
_GATE_ARM_S = 5.0
_HOLD_WORKERS = 3
_LINKED_DNS_OPTS = ["timeout:1", "attempts:2"]
"""A name outside a service's links is unknown to the engine's DNS, which then waits for
upstream servers an internal network cannot reach: 10 s per lookup by default."""


def docker_client() -> DockerClient:
    """A connected client, or a BackendError that says how to get an engine."""
    try:
        import docker
        from docker.errors import DockerException
    except ImportError as exc:  # pragma: no cover - docker is a core dependency
        raise BackendError("the docker SDK is not installed", backend="docker",
                           hint="pip install clnrm (it depends on docker>=7)") from exc
    try:
        # the client asks the engine for its API version on creation: that call is the
        # reachability check (a ping on top would be one more round trip per run)
        client = docker.from_env(timeout=120)
    except DockerException as exc:
        raise BackendError(
            "cannot reach the Docker engine "
            f"({os.environ.get('DOCKER_HOST', 'unix:///var/run/docker.sock')}): "
            f"{_short(exc)}",
            backend="docker",
            hint="start one (Docker Desktop, or `sudo systemctl start docker` on Linux; "
                 "`clnrm doctor` checks the setup), or run without containers using "
                 "--backend local") from exc
    if client.api.base_url.startswith("http+docker://"):
        # a local socket: no proxy or .netrc can apply, and looking them up from the
        # environment on every call costs requests ~0.6 ms of CPU per engine call
        client.api.trust_env = False
    return client


def _limits(spec: ServiceSpec | None) -> dict[str, Any]:
    """Compose's ``memory``/``cpus``/``restart`` as engine host-config arguments; swap is
    capped at the memory limit, so a limit means what it says (an OOM kill, not swapping)."""
    if spec is None:
        return {}
    out: dict[str, Any] = {}
    if spec.memory is not None:
        out["mem_limit"] = spec.memory
        out["memswap_limit"] = spec.memory
    if spec.cpus is not None:
        out["nano_cpus"] = int(spec.cpus * 1e9)
    if spec.restart is not None and spec.restart != "no":
        name, _, count = spec.restart.partition(":")
        out["restart_policy"] = {"Name": name, "MaximumRetryCount": int(count or 0)}
    return out


def _short(exc: BaseException) -> str:
    text = getattr(exc, "explanation", None) or str(exc)
    return str(text).strip().splitlines()[0] if str(text).strip() else type(exc).__name__


def _name_part(text: str) -> str:
    keep = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in text.lower())
    return keep.strip("-.")[:40] or "x"


class DockerSandbox(Sandbox):
    """One test: an internal network plus the containers started on it."""

    enforces_links = True
    supports_chaos = True  # faults act on containers, cgroups and network namespaces

    def __init__(self, client: DockerClient, run_id: str, test_slug: str, *,
                 default_image: str, env: dict[str, str], owner: str,
                 links: Sequence[Sequence[str]] | None = None) -> None:
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
        self._stop_after: dict[str, set[str]] = {}
        self._held: dict[str, Future[str | None]] = {}  # service -> gated container, if any
        self._steps_box: Future[str] | None = None  # the step container, started early
        self._linked = links is not None
        self._member_nets: dict[str, list[str]] = {}  # member -> its link networks
        self._link_ids: list[str] = []
        try:
            net = self._api.create_network(self._prefix, driver="bridge", internal=True,
                                           labels=self._labels, check_duplicate=True,
                                           options=ICC_OFF if self._linked else None)
        except Exception as exc:
            raise BackendError(f"could not create network {self._prefix}: {_short(exc)}",
                               backend="docker") from exc
        self.network_id: str = net["Id"]
        self.network_name = self._prefix
        self._gateway: str | None = None
        try:
            if links:
                self._create_links(links)
        except BaseException:
            self._remove_networks()  # not entered yet: nobody else would remove them
            raise
        log.debug("network.created", network=self._prefix, links=len(self._link_ids))

    @property
    def api(self) -> Any:
        """The engine's low-level client (``docker.APIClient``), for the layers that act on
        this test's containers themselves (chaos faults)."""
        return self._api

    @property
    def otlp_host(self) -> str:  # type: ignore[override]
        """The test network's gateway (this host as the containers see it), looked up on
        first use: a test without a receiver never pays for the inspect call."""
        if self._gateway is None:
            ipam = self._api.inspect_network(self.network_id)["IPAM"]["Config"] or [{}]
            self._gateway = ipam[0].get("Gateway") or "127.0.0.1"
        return self._gateway

    def _create_links(self, links: Sequence[Sequence[str]]) -> None:
        names = [f"{self._prefix}-l{i}" for i in range(len(links))]
        with ThreadPoolExecutor(max_workers=min(8, len(links))) as pool:
            futures = [pool.submit(create_link_network, self._api, name, members, self._labels)
                       for name, members in zip(names, links, strict=True)]
            errors = []
            for fut in futures:
                try:
                    self._link_ids.append(fut.result())
                except Exception as exc:  # keep collecting ids so all get removed
                    errors.append(exc)
        if errors:
            raise errors[0]
        for name, members in zip(names, links, strict=True):
            for member in members:
                self._member_nets.setdefault(member, []).append(name)

    def extend_env(self, env: dict[str, str]) -> None:
        self._env = {**self._env, **env}

    def order_shutdown(self, stop_after: dict[str, set[str]]) -> None:
        self._stop_after = {name: set(deps) for name, deps in stop_after.items()}

    # -- services ------------------------------------------------------------

    def launch(self, spec: ServiceSpec) -> DockerService:
        held = self._held.pop(spec.name, None)
        # a hold still queued is slower than a plain start; one under way is nearly done
        cid = held.result() if held is not None and not held.cancel() else None
        if cid is not None:
            self._api.kill(cid, signal="SIGUSR1")  # the gate execs the real command
            return DockerService(self, self._api, spec.name, cid)
        command, entrypoint = self._argv(spec)
        assert spec.image is not None
        cid = self._create(spec.name, spec.image, command=command, entrypoint=entrypoint,
                           env=self._service_env(spec), workdir=spec.workdir,
                           volumes=spec.volumes, resources=spec)
        self._api.start(cid)
        return DockerService(self, self._api, spec.name, cid)

    def hold(self, specs: Sequence[ServiceSpec]) -> None:
        """Start these containers now (in this order), each held before its command, so that
        :meth:`launch` later only releases it: a container start costs the engine 0.2-0.5 s,
        a release one signal.  A service whose image cannot be held (no ``sh``) starts
        normally."""
        if not specs:
            return
        # few at a time, in the caller's order: the engine starts containers about as fast
        # one by one, and the services needed first are then held first
        pool = ThreadPoolExecutor(max_workers=min(_HOLD_WORKERS, len(specs)),
                                  thread_name_prefix="clnrm-hold")
        for spec in specs:
            self._held[spec.name] = pool.submit(self._hold_one, spec)
        pool.shutdown(wait=False)

    def _hold_one(self, spec: ServiceSpec) -> str | None:
        """The held container's id, or None (then :meth:`launch` starts it the normal way,
        which also reports any real problem, such as a missing image)."""
        cid = None
        try:
            command, entrypoint = self._argv(spec)
            argv = self._effective_argv(spec.image or "", command, entrypoint)
            if self._closed or not argv:
                return None
            cid = self._create(spec.name, spec.image or "", command=argv,
                               entrypoint=["/bin/sh", "-c", _GATE, "clnrm-gate"],
                               env=self._service_env(spec), workdir=spec.workdir,
                               volumes=spec.volumes, resources=spec)
            self._api.start(cid)
            deadline = time.monotonic() + _GATE_ARM_S
            while time.monotonic() < deadline and not self._closed:
                if not self._api.inspect_container(cid)["State"].get("Running"):
                    break  # no sh in the image, say
                procs = self._api.top(cid).get("Processes") or []
                # the CMD column must BE the sleeper: docker-init (pid 1) carries the whole
                # gate script, sleeper text included, before sh has set its trap
                if any(p and p[-1].strip() == _GATE_SLEEPER for p in procs):
                    return cid
                time.sleep(0.02)
        except Exception as exc:
            log.debug("hold.failed", service=spec.name, error=_short(exc))
        if cid is not None:
            with self._lock:
                self._containers.pop(spec.name, None)
            remove_containers(self._client, [cid])
        return None

    def _argv(self, spec: ServiceSpec) -> tuple[list[str] | None, list[str] | None]:
        """``(command, entrypoint)`` to create the container with."""
        command, entrypoint = spec.command, spec.entrypoint
        if spec.kind == "process" and command is not None:
            entrypoint = []  # a local_process command is run as given, not via the image entrypoint
        elif spec.keep_alive and self._runs_only_a_shell(spec.image or ""):
            command = _KEEP_ALIVE
        return command, entrypoint

    def _effective_argv(self, image: str, command: list[str] | None,
                        entrypoint: list[str] | None) -> list[str]:
        """What the engine would run, merged with the image's config as the engine merges it."""
        config = self._api.inspect_image(image).get("Config") or {}
        if not entrypoint:
            if not command:
                command = config.get("Cmd")
            if entrypoint is None:
                entrypoint = config.get("Entrypoint")
        return [*(entrypoint or []), *(command or [])]

    def _service_env(self, spec: ServiceSpec) -> dict[str, str]:
        return {**self._env, "OTEL_SERVICE_NAME": spec.name, **spec.env}

    def _runs_only_a_shell(self, image: str) -> bool:
        config = self._api.inspect_image(image).get("Config") or {}
        cmd = config.get("Cmd") or []
        return not config.get("Entrypoint") and (not cmd or cmd[0] in _SHELLS)

    def _create(self, service: str, image: str, *, command: list[str] | None,
                entrypoint: list[str] | None, env: dict[str, str], workdir: str | None,
                volumes: tuple[tuple[str, str, bool], ...] = (),
                resources: ServiceSpec | None = None) -> str:
        binds = {host: {"bind": ctr, "mode": "ro" if ro else "rw"} for host, ctr, ro in volumes}
        host_config = self._api.create_host_config(
            network_mode=self.network_name, init=True, binds=binds or None,
            privileged=False, auto_remove=False,
            dns_opt=_LINKED_DNS_OPTS if self._linked else None, **_limits(resources))
        # linked: the service's name must not resolve on the shared network, where a
        # forbidden peer would find it (the engine publishes the hostname there too, and a
        # dotted one costs every program that resolves it a DNS timeout)
        net_config = self._api.create_networking_config(
            {self.network_name: self._api.create_endpoint_config(
                aliases=None if self._linked else [service])})
        name = f"{self._prefix}-{_name_part(service)}"
        hostname = None if self._linked else _name_part(service)[:63]
        try:
            created = self._api.create_container(
                image, command=command, entrypoint=entrypoint, name=name,
                hostname=hostname, environment=env, working_dir=workdir,
                labels={**self._labels, LABEL_SERVICE: service}, host_config=host_config,
                networking_config=net_config, detach=True)
        except Exception as exc:
            from clnrm.images import ensure_image  # lazy: images pulls in build helpers

            ensure_image(self._client, image)  # raises the clear "build it with ..." error
            raise BackendError(f"could not create container for {service!r}: {_short(exc)}",
                               backend="docker") from exc
        with self._lock:
            self._containers[service] = created["Id"]
        for net in self._member_nets.get(service, []):
            self._api.connect_container_to_network(created["Id"], net, aliases=[service])
        return str(created["Id"])

    def container_id(self, service: str) -> str | None:
        """The container of ``service`` in this test (None: not started here)."""
        with self._lock:
            return self._containers.get(service)

    def service_names(self) -> list[str]:
        """Services started in this test, without the step container."""
        with self._lock:
            return [name for name in self._containers if name != _STEP_CONTAINER]

    def restart_service(self, service: str, *, timeout: float = 10.0) -> None:
        """Start the service's container again after a kill/stop (chaos rollback).

        A container created held (see :meth:`hold`) starts again inside its gate, so it is
        released the same way once the gate is armed; otherwise the engine's start is all.
        """
        cid = self.container_id(service)
        if cid is None:
            raise BackendError(f"service {service!r} is not part of this test", backend="docker")
        info = self._api.inspect_container(cid)
        if not info["State"].get("Running"):
            self._api.start(cid)
        if "clnrm-gate" not in ((info.get("Config") or {}).get("Entrypoint") or []):
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            procs = self._api.top(cid).get("Processes") or []
            if any(p and p[-1].strip() == _GATE_SLEEPER for p in procs):
                self._api.kill(cid, signal="SIGUSR1")
                return
            if not self._api.inspect_container(cid)["State"].get("Running"):
                raise BackendError(f"service {service!r} exited again right after restart",
                                   backend="docker")
            time.sleep(0.02)
        raise BackendError(f"service {service!r} did not reach its start gate in {timeout:g} s",
                           backend="docker")

    def address_of(self, cid: str) -> str | None:
        """The container's IP on the test network (the host is its gateway, so it can connect)."""
        nets = self._api.inspect_container(cid)["NetworkSettings"]["Networks"]
        ip = (nets.get(self.network_name) or {}).get("IPAddress")
        return str(ip) if ip else None

    # -- steps ---------------------------------------------------------------

    def exec(self, service: str | None, argv: list[str], *, env: dict[str, str] | None = None,
             workdir: str | None = None, timeout: float | None = None) -> ExecResult:
        cid = self._containers.get(service) if service else self._step_container()
        if cid is None:
            raise BackendError(f"service {service!r} is not running in this test",
                               backend="docker")
        return self.exec_in(cid, argv, env={**self._env, **(env or {})}, workdir=workdir,
                             timeout=timeout)

    def prepare_steps(self) -> None:
        """Create and start the step container on a thread now: its 0.2-0.5 s engine start
        then overlaps the receiver's and the services' instead of delaying the first step.
        Each exec carries the test's environment, so env added later still reaches steps."""
        if self._steps_box is not None or self._closed:
            return
        box: Future[str] = Future()
        self._steps_box = box

        def start() -> None:
            try:
                box.set_result(self._start_step_container())
            except BaseException as exc:  # raised again by the first step that needs it
                box.set_exception(exc)

        threading.Thread(target=start, name="clnrm-steps", daemon=True).start()

    def _step_container(self) -> str:
        with self._lock:
            cid = self._containers.get(_STEP_CONTAINER)
        if cid is not None and self._steps_box is None:
            return cid
        if self._steps_box is not None:
            return self._steps_box.result()
        return self._start_step_container()

    def _start_step_container(self) -> str:
        cid = self._create(_STEP_CONTAINER, self._default_image, command=_KEEP_ALIVE,
                           entrypoint=None, env=self._env, workdir=None)
        self._api.start(cid)
        return cid

    def exec_in(self, cid: str, argv: list[str], *, env: dict[str, str] | None,
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
        try:
            info = self._api.exec_inspect(exec_id)
        except Exception as exc:  # the engine may drop a finished exec before it is read
            raise BackendError(f"exec {argv!r}: its exit code was lost: {_short(exc)}",
                               backend="docker") from exc
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
        for held in list(self._held.values()):  # a holder may still be creating its container
            try:
                held.result()
            except Exception as exc:
                log.debug("hold.failed", error=_short(exc))
        self._held.clear()
        if self._steps_box is not None:  # its container is removed with the others below
            try:
                self._steps_box.result()
            except Exception as exc:
                log.debug("steps.failed", error=_short(exc))
        with self._lock:
            ids = dict(self._containers)
            self._containers.clear()
        ordered = {name: cid for name, cid in ids.items() if name in self._stop_after}
        # the step container and anything unordered first, all at once; then each service
        # once its dependants are gone
        remove_containers(self._client, [cid for n, cid in ids.items() if n not in ordered])
        if ordered:
            from clnrm.orchestration.schedule import run_in_dependency_order

            run_in_dependency_order(
                {n: self._stop_after[n] & ordered.keys() for n in ordered},
                lambda name, _abort: remove_containers(self._client, [ordered[name]]),
                thread_name="clnrm-stop")
        self._remove_networks()

    def _remove_networks(self) -> None:
        def rm(net: str, name: str) -> None:
            try:
                self._api.remove_network(net)
            except Exception as exc:
                log.warning("network.remove_failed", network=name, error=_short(exc))

        if self._link_ids:
            with ThreadPoolExecutor(max_workers=min(8, len(self._link_ids))) as pool:
                list(pool.map(lambda net: rm(net, net[:12]), self._link_ids))
        rm(self.network_id, self.network_name)


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


def _sandbox_key(test_slug: str, default_image: str, env: dict[str, str],
                 links: Sequence[Sequence[str]] | None) -> tuple[Any, ...]:
    return (test_slug, default_image, tuple(sorted(env.items())),
            None if links is None else tuple(tuple(link) for link in links))


class DockerBackend(Backend):
    name = "docker"

    def __init__(self, run_id: str, client: DockerClient | None = None) -> None:
        super().__init__(run_id)
        self.client = client or docker_client()
        self.owner = owner_label()
        self._prepared: list[tuple[tuple[Any, ...], Future[DockerSandbox]]] = []
        self._prepared_lock = threading.Lock()

    def sandbox(self, test_slug: str, *, default_image: str, env: dict[str, str],
                links: Sequence[Sequence[str]] | None = None) -> DockerSandbox:
        key = _sandbox_key(test_slug, default_image, env, links)
        with self._prepared_lock:
            ready = next((i for i, (k, _) in enumerate(self._prepared) if k == key), None)
            prepared = self._prepared.pop(ready)[1] if ready is not None else None
        if prepared is not None:
            return prepared.result()  # its creation error, if any, is this test's error
        return DockerSandbox(self.client, self.run_id, test_slug, default_image=default_image,
                             env=env, owner=self.owner, links=links)

    def prepare(self, test_slug: str, *, default_image: str, env: dict[str, str],
                links: Sequence[Sequence[str]] | None = None, steps: bool = False) -> None:
        """Create the network (and start the step container) on a thread now: the engine's
        0.1-0.3 s network creation then overlaps the run's own set-up (self-tracing, the
        test's start) instead of following it.  Only an exact match of the arguments takes
        it (:meth:`sandbox`), so a test always gets the sandbox it would have made."""
        made: Future[DockerSandbox] = Future()
        with self._prepared_lock:
            self._prepared.append((_sandbox_key(test_slug, default_image, env, links), made))

        def make() -> None:
            try:
                box = DockerSandbox(self.client, self.run_id, test_slug,
                                    default_image=default_image, env=dict(env),
                                    owner=self.owner, links=links)
            except BaseException as exc:  # raised again by the test that takes it
                made.set_exception(exc)
                return
            if steps:
                box.prepare_steps()
            made.set_result(box)

        threading.Thread(target=make, name="clnrm-prepare", daemon=True).start()

    def finish(self) -> None:
        """Remove the prepared sandboxes no test took (a cancelled or failed-fast run)."""
        with self._prepared_lock:
            left, self._prepared = self._prepared, []
        for _, made in left:
            try:
                made.result().close()
            except Exception as exc:  # noqa: BLE001 - its creation failed: nothing to remove
                log.debug("prepared.unused", error=_short(exc))

    def preflight(self, images: set[str]) -> None:
        """Images are checked now: a missing one stops the run before anything starts.
        (Collecting dead runs is the Runner's job, through :mod:`clnrm.gc`.)"""
        for image in sorted(images):
            try:
                self.client.api.inspect_image(image)
            except Exception:  # the images module says what is wrong and how to fix it
                from clnrm.images import ensure_image

                ensure_image(self.client, image)

    def reap(self) -> None:
        from clnrm.gc import remove_run

        remove_run(self.client, self.run_id)

"""The service-type interface every plugin implements.

A service type turns one ``[services.NAME]`` table into a backend-neutral
:class:`ServiceSpec`.  Backends only ever see specs, so adding a service type
never touches a backend, and a backend never grows ``if plugin == ...``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from clnrm.errors import PluginError
from clnrm.scenario.model import HealthCheck, ReadinessProbe, ServiceConfig

Readiness = Literal["running", "health_check", "tcp"]
"""The service type's own readiness rule: it is still running after start, its
``health_check`` command succeeds, or its first port accepts TCP.  Probes the
file declares (``checks``) replace ``running``/``tcp``; a health check always applies."""


@dataclass(frozen=True)
class ServiceSpec:
    """What a backend needs to start one service; produced by a ServiceType."""

    name: str
    kind: Literal["container", "process"]
    image: str | None = None
    command: list[str] | None = None
    entrypoint: list[str] | None = None
    env: dict[str, str] = field(default_factory=dict)
    workdir: str | None = None
    ports: tuple[int, ...] = ()
    volumes: tuple[tuple[str, str, bool], ...] = ()  # (host, container, read_only)
    health_check: HealthCheck | None = None
    readiness: Readiness = "running"
    keep_alive: bool = False  # replace a shell CMD with a sleeper so steps can exec into it
    checks: tuple[ReadinessProbe, ...] = ()  # declared probes (readiness, wait_for_span)
    memory: int | None = None  # bytes (compose's ``memory``); None: no limit
    cpus: float | None = None  # cores (compose's ``cpus``); None: no limit
    restart: str | None = None  # compose's restart policy ("on-failure:3"...)


@dataclass(frozen=True)
class SpecContext:
    """Run-wide facts a service type may use (default image, image aliases)."""

    default_image: str
    image_map: dict[str, str] = field(default_factory=dict)

    def resolve_image(self, image: str) -> str:
        """Apply ``--image-map`` so upstream files naming e.g. ``alpine:latest`` can run."""
        return self.image_map.get(image, image)


class ServiceType(ABC):
    """One value of ``plugin = "..."``.

    Subclasses set ``name`` and implement :meth:`to_spec`; :meth:`check` may
    reject a config early (it runs at validation time, before any container
    starts) by raising :class:`~clnrm.errors.PluginError`.
    """

    name: ClassVar[str]
    image_required: ClassVar[bool] = True
    description: ClassVar[str] = ""

    def check(self, service: str, config: ServiceConfig) -> None:
        if self.image_required and not config.image:
            raise PluginError(
                f"service {service!r}: plugin {self.name!r} needs an 'image'",
                plugin=self.name,
                hint=f'add image = "clnrm/busybox:latest" under [services.{service}]',
            )

    @abstractmethod
    def to_spec(self, service: str, config: ServiceConfig, ctx: SpecContext) -> ServiceSpec:
        """Translate the TOML table into a spec; must not touch the engine."""


def container_spec(service: str, config: ServiceConfig, ctx: SpecContext, *,
                   fallback_readiness: Readiness, keep_alive: bool = False) -> ServiceSpec:
    """The spec every container-based type starts from: the table's fields, the
    image resolved (default image when none is given), and a health check, when
    present, taking precedence over the type's own readiness rule."""
    return ServiceSpec(
        name=service,
        kind="container",
        image=ctx.resolve_image(config.image) if config.image else ctx.default_image,
        command=command_of(config),
        entrypoint=config.entrypoint,
        env=dict(config.env),
        workdir=config.workdir,
        ports=tuple(config.ports),
        volumes=volumes_of(config),
        health_check=config.health_check,
        readiness="health_check" if config.health_check else fallback_readiness,
        keep_alive=keep_alive,
        checks=probes_of(config),
        memory=config.memory,
        cpus=config.cpus,
        restart=config.restart,
    )


def probes_of(config: ServiceConfig) -> tuple[ReadinessProbe, ...]:
    """The declared readiness probes: ``readiness`` entries, then upstream's ``wait_for_span``."""
    probes = list(config.readiness)
    if config.wait_for_span:
        probes.append(ReadinessProbe(span=config.wait_for_span,
                                     timeout=config.wait_for_span_timeout_secs or None))
    return tuple(probes)


def command_of(config: ServiceConfig) -> list[str] | None:
    """``command`` wins over upstream's ``args`` spelling."""
    return config.command if config.command is not None else config.args


def volumes_of(config: ServiceConfig) -> tuple[tuple[str, str, bool], ...]:
    return tuple((v.host_path, v.container_path, v.read_only) for v in config.volumes)

"""``generic_container``: any local image, run as a long-lived container.

When neither the file nor the image gives a long-running process (the image's
default command is a bare shell, as for busybox or debian), the container is
kept alive with a sleeper so steps can ``exec`` into it, as upstream does with
``sleep 3600``.
"""

from __future__ import annotations

from clnrm.hookspecs import hookimpl
from clnrm.plugins.base import ServiceSpec, ServiceType, SpecContext, command_of, volumes_of
from clnrm.scenario.model import ServiceConfig


class GenericContainer(ServiceType):
    name = "generic_container"
    description = "any local image as a container; steps can exec into it"

    def to_spec(self, service: str, config: ServiceConfig, ctx: SpecContext) -> ServiceSpec:
        assert config.image is not None  # guaranteed by check()
        command = command_of(config)
        return ServiceSpec(
            name=service,
            kind="container",
            image=ctx.resolve_image(config.image),
            command=command,
            entrypoint=config.entrypoint,
            env=dict(config.env),
            workdir=config.workdir,
            ports=tuple(config.ports),
            volumes=volumes_of(config),
            health_check=config.health_check,
            readiness="health_check" if config.health_check else "running",
            keep_alive=command is None and config.entrypoint is None,
        )


@hookimpl
def clnrm_service_types() -> list[type[ServiceType]]:
    return [GenericContainer]

"""``generic_container``: any local image, run as a long-lived container.

When neither the file nor the image gives a long-running process (the image's
default command is a bare shell, as for busybox or debian), the container is
kept alive with a sleeper so steps can ``exec`` into it, as upstream does with
``sleep 3600``.
"""

from __future__ import annotations

from clnrm.hookspecs import hookimpl
from clnrm.plugins.base import (
    ServiceSpec,
    ServiceType,
    SpecContext,
    command_of,
    container_spec,
)
from clnrm.scenario.model import ServiceConfig


class GenericContainer(ServiceType):
    name = "generic_container"
    description = "any local image as a container; steps can exec into it"

    def to_spec(self, service: str, config: ServiceConfig, ctx: SpecContext) -> ServiceSpec:
        assert config.image is not None  # guaranteed by check()
        return container_spec(
            service, config, ctx, fallback_readiness="running",
            keep_alive=command_of(config) is None and config.entrypoint is None)


@hookimpl
def clnrm_service_types() -> list[type[ServiceType]]:
    return [GenericContainer]

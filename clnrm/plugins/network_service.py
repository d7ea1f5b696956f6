"""``network_service``: a server other services reach over the test network.

Unlike ``generic_container`` it is ready only when its first declared port
accepts TCP (or its health check passes), so dependants never race its start.
The image is optional: without one the command runs in the default image
(busybox), which is enough for ``httpd``, ``nc`` or a small script.
"""

from __future__ import annotations

from clnrm.errors import PluginError
from clnrm.hookspecs import hookimpl
from clnrm.plugins.base import (
    ServiceSpec,
    ServiceType,
    SpecContext,
    command_of,
    container_spec,
)
from clnrm.scenario.model import ServiceConfig


class NetworkService(ServiceType):
    name = "network_service"
    image_required = False
    description = "a server on the test network, ready when its port accepts TCP"

    def check(self, service: str, config: ServiceConfig) -> None:
        if not config.image and command_of(config) is None:
            raise PluginError(
                f"service {service!r}: plugin 'network_service' needs an 'image' or a 'command'",
                plugin=self.name,
                hint='e.g. command = ["httpd", "-f", "-p", "8080"] and ports = [8080]',
            )
        if not config.ports and config.health_check is None:
            raise PluginError(
                f"service {service!r}: plugin 'network_service' needs 'ports' (to probe "
                "readiness over TCP) or a 'health_check'",
                plugin=self.name,
                hint="add ports = [8080] with the port the server listens on",
            )

    def to_spec(self, service: str, config: ServiceConfig, ctx: SpecContext) -> ServiceSpec:
        return container_spec(service, config, ctx, fallback_readiness="tcp")


@hookimpl
def clnrm_service_types() -> list[type[ServiceType]]:
    return [NetworkService]

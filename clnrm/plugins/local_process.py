"""``local_process``: a command run as a service, for machines without an engine.

On the ``local`` backend it is a host subprocess (its own process group, killed
at cleanup); on the ``docker`` backend the same command runs in a container of
the default image, so one file works on both.
"""

from __future__ import annotations

from clnrm.errors import PluginError
from clnrm.hookspecs import hookimpl
from clnrm.plugins.base import ServiceSpec, ServiceType, SpecContext, command_of
from clnrm.scenario.model import ServiceConfig


class LocalProcess(ServiceType):
    name = "local_process"
    image_required = False
    description = "a command as a service: host process on 'local', container on 'docker'"

    def check(self, service: str, config: ServiceConfig) -> None:
        if command_of(config) is None:
            raise PluginError(
                f"service {service!r}: plugin 'local_process' needs a 'command'",
                plugin=self.name,
                hint='e.g. command = ["python3", "-m", "http.server", "8000"]',
            )

    def to_spec(self, service: str, config: ServiceConfig, ctx: SpecContext) -> ServiceSpec:
        return ServiceSpec(
            name=service,
            kind="process",
            image=ctx.resolve_image(config.image) if config.image else ctx.default_image,
            command=command_of(config),
            env=dict(config.env),
            workdir=config.workdir,
            ports=tuple(config.ports),
            health_check=config.health_check,
            readiness="health_check" if config.health_check
            else ("tcp" if config.ports else "running"),
        )


@hookimpl
def clnrm_service_types() -> list[type[ServiceType]]:
    return [LocalProcess]

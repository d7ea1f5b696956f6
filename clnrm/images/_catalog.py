"""The images clnrm builds, by short name, in dependency order."""

from __future__ import annotations

from typing import Final

from clnrm.errors import ClnrmError
from clnrm.images._busybox import BusyboxRecipe
from clnrm.images._debian import DebianRootfsRecipe
from clnrm.images._demo import (
    DEMO_APP_IMAGE,
    DEMO_APP_RECIPE,
    DEMO_POSTGRES_IMAGE,
    DEMO_POSTGRES_RECIPE,
    DEMO_REDIS_IMAGE,
    DEMO_REDIS_RECIPE,
)
from clnrm.images._model import BUSYBOX_IMAGE, DEBIAN_IMAGE, PYTHON_IMAGE, ImageSpec
from clnrm.images._python_otel import PythonOtelRecipe

KNOWN_IMAGES: Final[dict[str, ImageSpec]] = {
    spec.name: spec
    for spec in (
        ImageSpec(
            name="busybox",
            tag=BUSYBOX_IMAGE,
            summary="FROM scratch + Debian's static busybox; the default step image",
            requires=("debian",),
            recipe=BusyboxRecipe(),
        ),
        ImageSpec(
            name="debian",
            tag=DEBIAN_IMAGE,
            summary="debootstrap --variant=minbase bookworm, imported as one layer",
            recipe=DebianRootfsRecipe(),
        ),
        ImageSpec(
            name="python-otel",
            tag=PYTHON_IMAGE,
            summary="Debian python3 + OpenTelemetry SDK and OTLP http/grpc exporters",
            requires=("debian",),
            recipe=PythonOtelRecipe(),
        ),
        ImageSpec(
            name="demo-redis",
            tag=DEMO_REDIS_IMAGE,
            summary="demo system: Debian redis-server, start/exit reported as spans",
            requires=("python-otel",),
            recipe=DEMO_REDIS_RECIPE,
        ),
        ImageSpec(
            name="demo-postgres",
            tag=DEMO_POSTGRES_IMAGE,
            summary="demo system: Debian PostgreSQL 15, database/user/password 'demo' baked in",
            requires=("python-otel",),
            recipe=DEMO_POSTGRES_RECIPE,
        ),
        ImageSpec(
            name="demo-app",
            tag=DEMO_APP_IMAGE,
            summary="demo system: gateway, api and worker (python-otel + redis-py + psycopg)",
            requires=("python-otel",),
            recipe=DEMO_APP_RECIPE,
        ),
    )
}
"""Short name -> spec of every image ``clnrm images build`` knows."""


def spec_for_tag(ref: str) -> ImageSpec | None:
    """The catalogue image tagged ``ref`` (``clnrm/busybox`` means ``:latest``), if any."""
    normalized = with_default_tag(ref)
    return next((spec for spec in KNOWN_IMAGES.values() if spec.tag == normalized), None)


def with_default_tag(ref: str) -> str:
    """``ref`` with ``:latest`` added when it names neither a tag nor a digest."""
    if "@" in ref or ":" in ref.rsplit("/", 1)[-1]:
        return ref
    return f"{ref}:latest"


def build_order(names: list[str] | None) -> list[ImageSpec]:
    """``names`` (all when None) plus what they are built FROM, dependencies first."""
    wanted = list(KNOWN_IMAGES) if names is None else names
    unknown = [name for name in wanted if name not in KNOWN_IMAGES]
    if unknown:
        raise ClnrmError(
            f"unknown image name(s): {', '.join(unknown)}",
            hint=f"known images: {', '.join(KNOWN_IMAGES)}",
        )
    ordered: list[ImageSpec] = []

    def visit(name: str) -> None:
        spec = KNOWN_IMAGES[name]
        if any(done.name == name for done in ordered):
            return
        for dependency in spec.requires:
            visit(dependency)
        ordered.append(spec)

    for name in wanted:
        visit(name)
    return ordered

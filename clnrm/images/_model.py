"""Data of the image catalogue: what an image is, how a recipe builds it, what a build returns.

Kept free of ``docker`` imports: the engine client is only passed through as an object.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeAlias, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from docker import DockerClient

BUSYBOX_IMAGE: Final = "clnrm/busybox:latest"
DEBIAN_IMAGE: Final = "clnrm/debian:bookworm"
PYTHON_IMAGE: Final = "clnrm/python-otel:latest"
DEFAULT_STEP_IMAGE: Final = BUSYBOX_IMAGE

IMAGE_LABEL: Final = "clnrm.image"
"""Label set to ``"1"`` on every image clnrm builds, so they can be listed and pruned."""
HASH_LABEL: Final = "clnrm.image.hash"
"""Label holding the sha256 of the image's definition; equal hash means nothing to rebuild."""
NAME_LABEL: Final = "clnrm.image.name"
"""Label holding the catalogue's short name (``busybox``, ``debian``, ``python-otel``)."""

BuildEventSink: TypeAlias = Callable[[str, str], None]
"""``on_event(name, message)``: one progress line of the image called ``name``."""


@runtime_checkable
class ImageRecipe(Protocol):
    """How one catalogue image is made.

    ``inputs`` must be cheap and offline when the host tools are there: it is called
    on every ``build_images`` to decide whether the local image is current.
    """

    failure_hint: str
    """Shown as ``Hint:`` when ``build`` fails; names what to check first."""

    def inputs(self, ctx: RecipeContext) -> dict[str, str]:
        """Everything the image's content depends on, as text (hashes of files, ids)."""
        ...

    def build(self, ctx: RecipeContext, labels: dict[str, str]) -> str:
        """Build and tag ``ctx.spec.tag`` carrying ``labels``; return the image id."""
        ...


class ImageSpec(BaseModel):
    """One image of the catalogue: its short name, tag, dependencies and recipe."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    name: str
    tag: str
    summary: str
    requires: tuple[str, ...] = ()
    """Short names of catalogue images this one is built ``FROM``; built first."""
    recipe: ImageRecipe = Field(exclude=True, repr=False)


class ImageBuildResult(BaseModel):
    """What ``build_images`` did for one image."""

    model_config = ConfigDict(frozen=True)

    name: str
    tag: str
    image_id: str
    cached: bool
    """True when the tag already carried the same content hash and nothing was built."""
    seconds: float
    content_hash: str
    """The ``clnrm.image.hash`` label value of the image now behind ``tag``."""


@dataclass
class RecipeContext:
    """What a recipe may use while building: the engine, its spec, flags and a progress sink."""

    client: DockerClient | Any
    spec: ImageSpec
    force: bool = False
    emit: Callable[[str], None] = field(default=lambda message: None)
    pull: bool = False
    """``clnrm images build --pull``: the Debian base may come from the user's registry."""

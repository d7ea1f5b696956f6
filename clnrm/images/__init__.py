"""clnrm's local images: built on this machine, cached by content hash, never pulled.

(One opt-in exception: ``clnrm images build --pull`` takes the Debian base from a
registry, for hosts that cannot debootstrap it.)

``clnrm/busybox:latest`` (the default step image), ``clnrm/debian:bookworm`` (a
debootstrapped base) and ``clnrm/python-otel:latest`` (python3 with the OpenTelemetry
SDK and OTLP exporters). ``build_images`` makes them; ``ensure_image`` checks an image
is present and otherwise says which command makes it.

Import-light: ``docker`` is imported only inside the functions that talk to the engine.
"""

from __future__ import annotations

from clnrm.images._build import build_images, content_hash, ensure_image, missing_image_hint
from clnrm.images._catalog import KNOWN_IMAGES, build_order
from clnrm.images._mirror import debian_mirror
from clnrm.images._model import (
    BUSYBOX_IMAGE,
    DEBIAN_IMAGE,
    DEFAULT_STEP_IMAGE,
    HASH_LABEL,
    IMAGE_LABEL,
    NAME_LABEL,
    PYTHON_IMAGE,
    BuildEventSink,
    ImageBuildResult,
    ImageRecipe,
    ImageSpec,
    RecipeContext,
)
from clnrm.images._wheels import cache_root, wheel_target

__all__ = [
    "BUSYBOX_IMAGE",
    "BuildEventSink",
    "DEBIAN_IMAGE",
    "DEFAULT_STEP_IMAGE",
    "HASH_LABEL",
    "IMAGE_LABEL",
    "ImageBuildResult",
    "ImageRecipe",
    "ImageSpec",
    "KNOWN_IMAGES",
    "NAME_LABEL",
    "PYTHON_IMAGE",
    "RecipeContext",
    "build_images",
    "build_order",
    "cache_root",
    "content_hash",
    "debian_mirror",
    "ensure_image",
    "missing_image_hint",
    "wheel_target",
]

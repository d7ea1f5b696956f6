"""``build_images`` and ``ensure_image``: build the catalogue with content-hash caching; never pull.

An image is rebuilt only when the sha256 of its definition (recipe inputs: Dockerfile
text, input file hashes, pinned wheel list, base image id, mirror) differs from the
``clnrm.image.hash`` label of the image now behind its tag, or when forced.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any, Final, TypeVar

from clnrm.errors import BackendError, ClnrmError, ImageMissingError
from clnrm.images._catalog import build_order, spec_for_tag, with_default_tag
from clnrm.images._engine import local_image, remove_stale
from clnrm.images._model import (
    BUSYBOX_IMAGE,
    HASH_LABEL,
    IMAGE_LABEL,
    NAME_LABEL,
    BuildEventSink,
    ImageBuildResult,
    ImageSpec,
    RecipeContext,
)

_HASH_SCHEMA: Final = "clnrm.images/1"
_T = TypeVar("_T")


def _log() -> Any:
    import structlog  # lazy: structlog pulls in rich, and this package must import fast

    return structlog.get_logger("clnrm.images")


def build_images(
    client: Any,
    names: list[str] | None = None,
    *,
    force: bool = False,
    on_event: BuildEventSink | None = None,
    pull: bool = False,
) -> list[ImageBuildResult]:
    """Build the named catalogue images (all when None) and what they need, in order.

    An image whose tag already carries the same content hash is skipped (``cached``)
    unless ``force``; ``force`` applies to the named images only, not to the
    dependencies pulled in to build them. ``on_event(name, message)`` receives every
    progress line (build log, debootstrap and pip output). Replaced images are removed
    when nothing uses them any more. Every failure raises ``BackendError`` carrying the
    last log lines and a hint. ``pull`` (opt-in, for users with a registry) takes the
    Debian base from ``debian:bookworm-slim`` instead of debootstrapping it.
    """
    plan = build_order(names)
    forced = {spec.name for spec in plan} if names is None else set(names)
    sink: BuildEventSink = on_event or (lambda name, message: None)
    results: list[ImageBuildResult] = []
    replaced: list[str] = []
    for spec in plan:
        result, previous = _build_one(client, spec, force=force and spec.name in forced,
                                      sink=sink, pull=pull)
        results.append(result)
        if previous is not None and previous != result.image_id:
            replaced.append(previous)
    _guard_engine(lambda: remove_stale(client, reversed(replaced)), "removing replaced images")
    return results


def ensure_image(client: Any, image: str) -> None:
    """Return if ``image`` is present locally; otherwise raise ``ImageMissingError``.

    clnrm never pulls: the hint names ``clnrm images build [name]`` for clnrm's own
    images, and ``docker load`` or ``--image-map`` for any other.
    """
    found = _guard_engine(lambda: local_image(client, image), f"looking up image {image!r}")
    if found is None:
        raise ImageMissingError(image, hint=missing_image_hint(image))


def missing_image_hint(image: str) -> str:
    """The command that makes ``image`` present, for ``ImageMissingError``."""
    ref = with_default_tag(image)
    spec = spec_for_tag(ref)
    if spec is not None:
        return f"build it: `clnrm images build {spec.name}` (or all: `clnrm images build`)"
    if ref.startswith("clnrm/"):
        return "build clnrm's images: `clnrm images build`"
    hint = (f"clnrm never pulls images: pull it yourself (`docker pull {ref}`) or load it "
            "(`docker load -i FILE.tar`)")
    stand_in = local_stand_in(ref)
    if stand_in is not None:
        return f"{hint}, or map it to a local image with the same programs: " \
               f"`--image-map {ref}={stand_in}`"
    return f"{hint}, or build it from a Dockerfile (a service's `build` table)"


_STAND_INS: Final = (
    (("busybox", "alpine"), BUSYBOX_IMAGE),
    (("debian", "ubuntu"), "clnrm/debian:bookworm"),
    (("python",), "clnrm/python-otel:latest"),
    (("redis", "valkey"), "clnrm/demo-redis:latest"),
    (("postgres", "postgresql"), "clnrm/demo-postgres:latest"),
)
"""Image names -> the local image that carries the same programs (sh, apt, python3...)."""


def local_stand_in(ref: str) -> str | None:
    """A local image that can replace ``ref`` (``postgres:16`` -> the demo Postgres), if any.

    Only images that carry the same programs qualify: mapping a database image to
    busybox would start a container that cannot do the service's job.
    """
    name = ref.split("@", 1)[0].rsplit("/", 1)[-1].split(":", 1)[0].lower()
    for names, image in _STAND_INS:
        if name in names:
            return image
    return None


def content_hash(spec: ImageSpec, inputs: dict[str, str]) -> str:
    """sha256 over the image's identity and its recipe inputs (stable key order)."""
    document = {"schema": _HASH_SCHEMA, "name": spec.name, "tag": spec.tag, "inputs": inputs}
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def _build_one(
    client: Any, spec: ImageSpec, *, force: bool, sink: BuildEventSink, pull: bool = False
) -> tuple[ImageBuildResult, str | None]:
    started = time.monotonic()

    def emit(message: str) -> None:
        sink(spec.name, message)

    ctx = RecipeContext(client=client, spec=spec, force=force, emit=emit, pull=pull)
    inputs = _guard_engine(lambda: spec.recipe.inputs(ctx), f"checking {spec.tag}", spec)
    digest = content_hash(spec, inputs)
    existing = _guard_engine(lambda: local_image(client, spec.tag), f"looking up {spec.tag}")
    previous = str(existing.id) if existing is not None else None
    if existing is not None and not force and existing.labels.get(HASH_LABEL) == digest:
        emit(f"cached ({_short(existing.id)})")
        _log().debug("image.cached", image=spec.name, tag=spec.tag, image_id=existing.id)
        result = ImageBuildResult(
            name=spec.name,
            tag=spec.tag,
            image_id=str(existing.id),
            cached=True,
            seconds=time.monotonic() - started,
            content_hash=digest,
        )
        return result, previous
    emit(f"building {spec.tag}" + (" (forced)" if force else ""))
    labels = {IMAGE_LABEL: "1", HASH_LABEL: digest, NAME_LABEL: spec.name}
    image_id = _guard_engine(lambda: spec.recipe.build(ctx, labels), f"building {spec.tag}", spec)
    built = _guard_engine(lambda: local_image(client, spec.tag), f"looking up {spec.tag}")
    if built is None or built.labels.get(HASH_LABEL) != digest:
        raise BackendError(
            f"{spec.tag} was built but does not carry label {HASH_LABEL}={digest}",
            backend="docker",
            hint="the engine dropped the build labels; check `docker image inspect` on it",
        )
    seconds = time.monotonic() - started
    emit(f"built {_short(built.id)} in {seconds:.1f} s")
    _log().info("image.built", image=spec.name, tag=spec.tag, image_id=image_id, seconds=seconds)
    result = ImageBuildResult(
        name=spec.name,
        tag=spec.tag,
        image_id=str(built.id),
        cached=False,
        seconds=seconds,
        content_hash=digest,
    )
    return result, previous


def _guard_engine(action: Callable[[], _T], doing: str, spec: ImageSpec | None = None) -> _T:
    """Run ``action()``; turn engine, HTTP and OS errors into ``BackendError`` (chained)."""
    import docker.errors
    import requests.exceptions

    try:
        return action()
    except ClnrmError:
        raise
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as e:
        if spec is not None:
            hint = spec.recipe.failure_hint
        elif isinstance(e, docker.errors.APIError) and e.is_client_error():
            hint = "the engine rejected the request; check the image reference (name:tag)"
        else:
            hint = ("is the Docker engine running? start it (Docker Desktop, or `sudo "
                    "systemctl start docker`); `clnrm doctor` checks the setup")
        raise BackendError(f"{doing} failed: {e}", backend="docker", hint=hint) from e


def _short(image_id: object) -> str:
    return str(image_id).removeprefix("sha256:")[:12]

"""Talking to the Docker engine for image builds: contexts, classic builds, rootfs imports.

Everything goes through the API (the SDK's low-level client), never the docker CLI,
and every engine failure leaves as ``BackendError`` with the last build-log lines.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from clnrm.errors import BackendError
from clnrm.images._host import LOG_TAIL_LINES

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
"""Colour codes pip prints into the build stream; progress lines go to a rich display."""

ContextEntry = bytes | Path
"""A build-context file: literal content, or a host file copied as-is."""

if TYPE_CHECKING:
    from clnrm.images._model import RecipeContext


def make_context(files: Mapping[str, ContextEntry]) -> IO[bytes]:
    """Tar ``files`` (context path -> content) into a rewound, spooled file for the build API."""
    # returned open and rewound: the build API reads it, the caller closes it
    buffer: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=64 * 1024 * 1024)  # noqa: SIM115
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in sorted(files):
            entry = files[name]
            if isinstance(entry, Path):
                info = tar.gettarinfo(str(entry), arcname=name)
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mtime = 0
                with entry.open("rb") as fh:
                    tar.addfile(info, fh)
            else:
                info = tarfile.TarInfo(name)
                info.size = len(entry)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(entry))
    buffer.seek(0)
    return buffer


def local_image(client: Any, ref: str) -> Any | None:
    """The local image behind ``ref``, or None when the engine has no such image."""
    import docker.errors

    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None


def build_from_context(
    client: Any,
    *,
    tag: str,
    context: IO[bytes],
    labels: Mapping[str, str],
    nocache: bool,
    emit: Callable[[str], None],
    failure_hint: str,
    options: Mapping[str, Any] | None = None,
) -> str:
    """Build ``context`` with the classic builder, tag it, stream its log; return the image id.

    ``options`` are passed on to the engine's build call (``dockerfile``, ``buildargs``,
    ``target``: what a user's own build context needs).
    """
    tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
    image_id: str | None = None
    stream = client.api.build(
        fileobj=context,
        custom_context=True,
        tag=tag,
        labels=dict(labels),
        rm=True,
        forcerm=True,
        nocache=nocache,
        decode=True,
        **{"pull": False, **dict(options or {})},  # pull only for `images build --pull`
    )
    for chunk in stream:
        for line in _chunk_lines(chunk):
            tail.append(line)
            emit(line)
        if "error" in chunk or "errorDetail" in chunk:
            detail = chunk.get("error") or chunk.get("errorDetail", {}).get("message", "")
            log = "\n".join(tail)
            raise BackendError(
                f"building {tag} failed: {str(detail).strip()}\nlast build log lines:\n{log}",
                backend="docker",
                hint=failure_hint,
            )
        aux = chunk.get("aux")
        if isinstance(aux, dict) and aux.get("ID"):
            image_id = str(aux["ID"])
    image = local_image(client, tag)
    if image is None:
        raise BackendError(
            f"building {tag} ended without an image\nlast build log lines:\n" + "\n".join(tail),
            backend="docker",
            hint=failure_hint,
        )
    return str(image.id) if image_id is None else image_id


def import_rootfs(
    client: Any, *, tar_path: Path, tag: str, changes: Iterable[str], failure_hint: str
) -> str:
    """Import a root filesystem tarball as ``tag`` (like ``docker import``); return the id."""
    repository, _, version = tag.rpartition(":")
    reply = client.api.import_image(
        src=str(tar_path), repository=repository, tag=version, changes=list(changes)
    )
    for line in str(reply).splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict) and ("error" in message or "errorDetail" in message):
            raise BackendError(
                f"importing {tag} failed: {message.get('error') or message['errorDetail']}",
                backend="docker",
                hint=failure_hint,
            )
    image = local_image(client, tag)
    if image is None:
        raise BackendError(
            f"importing {tag} returned no image (engine said: {str(reply)[-500:]})",
            backend="docker",
            hint=failure_hint,
        )
    return str(image.id)


def remove_stale(client: Any, image_ids: Iterable[str]) -> None:
    """Remove replaced images that lost their tag; keep any still used by a container or child."""
    import docker.errors

    for image_id in image_ids:
        try:
            image = client.images.get(image_id)
            if image.tags:
                continue
            client.images.remove(image_id, noprune=False)
        except docker.errors.APIError:
            continue


def _chunk_lines(chunk: Mapping[str, Any]) -> list[str]:
    text = _ANSI_ESCAPE.sub("", str(chunk.get("stream") or chunk.get("status") or ""))
    return [line.rstrip() for line in text.splitlines() if line.strip()]


def build_files(ctx: RecipeContext, files: Mapping[str, ContextEntry], *,
                labels: Mapping[str, str], failure_hint: str) -> str:
    """Tar ``files`` and build them as ``ctx.spec.tag``: the one build path of every recipe."""
    with make_context(files) as context:
        return build_from_context(ctx.client, tag=ctx.spec.tag, context=context, labels=labels,
                                  nocache=ctx.force, emit=ctx.emit, failure_hint=failure_hint,
                                  options={"pull": True} if ctx.pull else None)

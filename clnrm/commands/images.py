"""``clnrm images build|list``: the local base images (nothing is pulled unless --pull)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import typer

from clnrm.cli_support import console, fail, styled

images_app = typer.Typer(help="Build and list the local base images (nothing is ever pulled).",
                         no_args_is_help=True)


@images_app.command("build")
def images_build(
    names: Annotated[list[str] | None, typer.Argument(
        help="busybox, debian, python-otel, demo-redis, demo-postgres, demo-app "
             "(default: all).")] = None,
    force: Annotated[bool, typer.Option(help="Rebuild even when cached.")] = False,
    pull: Annotated[bool, typer.Option(
        "--pull", help="Opt-in, for users with a registry: take the Debian base from "
                       "debian:bookworm-slim instead of debootstrapping it (no root or Linux "
                       "host needed); later builds keep it until --force.")] = False,
) -> None:
    """Build the local base images and cache them by content hash (nothing pulled unless
    --pull)."""
    from clnrm.backends.docker import docker_client
    from clnrm.errors import ClnrmError
    from clnrm.images import KNOWN_IMAGES, build_images

    try:
        unknown = [n for n in names or [] if n not in KNOWN_IMAGES]
        if unknown:
            raise ClnrmError(f"unknown image {unknown[0]!r}",
                             hint="known images: " + ", ".join(KNOWN_IMAGES))
        client = docker_client()
        out = console(stderr=True)
        with out.status("building images") as status:
            results = build_images(client, names or None, force=force, pull=pull,
                                   on_event=lambda n, m: status.update(f"{n}: {m[:100]}"))
    except ClnrmError as exc:
        fail(exc)
    for r in results:
        how = "cached" if r.cached else f"built in {r.seconds:.1f} s"
        console().print(f"[green]✓[/] {r.tag} ({how})")


@images_app.command("list")
def images_list() -> None:
    """Show the known local images and whether each is present."""
    from clnrm.backends.docker import docker_client
    from clnrm.errors import ClnrmError
    from clnrm.images import KNOWN_IMAGES

    try:
        client = docker_client()
    except ClnrmError as exc:
        fail(exc)
    from clnrm.images._user import BUILD_CONTEXT_LABEL, user_built_images

    rows = []
    for short, spec in KNOWN_IMAGES.items():
        present = bool(client.api.images(name=spec.tag))
        rows.append(("present" if present else "missing", short, spec.tag))
    for image in user_built_images(client):  # services' `build = {...}` images
        rows.append(("built", image.labels.get("clnrm.image.name", "build"),
                     f"{', '.join(image.tags) or image.id} "
                     f"(context {image.labels.get(BUILD_CONTEXT_LABEL, '?')})"))
    out = console()
    styles = {"present": "green", "built": "green", "missing": "red"}
    for (status, *_), line in zip(rows, aligned(rows), strict=True):
        out.print(styled(line[:len(status)], styles[status], line[len(status):]), soft_wrap=True)


def aligned(rows: Sequence[tuple[str, ...]]) -> list[str]:
    """Rows as lines whose columns start at the same offsets (two spaces between columns;
    the last column is not padded)."""
    widths = [max(len(cell) for cell in column) for column in zip(*rows, strict=True)]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=False))
            + "  " + row[-1] for row in rows]

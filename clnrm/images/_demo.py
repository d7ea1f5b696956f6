"""Recipes for the demo system's images: ``clnrm/demo-redis``, ``-postgres`` and ``-app``.

All three are Dockerfile builds on ``clnrm/python-otel`` whose context is files shipped
in ``clnrm.images`` (plus, for the app, wheels downloaded on the host, as for
python-otel): Redis and PostgreSQL are Debian's packages installed by apt inside the
build, the app's Python dependencies are pinned wheels, never an index. The databases
sit on python-otel rather than plain Debian because a small supervisor
(``demo-infra/demo_lifecycle.py``) reports each server's start and exit as spans, so
all five demo services appear in a test's trace.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Final

from clnrm.errors import BackendError
from clnrm.images._engine import build_files, local_image
from clnrm.images._model import PYTHON_IMAGE, RecipeContext
from clnrm.images._wheels import ensure_wheels, wheel_target, wheels_key

DEMO_REDIS_IMAGE: Final = "clnrm/demo-redis:latest"
DEMO_POSTGRES_IMAGE: Final = "clnrm/demo-postgres:latest"
DEMO_APP_IMAGE: Final = "clnrm/demo-app:latest"

_APT_HINT: Final = (
    "apt-get runs inside the build container on the default bridge network, so the Debian "
    f"mirror must be reachable from containers (try: docker run --rm {PYTHON_IMAGE} "
    "apt-get update)"
)
_SKIPPED_PARTS: Final = frozenset({"__pycache__"})


@dataclass(frozen=True)
class PackagedContextRecipe:
    """A Dockerfile build FROM a catalogue image, its context copied from package data.

    ``files`` maps context paths to paths under ``clnrm/images``; a source that is a
    folder is copied whole (``__pycache__`` and ``*.pyc`` skipped). ``requirements``,
    when set, names a pinned requirements file whose wheels are downloaded on the host
    and put under ``wheels/`` beside it. Every byte of the context is part of the
    content hash, so editing the app code rebuilds only the app image.
    """

    base: str
    files: tuple[tuple[str, str], ...]
    requirements: str | None = None
    failure_hint: str = _APT_HINT

    def inputs(self, ctx: RecipeContext) -> dict[str, str]:
        base = local_image(ctx.client, self.base)
        if base is None:
            raise BackendError(
                f"{ctx.spec.tag} is built FROM {self.base}, which is not present",
                backend="docker",
                hint=f"clnrm images build {ctx.spec.name} (builds what it needs first)",
            )
        found = {
            f"file:{name}": hashlib.sha256(content).hexdigest()
            for name, content in self._context_files().items()
        }
        if self.requirements is not None:
            target = wheel_target()
            requirements = _resource(self.requirements).read_text()
            found["wheels"] = f"{target.describe()}:{wheels_key(requirements, target)}"
        found["base"] = str(base.id)
        return found

    def build(self, ctx: RecipeContext, labels: dict[str, str]) -> str:
        files: dict[str, bytes | Path] = dict(self._context_files())
        if self.requirements is not None:
            requirements = _resource(self.requirements).read_text()
            wheels_dir = ensure_wheels(requirements, wheel_target(), emit=ctx.emit)
            for wheel in sorted(wheels_dir.glob("*.whl")):
                files[f"wheels/{wheel.name}"] = wheel
        return build_files(ctx, files, labels=labels, failure_hint=self.failure_hint)

    def _context_files(self) -> dict[str, bytes]:
        collected: dict[str, bytes] = {}
        for target, source in self.files:
            _collect(_resource(source), target, collected)
        if self.requirements is not None:
            collected["requirements.txt"] = _resource(self.requirements).read_bytes()
        return collected


def _collect(node: Traversable, target: str, into: dict[str, bytes]) -> None:
    if node.is_file():
        into[target] = node.read_bytes()
        return
    if not node.is_dir():
        raise BackendError(
            f"image data {target!r} is missing from the clnrm package",
            backend="docker",
            hint="reinstall clnrm (pip install -e .); package data lives under clnrm/images/",
        )
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        if child.name in _SKIPPED_PARTS or child.name.endswith(".pyc"):
            continue
        _collect(child, f"{target}/{child.name}", into)


def _resource(path: str) -> Traversable:
    node = resources.files("clnrm.images")
    for part in path.split("/"):
        node = node.joinpath(part)
    return node


_LIFECYCLE: Final = ("demo_lifecycle.py", "demo-infra/demo_lifecycle.py")

DEMO_REDIS_RECIPE: Final = PackagedContextRecipe(
    base=PYTHON_IMAGE,
    files=(("Dockerfile", "demo-redis/Dockerfile"), _LIFECYCLE),
)
"""Debian's redis-server, no persistence, run as ``redis`` under the lifecycle supervisor."""

DEMO_POSTGRES_RECIPE: Final = PackagedContextRecipe(
    base=PYTHON_IMAGE,
    files=(
        ("Dockerfile", "demo-postgres/Dockerfile"),
        ("init.sql", "demo-postgres/init.sql"),
        ("postgresql.conf", "demo-postgres/postgresql.conf"),
        ("pg_hba.conf", "demo-postgres/pg_hba.conf"),
        _LIFECYCLE,
    ),
)
"""Debian's PostgreSQL 15 with a cluster initialised at build time (database, user and
password ``demo``, seed rows), so a container accepts queries about a second after start."""

DEMO_APP_RECIPE: Final = PackagedContextRecipe(
    base=PYTHON_IMAGE,
    files=(
        ("Dockerfile", "demo-app/Dockerfile"),
        ("demo-app", "demo-app/demo-app"),
        ("demoapp", "demo-app/demoapp"),
    ),
    requirements="demo-app/requirements.txt",
    failure_hint=(
        "the app image needs only python-otel and the wheels in demo-app/requirements.txt, "
        "downloaded on the host (PyPI reachable once, then cached); pip never uses an index "
        "inside the build"
    ),
)
"""gateway, api and worker: one codebase, the role chosen by ``demo-app ROLE``."""

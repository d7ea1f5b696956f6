"""Recipe for ``clnrm/python-otel:latest``: Debian's python3 plus pinned OpenTelemetry wheels.

apt runs inside the build (containers reach the Debian mirror); pip inside a
container cannot reach PyPI, so the wheels are downloaded on the host for bookworm's
CPython 3.11 and this host's architecture, and installed with ``--no-index``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Final

from clnrm.errors import BackendError
from clnrm.images._engine import build_files, local_image
from clnrm.images._model import DEBIAN_IMAGE, RecipeContext
from clnrm.images._wheels import ensure_wheels, wheel_target, wheels_key

_DATA_DIR: Final = "python-otel"


class PythonOtelRecipe:
    """Dockerfile build on ``clnrm/debian:bookworm`` with the wheels in the build context."""

    failure_hint = (
        "apt-get runs inside the build container on the default bridge network, so the "
        "Debian mirror must be reachable from containers (try: docker run --rm "
        f"{DEBIAN_IMAGE} apt-get update); pip installs only the wheels downloaded on the host"
    )

    def inputs(self, ctx: RecipeContext) -> dict[str, str]:
        base = local_image(ctx.client, DEBIAN_IMAGE)
        if base is None:
            raise BackendError(
                f"{ctx.spec.tag} is built FROM {DEBIAN_IMAGE}, which is not present",
                backend="docker",
                hint="clnrm images build debian",
            )
        requirements = _data_text("requirements.txt")
        target = wheel_target()
        return {
            "Dockerfile": _data_text("Dockerfile"),
            "requirements.txt": requirements,
            "emit_spans.py": _data_text("emit_spans.py"),
            "clnrm_freeze.py": _data_text("clnrm_freeze.py"),
            "wheels": f"{target.describe()}:{wheels_key(requirements, target)}",
            "base": str(base.id),
        }

    def build(self, ctx: RecipeContext, labels: dict[str, str]) -> str:
        requirements = _data_text("requirements.txt")
        wheels_dir = ensure_wheels(requirements, wheel_target(), emit=ctx.emit)
        files: dict[str, bytes | Path] = {
            "Dockerfile": _data_text("Dockerfile").encode(),
            "requirements.txt": requirements.encode(),
            "emit_spans.py": _data_text("emit_spans.py").encode(),
            "clnrm_freeze.py": _data_text("clnrm_freeze.py").encode(),
        }
        for wheel in sorted(wheels_dir.glob("*.whl")):
            files[f"wheels/{wheel.name}"] = wheel
        return build_files(ctx, files, labels=labels, failure_hint=self.failure_hint)


def _data_text(name: str) -> str:
    return resources.files("clnrm.images").joinpath(_DATA_DIR, name).read_text()

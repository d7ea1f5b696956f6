"""Fixtures shared by unit and integration tests.

Docker tests never skip: ``make test`` starts an engine and builds the images
first, so a missing engine is a real failure, reported with the command to fix it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, timeout: float = 300, env: dict[str, str] | None = None,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m clnrm ARGS`` as a user would, capturing both streams."""
    return subprocess.run([sys.executable, "-m", "clnrm", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd or REPO,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="session")
def docker_client() -> Any:
    from clnrm.backends.docker import docker_client as connect
    from clnrm.errors import ClnrmError

    try:
        return connect()
    except ClnrmError as exc:
        pytest.fail(f"Docker tests need an engine: {exc} (run `make test`, which starts one)")


@pytest.fixture(scope="session")
def local_images(docker_client: Any) -> None:
    """Every local image the tests use (the demo's too), built once (cached by content hash)."""
    from clnrm.images import KNOWN_IMAGES, build_images

    build_images(docker_client, list(KNOWN_IMAGES))


def clnrm_resources(client: Any, run_id: str | None = None) -> dict[str, set[str]]:
    flt = {"label": f"clnrm.run={run_id}" if run_id else "clnrm.run"}
    return {
        "containers": {c["Id"] for c in client.api.containers(all=True, filters=flt)},
        "networks": {n["Id"] for n in client.api.networks(filters=flt)},
        "volumes": {v["Name"] for v in (client.api.volumes(filters=flt) or {}).get("Volumes")
                    or []},
    }


@pytest.fixture
def no_leaks(docker_client: Any) -> Iterator[None]:
    """Fails the test if it leaves any clnrm-labelled resource behind."""
    before = clnrm_resources(docker_client)
    yield
    after = clnrm_resources(docker_client)
    leaked = {k: after[k] - before[k] for k in after if after[k] - before[k]}
    assert not leaked, f"resources leaked: {leaked}"

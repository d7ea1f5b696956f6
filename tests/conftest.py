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


NO_CLUSTER = {"RAY_ADDRESS": ""}
"""Environment for swarm runs in tests: never join a Ray cluster the machine happens to name."""


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


@pytest.fixture
def logs_on_stderr() -> Iterator[None]:
    """Logging as `clnrm` sets it up before delegating to a sub-CLI: logs go to stderr and
    never mix into --format json output (use with ``pytest.mark.usefixtures``)."""
    import structlog

    from clnrm.logs import configure

    configure(0)
    yield
    structlog.reset_defaults()


def clnrm_resources(client: Any, run_id: str | None = None) -> dict[str, set[str]]:
    flt = {"label": f"clnrm.run={run_id}" if run_id else "clnrm.run"}
    return {
        "containers": {c["Id"] for c in client.api.containers(all=True, filters=flt)},
        "networks": {n["Id"] for n in client.api.networks(filters=flt)},
        "volumes": {v["Name"] for v in (client.api.volumes(filters=flt) or {}).get("Volumes")
                    or []},
    }


def assert_run_gone(client: Any, run_id: str) -> None:
    """Nothing labelled with ``run_id`` is left: no container, network or volume."""
    left = clnrm_resources(client, run_id)
    assert left == {"containers": set(), "networks": set(), "volumes": set()}, left


def _orphaned_or_ours(client: Any, kind: str, ident: str) -> bool:
    """A resource this test leaked: owned by this process, or by one that has exited.

    Resources of a live owner that is not this process belong to a run that is still
    going (a CLI subprocess of another test, or a second clnrm run sharing the engine)
    and are not this test's leak; a CLI subprocess of this test that left something
    behind has exited by now, so its resources count.
    """
    from clnrm.labels import LABEL_OWNER, owner_alive

    try:
        if kind == "containers":
            labels = client.api.inspect_container(ident)["Config"]["Labels"] or {}
        elif kind == "networks":
            labels = client.api.inspect_network(ident).get("Labels") or {}
        else:
            labels = client.api.inspect_volume(ident).get("Labels") or {}
    except Exception:  # removed in the meantime: not left behind
        return False
    owner = labels.get(LABEL_OWNER, "")
    return owner.split(":")[1:2] == [str(os.getpid())] or not owner_alive(owner)


@pytest.fixture
def no_leaks(docker_client: Any) -> Iterator[None]:
    """Fails the test if it leaves any clnrm-labelled resource behind (see
    :func:`_orphaned_or_ours` for why resources of other live runs are not counted)."""
    before = clnrm_resources(docker_client)
    yield
    after = clnrm_resources(docker_client)
    leaked = {k: {i for i in after[k] - before[k] if _orphaned_or_ours(docker_client, k, i)}
              for k in after}
    leaked = {k: v for k, v in leaked.items() if v}
    assert not leaked, f"resources leaked: {leaked}"

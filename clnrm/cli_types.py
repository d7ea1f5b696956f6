"""Option types every command-line app shares (``clnrm``, ``clnrm swarm``, ``clnrm memory``,
``clnrm perf``): one definition each, so ``--format`` and ``--backend`` accept the same
values everywhere.  Only ``enum`` is imported, which keeps ``clnrm --help`` fast."""

from __future__ import annotations

from enum import StrEnum


class OutputFormat(StrEnum):
    """``--format``: text for people, or the JSON envelope of :mod:`clnrm.output`."""

    human = "human"
    json = "json"


class BackendName(StrEnum):
    """``--backend``: where tests run (see :func:`clnrm.runner.make_backend`)."""

    docker = "docker"
    local = "local"

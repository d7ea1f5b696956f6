"""Ray's start must not take SIGTERM away from the command that started it.

Here and not in tests/unit: `make test` runs the unit tests beside these, and this embedded
Ray, started while a test here ran a local cluster, failed with Ray's "Authentication token
is missing or incorrect" (local clusters of one user share ~/.ray/auth_token)."""

from __future__ import annotations

import signal
from types import FrameType

import pytest

pytestmark = pytest.mark.ray


def test_the_callers_sigterm_handler_survives_ray_init() -> None:
    """``ray.init`` installs a SIGTERM handler that exits at once; ``clnrm swarm run`` and
    ``clnrm campaign`` turn SIGTERM into their Ctrl-C path (actors killed, containers reaped,
    exit 130), which only works if their handler is still the one installed."""
    from clnrm.swarm.session import ray_session

    def ours(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    before = signal.signal(signal.SIGTERM, ours)
    try:
        with ray_session(None, num_cpus=1):
            assert signal.getsignal(signal.SIGTERM) is ours
    finally:
        signal.signal(signal.SIGTERM, before)

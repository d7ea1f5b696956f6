"""Ray for one command: an embedded local instance by default, or a cluster to join.

Embedded Ray is started small and quiet (two CPUs, no dashboard, worker logs
kept in files, a bounded object store) and is always shut down, on Ctrl-C
too, because it is a tree of processes that would otherwise outlive ``clnrm``.
Usage statistics are switched off before Ray starts: a test tool must send
nothing anywhere it was not asked to.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Final

from pydantic import BaseModel

from clnrm.errors import ClnrmError

ADDRESS_ENV: Final = "RAY_ADDRESS"
NAMESPACE: Final = "clnrm"
TOKEN_WARNING_LOGGER: Final = "ray._private.authentication.authentication_token_setup"
ENGINE_RESOURCE: Final = "clnrm_docker"
"""Custom resource of Ray nodes that have a Docker engine; agents that start containers
need it (an embedded Ray has it: this machine runs the tests)."""
ENGINE_SLOTS: Final = 100
OBJECT_STORE_BYTES: Final = 128 * 1024 * 1024  # small models only cross the boundary


class SwarmUnavailable(ClnrmError):
    """Ray is missing, or the cluster named by ``--address`` / ``RAY_ADDRESS`` did not answer."""


class RaySession(BaseModel):
    """Where the swarm's actors run."""

    address: str  # "embedded" or what was joined
    embedded: bool


def import_ray() -> ModuleType:
    try:
        import ray
    except ImportError as exc:
        raise SwarmUnavailable("the swarm needs Ray, which is not installed",
                               hint="pip install 'clnrm[swarm]'") from exc
    return ray


def _token_auth_when_available() -> None:
    """Joining a cluster: token authentication on when this user has a token.

    Ray switches it on by itself only for ``address=None``/``"auto"``, so an explicit
    ``--address`` to a cluster that requires tokens (any ``ray start --head`` that found
    ``~/.ray/auth_token``, ``clnrm swarm cluster up``) failed with "Authentication token
    is missing".  A token sent to a cluster without authentication is ignored; an
    explicit ``RAY_AUTH_MODE`` is left as it is.
    """
    if os.environ.get("RAY_AUTH_MODE") is not None:
        return
    from ray._private.authentication.authentication_token_setup import (
        maybe_enable_token_auth_if_token_available,
    )

    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def _cluster_messages_to_stderr() -> None:
    """Ray prints the errors a cluster publishes to the driver (a worker node that died:
    "(raylet) Raylet is terminated...") on stdout, which is ``--format json``'s channel;
    they go to stderr instead.  ``listen_error_messages`` looks the printer up by name
    in its module on every message, so rebinding it there is enough."""
    import ray._private.worker as worker

    printer = worker.print_to_stdstream
    if getattr(printer, "clnrm_stderr", False):
        return

    def to_stderr(data: dict[str, object], ignore_prefix: bool) -> None:
        printer({**data, "is_err": True}, ignore_prefix)

    to_stderr.clnrm_stderr = True  # type: ignore[attr-defined]
    worker.print_to_stdstream = to_stderr


def _sigterm_handler() -> object:
    return signal.getsignal(signal.SIGTERM) if _main_thread() else None


def _restore_sigterm(handler: object) -> None:
    """``ray.init`` replaces SIGTERM's handler with one that exits at once, which skipped
    the caller's: ``clnrm swarm run`` and ``campaign`` treat SIGTERM as Ctrl-C (actors
    killed, containers reaped, exit 130), so theirs is put back."""
    if handler is not None and _main_thread():
        signal.signal(signal.SIGTERM, handler)  # type: ignore[arg-type]


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def ray_session(address: str | None = None, *, num_cpus: int = 2) -> Iterator[RaySession]:
    """Start or join Ray for the block; ``address`` falls back to ``$RAY_ADDRESS``.

    The ``clnrm`` namespace keeps the swarm's named actors apart from anything
    else on a shared cluster.
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray = import_ray()
    target = address or os.environ.get(ADDRESS_ENV) or None
    quiet = {"namespace": NAMESPACE, "log_to_driver": False, "logging_level": logging.ERROR}
    # Ray turns token authentication on for a new local cluster and warns that it
    # did, on every start; the protection stays, the warning goes.
    logging.getLogger(TOKEN_WARNING_LOGGER).setLevel(logging.ERROR)
    term = _sigterm_handler()
    try:
        if target:
            _token_auth_when_available()
            ray.init(address=target, **quiet)
        else:
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False,
                     object_store_memory=OBJECT_STORE_BYTES,
                     resources={ENGINE_RESOURCE: ENGINE_SLOTS}, **quiet)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        raise SwarmUnavailable(f"cannot {'join Ray at ' + target if target else 'start Ray'}: "
                               f"{exc}",
                               hint="check --address / RAY_ADDRESS (ray://HOST:10001 or "
                                    "HOST:6379), or drop it to use embedded Ray") from exc
    finally:
        _restore_sigterm(term)
    _cluster_messages_to_stderr()
    try:
        yield RaySession(address=target or "embedded", embedded=not target)
    finally:
        ray.shutdown()

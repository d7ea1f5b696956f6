"""Resource labels and owner identity: how a run marks what it creates and how a later
process tells a live run from the leftovers of a killed one.

Every container, network and volume a run creates carries ``clnrm.run=<run id>`` and
``clnrm.owner=host:pid:start``; chaos journals carry the same owner.  This is the one
place those spellings live, so the Docker backend (which writes the labels), ``clnrm gc``
(which reads them), the chaos journal and the proxy manager (which record owners and
process identities) depend on this small module and not on one another.
"""

from __future__ import annotations

import os
import socket

LABEL_RUN = "clnrm.run"
LABEL_OWNER = "clnrm.owner"
LABEL_TEST = "clnrm.test"
LABEL_SERVICE = "clnrm.service"


def process_start_time(pid: int) -> str:
    """Kernel start time of ``pid`` (clock ticks since boot, ``"0"`` when unknown): with the
    pid it names one process for good, so a reused pid is never taken for the old one."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            # field 22 (starttime) comes after the parenthesised command name
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "0"


def owner_label() -> str:
    """``host:pid:starttime`` of this process; start time guards against pid reuse."""
    return f"{socket.gethostname()}:{os.getpid()}:{process_start_time(os.getpid())}"


def owner_alive(owner: str) -> bool:
    """True when the owner is this host's live process with the same start time.

    Owners from other hosts count as alive: we cannot see their processes and
    must not delete a colleague's running test on a shared engine.
    """
    try:
        host, pid_text, start = owner.split(":")
        pid = int(pid_text)
    except ValueError:
        return False
    if host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return process_start_time(pid) == start

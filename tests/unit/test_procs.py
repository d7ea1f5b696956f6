"""clnrm.procs reads /proc; these run real processes (a shell with a sleeping child)."""

from __future__ import annotations

import subprocess
import time

from clnrm.procs import ancestor_running, cmdline, descendants, pid_alive


def test_ancestor_running_finds_the_nearest_matching_process_inside_the_family() -> None:
    shell = subprocess.Popen(["sh", "-c", "sleep 30 & wait"])
    try:
        deadline = time.monotonic() + 10
        while not (family := descendants(shell.pid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        (sleeper,) = family
        assert cmdline(sleeper).startswith("sleep")
        within = family | {shell.pid}
        assert ancestor_running(sleeper, "sh -c", within) == shell.pid
        assert ancestor_running(sleeper, "sleep", within) == sleeper  # at the pid itself
        assert ancestor_running(sleeper, "ray::", within) is None
        # outside ``within`` nothing is looked at, even a match
        assert ancestor_running(sleeper, "sh -c", {sleeper}) is None
    finally:
        subprocess.run(["pkill", "-P", str(shell.pid)], check=False)  # the sleeper first
        shell.kill()
        shell.wait()
    assert not pid_alive(shell.pid)

"""The chaos layer: real faults injected into a test's own containers, on a schedule,
judged by resilience expectations, and always rolled back.

Layout: :mod:`.base` (the fault plugin contract), :mod:`.context` (what a fault may
touch: only the containers and networks of the current test), :mod:`.netns` (entering
a container's network namespace from the host), :mod:`.proxy` (the userspace TCP proxy
with Toxiproxy-named toxics, since ``tc netem`` is unavailable), :mod:`.journal`
(what ``clnrm gc`` needs to undo faults after a SIGKILL), :mod:`.faults` (the built-in
catalog), :mod:`.engine` (scheduling, steady state, probes, rollback) and
:mod:`.resilience` (judging ``[[expect.resilience]]``).
"""

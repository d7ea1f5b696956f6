"""Run work over a dependency graph: each node the moment its own prerequisites are done.

Used twice per test: to start services (a service's prerequisites are its
dependencies, so it starts as soon as *they* are ready, not when a whole
level is) and to remove them (prerequisites are its dependants, so teardown
runs in reverse order yet as parallel as the graph allows).

On the first failure no new work starts, ``abort`` is set so work already
running (a readiness wait, say) can give up early, and the first error is
raised once everything in flight has returned.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from clnrm.results import ServiceTimeline

NodeWork = Callable[[str, threading.Event], None]
"""``work(node, abort)``: do one node's work; should return early once ``abort`` is set."""

_CANCEL_POLL_S = 0.2  # how quickly a run-wide cancel reaches work in flight


def run_in_dependency_order(requires: Mapping[str, Collection[str]], work: NodeWork, *,
                            cancelled: threading.Event | None = None,
                            abort: threading.Event | None = None,
                            thread_name: str = "clnrm-dag") -> None:
    """Call ``work`` for every node after all of ``requires[node]`` completed without error.

    Raises the first error any call raised (errors of calls that merely
    stopped because of the abort are dropped in its favour).
    """
    abort = abort or threading.Event()
    if not requires:
        return
    waiting = {node: set(deps) for node, deps in requires.items()}
    dependants: dict[str, list[str]] = {node: [] for node in requires}
    for node, deps in requires.items():
        for dep in deps:
            dependants[dep].append(node)
    first_error: BaseException | None = None
    pool = ThreadPoolExecutor(max_workers=len(requires), thread_name_prefix=thread_name)
    running: dict[Future[None], str] = {}

    def submit_ready(nodes: list[str]) -> None:
        for node in sorted(nodes):
            if not waiting[node] and not abort.is_set():
                del waiting[node]
                running[pool.submit(work, node, abort)] = node

    try:
        submit_ready(list(waiting))
        while running:
            done, _ = wait(list(running), timeout=_CANCEL_POLL_S, return_when=FIRST_COMPLETED)
            if cancelled is not None and cancelled.is_set():
                abort.set()
            for fut in done:
                node = running.pop(fut)
                error = fut.exception()
                if error is not None:
                    if first_error is None:
                        first_error = error
                    abort.set()
                    continue
                freed = []
                for child in dependants[node]:
                    if child in waiting:
                        waiting[child].discard(node)
                        if not waiting[child]:
                            freed.append(child)
                submit_ready(freed)
    except BaseException:
        abort.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if first_error is not None:
        raise first_error


class Timeline:
    """Thread-safe record of each service's start and ready moments, relative to ``t0``."""

    def __init__(self, t0: float, requires: Mapping[str, Collection[str]],
                 readiness: Mapping[str, list[str]] | None = None) -> None:
        self._t0 = t0
        self._lock = threading.Lock()
        self._rows = {name: ServiceTimeline(service=name, depends_on=sorted(deps),
                                            readiness=list((readiness or {}).get(name, [])))
                      for name, deps in requires.items()}

    def started(self, service: str) -> None:
        self._set(service, "start_s")

    def ready(self, service: str) -> None:
        self._set(service, "ready_s")

    def _set(self, service: str, moment: str) -> None:
        offset = round(time.monotonic() - self._t0, 4)
        with self._lock:
            setattr(self._rows[service], moment, offset)

    def rows(self) -> list[ServiceTimeline]:
        """Copies, in start order (never-started services last, by name)."""
        with self._lock:
            rows = [r.model_copy() for r in self._rows.values()]
        return sorted(rows, key=lambda r: (r.start_s is None, r.start_s or 0.0, r.service))

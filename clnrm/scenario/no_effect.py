"""Keys a test file may contain that load and then change nothing.

Upstream documented many keys it never read, and clnrm accepts them so upstream
files load unchanged; some tables (``[self_healing]``, ``[intelligence]``) are
defined before the layer that will read them exists.  A key that is accepted and
then silently ignored misleads the author into thinking it acts, so each one is
listed here with the reason it has no effect and what to do instead; the loader
reports every one present in a file as a located warning (an error with
``--strict``).  When a key gains an effect, delete its entry: the list is the
single record of what clnrm accepts but does not act on.

Purely descriptive keys (``name``, ``description``, ``author``, ``version``,
``tags``, a service's ``type``) are documentation by design and are not listed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from clnrm.scenario.diagnostics import Problem
from clnrm.scenario.locate import KeyPath

ANY_VALUE: Final = object()
"""``quiet_value`` default: the key has no effect whatever its value."""


@dataclass(frozen=True)
class InertKey:
    """One accepted key (or whole table) with no effect.

    ``pattern`` is a TOML key path where ``"*"`` matches any table key and ``"#"``
    any array index.  ``quiet_value`` is a value that asks for nothing (the
    behaviour clnrm has anyway), so writing it is not worth a warning.
    """

    pattern: tuple[str, ...]
    why: str
    hint: str | None = None
    quiet_value: object = ANY_VALUE


_NOT_BUILT: Final = "the {} layer is not built yet, so {}"
_STEPS: Final = (("steps", "#"), ("scenario", "#", "steps", "#"))

INERT_KEYS: Final[tuple[InertKey, ...]] = (
    # [orchestration]: fail_fast, max_parallel and timeout act (see clnrm.runner/execution)
    InertKey(("orchestration", "mode"), "files are scheduled by the run, not by a file",
             "run files in parallel with clnrm run --jobs N", quiet_value="sequential"),
    InertKey(("orchestration", "retries"), "a failed test is not retried",
             "remove the key; make the test deterministic instead", quiet_value=0),
    InertKey(("orchestration", "backend"), "the backend is chosen for the whole run",
             "use clnrm run --backend docker|local"),
    InertKey(("orchestration", "shard"), "files are not sharded",
             "split the run by naming the files or folders to run"),
    # layers that do not exist yet: one warning for the whole table
    # [self_healing] acts: clnrm run --heal (clnrm.healing)
    # [intelligence] acts: it plans the swarm's intelligence agent (clnrm.intelligence)
    *(InertKey(("intelligence", key), "tests are learned from traces; no model or "
               "provider is called", "remove the key (see docs/intelligence.md)")
      for key in ("provider", "model", "endpoint", "features")),
    # upstream keys clnrm accepts for compatibility but does not act on
    *(InertKey((*step, key), "steps are not retried",
               "remove the key; a step that needs retries can loop in its command",
               quiet_value=quiet)
      for step in _STEPS for key, quiet in (("retry_on_failure", False), ("max_retries", 0))),
    InertKey(("scenario", "#", "concurrent"), "a scenario's steps always run in order",
             quiet_value=False),
    InertKey(("scenario", "#", "policy"), "the policy is checked but not enforced",
             "limit the test's time with [meta] timeout"),
    InertKey(("scenario", "#", "artifacts"), "what is kept is not chosen per scenario",
             "spans of every test are written under clnrm run --artifacts DIR"),
    *(InertKey(("services", "*", key), "no service plugin reads it",
               'pass credentials to the service in env = { NAME = "value" }')
      for key in ("username", "password", "strict")),
    *(InertKey(("service", "*", key), "no service plugin reads it",
               'pass credentials to the service in env = { NAME = "value" }')
      for key in ("username", "password", "strict")),
    *(InertKey(("otel", key),
               "clnrm points every service's OpenTelemetry SDK at its own receiver "
               "(OTLP/HTTP) and does not read this key",
               "[otel] only switches the span receiver on; its keys are not needed",
               quiet_value=quiet)
      for key, quiet in (("exporter", ANY_VALUE), ("endpoint", ANY_VALUE),
                         ("protocol", ANY_VALUE), ("sample_ratio", 1.0), ("resources", {}),
                         ("headers", {}), ("propagators", ANY_VALUE))),
    InertKey(("otel_headers",), "clnrm does not send OTLP headers", quiet_value={}),
    InertKey(("otel_propagators",), "clnrm does not read the propagators list"),
    InertKey(("report", "json"), "the report path is not read from the file",
             "use clnrm run --report-json PATH"),
    InertKey(("report", "json_path"), "the report path is not read from the file",
             "use clnrm run --report-json PATH"),
    InertKey(("report", "junit"), "the report path is not read from the file",
             "use clnrm run --report-junit PATH"),
    InertKey(("report", "digest"), "the digest path is not read from the file",
             "use clnrm run --digest to print each test's span digest"),
    InertKey(("limits", "cpu_millicores"), "container CPU limits are not applied"),
    InertKey(("limits", "memory_mb"), "container memory limits are not applied"),
    InertKey(("matrix",), "the test is not expanded over a matrix; it runs once",
             "write one file per combination (templates can share the body)", quiet_value={}),
    InertKey(("otel_validation",), "the legacy [otel_validation] table is not judged",
             "state what the spans must show with [[expect.span]] and the other "
             "[[expect.*]] tables"),
    InertKey(("assertions",), "[assertions] are not evaluated",
             "state what the spans must show with the [[expect.*]] tables"),
    InertKey(("test", "assertions"), "[test.assertions] are not evaluated",
             "state what the spans must show with the [[expect.*]] tables"),
)


PROJECT_FILE_HINTS: Final[dict[str, str]] = {
    "cli": "pass clnrm run --jobs N, --fail-fast, --format instead",
    "containers": "pass clnrm run --default-image IMAGE; clnrm never pulls and always "
                  "removes what it created",
    "services": "set timeouts and health checks on each service in the test file",
    "observability": "pass clnrm run --otel-endpoint URL for clnrm's own spans; -v for logs",
    "plugins": "plugins are found through Python entry points (clnrm plugins)",
    "performance": "set [performance] in the test file",
    "test_execution": "set [meta] timeout and step timeout in the test file",
    "reporting": "pass clnrm run --report-json/--report-junit/--report-html PATH",
    "security": "every test runs on its own network; nothing to configure",
}
"""``cleanroom.toml`` sections: ``clnrm run`` does not read that file (``[project]`` is
descriptive), so each section present is one has-no-effect warning, with what to use."""


def project_file_problems(data: dict[str, Any]) -> list[Problem]:
    """One problem per section of ``cleanroom.toml`` (``data``) other than ``[project]``."""
    return [Problem("has no effect: clnrm run does not read cleanroom.toml", (table,),
                    PROJECT_FILE_HINTS.get(table))
            for table in data if table in PROJECT_FILE_HINTS]


def inert_key_problems(data: dict[str, Any]) -> list[Problem]:
    """One problem per key of ``data`` (the parsed file) that has no effect.

    A table switched off (``enabled = false``, or ``false`` in ``[layers]``) asks
    for nothing, so its keys are not reported.
    """
    problems: list[Problem] = []
    for entry in INERT_KEYS:
        for path, value in _present(data, entry.pattern):
            if entry.quiet_value is not ANY_VALUE and value == entry.quiet_value:
                continue
            if _switched_off(data, str(path[0])):
                continue
            problems.append(Problem(f"has no effect: {entry.why}", path, entry.hint))
    return problems


def _switched_off(data: dict[str, Any], table: str) -> bool:
    value = data.get(table)
    layers = data.get("layers")
    if isinstance(layers, dict) and layers.get(table) is False:
        return True
    return isinstance(value, dict) and value.get("enabled") is False


def _present(node: Any, pattern: tuple[str, ...], at: KeyPath = ()) -> Iterator[
        tuple[KeyPath, Any]]:
    """Concrete paths in ``node`` matching ``pattern``, with their values."""
    if not pattern:
        yield at, node
        return
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        if isinstance(node, list):
            for index, item in enumerate(node):
                yield from _present(item, rest, (*at, index))
    elif isinstance(node, dict):
        keys = list(node) if head == "*" else [head] if head in node else []
        for key in keys:
            yield from _present(node[key], rest, (*at, key))


__all__ = ["INERT_KEYS", "PROJECT_FILE_HINTS", "InertKey", "inert_key_problems",
           "project_file_problems"]

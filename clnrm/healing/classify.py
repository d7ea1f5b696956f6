"""Put a failed test in one :class:`FailureClass`, quoting the lines that decided it.

The classifier reads only what a run records: the test's message (readiness
errors carry the probe, its limit, the container status, the OOM flag and a log
tail), each step's exit code and output, the validation verdicts, the chaos
report, and the scenario's declared services (limits, ports, dependencies).  It
is a pure function, so the labelled set in ``tests/healing/`` measures it and
the bench reports its macro-F1.

The order of the rules is the order of trust: an image that is not there explains
everything after it; a container that died explains a missing span; a step whose
expectation failed while every service was healthy is the product's fault.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final

from clnrm.healing.model import Classification, FailureClass, FailureContext

if TYPE_CHECKING:
    from clnrm.results import StepResult, TestResult
    from clnrm.scenario.model import Scenario

_Verdict = Callable[..., Classification]
"""``verdict(cls, *evidence, service=..., confidence=..., **extra)`` of one classification."""

_READINESS_EXIT: Final = re.compile(
    r"service '(?P<svc>[^']+)' exited with code (?P<code>-?\d+|None) before it was ready")
_READINESS_SLOW: Final = re.compile(
    r"service '(?P<svc>[^']+)' not ready: (?P<kind>\w+) probe failed: .*?"
    r"\((?P<which>the probe|the start) timeout\); last seen: (?P<seen>.*?); "
    r"container status: (?P<status>[\w-]+)", re.S)
_LOG_SPLIT: Final = re.compile(r"--- last log lines of [^\n]+ ---\n")
_OOM: Final = re.compile(r"OOMKilled|out of memory|oom-kill", re.I)
_RESOURCE: Final = re.compile(
    r"No space left on device|Too many open files|Cannot allocate memory|"
    r"Resource temporarily unavailable|can't fork|Disk quota exceeded", re.I)
_CONNECT_FAIL: Final = re.compile(
    r"(?:Connection refused|can't connect|could not connect|connection reset|bad address|"
    r"Name or service not known|could not resolve|not ready|unreachable|No route to host|"
    r"Temporary failure in name resolution)", re.I)
_BAD_ADDRESS: Final = re.compile(r"bad address '([^']+)'|could not resolve (?:host:? )?'?([\w.-]+)")
_PROGRESS: Final = re.compile(
    r"\b(starting|loading|initiali[sz]ing|migrating|warming|booting|still working|"
    r"progress|compiling|waiting)\b", re.I)
_IMAGE_MISSING: Final = re.compile(r"image '([^']+)' is not present")
_STEP_TIMEOUT: Final = re.compile(r"timed out after [\d.]+ s|test timeout of [\d.]+ s reached")
_EXEC_FAILED: Final = re.compile(
    r"OCI runtime exec failed|executable file not found|exec format error|"
    r"chdir to cwd|no such file or directory", re.I)
_NOT_RUNNING: Final = re.compile(r"service '([^']+)' is not running")
LOW_CPUS: Final = 0.25
"""A ``cpus`` limit below this, on a service that timed out, reads as CPU starvation."""


def classify(test: TestResult, scenario: Scenario | None = None, *,
             reruns: Sequence[bool] = ()) -> Classification:
    """The class of a failed ``test`` (``reruns``: unchanged reruns, True = passed).

    Any passing rerun makes the failure ``flaky`` whatever the first run looked like,
    with the pass rate as the stated confidence; otherwise the first run's record
    decides.  A passing test is ``unknown`` with evidence saying it passed.
    """
    if test.outcome.value == "passed":
        return Classification(failure_class=FailureClass.unknown, evidence=["the test passed"])
    base = _first_run(test, scenario)
    if reruns and any(reruns):
        runs = 1 + len(reruns)
        passes = sum(1 for r in reruns if r)
        return base.model_copy(update={
            "failure_class": FailureClass.flaky, "reruns": list(reruns),
            "confidence": round(1.0 - passes / runs if passes * 2 <= runs else passes / runs, 3),
            "evidence": [f"unchanged reruns: {passes} of {len(reruns)} passed after the "
                         f"first run failed ({base.failure_class.value}-like)",
                         *base.evidence][:4]})
    if reruns:
        return base.model_copy(update={"reruns": list(reruns), "evidence": [
            *base.evidence, f"failed the same way on {len(reruns)} unchanged rerun(s)"]})
    return base


def _first_run(test: TestResult, sc: Scenario | None) -> Classification:
    message = test.message or ""
    parts = _LOG_SPLIT.split(message, maxsplit=1)
    head, logs = parts[0], (parts[1] if len(parts) > 1 else "")

    def verdict(cls: FailureClass, *evidence: str, service: str | None = None,
                confidence: float = 0.9, **extra: object) -> Classification:
        return Classification(failure_class=cls, evidence=[_quote(e) for e in evidence if e],
                              confidence=confidence, context=context_of(sc, service, test),
                              **extra)  # type: ignore[arg-type]

    if (m := _IMAGE_MISSING.search(message)) is not None:
        return verdict(FailureClass.image_missing, m.group(0), confidence=1.0)
    if (m := _READINESS_EXIT.search(head)) is not None:
        return _exited(verdict, sc, m.group("svc"), m.group("code"), head, logs)
    if (m := _READINESS_SLOW.search(head)) is not None:
        return _not_ready(verdict, sc, m, logs)
    if (m := _NOT_RUNNING.search(message)) is not None:
        svc = m.group(1)
        if _OOM.search(message) or _memory_mb(sc, svc) is not None:
            return verdict(FailureClass.oom_killed, m.group(0), _limit_text(sc, svc),
                           service=svc, confidence=0.7)
        return verdict(FailureClass.crashed_on_start, m.group(0), service=svc, confidence=0.7)
    if (down := _died(test)) is not None:  # the self_healing layer saw it (engine state)
        svc, text = down
        if "OOMKilled" in text or (" 137" in text and _memory_mb(sc, svc) is not None):
            return verdict(FailureClass.oom_killed, text, _limit_text(sc, svc), service=svc)
        return verdict(FailureClass.crashed_on_start, text, service=svc, confidence=0.7)
    failed = [s for s in test.steps if s.outcome.value == "failed"]
    if failed:
        return _step(verdict, sc, failed[0])
    if test.failed_validations:
        bad = test.failed_validations[0]
        return verdict(FailureClass.product_defect,
                       f"{bad.validator} expectation failed: {bad.expectation}",
                       f"expected {bad.expected}; seen {bad.seen}" if bad.expected else "",
                       "every service started and every step passed")
    if (r := _RESOURCE.search(message)) is not None:
        return verdict(FailureClass.resource_starvation, _line_of(message, r))
    if (r := _EXEC_FAILED.search(message)) is not None:  # the engine refused the exec itself
        return verdict(FailureClass.port_or_config_mismatch, _line_of(message, r),
                       "the file names a program or folder the image does not have",
                       confidence=0.7)
    return verdict(FailureClass.unknown, message.splitlines()[0] if message else "no message",
                   confidence=0.3)


def _died(test: TestResult) -> tuple[str, str] | None:
    """A service the ``self_healing`` layer found dead (killed, or exited non-zero) when
    the test went wrong, in words; a service that exited 0 finished its job."""
    env = test.environment
    if env is None:
        return None
    for svc, st in env.down().items():
        if st.get("oom_killed") or st.get("exit_code") not in (0, None):
            return svc, (f"{svc} was {st.get('status') or 'not running'} (exit code "
                         f"{st.get('exit_code')}{', OOMKilled' if st.get('oom_killed') else ''}"
                         f", {st.get('restarts', 0)} restart(s)) when {env.moment}")
    return None


def _exited(verdict: _Verdict, sc: Scenario | None, svc: str, code: str, head: str,
            logs: str) -> Classification:
    first = head.splitlines()[0]
    if code == "0":  # it ended normally: not a crash, and no restart policy re-runs it
        return verdict(FailureClass.unknown, first, "exit code 0 is a normal end, not a crash",
                       _last_line(logs) and f"last log line: {_last_line(logs)}", service=svc,
                       confidence=0.5)
    if _OOM.search(head) or (code == "137" and _memory_mb(sc, svc) is not None):
        return verdict(FailureClass.oom_killed, first, _limit_text(sc, svc), service=svc,
                       confidence=0.95)
    if (m := _RESOURCE.search(logs)) is not None:
        return verdict(FailureClass.resource_starvation, first, _line_of(logs, m), service=svc)
    dep = _needed_peer(sc, svc, logs)
    if dep is not None:
        peer, line = dep
        return verdict(FailureClass.dependency_not_ready, first, line,
                       f"{svc!r} does not declare depends_on {peer!r}", service=svc,
                       dependency=peer)
    if (m := _BAD_ADDRESS.search(logs)) is not None:
        return verdict(FailureClass.port_or_config_mismatch, first, _line_of(logs, m),
                       service=svc, confidence=0.7)
    return verdict(FailureClass.crashed_on_start, first,
                   _last_line(logs) and f"last log line: {_last_line(logs)}", service=svc,
                   confidence=0.7)


def _not_ready(verdict: _Verdict, sc: Scenario | None, m: re.Match[str],
               logs: str) -> Classification:
    svc, kind, seen, status = m.group("svc"), m.group("kind"), m.group("seen"), m.group("status")
    first = m.group(0).split("; last seen")[0]
    if status in ("exited", "dead"):
        return verdict(FailureClass.crashed_on_start, first, f"container status: {status}",
                       service=svc, confidence=0.7)
    cpus = _cpus(sc, svc)
    if cpus is not None and cpus < LOW_CPUS:
        return verdict(FailureClass.resource_starvation, first,
                       f"{svc!r} is limited to cpus = {cpus:g}", service=svc)
    if (r := _RESOURCE.search(logs)) is not None:
        return verdict(FailureClass.resource_starvation, first, _line_of(logs, r), service=svc)
    if kind in ("tcp", "http") and re.search(r"refused|reset", seen, re.I):
        declared = _probe_port(sc, svc, kind)
        listening = _listening_port(sc, svc, logs)
        if declared is not None and listening is not None and listening != declared:
            return verdict(FailureClass.port_or_config_mismatch, first, f"last seen: {seen}",
                           f"{svc!r} says it listens on {listening}", service=svc,
                           port=declared, seen_port=listening)
    progress = _PROGRESS.search(logs)
    if m.group("which") == "the start" or progress is not None:
        return verdict(FailureClass.slow_start, first, f"last seen: {seen}",
                       _line_of(logs, progress) if progress else "the start limit ran out",
                       service=svc, confidence=0.8)
    return verdict(FailureClass.readiness_timeout, first, f"last seen: {seen}",
                   f"container status: {status}", service=svc, confidence=0.85)


def _step(verdict: _Verdict, sc: Scenario | None, step: StepResult) -> Classification:
    msg = step.message or ""
    text = f"{step.stdout}\n{step.stderr}"
    where = f"step {step.name!r}: {msg.splitlines()[0] if msg else 'failed'}"
    svc = step.service
    if _STEP_TIMEOUT.search(msg):
        return verdict(FailureClass.timeout, where, "a step's own limit is an expectation",
                       service=svc)
    if step.exit_code in (126, 127) and (r := _EXEC_FAILED.search(text + msg)) is not None:
        return verdict(FailureClass.port_or_config_mismatch, where, _line_of(text + msg, r),
                       "the file names a program or folder the image does not have",
                       service=svc, confidence=0.8)
    if step.exit_code == 137 and (_OOM.search(text) or _memory_mb(sc, svc) is not None
                                  or "Killed" in text):
        return verdict(FailureClass.oom_killed, where, _limit_text(sc, svc) or "exit 137",
                       service=svc, confidence=0.8)
    if (r := _RESOURCE.search(text)) is not None:
        return verdict(FailureClass.resource_starvation, where, _line_of(text, r), service=svc)
    if (b := _BAD_ADDRESS.search(text)) is not None:
        host = b.group(1) or b.group(2)
        if sc is None or host not in sc.services:
            return verdict(FailureClass.port_or_config_mismatch, where, _line_of(text, b),
                           f"{host!r} is not a service of this test", service=svc)
    if re.search(r"Connection refused|can't connect", text, re.I) and sc is not None:
        port = _refused_port(text)
        target = next((n for n, s in sc.services.items() if port is not None
                       and s.ports and port not in s.ports and n in text), None)
        if target is None and port is None:  # the client named only an address (wget)
            target, port = _called_port(sc, step.name)
        if target is not None:
            return verdict(FailureClass.port_or_config_mismatch, where,
                           f"{target!r} declares ports {list(sc.services[target].ports)}",
                           service=target, port=port,
                           seen_port=sc.services[target].ports[0])
    return verdict(FailureClass.product_defect, where,
                   "every service was ready and running when the step ran", service=svc,
                   confidence=0.85)


def context_of(sc: Scenario | None, service: str | None, test: TestResult | None = None
               ) -> FailureContext:
    """The bandit's context for a failure of ``service`` in ``sc``."""
    fault = None
    if test is not None and test.chaos is not None and test.chaos.timeline:
        fault = test.chaos.timeline[0].type
    elif sc is not None and sc.chaos is not None and sc.chaos.faults:
        fault = sc.chaos.faults[0].type
    cfg = sc.services.get(service) if sc is not None and service else None
    if cfg is None:
        return FailureContext(service=service, fault=fault)
    probe = cfg.readiness[0].kind if cfg.readiness else (
        "health_check" if cfg.health_check else None)
    return FailureContext(service=service, image=cfg.image, plugin=cfg.plugin, probe=probe,
                          fault=fault, memory_mb=_memory_mb(sc, service), cpus=cfg.cpus)


def _memory_mb(sc: Scenario | None, svc: str | None) -> float | None:
    cfg = sc.services.get(svc) if sc is not None and svc else None
    return None if cfg is None or cfg.memory is None else cfg.memory / 2**20


def _cpus(sc: Scenario | None, svc: str | None) -> float | None:
    cfg = sc.services.get(svc) if sc is not None and svc else None
    return None if cfg is None else cfg.cpus


def _limit_text(sc: Scenario | None, svc: str | None) -> str:
    mb = _memory_mb(sc, svc)
    return f"{svc!r} is limited to memory = {mb:g} MiB" if mb is not None else ""


def _needed_peer(sc: Scenario | None, svc: str, logs: str) -> tuple[str, str] | None:
    """A peer service the log tail failed to reach, which ``svc`` does not depend on."""
    if sc is None or not logs:
        return None
    declared = set(sc.services[svc].depends_on) if svc in sc.services else set()
    for line in logs.splitlines():
        if not _CONNECT_FAIL.search(line):
            continue
        for peer in sc.services:
            if peer != svc and peer not in declared and re.search(
                    rf"(?<![\w-]){re.escape(peer)}(?![\w-])", line):
                return peer, line.strip()
    return None


def _probe_port(sc: Scenario | None, svc: str, kind: str) -> int | None:
    cfg = sc.services.get(svc) if sc is not None else None
    if cfg is None:
        return None
    for probe in cfg.readiness:
        if probe.kind == kind:
            port = probe.tcp if kind == "tcp" else probe.port or (cfg.ports or [0])[0]
            return int(port) if port is not None else None
    return int(cfg.ports[0]) if cfg.ports else None


def _listening_port(sc: Scenario | None, svc: str, logs: str) -> int | None:
    """The port the service says (log line) or is told (its command) to listen on."""
    texts = [logs]
    cfg = sc.services.get(svc) if sc is not None else None
    if cfg is not None and cfg.command:
        texts.append(" ".join(cfg.command))
    for text in texts:
        for m in re.finditer(r"(?:listening on|listen on|-p|--port[= ]|-l -p)\s*:?(\d{2,5})\b",
                             text, re.I):
            return int(m.group(1))
    return None


def _called_port(sc: Scenario, step: str) -> tuple[str | None, int | None]:
    """The ``service:port`` a refused step's command calls, when that service declares
    other ports (a client such as wget names only the address it could not reach)."""
    cmd = next((s.command for s in sc.steps if s.name == step), None)
    text = cmd if isinstance(cmd, str) else " ".join(cmd or [])
    for m in re.finditer(r"\b([\w-]+):(\d{2,5})\b", text):
        cfg = sc.services.get(m.group(1))
        if cfg is not None and cfg.ports and int(m.group(2)) not in cfg.ports:
            return m.group(1), int(m.group(2))
    return None, None


def _refused_port(text: str) -> int | None:
    m = re.search(r"[\w.-]+[: ](\d{2,5})\b.*(?:refused|can't connect)|"
                  r"(?:refused|can't connect)[^\n]*?:(\d{2,5})\b", text, re.I)
    if m is None:
        return None
    return int(m.group(1) or m.group(2))


def _line_of(text: str, m: re.Match[str] | None) -> str:
    if m is None:
        return ""
    start = text.rfind("\n", 0, m.start()) + 1
    end = text.find("\n", m.end())
    return text[start:end if end >= 0 else None].strip()


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _quote(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 240 else text[:237] + "..."


def macro_f1(pairs: Sequence[tuple[str, str]]) -> float:
    """Macro-averaged F1 over the classes that occur in ``(expected, predicted)`` pairs."""
    classes = sorted({e for e, _ in pairs} | {p for _, p in pairs})
    scores = []
    for cls in classes:
        tp = sum(1 for e, p in pairs if e == cls and p == cls)
        fp = sum(1 for e, p in pairs if e != cls and p == cls)
        fn = sum(1 for e, p in pairs if e == cls and p != cls)
        if tp + fp + fn == 0:
            continue
        scores.append(2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores) if scores else 0.0


__all__ = ["classify", "context_of", "macro_f1"]

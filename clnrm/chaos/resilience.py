"""Judging a chaos experiment: the run itself, then each ``[[expect.resilience]]``.

Figures come from what was measured, never from what was scheduled: the fault
window is from the recorded injection to the recorded rollback, probe figures
from the probe samples, span figures from span timestamps inside that window.
Every verdict says what was seen, so a failure reads like a finding ("success
rate 0.62 during pause:db (31 of 50 samples), expected >= 0.95").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from clnrm.results import ChaosEvent, ChaosReport, ProbeSample, ValidationResult
from clnrm.scenario.expect import ResilienceExpectation
from clnrm.scenario.model import Scenario
from clnrm.validators.base import Declarations, verdict

KILL_TYPES = frozenset({"kill", "stop", "oom_kill", "restart", "signal"})


@dataclass(frozen=True)
class Window:
    """When faults were applied, in seconds from the experiment start."""

    start: float
    end: float
    start_ns: int | None
    end_ns: int | None
    label: str


def judge_chaos(sc: Scenario, report: ChaosReport,
                spans: Sequence[object]) -> list[ValidationResult]:
    """The experiment's own verdicts (ran, rolled back, steady state) + the expectations."""
    where = Declarations(sc.source)
    out: list[ValidationResult] = []
    chaos_at = where.at(("chaos",))
    if report.aborted:
        out.append(verdict("chaos", "steady-state hypothesis before the faults", False,
                           expected="every steady-state probe passes", seen=report.aborted,
                           declared_at=where.at(("chaos", "steady_state"))))
        return out
    for event in report.timeline:
        if event.error:
            out.append(verdict("chaos", f"fault '{event.fault}' #{event.occurrence} applied "
                               "and rolled back", False, expected="inject and rollback succeed",
                               seen=event.error, declared_at=where.at(
                                   ("chaos", "faults", _fault_index(sc, event.fault)))))
    for check in report.steady_state:
        if check.phase == "after":
            out.append(verdict("chaos", "steady-state hypothesis after the rollback", check.ok,
                               expected=f"every steady-state probe passes again within "
                               f"{sc.chaos.recovery_timeout if sc.chaos else 0:g} s",
                               seen=check.detail,
                               declared_at=where.at(("chaos", "steady_state"))))
    for i, exp in enumerate(sc.expect.resilience):
        out.extend(judge_expectation(exp, report, spans,
                                     declared_at=where.at(("expect", "resilience", i))))
    if not out and report.timeline:
        out.append(verdict("chaos", "every fault applied and rolled back", True, expected="",
                           seen="", declared_at=chaos_at))
    return out


def _fault_index(sc: Scenario, label: str) -> int:
    faults = sc.chaos.faults if sc.chaos else []
    return next((i for i, f in enumerate(faults) if f.label == label), 0)


def windows(report: ChaosReport, fault: str | None) -> list[Window]:
    """Applied windows of the named fault (name or type), or of every fault."""
    end_default = report.duration_s
    found = []
    for e in report.timeline:
        if e.injected_s is None or (fault is not None and fault not in (e.fault, e.type)):
            continue
        end = e.rolled_back_s if e.rolled_back_s is not None else end_default
        found.append(Window(e.injected_s, end, e.injected_unix_ns, e.rolled_back_unix_ns,
                            f"{e.fault}#{e.occurrence}"))
    return found


def judge_expectation(exp: ResilienceExpectation, report: ChaosReport, spans: Sequence[object],
                      *, declared_at: str) -> list[ValidationResult]:
    name = exp.name or f"resilience under {exp.fault or 'every fault'}"
    wins = windows(report, exp.fault)
    if not wins:
        scheduled = [e for e in report.timeline
                     if exp.fault is None or exp.fault in (e.fault, e.type)]
        why = ("no such fault in [chaos]" if not scheduled
               else "it was never applied: " + "; ".join(
                   e.skipped or e.error or "not reached" for e in scheduled[:3]))
        return [verdict("resilience", f"{name}: fault applied", False,
                        expected=f"fault {exp.fault!r} applied",
                        seen=why, declared_at=declared_at)]
    probes = [p for p in report.probes if exp.probe is None or p.name == exp.probe]
    if exp.probe is not None and not probes:
        return [verdict("resilience", f"{name}: probe", False, expected=f"probe {exp.probe!r}",
                        seen="no such probe in [[chaos.probes]]", declared_at=declared_at)]
    samples = sorted((s for p in probes for s in p.samples), key=lambda s: s.t)
    out: list[ValidationResult] = []

    def add(what: str, ok: bool, expected: str, seen: str) -> None:
        out.append(verdict("resilience", f"{name}: {what}", ok, expected=expected, seen=seen,
                           declared_at=declared_at))

    label = ", ".join(w.label for w in wins[:3]) + (" ..." if len(wins) > 3 else "")
    rate_floor = exp.min_success_rate_during
    if exp.max_error_rate is not None:
        rate_floor = max(rate_floor or 0.0, 1 - exp.max_error_rate)
    if rate_floor is not None:
        if exp.span is not None:
            ok_n, total = _span_success(spans, exp.span, wins)
            source = f"spans '{exp.span}'"
        else:
            during = [s for s in samples if any(w.start <= s.t <= w.end for w in wins)]
            ok_n, total = sum(s.ok for s in during), len(during)
            source = "probe samples"
        if total == 0:
            add("success rate during the fault", False, f">= {rate_floor:.3g}",
                f"no {source} during {label}")
        else:
            rate = ok_n / total
            add("success rate during the fault", rate >= rate_floor, f">= {rate_floor:.3g}",
                f"{rate:.3f} ({ok_n} of {total} {source}) during {label}")
    if exp.max_downtime_ms is not None:
        down = _longest_downtime(samples, wins) * 1000
        add("downtime", down <= exp.max_downtime_ms, f"<= {exp.max_downtime_ms:g} ms",
            f"longest failing stretch {down:.0f} ms around {label}")
    if exp.max_failover_time_ms is not None:
        fo = max((_failover(samples, w) for w in wins), default=0.0) * 1000
        add("failover time", fo <= exp.max_failover_time_ms,
            f"<= {exp.max_failover_time_ms:g} ms",
            f"{fo:.0f} ms from injection to the first success after a failure")
    limit = exp.full_recovery_time_ms
    if exp.recovers_within is not None:
        limit = min(limit if limit is not None else float("inf"), exp.recovers_within * 1000)
    if limit is not None:
        rec = _slowest_recovery(samples, wins)
        add("full recovery time", rec is not None and rec * 1000 <= limit, f"<= {limit:g} ms",
            "never recovered while the probes ran" if rec is None
            else f"{rec * 1000:.0f} ms from rollback until the probes passed again")
    if exp.recovers_from_container_kill:
        kills = [e for e in report.timeline if e.type in KILL_TYPES and e.injected_s is not None
                 and (exp.fault is None or exp.fault in (e.fault, e.type))]
        after = [c for c in report.steady_state if c.phase == "after"]
        rec = _slowest_recovery(samples, wins)
        ok = bool(kills) and all(e.error is None for e in kills) and (
            (after and all(c.ok for c in after)) or (not after and rec is not None))
        seen = ("no kill/stop/oom fault was applied" if not kills else
                "; ".join(f"{e.fault}: {e.rollback_detail or e.error or 'applied'}"
                          for e in kills[:3]))
        if after:
            seen += f"; steady state after: {after[-1].detail}"
        elif rec is not None:
            seen += f"; probes passing again {rec:.2f} s after the rollback"
        add("recovers from container kill", ok, "target restarted and steady state regained",
            seen)
    if exp.must_emit:
        names = set()
        for s in spans:
            if _in_windows(s, wins):
                names.add(getattr(s, "name", ""))
                names.update(ev.name for ev in getattr(s, "events", None) or [])
        missing = [n for n in exp.must_emit if n not in names]
        add("spans or span events emitted during the fault", not missing, ", ".join(exp.must_emit),
            "all seen" if not missing else f"missing: {', '.join(missing)}")
    if not out:
        add("fault applied", True, "", "")
    return out


def _in_windows(span: object, wins: Sequence[Window]) -> bool:
    start = getattr(span, "start_time_unix_nano", None)
    if start is None:
        return False
    return any(w.start_ns is not None and w.start_ns <= start <= (w.end_ns or 1 << 62)
               for w in wins)


def _span_success(spans: Sequence[object], name: str, wins: Sequence[Window]) -> tuple[int, int]:
    during = [s for s in spans if getattr(s, "name", None) == name and _in_windows(s, wins)]
    return sum(getattr(s, "status", "") != "ERROR" for s in during), len(during)


def _longest_downtime(samples: Sequence[ProbeSample], wins: Sequence[Window]) -> float:
    """Longest stretch from a failed sample to the next passing one, for stretches that
    end after the first fault began (a failure before any fault is the steady state's
    business, not resilience)."""
    longest, down_since = 0.0, None
    first_start = min(w.start for w in wins)
    for s in samples:
        if not s.ok and down_since is None:
            down_since = s.t
        elif s.ok and down_since is not None:
            if s.t >= first_start:
                longest = max(longest, s.t - down_since)
            down_since = None
    if down_since is not None and samples:
        longest = max(longest, samples[-1].t - down_since)
    return longest


def _failover(samples: Sequence[ProbeSample], w: Window) -> float:
    """From injection to the first success after the first failure (0: nothing failed)."""
    inside = [s for s in samples if s.t >= w.start]
    first_fail = next((s for s in inside if not s.ok), None)
    if first_fail is None or first_fail.t > w.end:
        return 0.0
    back = next((s for s in inside if s.t > first_fail.t and s.ok), None)
    return (back.t if back is not None else (inside[-1].t if inside else w.end)) - w.start


def _slowest_recovery(samples: Sequence[ProbeSample], wins: Sequence[Window]) -> float | None:
    """The longest recovery over the windows; None when any window (or no window at all)
    never recovered, since one fault the system never recovered from fails the check
    (``max`` over a mix of seconds and None would raise instead)."""
    recs = [_recovery(samples, w) for w in wins]
    done = [r for r in recs if r is not None]
    return max(done) if recs and len(done) == len(recs) else None


def _recovery(samples: Sequence[ProbeSample], w: Window, run: int = 3) -> float | None:
    """From the rollback until ``run`` samples in a row pass (None: never in the data)."""
    streak, since = 0, None
    for s in samples:
        if s.t < w.end:
            continue
        if s.ok:
            since = s.t if streak == 0 else since
            streak += 1
            if streak >= run:
                assert since is not None
                return max(0.0, since - w.end)
        else:
            streak = 0
    return None


__all__ = ["ChaosEvent", "judge_chaos", "judge_expectation", "windows"]

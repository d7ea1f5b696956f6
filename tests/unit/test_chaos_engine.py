"""The chaos engine without an engine: schedule, rollback guarantees, journal, verdicts.

A toy fault records what the engine asked of it, and a stand-in sandbox answers
the few questions the context asks, so the timing and bookkeeping rules are
checked exactly and fast; the real faults are tested against the demo system in
tests/integration.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from textwrap import dedent
from typing import Any, ClassVar

import pytest

from clnrm.chaos import catalog
from clnrm.chaos.base import Fault, FaultConfig
from clnrm.chaos.engine import ChaosSession
from clnrm.chaos.journal import Journal, read_journal, replay_dead_journals
from clnrm.chaos.resilience import judge_chaos
from clnrm.errors import ScenarioError
from clnrm.results import ChaosEvent, ChaosReport, ProbeSample, ProbeSeries, SteadyStateCheck
from clnrm.scenario import loads_scenario
from clnrm.testing import FakeSandbox

CALLS: list[tuple[str, str, str]] = []


class ToyConfig(FaultConfig):
    level: int = 1
    fail_inject: bool = False
    fail_rollback: bool = False


class Toy(Fault):
    type: ClassVar[str] = "toy"
    category = "container"
    summary = "records calls"
    Config = ToyConfig

    def inject(self) -> str:
        CALLS.append(("inject", self.target, str(self.config.level)))  # type: ignore[attr-defined]
        if self.config.fail_inject:  # type: ignore[attr-defined]
            raise RuntimeError("half applied")
        return f"toy {self.config.level} on {self.target}"  # type: ignore[attr-defined]

    def rollback(self) -> str:
        CALLS.append(("rollback", self.target, str(self.config.level)))  # type: ignore[attr-defined]
        if self.config.fail_rollback:  # type: ignore[attr-defined]
            raise RuntimeError("stuck")
        return "undone"

    def undo_record(self) -> dict[str, Any] | None:
        return {"target": self.target}

    @classmethod
    def undo(cls, record: dict[str, Any], env: Any) -> str:
        CALLS.append(("undo", record["target"], ""))
        return f"undid toy on {record['target']}"


@pytest.fixture(autouse=True)
def toy_catalog(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    CALLS.clear()
    monkeypatch.setattr(catalog, "fault_types", lambda: {"toy": Toy})
    monkeypatch.setenv("CLNRM_STATE_DIR", str(tmp_path / "state"))


BASE = dedent("""
    [meta]
    name = "exp"
    [services.db]
    image = "x"
    ports = [5432]
    [services.api]
    image = "x"
    [[steps]]
    name = "s"
    command = ["true"]
""")


def scenario(extra: str) -> Any:
    return loads_scenario(BASE + dedent(extra), source="exp.clnrm.toml")


def session(extra: str, seed: int = 3) -> ChaosSession:
    sc = scenario(extra)
    box = FakeSandbox(["db", "api"])
    return ChaosSession(sc, box, specs={}, run_id="r1", seed=seed)  # type: ignore[arg-type]


def run_experiment(s: ChaosSession) -> ChaosReport:
    with s:
        s.begin()
        s.end()
    return s.report


def test_faults_are_applied_on_schedule_and_rolled_back_after_their_duration() -> None:
    report = run_experiment(session("""
        [[chaos.faults]]
        type = "toy"
        target = "db"
        at = "0.1s"
        duration = "0.2s"
        level = 2
    """))
    [event] = report.timeline
    assert CALLS == [("inject", "db", "2"), ("rollback", "db", "2")]
    assert event.injected_s is not None and 0.09 <= event.injected_s < 0.2
    assert event.rolled_back_s is not None and 0.29 <= event.rolled_back_s < 0.45
    assert event.detail == "toy 2 on db" and event.rollback_detail == "undone"
    assert event.error is None


def test_repeat_every_and_trigger_make_one_event_per_occurrence() -> None:
    report = run_experiment(session("""
        [[chaos.faults]]
        type = "toy"
        target = "api"
        trigger = "after_steady_state_50ms"
        every = "0.1s"
        repeat = 3
        duration = "0.03s"
    """))
    assert [e.planned_s for e in report.timeline] == [0.05, 0.15, 0.25]
    assert [c[0] for c in CALLS] == ["inject", "rollback"] * 3


def test_a_seed_replays_the_same_random_moments_and_draws() -> None:
    toml = """
        [[chaos.faults]]
        type = "toy"
        target = "db"
        window = ["0s", "0.2s"]
        every = "0.01s"
        repeat = 12
        probability = 0.5
        duration = "0.001s"
    """
    first = [(e.planned_s, e.skipped) for e in run_experiment(session(toml, seed=11)).timeline]
    again = [(e.planned_s, e.skipped) for e in run_experiment(session(toml, seed=11)).timeline]
    other = [(e.planned_s, e.skipped) for e in run_experiment(session(toml, seed=12)).timeline]
    assert first == again
    assert first != other
    assert 0 < sum(1 for _, skipped in first if skipped) < 12


def test_a_fault_without_duration_lasts_until_the_steps_end() -> None:
    s = session("""
        [[chaos.faults]]
        type = "toy"
        target = "db"
    """)
    with s:
        s.begin()
        time.sleep(0.15)
        assert CALLS == [("inject", "db", "1")]
        s.end()
    assert CALLS[-1] == ("rollback", "db", "1")
    assert s.report.timeline[0].rolled_back_s is not None


def test_leaving_the_block_by_an_exception_still_rolls_back_newest_first() -> None:
    s = session("""
        [[chaos.faults]]
        name = "one"
        type = "toy"
        target = "db"
        level = 1
        [[chaos.faults]]
        name = "two"
        type = "toy"
        target = "api"
        at = "0.05s"
        level = 2
    """)
    with pytest.raises(KeyboardInterrupt), s:
        s.begin()
        time.sleep(0.2)
        raise KeyboardInterrupt
    assert CALLS == [("inject", "db", "1"), ("inject", "api", "2"),
                     ("rollback", "api", "2"), ("rollback", "db", "1")]


def test_a_half_applied_fault_is_rolled_back_and_reported() -> None:
    report = run_experiment(session("""
        [[chaos.faults]]
        type = "toy"
        target = "db"
        fail_inject = true
    """))
    assert CALLS == [("inject", "db", "1"), ("rollback", "db", "1")]
    assert report.timeline[0].error == "inject failed: RuntimeError: half applied"
    [v] = judge_chaos(scenario("""
        [[chaos.faults]]
        type = "toy"
        target = "db"
    """), report, [])
    assert v.status.value == "fail" and "half applied" in v.seen


def test_a_failed_rollback_is_an_error_on_the_record_and_stays_in_the_journal(
        tmp_path: Path) -> None:
    s = session("""
        [[chaos.faults]]
        type = "toy"
        target = "db"
        fail_rollback = true
    """)
    run_experiment(s)
    assert s.report.timeline[0].error == "rollback failed: RuntimeError: stuck"
    journal = tmp_path / "state" / "chaos" / "r1.jsonl"
    header, pending = read_journal(journal)
    assert header["run_id"] == "r1" and [p.type for p in pending] == ["toy"]


def test_the_journal_is_gone_after_a_clean_experiment(tmp_path: Path) -> None:
    run_experiment(session("""
        [[chaos.faults]]
        type = "toy"
        target = "db"
    """))
    assert not (tmp_path / "state" / "chaos" / "r1.jsonl").exists()


def test_gc_replays_the_undo_of_a_dead_run_and_leaves_live_runs_alone(tmp_path: Path) -> None:
    folder = tmp_path / "j"
    import socket

    dead = Journal("dead", f"{socket.gethostname()}:999999999:1", directory=folder)
    dead.record("0.1", "toy", {"target": "db"})
    dead.record("0.2", "toy", {"target": "api"})
    dead.done("0.2")
    from clnrm.labels import owner_label

    live = Journal("live", owner_label(), directory=folder)
    live.record("0.1", "toy", {"target": "db"})
    with open(folder / "dead.jsonl", "a") as fh:
        fh.write('{"id": "0.3", "ty')  # torn by the SIGKILL
    lines = replay_dead_journals(None, directory=folder)
    assert lines == ["run dead: toy 0.1: undid toy on db"]
    assert CALLS == [("undo", "db", "")]
    assert not (folder / "dead.jsonl").exists() and (folder / "live.jsonl").exists()


def test_unknown_fault_types_and_parameters_are_located_errors() -> None:
    with pytest.raises(ScenarioError) as err:
        scenario("""
            [[chaos.faults]]
            type = "toy"
            target = "db"
            levle = 3
        """)
    text = str(err.value)
    line = 16  # the levle line, counted from BASE
    assert f"exp.clnrm.toml:{line}: [chaos.faults[0].levle]" in text
    assert "unknown parameter" in text and "level" in text
    with pytest.raises(ScenarioError, match=r":14: \[chaos.faults\[0\].type\] unknown fault "
                                            r"type 'tyo'"):
        scenario("""
            [[chaos.faults]]
            type = "tyo"
            target = "db"
        """)
    with pytest.raises(ScenarioError, match="steady_state names probes that are not declared"):
        scenario("""
            [chaos]
            steady_state = ["nope"]
        """)
    with pytest.raises(ScenarioError, match=r"\[chaos.rollback\] faults are always rolled back"):
        scenario("""
            [chaos]
            rollback = false
        """)


# -- resilience verdicts from recorded data ---------------------------------------------


def report_with(samples: list[tuple[float, bool]], *, inject: float = 1.0,
                rollback: float = 3.0, kind: str = "pause") -> ChaosReport:
    return ChaosReport(
        duration_s=5.0,
        timeline=[ChaosEvent(fault="f", type=kind, target="db", injected_s=inject,
                             rolled_back_s=rollback, injected_unix_ns=int(inject * 1e9),
                             rolled_back_unix_ns=int(rollback * 1e9), rollback_detail="ok")],
        probes=[ProbeSeries(name="p", target="GET x",
                            samples=[ProbeSample(t=t, ok=ok, ms=1.0) for t, ok in samples])],
        steady_state=[SteadyStateCheck(phase="after", ok=True, detail="back")])


def verdicts(expect: str, report: ChaosReport, spans: list[Any] | None = None) -> dict[str, Any]:
    sc = scenario("""
        [[chaos.faults]]
        name = "f"
        type = "toy"
        target = "db"
        [[chaos.probes]]
        name = "p"
        tcp = { service = "db", port = 5432 }
    """ + dedent(expect))
    return {v.expectation.split(": ", 1)[1]: v for v in judge_chaos(sc, report, spans or [])
            if v.validator == "resilience"}


SAMPLES = [(t / 10, not (1.5 <= t / 10 <= 2.0 or 3.0 <= t / 10 < 3.4)) for t in range(50)]


def test_success_rate_downtime_failover_and_recovery_are_read_off_the_samples() -> None:
    got = verdicts("""
        [[expect.resilience]]
        fault = "f"
        min_success_rate_during = 0.5
        max_downtime_ms = 450
        max_failover_time_ms = 1200
        full_recovery_time_ms = 300
    """, report_with(SAMPLES))
    rate = got["success rate during the fault"]
    assert rate.status.value == "pass" and rate.seen.startswith("0.667 (14 of 21")
    down = got["downtime"]
    assert down.status.value == "fail" and "600 ms" in down.seen  # 1.5 .. 2.1
    assert got["failover time"].status.value == "pass" and "1100 ms" in got["failover time"].seen
    rec = got["full recovery time"]
    assert rec.status.value == "fail" and "400 ms" in rec.seen


def test_no_failures_means_zero_failover_and_a_missing_fault_is_a_failure() -> None:
    ok = [(t / 10, True) for t in range(50)]
    got = verdicts("""
        [[expect.resilience]]
        fault = "f"
        max_failover_time_ms = 0
        min_success_rate_during = 1.0
    """, report_with(ok))
    assert all(v.status.value == "pass" for v in got.values())
    got = verdicts("""
        [[expect.resilience]]
        fault = "ghost"
        min_success_rate_during = 1.0
    """, report_with(ok))
    assert got["fault applied"].status.value == "fail"
    assert got["fault applied"].seen == "no such fault in [chaos]"


def test_recovers_from_container_kill_needs_a_kill_and_the_steady_state_back() -> None:
    ok = [(t / 10, True) for t in range(50)]
    got = verdicts("""
        [[expect.resilience]]
        recovers_from_container_kill = true
    """, report_with(ok, kind="kill"))
    assert got["recovers from container kill"].status.value == "pass"
    got = verdicts("""
        [[expect.resilience]]
        recovers_from_container_kill = true
    """, report_with(ok, kind="pause"))
    assert got["recovers from container kill"].status.value == "fail"


def test_span_success_rate_and_must_emit_use_only_spans_inside_the_window() -> None:
    from clnrm.otel.span import Span, SpanEvent

    def span(name: str, at: float, status: str = "UNSET", event: str | None = None) -> Span:
        return Span(trace_id="a" * 32, span_id=f"{int(at * 100):016x}", name=name,
                    start_time_unix_nano=int(at * 1e9), end_time_unix_nano=int(at * 1e9) + 1,
                    status=status, events=[SpanEvent(event)] if event else [])

    spans = [span("GET /items", 0.5, "ERROR"), span("GET /items", 1.5),
             span("GET /items", 2.0, "ERROR", event="fallback.stale_cache"),
             span("GET /items", 2.5), span("GET /items", 2.6)]
    got = verdicts("""
        [[expect.resilience]]
        span = "GET /items"
        min_success_rate_during = 0.75
        must_emit = ["fallback.stale_cache", "GET /items"]
    """, report_with([(1.0, True)]), spans)
    assert got["success rate during the fault"].status.value == "pass"
    assert "0.750 (3 of 4 spans 'GET /items')" in got["success rate during the fault"].seen
    assert got["spans or span events emitted during the fault"].status.value == "pass"


def test_an_aborted_experiment_fails_on_the_hypothesis_only() -> None:
    report = ChaosReport(aborted="steady state not met before any fault was injected: p: HTTP 503")
    sc = scenario("""
        [[chaos.probes]]
        name = "p"
        tcp = { service = "db", port = 5432 }
        [chaos]
        steady_state = ["p"]
    """.replace("[[chaos.probes]]", "[[chaos.probes]]", 1))
    [v] = judge_chaos(sc, report, [])
    assert v.validator == "chaos" and v.status.value == "fail" and "HTTP 503" in v.seen


def test_chaos_event_models_serialise_for_the_json_report() -> None:
    report = report_with(SAMPLES)
    data = json.loads(report.model_dump_json())
    assert data["timeline"][0]["fault"] == "f" and len(data["probes"][0]["samples"]) == 50
    assert threading.active_count() >= 1


def test_recovery_over_windows_fails_when_one_window_never_recovers() -> None:
    """Two fault windows, the second never followed by passing probes: no recovery time
    (was a TypeError from ``max`` over seconds and None)."""
    from clnrm.chaos.resilience import Window, _slowest_recovery
    from clnrm.results import ProbeSample

    wins = [Window(1.0, 2.0, None, None, "a"), Window(5.0, 6.0, None, None, "b")]
    ok = [ProbeSample(t=t, ok=True, ms=1.0) for t in (2.5, 3.0, 3.5)]
    failing = [ProbeSample(t=t, ok=False, ms=1.0) for t in (6.5, 7.0, 7.5)]
    assert _slowest_recovery(ok + failing, wins) is None
    assert _slowest_recovery(ok, wins[:1]) == 0.5
    assert _slowest_recovery(ok, []) is None

"""The performance layer on the real demo system: baseline, no regression, a slow database.

Four runs of ``scenarios/performance/demo-perf.clnrm.toml`` (gateway -> api -> Redis and
PostgreSQL under an open-loop load of 40 requests/s), with ``baseline_runs = 2`` so the
default policy's fill (10 runs) does not make the test ten runs long, share one memory:

1. ``clnrm perf baseline save FILE`` records the first baseline run;
2. the same file as ``clnrm run`` runs it: the baseline is filling (1 of 2), so the run
   is not judged and joins it;
3. the same file again: judged against the full baseline, no regression, recorded as
   history (not baseline);
4. the same file with a ``latency`` chaos fault of 100 ms on the database: a failing
   regression of the database span and of the gateway's requests, with ``SELECT items``
   dominating the critical path; a run under a fault is never recorded.

About 70 s on a quiet 2-CPU machine.  The measured figures are printed (``-s``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.conftest import REPO, clnrm_resources

pytestmark = pytest.mark.slow

PERF_FILE = REPO / "scenarios" / "performance" / "demo-perf.clnrm.toml"
PERF_TEXT = PERF_FILE.read_text(encoding="utf-8").replace(
    "[performance]\n", "[performance]\nbaseline_runs = 2\n", 1)
SLOW_DB = """

[[chaos.faults]]
name = "slow_db"
type = "latency"
target = "db"
latency_ms = 100
"""


@pytest.fixture(scope="module")
def demo_images(docker_client: Any) -> None:
    from clnrm.images import build_images

    build_images(docker_client, ["busybox", "demo-redis", "demo-postgres", "demo-app"])


@pytest.fixture(scope="module")
def memory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("perf-demo") / "memory"


@pytest.fixture(scope="module")
def saved(demo_images: None, memory: Path,
          tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run 1, through the CLI: ``clnrm perf baseline save FILE --format json``."""
    import structlog

    from clnrm.logs import configure
    from clnrm.perf.cli import perf_app

    assert "baseline_runs = 2" in PERF_TEXT
    file = tmp_path_factory.mktemp("saved") / "demo-perf.clnrm.toml"
    file.write_text(PERF_TEXT, encoding="utf-8")
    configure(0)
    try:
        done = CliRunner().invoke(perf_app, ["baseline", "save", str(file), "--memory",
                                             str(memory), "--format", "json"])
    finally:
        structlog.reset_defaults()
    assert done.exit_code == 0, done.stdout + done.stderr
    [entry] = json.loads(done.stdout)["saved"]
    return dict(entry)


@pytest.fixture(scope="module")
def store(saved: dict[str, Any], memory: Path) -> Iterator[Any]:
    from clnrm.memory import open_memory

    with open_memory(memory) as opened:
        yield opened


def run(text: str, store: Any, tmp_path: Path, docker_client: Any) -> Any:
    """One run of ``text`` as ``clnrm run`` would, judged against ``store``'s baselines."""
    from clnrm.perf.options import PerfOptions
    from clnrm.runner import Runner, RunOptions
    from clnrm.scenario import load_scenario

    file = tmp_path / "demo-perf.clnrm.toml"
    file.write_text(text, encoding="utf-8")
    result = Runner(RunOptions(perf=PerfOptions(memory=store))).run([load_scenario(file)])
    left = clnrm_resources(docker_client, result.run_id)
    assert not any(left.values()), f"left behind: {left}"
    [test] = result.tests
    return test


@pytest.fixture(scope="module")
def filling(store: Any, tmp_path_factory: pytest.TempPathFactory,
            docker_client: Any) -> Any:
    return run(PERF_TEXT, store, tmp_path_factory.mktemp("filling"), docker_client)


@pytest.fixture(scope="module")
def unchanged(filling: Any, store: Any, tmp_path_factory: pytest.TempPathFactory,
              docker_client: Any) -> Any:
    return run(PERF_TEXT, store, tmp_path_factory.mktemp("unchanged"), docker_client)


@pytest.fixture(scope="module")
def slow_db(unchanged: Any, store: Any, tmp_path_factory: pytest.TempPathFactory,
            docker_client: Any) -> Any:
    return run(PERF_TEXT + SLOW_DB, store, tmp_path_factory.mktemp("slow-db"), docker_client)


def verdicts(test: Any) -> dict[str, dict[str, Any]]:
    return {v.metric: v.model_dump() for v in test.performance.verdicts}


def show(label: str, test: Any) -> None:
    for v in (verdict.model_dump() for verdict in test.performance.verdicts):
        print(f"{label}: {v['metric']}: effect {v['effect_pct']:+.1f}% "
              f"(CI {v['ci_low_pct']:+.1f}..{v['ci_high_pct']:+.1f}%), p={v['p_value']:.2g}, "
              f"p_adj={v['p_adjusted']:.2g}, regressed={v['regressed']}, test={v['test']}")
    for share in test.performance.critical_path.shares[:3]:
        print(f"{label}: critical path {share.service}/{share.name} {share.share:.1%}")


def test_save_records_the_first_baseline_run(saved: dict[str, Any], store: Any) -> None:
    from clnrm.perf.baseline import BaselineStore

    assert saved["scenario"] == "demo_perf" and saved["baseline_runs"] == 1
    baseline = BaselineStore(store).baseline("demo_perf", saved["fingerprint"])
    assert baseline is not None
    [first] = baseline.runs
    for metric in ("latency:GET /items", "latency:GET /v1/items", "latency:SELECT items",
                   "throughput", "load:latency", "cpu:db", "memory:api"):
        assert metric in first.metrics, sorted(first.metrics)
    assert first.metrics["load:latency"].count >= 80  # 40 rps for 3 s, warm-up left out


def test_a_filling_baseline_judges_nothing_and_takes_the_run_in(
        filling: Any, store: Any, saved: dict[str, Any]) -> None:
    from clnrm.perf.baseline import BaselineStore
    from clnrm.results import ValidationStatus

    assert not filling.performance.verdicts
    skipped = [v for v in filling.validations if v.validator == "performance"
               and v.expectation == "baseline"]
    assert [v.status for v in skipped] == [ValidationStatus.SKIP]
    assert "not judged yet" in skipped[0].message, skipped[0].message
    baseline = BaselineStore(store).baseline("demo_perf", saved["fingerprint"])
    assert baseline is not None and len(baseline.runs) == 2  # it joined the baseline


def test_the_same_system_again_is_not_a_regression(unchanged: Any, store: Any,
                                                   saved: dict[str, Any]) -> None:
    from clnrm.perf.baseline import BaselineStore
    from clnrm.results import ValidationStatus

    show("unchanged", unchanged)
    judged = verdicts(unchanged)
    assert {"latency:GET /items", "latency:GET /v1/items", "latency:SELECT items",
            "throughput", "load:latency"} <= set(judged)
    assert not [m for m, v in judged.items() if v["regressed"]]
    bad = [v for v in unchanged.validations if v.validator == "performance"
           and v.status in (ValidationStatus.FAIL, ValidationStatus.ERROR)]
    assert not bad, [v.seen or v.message for v in bad]
    baseline = BaselineStore(store).baseline("demo_perf", saved["fingerprint"])
    assert baseline is not None and len(baseline.runs) == 2  # full: history, not baseline
    stored = BaselineStore(store).runs("demo_perf", saved["fingerprint"])
    assert [r.baseline for r in stored] == [True, True, False]


def test_a_slow_database_is_a_regression_with_the_db_span_on_the_critical_path(
        slow_db: Any, store: Any, saved: dict[str, Any], tmp_path: Path) -> None:
    from clnrm import reports
    from clnrm.perf.baseline import BaselineStore
    from clnrm.results import Outcome, RunResult, ValidationStatus

    show("slow db", slow_db)
    assert slow_db.outcome is Outcome.FAILED
    [fault] = slow_db.chaos.timeline
    assert fault.type == "latency" and fault.injected_s is not None and fault.error is None
    failing = {v.expectation.split(" vs ")[0]: v for v in slow_db.validations
               if v.validator == "performance" and v.status is ValidationStatus.FAIL}
    assert {"latency:SELECT items", "latency:GET /items"} <= set(failing)
    db = failing["latency:SELECT items"]
    for words in ("p95 +", "95% CI", "p=", "regression beyond the 150% allowed",
                  "confidence it got worse"):
        assert words in db.seen
    judged = verdicts(slow_db)
    assert judged["latency:SELECT items"]["effect_pct"] > 300
    assert judged["latency:SELECT items"]["ci_low_pct"] > 150
    assert judged["latency:GET /items"]["fails"]
    top = slow_db.performance.critical_path.shares[0]
    assert (top.service, top.name) == ("api", "SELECT items")
    assert top.share > 0.5
    assert "performance: this run was not recorded (it ran under injected chaos faults)" \
        in slow_db.warnings
    assert [r.baseline for r in BaselineStore(store).runs("demo_perf", saved["fingerprint"])] \
        == [True, True, False]
    page = tmp_path / "slow-db.html"
    reports.write_html(RunResult(run_id="r", backend="docker", started_at="now",
                                 tests=[slow_db]), page)
    assert "SELECT items" in page.read_text(encoding="utf-8")

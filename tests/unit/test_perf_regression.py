"""Regression verdicts: noise must pass, real slowdowns must fail, and say how sure."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from clnrm.perf.regression import Thresholds, Verdict, compare, robust_location

LAT = "latency_ms:GET /items"


def service_run(rng: np.random.Generator, n: int = 300, slowdown: float = 0.0,
                drift_sd: float = 0.02) -> np.ndarray:
    """Latencies of one run: log-normal with a GC tail and a per-run drift."""
    x = 40.0 * np.exp(rng.normal(0, drift_sd)) * (1 + slowdown) * rng.lognormal(0, 0.35, n)
    gc = rng.random(n) < 0.01
    x[gc] += rng.uniform(50, 250, int(gc.sum()))
    return x


def runs(seed: int, count: int, **kw: float) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [service_run(rng, **kw) for _ in range(count)]  # type: ignore[arg-type]


def one(baseline: object, current: object, metric: str = LAT, **th: object) -> Verdict:
    return compare({metric: baseline}, {metric: current},  # type: ignore[dict-item]
                   thresholds=Thresholds(**th))[0]  # type: ignore[arg-type]


def test_noisy_runs_without_change_are_never_flagged() -> None:
    flagged = [seed for seed in range(40)
               if one(runs(seed, 20), runs(seed + 1000, 1)).regressed]
    assert flagged == []


def test_pooled_samples_without_change_are_flagged_at_most_at_the_nominal_rate() -> None:
    flagged = []
    for seed in range(200):
        rng = np.random.default_rng(seed)
        base = service_run(rng, n=2000, drift_sd=0)
        cur = service_run(rng, n=300, drift_sd=0)
        if one(base, cur).regressed:
            flagged.append(seed)
    assert len(flagged) <= 4, f"alpha=0.01 expects ~2 of 200, got {flagged}"


def test_clear_slowdown_is_flagged_with_sign_and_interval_around_the_truth() -> None:
    v = one(runs(1, 20), runs(2, 1, slowdown=0.30))
    assert v.regressed and v.significant and v.fails
    assert v.effect_pct > 0 and v.ci_low_pct < 30 < v.ci_high_pct
    assert 20 < v.shift_pct < 40
    assert v.statistic == "p95" and v.direction == "higher_is_worse"
    assert v.test.startswith("random-effects t-test on 20+1 runs")
    assert (v.n_baseline, v.n_current, v.runs_baseline, v.runs_current) == (6000, 300, 20, 1)
    assert v.p_value < 1e-4 and math.isclose(v.confidence, 1 - v.p_adjusted)
    assert "p95 +" in v.message and "regression beyond the 3% floor" in v.message


def test_run_to_run_drift_is_not_a_regression_when_runs_are_given() -> None:
    rng = np.random.default_rng(5)
    base = [service_run(rng, n=1000, drift_sd=0.0) * f
            for f in np.exp(rng.normal(0, 0.05, 10))]
    cur = service_run(rng, n=1000, drift_sd=0.0) * 1.06
    pooled = one(np.concatenate(base), cur)
    per_run = one(base, [cur])
    assert pooled.significant, "requests alone mistake drift for a change"
    assert "run-to-run variation not estimated" in pooled.message
    assert not per_run.significant and not per_run.regressed


def test_significant_change_within_the_allowed_increase_is_not_a_regression() -> None:
    v = one(runs(3, 20, drift_sd=0.005), runs(4, 2, slowdown=0.08, drift_sd=0.005),
            p95_latency_increase_max_percent=25)
    assert v.significant and not v.regressed and not v.fails
    assert v.allowed_pct == 25
    assert "significant but within the 25% allowed" in v.message


def test_change_beyond_the_allowed_increase_is_a_regression() -> None:
    v = one(runs(3, 20), runs(4, 1, slowdown=0.5), p95_latency_increase_max_percent=25)
    assert v.regressed and "regression beyond the 25% allowed" in v.message


def test_significant_but_tiny_shift_stays_under_the_practical_floor() -> None:
    rng = np.random.default_rng(9)
    base = service_run(rng, n=50_000, drift_sd=0)
    cur = service_run(rng, n=50_000, drift_sd=0) * 1.02
    v = one(base, cur)
    assert v.significant and not v.regressed
    assert "within the 3% practical floor" in v.message


def test_throughput_drop_is_a_regression_and_a_rise_is_not() -> None:
    rng = np.random.default_rng(11)
    base = [rng.normal(500, 15, 30) for _ in range(10)]
    drop = compare({"throughput_rps": base}, {"throughput_rps": [rng.normal(400, 15, 30)]},
                   thresholds=Thresholds(throughput_decrease_max_percent=10))[0]
    rise = compare({"throughput_rps": base}, {"throughput_rps": [rng.normal(600, 15, 30)]},
                   thresholds=Thresholds(throughput_decrease_max_percent=10))[0]
    assert drop.direction == "lower_is_worse" and drop.statistic == "mean"
    assert drop.regressed and drop.effect_pct < -15 and drop.ci_high_pct < 0
    assert not rise.regressed and not rise.significant and rise.effect_pct > 15
    assert "no significant decrease" in rise.message


def test_explicit_direction_overrides_the_name() -> None:
    rng = np.random.default_rng(12)
    v = compare({"hit_ratio": rng.normal(0.9, 0.01, 200)},
                {"hit_ratio": rng.normal(0.7, 0.01, 200)}, thresholds=Thresholds(),
                directions={"hit_ratio": "lower_is_worse"})[0]
    assert v.direction == "lower_is_worse" and v.regressed


def test_fail_on_regression_false_reports_but_does_not_fail() -> None:
    v = one(runs(1, 20), runs(2, 1, slowdown=0.3), fail_on_regression=False)
    assert v.regressed and not v.fails
    assert "not failing: fail_on_regression = false" in v.message


def test_too_few_samples_is_a_verdict_not_an_exception() -> None:
    v = one([40.0, 41.0, 39.0, 40.5, 42.0, 38.0, 40.0, 41.0, 39.5], [40.0, 80.0, 90.0])
    assert not v.regressed and not v.significant and v.p_value == 1.0
    assert "not enough samples (n=3, need >= 8)" in v.message


def test_empty_current_is_a_verdict() -> None:
    assert "not enough samples (n=0" in one(runs(1, 3), []).message


def test_non_finite_values_are_dropped_and_said() -> None:
    rng = np.random.default_rng(3)
    base = [*service_run(rng, n=200, drift_sd=0), math.nan, math.inf]
    cur = [*service_run(rng, n=200, drift_sd=0, slowdown=0.5), -math.inf]
    v = one(base, cur)
    assert v.dropped == 3 and (v.n_baseline, v.n_current) == (200, 200)
    assert v.regressed and "dropped 3 non-finite values" in v.message


def test_identical_constant_samples_are_not_significant() -> None:
    v = one([5.0] * 20, [5.0] * 20)
    assert not v.significant and v.p_value == 1.0 and v.effect_pct == 0.0


def test_constant_samples_that_moved_are_flagged() -> None:
    v = one([5.0] * 20, [6.0] * 20)
    assert v.regressed and v.effect_pct == pytest.approx(20.0)
    per_run = one([[5.0] * 10] * 5, [[6.0] * 10])
    assert per_run.regressed and per_run.p_value == 0.0


def test_zero_values_fall_back_to_a_linear_scale() -> None:
    rng = np.random.default_rng(4)
    base = np.round(rng.exponential(2.0, 500))  # queue depths with many zeros
    v = one(base, base + 3, metric="queue_depth")
    assert v.regressed and v.shift_pct > 50


def test_same_seed_gives_same_verdicts() -> None:
    base, cur = {LAT: runs(6, 10), "other": runs(7, 10)}, {LAT: runs(8, 1), "other": runs(9, 1)}
    a = compare(base, cur, thresholds=Thresholds(), seed=42)  # type: ignore[arg-type]
    b = compare(base, cur, thresholds=Thresholds(), seed=42)  # type: ignore[arg-type]
    c = compare(base, cur, thresholds=Thresholds(), seed=43)  # type: ignore[arg-type]
    assert a == b
    assert [v.p_value for v in a] == [v.p_value for v in c]  # only the interval resamples


def test_p_values_are_adjusted_across_metrics() -> None:
    base = {f"latency_ms:{i}": runs(i, 10) for i in range(3)}
    cur = {f"latency_ms:{i}": runs(100 + i, 1, slowdown=0.04 * i) for i in range(3)}
    holm = compare(base, cur, thresholds=Thresholds())  # type: ignore[arg-type]
    bh = compare(base, cur, thresholds=Thresholds(correction="bh"))  # type: ignore[arg-type]
    assert [v.metric for v in holm] == list(cur)
    assert all(v.p_adjusted >= v.p_value for v in holm + bh)
    assert all(h.p_adjusted >= b.p_adjusted for h, b in zip(holm, bh, strict=True))
    assert "(Holm, 3 metrics)" in holm[0].message and "(BH, 3 metrics)" in bh[0].message


def test_metrics_missing_on_one_side_are_skipped() -> None:
    v = compare({"a": runs(1, 3), "b": runs(2, 3)}, {"b": runs(3, 1), "c": runs(4, 1)},
                thresholds=Thresholds())  # type: ignore[arg-type]
    assert [x.metric for x in v] == ["b"]


def test_thresholds_reject_unknown_keys_and_bad_alpha() -> None:
    with pytest.raises(ValidationError, match="p95_latency_increase_max_pct"):
        Thresholds.model_validate({"p95_latency_increase_max_pct": 10})
    with pytest.raises(ValidationError):
        Thresholds(alpha=0)


def test_bad_direction_or_statistic_is_a_caller_error() -> None:
    with pytest.raises(ValueError, match="direction"):
        compare({"x": [1.0] * 9}, {"x": [1.0] * 9}, thresholds=Thresholds(),
                directions={"x": "up"})
    with pytest.raises(ValueError, match="statistic"):
        compare({"x": [1.0] * 9}, {"x": [1.0] * 9}, thresholds=Thresholds(),
                statistics={"x": "p100"})


def test_robust_location_ignores_tails_and_non_finite_values() -> None:
    x = [10.0] * 90 + [1000.0] * 5 + [math.nan]
    assert robust_location(x) == pytest.approx(10.0)
    assert math.isnan(robust_location([]))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), max_size=40),
       st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), max_size=40))
def test_any_input_gives_a_verdict(base: list[float], cur: list[float]) -> None:
    v = one(base, cur)
    assert 0.0 <= v.p_adjusted <= 1.0 and v.message.startswith(LAT)


@settings(max_examples=15, deadline=None)
@given(st.floats(min_value=1e-3, max_value=1e3), st.integers(0, 10_000))
def test_verdict_does_not_depend_on_the_unit(scale: float, seed: int) -> None:
    base, cur = runs(seed, 5), runs(seed + 1, 1, slowdown=0.1)
    a = one(base, cur)
    b = one([r * scale for r in base], [r * scale for r in cur])
    assert a.regressed == b.regressed
    assert a.p_value == pytest.approx(b.p_value, rel=1e-6, abs=1e-12)
    assert a.effect_pct == pytest.approx(b.effect_pct, rel=1e-6, abs=1e-9)


# -- the baseline policy `clnrm run` judges with (clnrm.perf.judge.judge_run) ---------------

POLICY_METRIC = "latency:GET /items"


def _measured(i: int, latencies: np.ndarray) -> object:
    from clnrm.perf.baseline import RunMeasurement
    from clnrm.perf.fingerprint import Fingerprint
    from clnrm.perf.judge import _metric

    return RunMeasurement(
        scenario="svc", run_id=f"r{i:03d}",
        fingerprint=Fingerprint(backend="docker", cpus=2, engine="27", kernel="6.8"),
        metrics={POLICY_METRIC: _metric(POLICY_METRIC, "ms", "higher_is_worse", "p95",
                                        [float(x) for x in latencies])})


def drive(slowdowns: list[float], *, seed: int = 0, toml: str = "",
          drift_sd: float = 0.02) -> list[object]:
    """Runs judged one after another as ``clnrm run`` judges them, stored as the memory
    stores them (baseline flag from the policy, pruned as ``BaselineStore.record``)."""
    from clnrm.perf.baseline import pruned
    from clnrm.perf.judge import judge_run
    from clnrm.scenario import loads_scenario

    perf = loads_scenario(f'[meta]\nname = "svc"\n[[steps]]\nname = "s"\ncommand = ["true"]\n'
                          f"[performance]\n{toml}\n").performance
    assert perf is not None
    rng = np.random.default_rng(seed)
    stored: list[object] = []
    out = []
    for i, slow in enumerate(slowdowns):
        run = _measured(i, service_run(rng, slowdown=slow, drift_sd=drift_sd))
        judged = judge_run(stored, run, perf, seed=7)  # type: ignore[arg-type]
        out.append(judged)
        stored.append(run.model_copy(update={"baseline": judged.as_baseline}))  # type: ignore[attr-defined]
        gone = {r.run_id for r in pruned(stored, history=perf.history,  # type: ignore[arg-type]
                                         baseline_runs=perf.baseline_runs)}
        stored = [r for r in stored if r.run_id not in gone]  # type: ignore[attr-defined]
    return out


def test_the_default_policy_fills_ten_runs_then_judges_and_says_so() -> None:
    from clnrm.perf import session
    from clnrm.perf.judge import FILL_RUNS
    from clnrm.scenario.layers import Performance

    assert FILL_RUNS == Performance().baseline_runs == session.FILL_RUNS == 10
    out = drive([0.0] * 12)
    assert [j.state for j in out] == ["no_baseline"] + ["filling"] * 9 + ["judged"] * 2
    assert [j.as_baseline for j in out] == [True] * 10 + [False] * 2
    assert out[0].message == ("no baseline for svc on docker-27/cpus=2/kernel=6.8: this run "
                              "is now the baseline")
    assert out[3].message == ("baseline 3/10 runs for svc on docker-27/cpus=2/kernel=6.8: not "
                              "judged yet; this run joins it; 6 more runs before runs are "
                              "judged")
    assert out[9].message.endswith("this run joins it; runs are judged from the next run on")
    assert all(not j.verdicts and not j.shifts for j in out[:10])
    assert [len(j.baseline.runs) for j in out[10:]] == [10, 10]
    verdict, tail = out[10].verdicts  # the p10 check, then the p95 (tail) check
    assert tail.metric == f"{POLICY_METRIC} (tail)"
    assert verdict.runs_baseline == tail.runs_baseline == 10
    assert not verdict.fails and not tail.fails


def test_a_slow_run_during_the_fill_is_not_judged_and_the_message_says_why_not_recorded() -> None:
    from clnrm.perf.judge import judge_run

    filled = drive([0.0, 0.0, 3.0], toml="baseline_runs = 5")
    assert filled[2].state == "filling" and not filled[2].regressed
    rng = np.random.default_rng(1)
    stored = [_measured(i, service_run(rng)).model_copy(update={"baseline": True})  # type: ignore[attr-defined]
              for i in range(2)]
    j = judge_run(stored, _measured(9, service_run(rng)), None, not_recorded="a step failed")  # type: ignore[arg-type]
    assert j.message.endswith("not judged yet; this run is not recorded (a step failed)")
    assert not j.as_baseline


@pytest.mark.parametrize("seed", range(3))
def test_unchanged_runs_stay_green(seed: int) -> None:
    out = drive([0.0] * 24, seed=seed, drift_sd=0.03)
    assert [i for i, j in enumerate(out) if j.fails] == []


def test_a_sustained_ten_percent_slowdown_fails_once_it_lasted() -> None:
    out = drive([0.0] * 18 + [0.10] * 4, seed=3)
    assert not any(j.fails for j in out[:18])
    flagged = [i - 18 for i, j in enumerate(out) if j.fails]
    assert flagged and flagged[0] <= 3
    shift = next(v for j in out[18:] for v in j.shifts if v.fails)
    assert shift.message.startswith("shift since run r018 (")
    assert "regression beyond the 3% floor" in shift.message


def test_one_run_fails_on_its_own_only_on_overwhelming_evidence() -> None:
    out = drive([0.0] * 12 + [3.0], seed=4)
    last = out[-1]
    assert last.verdicts[0].fails and not last.shifts
    assert "regression beyond the 3% floor" in last.verdicts[0].message
    small = drive([0.0] * 12 + [0.08], seed=4)[-1]
    assert not small.fails


def test_the_policy_is_deterministic_for_a_seed() -> None:
    a = drive([0.0] * 14 + [0.2] * 3, seed=5)
    b = drive([0.0] * 14 + [0.2] * 3, seed=5)
    assert [[v.model_dump() for v in j.all_verdicts] for j in a] == \
        [[v.model_dump() for v in j.all_verdicts] for j in b]


def test_a_toml_threshold_applies_to_both_checks() -> None:
    out = drive([0.0] * 12 + [0.2] * 4, seed=6, toml="p95_latency_increase_max_percent = 50")
    assert not any(j.fails for j in out)
    assert any(v.significant for j in out[12:] for v in j.all_verdicts)

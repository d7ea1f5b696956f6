"""Did a run get slower, by how much, and how sure are we?

``compare`` judges each metric of a new run against a baseline and returns one
:class:`Verdict` per metric, each with an effect size, its confidence interval and an
adjusted p-value, so a report can say *why* it failed and a reader can weigh it.

Two decisions shape the statistics, both measured by ``bench/regression.py``:

* **Runs, not requests, are the unit of replication.**  Latencies of a real service
  drift a few percent from one run to the next (a warmer cache, a noisier neighbour),
  so testing 300 requests against 3000 pooled requests calls every such drift a
  regression.  When the baseline is given as several runs (``[[...], [...], ...]``,
  at least :data:`MIN_RUNS`), the test is a random-effects t-test on per-run robust
  locations: the run-to-run variance is estimated from the baseline runs and added to
  the sampling error of each run.  Given flat samples, it falls back to a one-sided
  Mann-Whitney U on the requests, which is right only when the samples come from
  comparable conditions, and the verdict says so.
* **Significant is not enough.**  A change also has to exceed a practical floor
  (``min_effect_percent``) and, when the TOML sets one, the allowed increase/decrease,
  before it is called a regression.

The location compared per run is, by default, the 20 % trimmed mean of log values (a GC
pause or a retry must not move it; a uniform slowdown must); ``locations`` may name a
quantile instead (``"p10"``: the Harrell-Davis estimate of the 10th percentile), which
is what ``clnrm run`` compares for latencies (:data:`clnrm.perf.judge.LATENCY_LOCATION`):
contention on a shared machine only ever *adds* delay, so it moves the fast end of a
run's latencies far less than its middle, while a slower query or a longer sleep moves
every quantile.  The reported effect is on the statistic
the TOML speaks about (p95 for latency, mean for throughput) with a bootstrap interval
widened by the run-to-run variance.  Everything is deterministic for a given ``seed``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Final, Literal, TypeAlias, cast

import numpy as np
import structlog
from pydantic import BaseModel, ConfigDict, Field

# The models live in a numpy-free module (a result carries them); imported here by name.
from clnrm.perf.verdict import Direction as Direction
from clnrm.perf.verdict import Verdict as Verdict

log = structlog.get_logger("clnrm.perf")

Samples: TypeAlias = Sequence[float] | Sequence[Sequence[float]]
"""Measurements of one metric: flat samples, or one sequence of samples per run."""

MIN_SAMPLES: Final = 8
"""Fewer samples than this on either side and no test is attempted."""
MIN_RUNS: Final = 3
"""Baseline runs needed to estimate run-to-run variation (else samples are pooled)."""
TRIM: Final = 0.2
"""Proportion cut from each end before locating a run: robust to tails, ~94 % efficient."""
CI_LEVEL: Final = 0.95
BOOTSTRAP_RESAMPLES: Final = 4000


class Thresholds(BaseModel):
    """What counts as a failing regression: the TOML ``[performance]`` keys.

    ``p95_latency_increase_max_percent`` applies to ``higher_is_worse`` metrics,
    ``throughput_decrease_max_percent`` to ``lower_is_worse`` ones; a metric without a
    threshold regresses on any significant change beyond ``min_effect_percent``.
    ``alpha`` is the error rate across all metrics compared at once (family-wise under
    Holm, false discovery rate under Benjamini-Hochberg).
    """

    model_config = ConfigDict(extra="forbid")

    p95_latency_increase_max_percent: float | None = Field(default=None, ge=0)
    throughput_decrease_max_percent: float | None = Field(default=None, ge=0)
    fail_on_regression: bool = True
    reported_because: str = "fail_on_regression = false"
    """Why a regression that does not fail is only reported (said in its message)."""
    alpha: float = Field(default=0.01, gt=0, lt=1)
    correction: Literal["holm", "bh"] = "holm"
    min_effect_percent: float = Field(default=3.0, ge=0)

    def allowed_percent(self, direction: Direction) -> float | None:
        """The TOML's allowed worsening for a metric of this direction, if any."""
        if direction == "higher_is_worse":
            return self.p95_latency_increase_max_percent
        return self.throughput_decrease_max_percent


class _Side:
    """One side of a comparison: finite samples, grouped in runs."""

    def __init__(self, raw: Samples) -> None:
        runs = _as_runs(raw)
        finite = [r[np.isfinite(r)] for r in runs]
        self.dropped = sum(len(r) for r in runs) - sum(len(r) for r in finite)
        self.runs = [r for r in finite if len(r) > 0]
        self.pooled = np.concatenate(self.runs) if self.runs else np.empty(0)


def _as_runs(raw: Samples) -> list[np.ndarray]:
    items = list(raw)
    if items and all(isinstance(x, Sequence | np.ndarray) and not isinstance(x, str)
                     for x in items):
        return [np.asarray(x, dtype=float).ravel() for x in items]
    return [np.asarray(items, dtype=float).ravel()]


def default_direction(metric: str) -> Direction:
    """Throughput-like names (``throughput*``, ``*rps``, ``*qps``) shrink when worse."""
    name = metric.lower()
    if name.startswith("throughput") or name.endswith(("rps", "qps", "per_s")):
        return "lower_is_worse"
    return "higher_is_worse"


def run_location(samples: Sequence[float], location: str = "trimmed") -> float:
    """One run's location as ``compare`` tests it (``"trimmed"`` or ``"pNN"``, see
    :func:`compare`), on the original scale; NaN when no finite sample is left."""
    q = _parse_location(location)
    x = np.asarray(samples, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return math.nan
    use_log = bool(np.all(x > 0))
    loc = _locate(x, use_log=use_log, quantile=q)[0]
    return math.exp(loc) if use_log else loc


def robust_location(samples: Sequence[float]) -> float:
    """The run's typical value: what to keep per run for ``changepoint.change_points``.

    The geometric 20 % trimmed mean (plain trimmed mean if a value is <= 0), the same
    location ``compare`` tests; NaN when no finite sample is left.
    """
    x = np.asarray(samples, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return math.nan
    use_log = bool(np.all(x > 0))
    loc = _location(x, use_log=use_log)
    return math.exp(loc) if use_log else loc


def compare(
    baseline: Mapping[str, Samples],
    current: Mapping[str, Samples],
    *,
    thresholds: Thresholds,
    directions: Mapping[str, str] | None = None,
    statistics: Mapping[str, str] | None = None,
    seed: int = 0,
    locations: Mapping[str, str] | None = None,
) -> list[Verdict]:
    """Judge every metric present in both mappings.

    Bad data (too few samples, NaN, constants) gives a verdict, never an exception;
    only a caller's mistake, an unknown direction or statistic name, raises
    ``ValueError``.

    A metric maps to flat samples or to one sequence per run (see module docs).
    ``statistics`` overrides the reported statistic per metric: ``"mean"`` or
    ``"pNN"`` (default p95 for ``higher_is_worse``, mean otherwise).  Verdicts come
    back in the order of ``current``; the same inputs and ``seed`` give the same
    verdicts.  ``locations`` names, per metric, the per-run location the test compares:
    ``"trimmed"`` (default, the 20 % trimmed mean of logs) or ``"pNN"`` (the
    Harrell-Davis estimate of that quantile, with its Maritz-Jarrett standard error).
    """
    tested: list[_Tested] = []
    for i, metric in enumerate(m for m in current if m in baseline):
        given = (directions or {}).get(metric) or default_direction(metric)
        if given not in ("higher_is_worse", "lower_is_worse"):
            raise ValueError(f"direction of {metric!r} must be higher_is_worse or "
                             f"lower_is_worse, got {given!r}")
        direction = cast(Direction, given)
        stat = (statistics or {}).get(metric) or (
            "p95" if direction == "higher_is_worse" else "mean")
        _parse_statistic(stat)
        where = (locations or {}).get(metric) or "trimmed"
        tested.append(_test_metric(metric, direction, stat, _Side(baseline[metric]),
                                   _Side(current[metric]), np.random.default_rng([seed, i]),
                                   location=where))
    family = [t for t in tested if t.p_value is not None]
    adjusted = _adjust([t.p_value for t in family if t.p_value is not None],
                       thresholds.correction)
    for t, p_adj in zip(family, adjusted, strict=True):
        t.p_adjusted = p_adj
    verdicts = [t.verdict(thresholds, len(family)) for t in tested]
    for v in verdicts:
        if v.regressed:
            log.debug("perf.regression", metric=v.metric, effect_pct=round(v.effect_pct, 2),
                      p_adjusted=v.p_adjusted, fails=v.fails)
    return verdicts


def _adjust(p_values: list[float], correction: str) -> list[float]:
    """Holm step-down (family-wise) or Benjamini-Hochberg (false discovery rate)."""
    if not p_values:
        return []
    if correction == "bh":
        from scipy.stats import false_discovery_control

        return [float(x) for x in false_discovery_control(p_values, method="bh")]
    m = len(p_values)
    order = np.argsort(p_values, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[idx]))
        adjusted[idx] = running
    return [float(x) for x in adjusted]


class _Tested:
    """Intermediate result of one metric, waiting for the family-wide correction."""

    def __init__(self, metric: str, direction: Direction, statistic: str, base: _Side,
                 cur: _Side, location: str = "trimmed") -> None:
        self.metric, self.direction, self.statistic = metric, direction, statistic
        self.location = location
        self.base, self.cur = base, cur
        self.p_value: float | None = None
        self.p_adjusted = 1.0
        self.effect = self.ci_low = self.ci_high = self.shift = 0.0
        self.test = "none"
        self.note = ""

    def verdict(self, th: Thresholds, family_size: int) -> Verdict:
        sign = 1.0 if self.direction == "higher_is_worse" else -1.0
        allowed = th.allowed_percent(self.direction)
        significant = self.p_value is not None and self.p_adjusted <= th.alpha
        beyond_floor = sign * self.shift > th.min_effect_percent
        beyond_allowed = allowed is None or sign * self.effect > allowed
        regressed = significant and beyond_floor and beyond_allowed
        return Verdict(
            metric=self.metric, direction=self.direction, regressed=regressed,
            fails=regressed and th.fail_on_regression, significant=significant,
            effect_pct=self.effect, ci_low_pct=self.ci_low, ci_high_pct=self.ci_high,
            shift_pct=self.shift, p_value=1.0 if self.p_value is None else self.p_value,
            p_adjusted=self.p_adjusted, confidence=1.0 - self.p_adjusted,
            statistic=self.statistic, test=self.test, n_baseline=len(self.base.pooled),
            n_current=len(self.cur.pooled), runs_baseline=len(self.base.runs),
            runs_current=len(self.cur.runs), dropped=self.base.dropped + self.cur.dropped,
            allowed_pct=allowed,
            message=self._message(th, family_size, significant, beyond_floor, beyond_allowed,
                                  allowed, regressed),
        )

    def _message(self, th: Thresholds, family_size: int, significant: bool,
                 beyond_floor: bool, beyond_allowed: bool, allowed: float | None,
                 regressed: bool) -> str:
        dropped = self.base.dropped + self.cur.dropped
        tail = f"; dropped {dropped} non-finite values" if dropped else ""
        if self.p_value is None:
            return f"{self.metric}: {self.note}{tail}"
        how = "Holm" if th.correction == "holm" else "BH"
        head = (f"{self.metric} {self.statistic} {self.effect:+.1f}% "
                f"({CI_LEVEL:.0%} CI {self.ci_low:+.1f}..{self.ci_high:+.1f}%), "
                f"{'typical' if self.location == 'trimmed' else self.location} "
                f"{self.shift:+.1f}%, p={_fmt_p(self.p_adjusted)}"
                + (f" ({how}, {family_size} metrics)" if family_size > 1 else ""))
        worse = "increase" if self.direction == "higher_is_worse" else "decrease"
        if regressed:
            limit = f"beyond the {allowed:g}% allowed" if allowed is not None else \
                f"beyond the {th.min_effect_percent:g}% floor"
            what = "regression " + limit + ("" if th.fail_on_regression
                                            else " (reported, not failing: "
                                                 f"{th.reported_because})")
        elif not significant:
            what = f"no significant {worse} at alpha={th.alpha:g}"
        elif not beyond_floor:
            what = (f"significant but the shift ({self.shift:+.1f}%) is within the "
                    f"{th.min_effect_percent:g}% practical floor")
        elif not beyond_allowed:
            what = f"significant but within the {allowed:g}% allowed"
        else:  # pragma: no cover - the three conditions above are exhaustive
            what = "not a regression"
        return f"{head}, {what}{self.note}{tail}"


def _fmt_p(p: float) -> str:
    return f"{p:.2g}" if p >= 0.001 else f"{p:.1e}"


def _test_metric(metric: str, direction: Direction, statistic: str, base: _Side,
                 cur: _Side, rng: np.random.Generator, *, location: str = "trimmed") -> _Tested:
    t = _Tested(metric, direction, statistic, base, cur, location)
    where = _parse_location(location)
    nb, nc = len(base.pooled), len(cur.pooled)
    if min(nb, nc) < MIN_SAMPLES:
        t.note = (f"not enough samples (n={min(nb, nc)}, need >= {MIN_SAMPLES}); "
                  f"baseline n={nb}, current n={nc}, not judged")
        return t
    quantile = _parse_statistic(statistic)
    # Log scale makes a slowdown multiplicative and symmetric; zeros forbid it.
    use_log = bool(np.all(base.pooled > 0) and np.all(cur.pooled > 0))
    b_runs = [r for r in base.runs if len(r) >= MIN_SAMPLES]
    c_runs = [r for r in cur.runs if len(r) >= MIN_SAMPLES]
    tau2 = 0.0
    if len(b_runs) >= MIN_RUNS and c_runs:
        p_worse, shift_log, tau2, df = _run_level_test(b_runs, c_runs, use_log, direction,
                                                       where)
        t.test = f"random-effects t-test on {len(b_runs)}+{len(c_runs)} runs (df={df})"
    else:
        p_worse, shift_log = _request_level_test(base.pooled, cur.pooled, use_log, direction,
                                                 where)
        t.test = "Mann-Whitney U on requests"
        t.note = (f"; run-to-run variation not estimated (needs >= {MIN_RUNS} baseline "
                  f"runs of >= {MIN_SAMPLES} samples)")
    t.p_value = p_worse
    if use_log:
        t.shift = 100.0 * math.expm1(shift_log)
    else:
        ref = abs(_locate(base.pooled, use_log=False, quantile=where)[0])
        t.shift = 100.0 * shift_log / ref if ref > 0 else 0.0
    t.effect, t.ci_low, t.ci_high = _effect_with_ci(base.pooled, cur.pooled, quantile,
                                                    tau2 if use_log else 0.0,
                                                    len(b_runs), len(c_runs), rng)
    return t


def _parse_statistic(statistic: str) -> float | None:
    """``"mean"`` -> None, ``"p95"`` / ``"median"`` -> the quantile in [0, 1]."""
    if statistic == "mean":
        return None
    if statistic == "median":
        return 0.5
    if statistic.startswith("p") and statistic[1:].replace(".", "", 1).isdigit():
        q = float(statistic[1:]) / 100.0
        if 0 < q < 1:
            return q
    raise ValueError(f"statistic must be 'mean', 'median' or 'pNN', got {statistic!r}")


def _parse_location(location: str) -> float | None:
    """``"trimmed"`` -> None, ``"pNN"`` -> the quantile in (0, 1)."""
    if location == "trimmed":
        return None
    if location.startswith("p") and location[1:].replace(".", "", 1).isdigit():
        q = float(location[1:]) / 100.0
        if 0 < q < 1:
            return q
    raise ValueError(f"location must be 'trimmed' or 'pNN', got {location!r}")


@lru_cache(maxsize=256)
def _hd_weights(n: int, q: float) -> np.ndarray:
    """Harrell-Davis weights of the n order statistics for quantile q: the mass a
    Beta(q(n+1), (1-q)(n+1)) puts on ((i-1)/n, i/n]."""
    from scipy.special import betainc

    a, b = q * (n + 1), (1 - q) * (n + 1)
    w = np.diff(betainc(a, b, np.linspace(0.0, 1.0, n + 1)))
    w.setflags(write=False)
    return w


def _locate(x: np.ndarray, *, use_log: bool, quantile: float | None) -> tuple[float, float]:
    """A run's location and the square of its standard error, on the log scale when
    ``use_log``: the trimmed mean (Tukey-McLaughlin error) when ``quantile`` is None,
    else the Harrell-Davis quantile, whose error is the Maritz-Jarrett one: the
    variance of the order statistics under the same weights.  Monotone transforms
    commute with order statistics, so the log of the quantile is the quantile of logs
    up to the weighting."""
    if quantile is None:
        return _location(x, use_log=use_log), _location_se2(x, use_log=use_log)
    v = np.sort(np.log(x) if use_log else np.asarray(x, dtype=float))
    w = _hd_weights(len(v), quantile)
    c1 = float(w @ v)
    return c1, max(0.0, float(w @ (v * v)) - c1 * c1)


def _location(x: np.ndarray, *, use_log: bool) -> float:
    """The :data:`TRIM` trimmed mean, cut as ``scipy.stats.trim_mean`` cuts (int(TRIM n)
    from each end); in numpy because scipy's wrapper costs ~1 ms a call, and a run's
    judgement (and ``bench/regression.py``'s thousands of them) locates every run."""
    v = np.sort(np.log(x) if use_log else np.asarray(x, dtype=float))
    cut = int(TRIM * len(v))
    return float(v[cut:len(v) - cut].mean())


def _location_se2(x: np.ndarray, *, use_log: bool) -> float:
    """Squared standard error of the trimmed mean (Tukey-McLaughlin, via winsorizing)."""
    v = np.sort(np.log(x) if use_log else x)
    g = math.floor(TRIM * len(v))
    w = np.clip(v, v[g], v[len(v) - g - 1])
    return float(np.var(w, ddof=1) / ((1 - 2 * TRIM) ** 2 * len(v)))


def _run_level_test(b_runs: list[np.ndarray], c_runs: list[np.ndarray], use_log: bool,
                    direction: Direction, quantile: float | None = None,
                    ) -> tuple[float, float, float, int]:
    """One-sided random-effects t-test on per-run locations.

    Each run's location carries its own sampling error plus a run-to-run component
    tau^2, estimated by moments from the spread of the run locations (pooled within
    each side) minus their mean sampling error.  Returns (p, shift, tau^2, df).
    """
    from scipy.stats import t as student_t

    located_b = [_locate(r, use_log=use_log, quantile=quantile) for r in b_runs]
    located_c = [_locate(r, use_log=use_log, quantile=quantile) for r in c_runs]
    lb = np.array([loc for loc, _ in located_b])
    lc = np.array([loc for loc, _ in located_c])
    sb = np.array([se2 for _, se2 in located_b])
    sc = np.array([se2 for _, se2 in located_c])
    k, m = len(lb), len(lc)
    df = k + m - 2
    spread = (np.sum((lb - lb.mean()) ** 2) + np.sum((lc - lc.mean()) ** 2)) / df
    tau2 = max(0.0, float(spread - np.mean(np.concatenate([sb, sc]))))
    var = (tau2 + sb.mean()) / k + (tau2 + sc.mean()) / m
    shift = float(lc.mean() - lb.mean())
    worse = shift if direction == "higher_is_worse" else -shift
    if var <= 0:
        return (0.0 if worse > 0 else 1.0), shift, tau2, df
    return float(student_t.sf(worse / math.sqrt(var), df)), shift, tau2, df


def _request_level_test(base: np.ndarray, cur: np.ndarray, use_log: bool,
                        direction: Direction, quantile: float | None = None,
                        ) -> tuple[float, float]:
    from scipy.stats import mannwhitneyu

    alternative = "greater" if direction == "higher_is_worse" else "less"
    if np.ptp(np.concatenate([base, cur])) == 0:
        p = 1.0  # every value identical: nothing moved
    else:
        p = float(mannwhitneyu(cur, base, alternative=alternative).pvalue)
    shift = (_locate(cur, use_log=use_log, quantile=quantile)[0]
             - _locate(base, use_log=use_log, quantile=quantile)[0])
    return (1.0 if math.isnan(p) else p), shift


def _effect_with_ci(base: np.ndarray, cur: np.ndarray, quantile: float | None, tau2: float,
                    k: int, m: int, rng: np.random.Generator) -> tuple[float, float, float]:
    """Relative change of the statistic with a percentile-bootstrap interval.

    Computed on the log ratio; when runs showed run-to-run variance (tau^2 on the log
    scale), the interval is widened by it, since resampling requests cannot see it.
    Quantiles are bootstrapped exactly and cheaply: the k-th order statistic of a
    resample is the sample's empirical quantile at a Beta(k, n + 1 - k) draw.
    """
    from scipy.stats import norm

    sb = _bootstrap_stat(base, quantile, rng)
    sc = _bootstrap_stat(cur, quantile, rng)
    pb, pc = _point_stat(base, quantile), _point_stat(cur, quantile)
    if pb <= 0 or pc <= 0 or np.any(sb <= 0) or np.any(sc <= 0):
        # Non-positive statistic: report a plain relative difference without an interval.
        effect = 100.0 * (pc - pb) / abs(pb) if pb != 0 else 0.0
        return effect, effect, effect
    est = math.log(pc / pb)
    boot = np.log(sc / sb)
    a = (1 - CI_LEVEL) / 2
    lo, hi = np.quantile(boot, [a, 1 - a])
    if tau2 > 0:
        z = float(norm.ppf(1 - a))
        extra = z * math.sqrt(tau2 * (1 / max(k, 1) + 1 / max(m, 1)))
        lo = est - math.hypot(est - lo, extra)
        hi = est + math.hypot(hi - est, extra)
    return 100.0 * math.expm1(est), 100.0 * math.expm1(lo), 100.0 * math.expm1(hi)


def _point_stat(x: np.ndarray, quantile: float | None) -> float:
    if quantile is None:
        return float(np.mean(x))
    return float(np.sort(x)[_order_index(len(x), quantile)])


def _order_index(n: int, quantile: float) -> int:
    return min(n - 1, max(0, math.ceil(quantile * n) - 1))


def _bootstrap_stat(x: np.ndarray, quantile: float | None,
                    rng: np.random.Generator) -> np.ndarray:
    n = len(x)
    if quantile is None:
        # Mean of a resample, in chunks so large samples stay within memory.
        out = np.empty(BOOTSTRAP_RESAMPLES)
        chunk = max(1, 2_000_000 // n)
        for start in range(0, BOOTSTRAP_RESAMPLES, chunk):
            stop = min(BOOTSTRAP_RESAMPLES, start + chunk)
            out[start:stop] = x[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
        return out
    k = _order_index(n, quantile) + 1
    u = rng.beta(k, n + 1 - k, size=BOOTSTRAP_RESAMPLES)
    idx = np.minimum(n - 1, np.ceil(u * n).astype(int) - 1).clip(0)
    return np.sort(x)[idx]

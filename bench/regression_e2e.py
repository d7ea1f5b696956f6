"""The regression detector end to end: real services, ``clnrm run``, judged by exit code.

Two systems, each a scenario file run through the product exactly as a user runs it
(``clnrm run FILE --format json``, its baseline in a fresh shared memory), with a
slowdown of known size made by an env var of the demo app (docs/demo.md):

* **(a) fixed_delay** (``scenarios/performance/fixed-delay.clnrm.toml``): the api's
  ``GET /v1/delay`` answers after exactly ``FIXED_DELAY_MS`` (20 ms), asking nothing
  else.  The compared metric is that server span's latency.
* **(b) demo_read** (``scenarios/performance/demo-read-e2e.clnrm.toml``): the demo's
  read path, gateway -> api -> PostgreSQL, under a 40 rps open-loop load;
  ``DB_READ_DELAY_MS`` adds an exact sleep inside the api's ``SELECT items`` span.
  The compared metric is the read's entry span, the gateway's ``GET /items``.

Per system: a fresh memory; the default baseline built as a user builds it (runs at
the base value until the product judges against a full baseline, i.e. one with
:data:`clnrm.perf.session.FILL_RUNS` runs); then ``--aa-runs`` runs at the base value
(a failing run is a false alarm); then, from a copy of the memory as it stood after
the A/A runs, ``--ab-runs`` consecutive runs for each shift of +10/+25/+50 %.  A shift
of +X % on (a) adds X % of its set delay (+10 % of 20 ms is 2 ms: the service is 10 %
slower); on (b) it adds ``X/100 * p95`` to the query's delay, ``p95`` being the read's
p95 in the baseline runs (median over them), as the issue defines it: an added constant
moves every quantile by itself, so the read's p95 grows by X % (the measured growth is
printed beside it).  A
detection is exit code 1 with a failing ``performance`` verdict in the JSON and no
failed step or other expectation; any other failure is counted apart as broken (and
left out of the shares).  The shifted runs of one shift follow each other as a CI
history would, so a policy that confirms a lasting shift over the history shows
here as a first run missed and the later ones detected (``per_run``: ``D`` detected,
``.`` passed, ``b`` broken; ``F`` a false alarm among the A/A runs).

``--calibrate`` instead runs each system ``--calibration-runs`` times at its base
value and writes ``bench/regression_calibration.json``: per compared metric, the
run-to-run drift of the statistic the detector tests (log of the per-run robust
location, :func:`clnrm.perf.regression.robust_location`) and of log p95, the
within-run spread of log latency, tail shares, and the machine's facts.  The synthetic
bench (``bench/regression.py``) reads that file to simulate the measured noise.

The machine is shared (2 cores, other work running): figures are under load.
Ends with one JSON line ``{"bench": "regression_e2e", ...}``.

Measured 2026-12-07 03:50-04:45 UTC on the shared 2-core machine (7 other helpers'
test suites beside it; 1-minute load average 17 / 13 on average, up to 41 / 37),
policy of ``clnrm.perf.judge.judge_run`` (baseline of 10 runs; each latency judged on
its p10 and, apart, its p95 at alpha x 0.01; history check at alpha x 0.9), (a) and
(b) run at the same time, ``--aa-runs 20 --ab-runs 8 --write-calibration``:

* calibration (the 30 base-value runs of each): on the 20 ms sleep the p10 drifts
  1.2 % (SD of its log), the trimmed mean 22 %, the p95 59 %; on the read path the
  query span's p10 49 %, the entry span's p10 92 %, its p95 140 %;
* (a) 0/20 false alarms; +10 % 8/8, +25 % 8/8, +50 % 8/8 (each first slow run too);
  re-run 05:04-05:23 UTC with +X % of the set delay (+10 % = 2 ms) and the tail check
  reported rather than failing, two CPU hogs and a ``make test`` beside it (load 8.2,
  up to 11.7): 0/20 false alarms, 8/8 at each shift (an earlier attempt with the tail
  check failing raised 7 false alarms in 19 A/A runs, all on the p95, as the load rose
  after the baseline);
* (b) 0/20 false alarms; +10 % 8/8, +25 % 8/8, +50 % 8/8, caught in the query's span.

Caveat for (b): a shift is X % of the baseline runs' median p95, as the issue defines
it, and those ran under the heaviest load (p95 1.12 s for the read), so +10 % added
112 ms, far more than the query's own p10.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CLNRM = REPO / ".venv" / "bin" / "clnrm"
CALIBRATION = REPO / "bench" / "regression_calibration.json"
SHIFTS = (10, 25, 50)
TARGETS = {
    "fixed_delay": {"aa_false_alarms": 0, "detect": {10: 0.95}},
    "demo_read": {"aa_false_alarms": 0, "detect": {25: 0.90, 10: 0.60}},
}
TARGET_TEXT = ("(a) fixed_delay: 0 false alarms in 20 A/A runs, >= 95 % detected at +10 %; "
               "(b) demo_read: 0 false alarms in 20 A/A runs, >= 90 % at +25 %, >= 60 % at "
               "+10 %")
RUN_TIMEOUT_S = 300


@dataclass(frozen=True)
class System:
    """One scenario file and the env var that sets its delay (ms)."""

    key: str
    file: Path
    service: str
    env_var: str
    base_ms: float
    span: str
    """The compared span (``[performance] spans``), whose p95 defines +X %."""
    calibrate: tuple[str, ...]
    """Metrics whose noise is calibrated (the compared one first)."""
    shift_of_delay: bool = False
    """+X % is X % of the set delay (a service whose latency is set exactly: +10 % of
    20 ms is 2 ms), not of the measured p95, which load inflates."""


SYSTEMS = {
    "a": System("fixed_delay", REPO / "scenarios/performance/fixed-delay.clnrm.toml", "api",
                "FIXED_DELAY_MS", 20.0, "GET /v1/delay",
                ("latency:GET /v1/delay", "load:latency"), shift_of_delay=True),
    "b": System("demo_read", REPO / "scenarios/performance/demo-read-e2e.clnrm.toml", "api",
                "DB_READ_DELAY_MS", 0.0, "GET /items",
                ("latency:GET /items", "latency:GET /v1/items", "latency:SELECT items",
                 "load:latency")),
}


@dataclass
class Run:
    """One ``clnrm run``: its exit code, what failed, and the samples of each metric."""

    rc: int
    seconds: float
    perf_failed: list[str] = field(default_factory=list)
    other_failed: list[str] = field(default_factory=list)
    samples: dict[str, list[float]] = field(default_factory=dict)
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    runs_baseline: int = 0
    error: str = ""

    @property
    def detected(self) -> bool:
        """Failed because of performance, and only because of it."""
        return self.rc == 1 and bool(self.perf_failed) and not self.other_failed

    @property
    def broken(self) -> bool:
        return self.rc not in (0, 1) or bool(self.other_failed) or bool(self.error)


def scenario_copy(system: System, delay_ms: float, folder: Path) -> Path:
    """The system's file with its delay env var set to ``delay_ms``."""
    text = system.file.read_text()
    pattern = re.compile(rf'^({system.env_var}\s*=\s*)"[^"]*"', re.MULTILINE)
    if not pattern.search(text):
        raise SystemExit(f"{system.file}: no {system.env_var} = \"...\" line to set")
    text = pattern.sub(lambda m: f'{m.group(1)}"{delay_ms:.3f}"', text, count=1)
    out = folder / f"{system.key}-{delay_ms:.3f}.clnrm.toml"
    out.write_text(text)
    return out


def run_once(system: System, delay_ms: float, memory: Path, work: Path) -> Run:
    """``clnrm run`` of the system at ``delay_ms`` against the memory at ``memory``."""
    file = scenario_copy(system, delay_ms, work)
    env = {**os.environ, "CLNRM_MEMORY": str(memory)}
    cmd = [str(CLNRM), "run", str(file), "--format", "json",
           "--artifacts", str(work / "artifacts")]
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True,
                              timeout=RUN_TIMEOUT_S, cwd=REPO)
    except subprocess.TimeoutExpired:
        return Run(rc=-1, seconds=time.monotonic() - t0, error="timed out")
    seconds = time.monotonic() - t0
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        return Run(rc=proc.returncode, seconds=seconds,
                   error=f"no JSON report: {proc.stderr.strip()[-300:]}")
    run = Run(rc=proc.returncode, seconds=seconds)
    if isinstance(report.get("error"), dict):  # the JSON envelope of an exit 2
        run.error = str(report["error"].get("message", "bad input"))[:300]
    for test in report.get("tests", []):
        for step in test.get("steps", []):
            if step.get("outcome") == "failed":
                run.other_failed.append(f"step {step.get('name')}")
        for v in test.get("validations", []):
            if v.get("status") not in ("fail", "error"):
                continue
            # a verdict against the baseline or over the history; a listed span that
            # was never measured ("latency:X measured") is a broken run, not a verdict
            verdict = (v.get("validator") == "performance" and v.get("status") == "fail"
                       and not v.get("expectation", "").endswith(" measured"))
            where = run.perf_failed if verdict else run.other_failed
            where.append(f"{v.get('validator')}: {v.get('expectation')}: "
                         f"{v.get('message') or v.get('seen')}"[:300])
        if test.get("outcome") == "error":
            run.other_failed.append(f"test error: {test.get('message')}")
        perf = test.get("performance") or {}
        run.verdicts = perf.get("verdicts") or []
        run.runs_baseline = max([int(v.get("runs_baseline", 0)) for v in run.verdicts] or [0])
        measured = perf.get("measurements") or {}
        for name, summary in (measured.get("latency") or {}).items():
            run.samples[f"latency:{name}"] = list(summary.get("samples_ms") or [])
        load = perf.get("load") or {}
        warmup_ms = _load_warmup_s(system) * 1000
        corrected = [r["latency_ms"] for r in load.get("requests") or []
                     if r.get("latency_ms") is not None and r.get("intended_ms", 0) >= warmup_ms]
        if corrected:
            run.samples["load:latency"] = sorted(corrected)
    return run


def _load_warmup_s(system: System) -> float:
    from clnrm.scenario.loader import load_scenario

    return _cached_warmup.setdefault(system.key, _warmup_of(load_scenario, system))


_cached_warmup: dict[str, float] = {}


def _warmup_of(load_scenario: Any, system: System) -> float:
    sc = load_scenario(system.file)
    load = sc.performance.load if sc.performance is not None else None
    return float(load.warmup) if load is not None else 0.0


# -- per-run statistics ---------------------------------------------------------------


PROFILE_Q = (0.0, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75,
             0.8, 0.85, 0.9, 0.95, 0.97, 0.99, 1.0)
"""Quantiles kept per run (their logs) as the run's shape: ``bench/regression.py`` draws
simulated runs from these measured shapes."""
CANDIDATES = ("trimmed_mean", "hd_p10", "hd_p25", "p10", "p25", "p50", "p95")
"""Per-run statistics whose run-to-run drift the calibration records (the detector's
choice of :data:`clnrm.perf.judge.LATENCY_LOCATION` is made from these)."""


def run_stats(samples: list[float]) -> dict[str, Any]:
    """The statistics of one run's samples of one latency (ms); ``location`` is the one
    the product's detector compares (:func:`clnrm.perf.judge.location_of`)."""
    import numpy as np

    from clnrm.perf.judge import LATENCY_LOCATION
    from clnrm.perf.metrics import percentile
    from clnrm.perf.regression import _hd_weights, robust_location, run_location

    x = np.sort(np.asarray([s for s in samples if s > 0 and math.isfinite(s)], dtype=float))
    logs = np.log(x)
    med = float(np.median(x))
    q = float(LATENCY_LOCATION[1:]) / 100
    w = _hd_weights(len(logs), q)
    c1 = float(w @ logs)
    return {
        "n": len(x),
        "location": run_location(list(x), LATENCY_LOCATION),
        "trimmed_mean": robust_location(list(x)),
        "hd_p10": run_location(list(x), "p10"),
        "hd_p25": run_location(list(x), "p25"),
        "log_profile": [round(float(v), 5) for v in np.quantile(logs, PROFILE_Q)],
        "p10": percentile(list(x), 10),
        "p25": percentile(list(x), 25),
        "p50": med,
        "p95": percentile(list(x), 95),
        "sigma_log": float(np.std(logs, ddof=1)),
        "location_se_log": math.sqrt(max(0.0, float(w @ (logs * logs)) - c1 * c1)),
        "share_over_2x_median": float(np.mean(x > 2 * med)),
        "share_over_5x_median": float(np.mean(x > 5 * med)),
    }


def drift_summary(per_run: list[dict[str, float]]) -> dict[str, Any]:
    """Run-to-run drift of one metric over runs at the same setting."""
    import numpy as np

    loc = np.log([r["location"] for r in per_run])
    p95 = np.log([r["p95"] for r in per_run])
    se2 = float(np.mean([r["location_se_log"] ** 2 for r in per_run]))
    sd_loc = float(np.std(loc, ddof=1))
    tau = math.sqrt(max(0.0, sd_loc**2 - se2))
    ratios_p95 = np.exp(np.abs(np.diff(p95))) - 1
    cand = {q: np.log([r[q] for r in per_run]) for q in CANDIDATES
            if all(q in r for r in per_run)}
    from clnrm.perf.judge import LATENCY_LOCATION

    return {
        "location": f"{LATENCY_LOCATION} (Harrell-Davis), what clnrm.perf.judge compares "
                    "for latencies; *_location fields are about it",
        "runs": len(per_run),
        "requests_per_run_median": float(np.median([r["n"] for r in per_run])),
        "location_ms_median": float(np.exp(np.median(loc))),
        "p95_ms_median": float(np.exp(np.median(p95))),
        "drift_sd_log_location": sd_loc,
        "sampling_se_log_location": math.sqrt(se2),
        "tau_log_location": tau,
        "drift_sd_log_p95": float(np.std(p95, ddof=1)),
        **{f"drift_sd_log_{q}": float(np.std(v, ddof=1)) for q, v in cand.items()},
        **{f"drift_max_log_{q}": float(np.max(np.abs(v - np.median(v))))
           for q, v in cand.items()},
        **{f"log_{q}_per_run": [round(float(x), 5) for x in v] for q, v in cand.items()},
        "p95_next_run_change_max_pct": float(100 * ratios_p95.max()) if len(p95) > 1 else 0.0,
        "p95_next_run_change_median_pct": float(100 * np.median(ratios_p95))
        if len(p95) > 1 else 0.0,
        "location_range_pct": float(100 * (math.exp(loc.max() - loc.min()) - 1)),
        "within_run_sigma_log_median": float(np.median([r["sigma_log"] for r in per_run])),
        "share_over_2x_median": float(np.mean([r["share_over_2x_median"] for r in per_run])),
        "share_over_5x_median": float(np.mean([r["share_over_5x_median"] for r in per_run])),
        "lag1_autocorrelation_log_location": _lag1(loc),
        "log_location_per_run": [round(float(v), 5) for v in loc],
        "log_p95_per_run": [round(float(v), 5) for v in p95],
        "profile_quantiles": list(PROFILE_Q),
        "log_profile_per_run": [r["log_profile"] for r in per_run if "log_profile" in r],
    }


def _lag1(x: Any) -> float:
    import numpy as np

    if len(x) < 3:
        return 0.0
    d = x - x.mean()
    den = float(np.sum(d * d))
    return float(np.sum(d[1:] * d[:-1]) / den) if den > 0 else 0.0


# -- machine --------------------------------------------------------------------------


def machine_facts() -> dict[str, Any]:
    from clnrm.perf.fingerprint import current_fingerprint

    try:
        fp = current_fingerprint().key
    except Exception as exc:  # no engine: said, not fatal
        fp = f"unavailable ({exc})"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                            capture_output=True, text=True).stdout.strip()
    return {"nproc": os.cpu_count(), "fingerprint": fp, "git_commit": commit,
            "shared_machine": True}


def _loadavg() -> float:
    return os.getloadavg()[0]


# -- calibration ----------------------------------------------------------------------


def calibrate(systems: list[System], runs: int, out: Path, argv: list[str]) -> dict[str, Any]:
    started = dt.datetime.now(dt.UTC)
    result: dict[str, Any] = {
        "what": "run-to-run drift of the statistics clnrm's regression detector compares, "
                "measured by bench/regression_e2e.py --calibrate through `clnrm run` "
                "(A/A runs at one setting, each on a fresh set of containers)",
        "date": started.isoformat(timespec="seconds"),
        "command": " ".join(["bench/regression_e2e.py", *argv]),
        "machine": machine_facts(),
        "systems": {},
    }
    for system in systems:
        loads: list[float] = []
        per_metric: dict[str, list[dict[str, float]]] = {m: [] for m in system.calibrate}
        broken = 0
        seconds: list[float] = []
        with tempfile.TemporaryDirectory(prefix=f"clnrm-e2e-cal-{system.key}-") as tmp:
            work, memory = Path(tmp), Path(tmp) / "memory"
            for i in range(runs):
                loads.append(_loadavg())
                run = run_once(system, system.base_ms, memory, work)
                seconds.append(run.seconds)
                if run.other_failed or run.error:
                    broken += 1
                    print(f"  [{system.key}] calibration run {i + 1}: broken: "
                          f"{run.error or run.other_failed[:1]}", flush=True)
                    continue
                for metric in system.calibrate:
                    if len(run.samples.get(metric, [])) >= 8:
                        per_metric[metric].append(run_stats(run.samples[metric]))
                first = per_metric[system.calibrate[0]]
                print(f"  [{system.key}] calibration run {i + 1}/{runs}: rc={run.rc} "
                      f"{run.seconds:.1f}s load1={loads[-1]:.2f} "
                      + (f"{system.span} loc={first[-1]['location']:.2f}ms "
                         f"p95={first[-1]['p95']:.2f}ms n={first[-1]['n']}" if first else ""),
                      flush=True)
        result["systems"][system.key] = system_entry(system, runs, broken, seconds, loads,
                                                     per_metric)
    result["duration_s"] = round((dt.datetime.now(dt.UTC) - started).total_seconds(), 1)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result


def system_entry(system: System, runs: int, broken: int, seconds: list[float],
                 loads: list[float], per_metric: dict[str, list[dict[str, Any]]],
                 ) -> dict[str, Any]:
    """One system's calibration: its setting and load, and each metric's drift."""
    sc_text = system.file.read_text()
    rate = re.search(r"^rate_rps\s*=\s*([0-9.]+)", sc_text, re.MULTILINE)
    duration = re.search(r'^duration\s*=\s*"([^"]+)"', sc_text, re.MULTILINE)
    return {
        "file": str(system.file.relative_to(REPO)),
        "setting": f"{system.env_var}={system.base_ms:g}",
        "compared_metric": f"latency:{system.span}",
        "load": {"rate_rps": float(rate.group(1)) if rate else None,
                 "duration": duration.group(1) if duration else None},
        "runs_attempted": runs,
        "runs_broken": broken,
        "seconds_per_run_median": statistics.median(seconds) if seconds else None,
        "loadavg_1m": {"mean": round(statistics.fmean(loads), 2),
                       "max": round(max(loads), 2)} if loads else None,
        "metrics": {m: drift_summary(rows) for m, rows in per_metric.items()
                    if len(rows) >= 3},
    }


def merge_calibration(out: Path, key: str, entry: dict[str, Any], argv: list[str]) -> None:
    """Put one system's calibration into ``out`` (other systems kept; a lock file, as
    the two systems may run as two processes at once)."""
    import fcntl

    with open(Path(tempfile.gettempdir()) / f"{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            data = json.loads(out.read_text()) if out.is_file() else {}
        except ValueError:
            data = {}
        data.update({
            "what": "run-to-run drift of the statistics clnrm's regression detector "
                    "compares, measured through `clnrm run` (A/A runs at one setting, each "
                    "on a fresh set of containers)",
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": machine_facts()})
        data.setdefault("systems", {})[key] = {
            **entry, "command": " ".join(["bench/regression_e2e.py", *argv]),
            "runs_from": "the base-value runs of the end-to-end bench: the runs that filled "
                         "the default baseline and the A/A runs"}
        out.write_text(json.dumps(data, indent=2) + "\n")


def from_artifacts(folder: Path, names: tuple[str, ...]) -> dict[str, Any]:
    """The same drift figures from the ``spans.jsonl`` files ``clnrm run --artifacts``
    left in ``folder`` (one sub-folder per run, ordered by their first span).

    For a second look at runs already made (e.g. which quantile drifts least); the
    measured window is not known here, so the load's warm-up requests are included."""
    runs: list[tuple[int, dict[str, list[float]]]] = []
    for file in sorted(folder.glob("*/*.spans.jsonl")):
        first, durations = None, {n: [] for n in names}
        try:
            for line in file.read_text().splitlines():
                span = json.loads(line)
                start, end = span.get("start_time_unix_nano"), span.get("end_time_unix_nano")
                if start is None or end is None:
                    continue
                first = start if first is None else min(first, start)
                if span.get("name") in durations and span.get("kind") in ("server", "client"):
                    durations[span["name"]].append((end - start) / 1e6)
        except ValueError:  # a file copied while it was written
            continue
        if first is not None:
            runs.append((first, durations))
    runs.sort(key=lambda r: r[0])
    out: dict[str, Any] = {"folder_runs": len(runs)}
    for name in names:
        rows = [run_stats(d[name]) for _, d in runs if len(d[name]) >= 8]
        if len(rows) >= 3:
            out[f"latency:{name}"] = drift_summary(rows)
    return out


# -- the end-to-end bench -------------------------------------------------------------


def fill_runs(system: System | None = None) -> int:
    """How many runs the product's default baseline takes before runs are judged.

    The product's own figure: ``[performance] baseline_runs`` of the file where the
    policy reads it (``clnrm.perf.judge.judge_run``), else the session's constant."""
    from clnrm.perf import judge, session

    if system is not None and hasattr(judge, "judge_run"):
        from clnrm.scenario.loader import load_scenario

        perf = load_scenario(system.file).performance
        if perf is not None:
            return int(perf.baseline_runs)
    return int(getattr(judge, "FILL_RUNS", getattr(session, "FILL_RUNS", 3)))


def e2e_system(system: System, aa_runs: int, ab_runs: int,
               calibration: Path | None = None, argv: list[str] | None = None,
               ) -> dict[str, Any]:
    import numpy as np

    out: dict[str, Any] = {"file": str(system.file.relative_to(REPO)),
                           "compared": f"latency:{system.span}"}
    need = fill_runs(system)
    loads: list[float] = []
    with tempfile.TemporaryDirectory(prefix=f"clnrm-e2e-{system.key}-") as tmp:
        work, memory = Path(tmp), Path(tmp) / "memory"

        def one(delay: float, label: str) -> Run:
            loads.append(_loadavg())
            run = run_once(system, delay, memory, work)
            span = run.samples.get(f"latency:{system.span}", [])
            stats = run_stats(span) if len(span) >= 8 else {}
            p95 = stats.get("p95", float("nan"))
            p10 = stats.get("location", float("nan"))
            fail = ("DETECTED" if run.detected else "BROKEN" if run.broken
                    else "fail?" if run.rc else "pass")
            print(f"  [{system.key}] {label}: {fail} rc={run.rc} base_runs={run.runs_baseline} "
                  f"p10={p10:.2f}ms p95={p95:.2f}ms {run.seconds:.1f}s"
                  + (f" | {run.perf_failed[0]}" if run.perf_failed else "")
                  + (f" | {(run.other_failed or [run.error])[0]}" if run.broken else ""),
                  flush=True)
            return run

        # 1. the default baseline, built as a user builds it
        fill: list[Run] = []
        base_p95: list[float] = []
        while len(fill) < 4 * need:
            run = one(system.base_ms, f"baseline run {len(fill) + 1}")
            if run.runs_baseline >= need and not run.broken:
                break  # judged against a full baseline: the first A/A run
            fill.append(run)
            span = run.samples.get(f"latency:{system.span}", [])
            if len(span) >= 8 and not run.broken:
                base_p95.append(run_stats(span)["p95"])
        else:
            out["error"] = f"the baseline never reached {need} runs"
            return out
        out["baseline"] = {"runs": len(fill), "failed_while_filling": sum(
            1 for r in fill if r.rc != 0), "fill_runs": need,
            "p95_ms_median": float(np.median(base_p95)) if base_p95 else None}
        # 2. A/A runs (the run that found the baseline full is the first)
        aa = [run]
        while len(aa) < aa_runs:
            aa.append(one(system.base_ms, f"A/A {len(aa) + 1}/{aa_runs}"))
        out["aa"] = {"runs": len(aa), "false_alarms": sum(r.detected for r in aa),
                     "broken": sum(r.broken for r in aa),
                     "per_run": "".join("F" if r.detected else "b" if r.broken else "."
                                        for r in aa),
                     "p95_ms": [round(v, 2) for v in _p95s(aa, system)]}
        if calibration is not None:
            base_runs = [r for r in [*fill, *aa] if not r.broken]
            per_metric = {m: [run_stats(r.samples[m]) for r in base_runs
                              if len(r.samples.get(m, [])) >= 8] for m in system.calibrate}
            merge_calibration(calibration, system.key, system_entry(
                system, len(fill) + len(aa), len(fill) + len(aa) - len(base_runs),
                [r.seconds for r in [*fill, *aa]], loads, per_metric), argv or [])
            print(f"  [{system.key}] calibration from {len(base_runs)} base-value runs "
                  f"written to {calibration}", flush=True)
        snapshot = Path(tmp) / "memory-after-aa"
        shutil.copytree(memory, snapshot)
        # 3. A/B: +X % of the set delay (a) or of the baseline p95 (b), from the memory
        # as it stood after A/A
        base_p95 = out["baseline"]["p95_ms_median"]
        ref = system.base_ms if system.shift_of_delay else base_p95 or float("nan")
        out["shifts"] = {}
        for pct in SHIFTS:
            extra = pct / 100 * ref
            shutil.rmtree(memory)
            shutil.copytree(snapshot, memory)
            runs = [one(system.base_ms + extra, f"+{pct}% ({system.env_var}="
                        f"{system.base_ms + extra:.2f}) {i + 1}/{ab_runs}")
                    for i in range(ab_runs)]
            p95s = _p95s(runs, system)
            ok = [r for r in runs if not r.broken]
            later = [r for r in ok[1:]]
            first = next((i + 1 for i, r in enumerate(runs) if r.detected), None)
            out["shifts"][f"+{pct}%"] = {
                "extra_delay_ms": round(extra, 3), "runs": len(runs),
                "detected": sum(r.detected for r in runs),
                "detected_share": sum(r.detected for r in runs) / len(ok) if ok else 0.0,
                "per_run": "".join("D" if r.detected else "b" if r.broken else "."
                                   for r in runs),
                "first_detected_run": first,
                "detected_from_run_2": [sum(r.detected for r in later), len(later)],
                "broken": sum(r.broken for r in runs),
                "measured_p95_growth_pct": round(100 * (float(np.median(p95s)) / base_p95 - 1),
                                                 1) if p95s and base_p95 else None,
            }
    out["loadavg_1m"] = {"mean": round(statistics.fmean(loads), 2), "max": round(max(loads), 2)}
    return out


def _p95s(runs: list[Run], system: System) -> list[float]:
    vals = []
    for r in runs:
        span = r.samples.get(f"latency:{system.span}", [])
        if len(span) >= 8 and not r.broken:
            vals.append(run_stats(span)["p95"])
    return vals


def met(key: str, res: dict[str, Any], aa_runs: int) -> tuple[bool, list[str]]:
    """Whether ``res`` meets its target; the misses in words."""
    target = TARGETS[key]
    misses = []
    if "aa" not in res:
        return False, [res.get("error", "not run")]
    fa = res["aa"]["false_alarms"]
    if fa > target["aa_false_alarms"] or res["aa"]["runs"] < 20:
        misses.append(f"{key}: {fa} false alarms in {res['aa']['runs']} A/A runs")
    for pct, share in target["detect"].items():
        got = res["shifts"][f"+{pct}%"]
        if got["detected_share"] < share:
            misses.append(f"{key}: +{pct}% detected {got['detected']}/{got['runs']} "
                          f"({100 * got['detected_share']:.0f}%, target {100 * share:.0f}%)")
    return not misses, misses


def print_table(results: dict[str, dict[str, Any]]) -> None:
    print()
    print(f"{'system':<12} {'baseline p95':>12} {'A/A false alarms':>17} "
          + " ".join(f"{'+' + str(p) + '%':>16}" for p in SHIFTS))
    for key, res in results.items():
        if "aa" not in res:
            print(f"{key:<12} {res.get('error', 'not run')}")
            continue
        cells = []
        for p in SHIFTS:
            s = res["shifts"][f"+{p}%"]
            cells.append(f"{s['detected']}/{s['runs'] - s['broken']}"
                         f" ({s['measured_p95_growth_pct']:+.0f}%)".rjust(16))
        print(f"{key:<12} {res['baseline']['p95_ms_median']:>10.2f}ms "
              f"{res['aa']['false_alarms']:>8}/{res['aa']['runs'] - res['aa']['broken']:<8} "
              + " ".join(cells))
    print("(detections/runs, in brackets the measured growth of the compared span's median "
          "p95 over the baseline's)")


def leaked(systems: list[System]) -> list[str]:
    """Containers and networks of this bench's scenarios still present (by the test label
    clnrm puts on everything it creates; other helpers' runs are not counted)."""
    tests = {_scenario_name(s) for s in systems}
    left = []
    for cmd in (["docker", "ps", "-a"], ["docker", "network", "ls"]):
        out = subprocess.run([*cmd, "--filter", "label=clnrm.test", "--format",
                              '{{.ID}} {{.Label "clnrm.test"}}'],
                             capture_output=True, text=True).stdout
        left += [line for line in out.splitlines()
                 if line.split(" ", 1)[-1].replace("-", "_") in tests]
    return left


def _scenario_name(system: System) -> str:
    found = re.search(r'^name\s*=\s*"([^"]+)"', system.file.read_text(), re.MULTILINE)
    return found.group(1) if found else system.key


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calibrate", action="store_true",
                        help="measure run-to-run drift and write the calibration file")
    parser.add_argument("--calibration-runs", type=int, default=30)
    parser.add_argument("--calibration-out", type=Path, default=CALIBRATION)
    parser.add_argument("--drift-from-artifacts", metavar="SYSTEM=DIR", action="append",
                        default=[], help="add the drift of the quantiles, from the spans.jsonl "
                        "files of earlier runs at the base value (a folder of `clnrm run "
                        "--artifacts`), to the calibration file")
    parser.add_argument("--write-calibration", action="store_true",
                        help="also write the calibration file from the base-value runs "
                             "(baseline and A/A runs) of this end-to-end run")
    parser.add_argument("--aa-runs", type=int, default=20)
    parser.add_argument("--ab-runs", type=int, default=10)
    parser.add_argument("--systems", default="a,b", help="a (fixed_delay), b (demo_read)")
    parser.add_argument("--quick", action="store_true", help="a smoke: few runs of each")
    args = parser.parse_args(args_list)
    try:
        systems = [SYSTEMS[s.strip()] for s in args.systems.split(",") if s.strip()]
    except KeyError as exc:
        parser.error(f"--systems: unknown system {exc}; use a, b")
    if not CLNRM.exists():
        parser.error(f"{CLNRM} is missing: run `make demo` first")
    if args.quick:
        args.aa_runs, args.ab_runs, args.calibration_runs = 3, 2, 4
    if args.drift_from_artifacts:
        data = json.loads(args.calibration_out.read_text())
        for item in args.drift_from_artifacts:
            key, _, folder = item.partition("=")
            if key not in SYSTEMS or not Path(folder).is_dir():
                parser.error(f"--drift-from-artifacts: want a|b=FOLDER, got {item!r}")
            system = SYSTEMS[key]
            names = tuple(m.partition(":")[2] for m in system.calibrate
                          if m.startswith("latency:"))
            found = from_artifacts(Path(folder), names)
            found["command"] = " ".join(["bench/regression_e2e.py", *args_list])
            found["note"] = ("from the spans.jsonl of runs at the base value; the measured "
                             "window is not applied (the load's warm-up requests count)")
            data["systems"].setdefault(system.key, {})["from_spans_jsonl"] = found
        args.calibration_out.write_text(json.dumps(data, indent=2) + "\n")
        print(json.dumps({"bench": "regression_e2e_drift", "written": str(args.calibration_out),
                          "target": "-", "met": True}))
        return 0
    if args.calibrate:
        res = calibrate(systems, args.calibration_runs, args.calibration_out, args_list)
        figures = {k: {m: {"drift_sd_log_location": round(v["drift_sd_log_location"], 4),
                           "tau_log_location": round(v["tau_log_location"], 4),
                           "drift_sd_log_p95": round(v["drift_sd_log_p95"], 4),
                           "within_run_sigma_log": round(v["within_run_sigma_log_median"], 3)}
                       for m, v in s["metrics"].items()}
                   for k, s in res["systems"].items()}
        print(json.dumps({"bench": "regression_e2e_calibration", **figures,
                          "written": str(args.calibration_out),
                          "target": ">= 30 runs per system", "met": all(
                              s["runs_attempted"] - s["runs_broken"] >= 30
                              for s in res["systems"].values())}))
        return 0
    print(f"policy: baseline of {', '.join(f'{s.key} {fill_runs(s)}' for s in systems)} "
          f"runs before runs are judged (the product's own figure); runs are judged with the "
          f"scenario files' default thresholds; machine shared, figures under load")
    results = {s.key: e2e_system(s, args.aa_runs, args.ab_runs,
                                 args.calibration_out if args.write_calibration else None,
                                 args_list) for s in systems}
    print_table(results)
    all_met, misses = True, []
    for key, res in results.items():
        ok, why = met(key, res, args.aa_runs)
        all_met &= ok
        misses += why
    left = leaked(systems)
    if misses:
        print("missed: " + "; ".join(misses))
    print(f"containers/networks of these scenarios left after the bench: {len(left)}")
    summary: dict[str, Any] = {"bench": "regression_e2e"}
    for key, res in results.items():
        summary[key] = {
            "baseline_p95_ms": res.get("baseline", {}).get("p95_ms_median"),
            "baseline_runs": res.get("baseline", {}).get("runs"),
            "baseline_fill_runs": res.get("baseline", {}).get("fill_runs"),
            "aa_false_alarms": res.get("aa", {}).get("false_alarms"),
            "aa_runs": res.get("aa", {}).get("runs"),
            "aa_per_run": res.get("aa", {}).get("per_run"),
            **{f"detected_{p}pct": [res["shifts"][f"+{p}%"]["detected"],
                                     res["shifts"][f"+{p}%"]["runs"]
                                     - res["shifts"][f"+{p}%"]["broken"]]
               for p in SHIFTS if "shifts" in res},
            **{f"per_run_{p}pct": res["shifts"][f"+{p}%"]["per_run"]
               for p in SHIFTS if "shifts" in res},
            "extra_delay_ms": {f"+{p}%": res["shifts"][f"+{p}%"]["extra_delay_ms"]
                               for p in SHIFTS if "shifts" in res},
            "broken": (res.get("aa", {}).get("broken", 0)
                       + sum(s["broken"] for s in res.get("shifts", {}).values())),
            "loadavg_1m": res.get("loadavg_1m"),
        }
    summary.update({"leaked": len(left), "target": TARGET_TEXT, "met": all_met})
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Campaign soak: does the driver or Ray's head grow over hours?  (issue 16: <= 20 MB/hour)

    .venv/bin/python bench/campaign_soak.py [--duration 2h] [--interval 60] [--workers 2]

One ``python -m clnrm campaign start --duration D`` over bench/campaign.py's busybox
scenarios, on embedded Ray, as a user starts it.  Every ``--interval`` seconds the
resident set (VmRSS) of three groups of processes is sampled from /proc:

- the driver: the ``clnrm campaign start`` process itself;
- Ray's head: the driver's descendants that are Ray's own (``gcs_server``, ``raylet``
  and Ray's Python helpers such as the log monitor), not its workers;
- the workers (``ray::...`` processes): reported, not judged (a worker actor is
  restarted by Ray if it dies, and its growth is the units' business).

Growth is the least-squares slope of each series in MB/hour, after a warm-up
(``--warmup``, default 10 % of the duration, at least 1.5 intervals, and never before the
first unit is recorded) in which imports, Ray start-up and the first units' caches settle;
the slope over the second half of those samples is reported too (``*_late``): growth that
levels off shows there as a smaller figure.  Target: driver and head each
<= 20 MB/hour over the 2-hour soak; a 10-minute run (``--duration 10m``) gives a
short-run estimate, noisy, which the JSON line says.  The bench is not run by
``make bench`` (2 hours); ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from campaign import (  # noqa: E402 - bench/ is not a package
    REPO,
    Watch,
    env_for,
    exact,
    status,
    unit_containers_all,
    unit_containers_live,
    write_scenarios,
)

from clnrm.procs import cmdline, descendants

TARGET_MB_PER_HOUR = 20.0
RAY_HEAD = ("gcs_server", "raylet")


def parse_duration(text: str) -> float:
    """``2h``, ``10m``, ``90s`` or plain seconds."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([hms]?)\s*", text)
    if not found:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 2h, 10m, 90s)")
    return float(found[1]) * {"h": 3600, "m": 60, "s": 1, "": 1}[found[2]]


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def sample(driver: int) -> dict[str, Any]:
    head = workers = 0.0
    names: dict[str, int] = {}
    for pid in descendants(driver):
        line = cmdline(pid)
        if line.startswith("ray::"):
            workers += rss_mb(pid)
            kind = "worker"
        elif comm(pid) in RAY_HEAD or "ray/" in line or "ray\\" in line:
            head += rss_mb(pid)
            kind = comm(pid) or "ray"
        else:
            continue  # a unit's own children (docker CLI calls and the like)
        names[kind] = names.get(kind, 0) + 1
    return {"t": time.time(), "driver_mb": round(rss_mb(driver), 1), "head_mb": round(head, 1),
            "workers_mb": round(workers, 1), "processes": names}


def slope_per_hour(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, MB) in MB/hour; None with fewer than 2 points."""
    if len(points) < 2:
        return None
    n = len(points)
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    var = sum((t - mx) ** 2 for t, _ in points)
    if var == 0:
        return None
    return sum((t - mx) * (v - my) for t, v in points) / var * 3600.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=parse_duration, default=parse_duration("2h"))
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between samples")
    parser.add_argument("--warmup", type=parse_duration, default=None,
                        help="left out of the slope (default 10%% of the duration, at "
                             "least 1.5 intervals)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--scenarios", type=int, default=3)
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()
    warmup = args.warmup if args.warmup is not None else max(1.5 * args.interval,
                                                             0.1 * args.duration)
    minutes = max(1, round(args.duration / 60))
    with tempfile.TemporaryDirectory(prefix="clnrm-bench-soak-") as name:
        tmp = Path(name)
        files = write_scenarios(tmp / "scenarios", args.scenarios)
        home = tmp / "home"
        env = env_for(home, tmp)
        campaign_id = "bench-soak"
        log = tmp / "soak.log"
        before = set(unit_containers_all())
        started = time.time()
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "clnrm", "campaign", "start", *map(str, files),
                 "--duration", f"{minutes}m", "--workers", str(args.workers), "--id",
                 campaign_id, "--memory", str(tmp / "memory"), "--seed", str(args.seed)],
                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        watch = Watch(home, campaign_id)
        samples: list[dict[str, Any]] = []
        next_at = started + args.interval
        try:
            while proc.poll() is None:
                if time.time() >= next_at:
                    samples.append({**sample(proc.pid), "units_done": watch.poll()})
                    print(json.dumps(samples[-1]), file=sys.stderr, flush=True)
                    next_at += args.interval
                if time.time() > started + args.duration + 600:
                    subprocess.run([sys.executable, "-m", "clnrm", "campaign", "stop",
                                    campaign_id], cwd=REPO, env=env, timeout=120)
                    proc.wait(timeout=300)
                    break
                time.sleep(1.0)
        except KeyboardInterrupt:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=300)
        code = proc.wait()
        watch.poll()
        st = status(campaign_id, env)
        left = sorted(set(unit_containers_all()) - before - set(unit_containers_live()))
        if code not in (0, 1):
            print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
    steady = [s for s in samples if s["t"] - started > warmup and s["units_done"] > 0]
    keys = ("driver_mb", "head_mb", "workers_mb")
    slopes = {key: slope_per_hour([(s["t"], s[key]) for s in steady]) for key in keys}
    late = steady[len(steady) // 2:]
    late_slopes = {key: slope_per_hour([(s["t"], s[key]) for s in late]) for key in keys}
    wall_h = (time.time() - started) / 3600
    units = st["units_done"]
    print(f"{len(samples)} samples over {wall_h * 60:.1f} min ({len(steady)} after a "
          f"{warmup:.0f} s warm-up); {units} units ({units / max(wall_h * 60, 1e-9):.1f}/min)")
    for key, value in slopes.items():
        first, last = (steady[0][key], steady[-1][key]) if steady else (None, None)
        tail = late_slopes[key]
        print(f"  {key[:-3]}: {first} -> {last} MB, slope "
              f"{'-' if value is None else f'{value:+.1f}'} MB/hour (second half "
              f"{'-' if tail is None else f'{tail:+.1f}'} MB/hour)")
    print(f"  load average (1 min) at the end: {os.getloadavg()[0]:.2f}")
    judged = [slopes["driver_mb"], slopes["head_mb"]]
    short = args.duration < 3600
    print(json.dumps({
        "bench": "campaign_soak", "duration_s": round(args.duration),
        "short_run_estimate": short, "workers": args.workers, "interval_s": args.interval,
        "warmup_s": round(warmup), "samples": len(samples), "steady_samples": len(steady),
        "driver_mb_per_hour": None if slopes["driver_mb"] is None
        else round(slopes["driver_mb"], 1),
        "head_mb_per_hour": None if slopes["head_mb"] is None else round(slopes["head_mb"], 1),
        "workers_mb_per_hour": None if slopes["workers_mb"] is None
        else round(slopes["workers_mb"], 1),
        **{f"{key[:-3]}_mb_per_hour_late": None if value is None else round(value, 1)
           for key, value in late_slopes.items()},
        "driver_mb_first_last": [steady[0]["driver_mb"], steady[-1]["driver_mb"]]
        if steady else None,
        "head_mb_first_last": [steady[0]["head_mb"], steady[-1]["head_mb"]] if steady else None,
        "units_done": units, "state": st["state"], "exit": code, **exact(st, units),
        "leaked_containers": len(left), "load_avg_1m": round(os.getloadavg()[0], 2),
        "target": TARGET_MB_PER_HOUR,
        "met": all(s is not None and s <= TARGET_MB_PER_HOUR for s in judged) and not left,
    }))


if __name__ == "__main__":
    main()

"""How long ``clnrm --help`` takes against a bare ``python -c pass`` (issue 17).

Every figure is a child process started the way a user starts it:

- ``python``: ``<venv python> -c pass``, the floor (same interpreter, same site-packages
  and ``.pth`` files as the console script);
- ``help``: the installed console script ``clnrm --help`` with a warm help cache, what
  every call after the first one does (carries the target: <= 3x ``python``);
- ``help_module``: ``python -m clnrm --help``, warm;
- ``help_typer``: ``clnrm --help`` with ``CLNRM_HELP_CACHE=0``, i.e. typer and rich
  imported and rendering the help, which is what every call paid before the cache
  (and what the first call after an upgrade or an edit of the CLI still pays);
- ``version``: ``clnrm -V``.

The commands run in rounds, each round in a freshly shuffled order (seeded), so machine
load drifts over all of them alike; the ratio is of medians.  Wall time is judged; CPU
time (user + system of the child, from ``getrusage(RUSAGE_CHILDREN)``) is printed too:
it hardly depends on load.  The help cache lives in a temporary folder, and the bench
first checks that the cached help is byte for byte what typer prints.  Ends with one
JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET = 3.0


def _child_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU milliseconds of one run of ``argv``."""
    cpu0, t0 = _child_cpu_s(), time.perf_counter()
    res = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, check=False)
    wall, cpu = time.perf_counter() - t0, _child_cpu_s() - cpu0
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {res.returncode}: {res.stderr.decode()}")
    return wall * 1000, cpu * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args()

    python = sys.executable
    script = str(Path(python).with_name("clnrm"))
    if not Path(script).exists():
        raise SystemExit(f"{script} not found: install clnrm in this environment first")
    with tempfile.TemporaryDirectory(prefix="clnrm-startup-") as cache:
        env = {k: v for k, v in os.environ.items()
               if k not in ("CLNRM_HELP_CACHE", "COLUMNS") and not k.endswith("_COMPLETE")}
        env["XDG_CACHE_HOME"] = cache
        typer_env = {**env, "CLNRM_HELP_CACHE": "0"}
        cases = {
            "python": ([python, "-c", "pass"], env),
            "help": ([script, "--help"], env),
            "help_module": ([python, "-m", "clnrm", "--help"], env),
            "help_typer": ([script, "--help"], typer_env),
            "version": ([script, "-V"], env),
        }
        # The first call renders with typer and fills the cache; it must equal typer's.
        first = subprocess.run([script, "--help"], env=env, capture_output=True, check=True)
        cached = subprocess.run([script, "--help"], env=env, capture_output=True, check=True)
        plain = subprocess.run([script, "--help"], env=typer_env, capture_output=True,
                               check=True)
        if not first.stdout == cached.stdout == plain.stdout:
            raise SystemExit("cached help differs from typer's help")

        rng = random.Random(args.seed)
        wall: dict[str, list[float]] = {name: [] for name in cases}
        cpu: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.rounds):
            order = list(cases)
            rng.shuffle(order)
            for name in order:
                w, c = _once(*cases[name])
                wall[name].append(w)
                cpu[name].append(c)

    med = {name: statistics.median(v) for name, v in wall.items()}
    med_cpu = {name: statistics.median(v) for name, v in cpu.items()}
    for name in cases:
        print(f"{name:12} wall median {med[name]:7.1f} ms (p10 "
              f"{sorted(wall[name])[len(wall[name]) // 10]:6.1f})   cpu median "
              f"{med_cpu[name]:6.1f} ms   x{med[name] / med['python']:.2f} python")
    ratio = med["help"] / med["python"]
    print(json.dumps({
        "bench": "startup",
        "rounds": args.rounds,
        "help_ms": round(med["help"], 1),
        "python_ms": round(med["python"], 1),
        "ratio_vs_bare_python": round(ratio, 2),
        "help_module_ms": round(med["help_module"], 1),
        "ratio_module_vs_bare_python": round(med["help_module"] / med["python"], 2),
        "help_typer_ms": round(med["help_typer"], 1),
        "ratio_typer_vs_bare_python": round(med["help_typer"] / med["python"], 2),
        "version_ms": round(med["version"], 1),
        "help_cpu_ms": round(med_cpu["help"], 1),
        "python_cpu_ms": round(med_cpu["python"], 1),
        "cpu_ratio_vs_bare_python": round(med_cpu["help"] / med_cpu["python"], 2),
        "cpu_ratio_typer_vs_bare_python": round(med_cpu["help_typer"] / med_cpu["python"], 2),
        "load_1m": round(os.getloadavg()[0], 1),
        "target": TARGET,
        "met": ratio <= TARGET,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())

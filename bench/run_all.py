"""Run every bench, keep each one's JSON line, and end with a one-table summary.

``make bench`` calls this after ``.ci/ensure-bench-tools.sh`` has installed what the
benches compare against.  Each bench runs as its own process exactly as a person would
run it (``python bench/X.py``), its output streamed through, and its last JSON line kept
in ``.clnrm/bench/results.jsonl`` (one line per bench, with the time it ran).  The table at
the end (bench, headline figure, target, met) is what shows a drift the day it happens:
a figure the README quotes that no longer holds is a row that says ``no``.

Exit status: 0 when every bench ran and printed its JSON line (met or not: a missed
target is a figure, not a crash); 1 when a bench crashed or printed no JSON line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / ".clnrm" / "bench" / "results.jsonl"

# name -> (script, headline figure as dotted keys in its JSON line, target in words)
BENCHES: dict[str, tuple[str, str, str]] = {
    "overhead": ("overhead.py", "ratio_vs_docker_cli", "<= target x docker CLI script"),
    "validate": ("validate.py", "seconds", "1M spans x 50 expectations, seconds"),
    "ingest": ("ingest.py", "spans_per_s", "spans/s from a second process"),
    "orchestration": ("orchestration.py", "ratio_vs_docker_compose",
                      "<= target x docker-compose up+down"),
    "memory": ("memory.py", "p95_ms_at_100k", "query p95 ms at 100k records"),
    "proxy": ("proxy.py", "demo_throughput_ratio", ">= target x direct (demo reads)"),
    "regression": ("regression.py", "clnrm.recall.10%", "recall at +10% (FPR <= 1%)"),
    "regression_e2e": ("regression_e2e.py", "", "end to end through clnrm run"),
    "memory_kill": ("memory_kill.py", "wedged", "0 wedged stores after SIGKILLs"),
    "startup": ("startup.py", "ratio_vs_bare_python", "<= target x python -c pass"),
    "healing": ("healing.py", "macro_f1",
                "classifier macro-F1; heal rate, false heals, pass-2 attempts in the line"),
    "healing_bandit": ("healing_bandit.py", "attempts_reduction",
                       "pass-2 attempts below pass 1 over 300 seeds (no Docker)"),
    "generation": ("generation.py", "shop_generated_mutation_score",
                   "mutants killed by generated tests (validity 1, noise 0)"),
    "campaign": ("campaign.py", "linear_efficiency.2",
                 "2 workers vs 2x 1 worker; overhead vs clnrm run and resume s in the line"),
}


def last_json(lines: list[str]) -> dict[str, Any] | None:
    for line in reversed(lines):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if isinstance(data, dict) and "bench" in data:
                return data
    return None


def dig(data: dict[str, Any], dotted: str) -> Any:
    value: Any = data
    for key in dotted.split(".") if dotted else []:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def run_one(name: str, script: str, extra: list[str]) -> tuple[dict[str, Any] | None, int, float]:
    path = REPO / "bench" / script
    if not path.is_file():
        return {"bench": name, "skipped": f"bench/{script} does not exist"}, 0, 0.0
    print(f"\n=== bench/{script} ===", flush=True)
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, str(path), *extra], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=None)
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        lines.append(line)
    code = proc.wait()
    return last_json(lines), code, time.monotonic() - started


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return "-"
    return str(value)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("benches", nargs="*", help=f"names or scripts to run (default: all of "
                                                   f"{', '.join(BENCHES)})")
    args = parser.parse_args()
    # a bench is named as `overhead` or as its script, `bench/overhead.py` (the Makefile)
    named = [Path(b).name.removesuffix(".py") for b in args.benches]
    unknown = [b for b, n in zip(args.benches, named, strict=True) if n not in BENCHES]
    if unknown:
        parser.error(f"unknown bench(es): {', '.join(unknown)}; known: {', '.join(BENCHES)}")
    chosen = named or list(BENCHES)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, str, str, str, str]] = []
    failed = False
    for name in chosen:
        script, figure_key, target_words = BENCHES[name]
        data, code, took = run_one(name, script, [])
        if data is None:
            failed = True
            rows.append((name, f"crashed (exit {code}), no JSON line", target_words, "no",
                         f"{took:.0f} s"))
            continue
        with RESULTS.open("a", encoding="utf-8") as out:
            out.write(json.dumps({"at": datetime.now(UTC).isoformat(timespec="seconds"),
                                  "exit": code, **data}) + "\n")
        if "skipped" in data:
            rows.append((name, f"skipped: {data['skipped']}", target_words, "-",
                         f"{took:.0f} s"))
            continue
        figure = fmt(dig(data, figure_key)) if figure_key else fmt(data.get("figure"))
        target = data.get("target", data.get("target_spans_per_s",
                                             data.get("target_seconds", "")))
        met = data.get("met")
        rows.append((name, f"{figure_key or 'figure'} = {figure}",
                     f"{target_words} (target {fmt(target)})",
                     "yes" if met is True else "no" if met is False else "-", f"{took:.0f} s"))
    print("\n=== summary (also in .clnrm/bench/results.jsonl) ===")
    head = ("bench", "figure", "target", "met", "took")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for row in [head, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Overhead of clnrm against the plain docker CLI doing the same work.

Baseline (measured in the same run): a bash script that creates an internal
network, starts one busybox container, ``docker exec``s the same 20 commands
and checks each output with grep, then removes container and network, which is
what a careful person would write by hand.  clnrm runs the equivalent 20-step
``.clnrm.toml`` through ``python -m clnrm run`` (process start, imports,
loading, validation and cleanup all included).  Runs alternate between the two
to share any drift in machine load; medians are compared.

clnrm runs with a bytecode cache, as an installed clnrm does (pip compiles every
module when it installs the wheel): the cache lives in a private folder
(``PYTHONPYCACHEPREFIX``) that the untimed warm-up run fills, so a checkout whose
environment sets ``PYTHONDONTWRITEBYTECODE`` is not timed compiling every module
from source on every run, which no installed copy does.  ``--no-bytecode-cache``
times that case too.

Target (issue #20): clnrm <= 1.0x the docker CLI script (goal 0.9x: the SDK saves a
process spawn per step).  README quotes ``ratio_vs_docker_cli``.
Ends with one JSON line of figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMAGE = "clnrm/busybox:latest"
TARGET = 1.0

STEPS: list[tuple[list[str], str]] = [
    (["echo", "hello"], "^hello$"),
    (["sh", "-c", "echo $((6 * 7))"], "^42$"),
    (["cat", "/etc/passwd"], "root"),
    (["ls", "/bin"], "busybox"),
    (["uname", "-s"], "Linux"),
    (["sh", "-c", "printf 'a\\nb\\nc\\n' | wc -l"], "3"),
    (["hostname"], "."),
    (["sh", "-c", "echo abc | tr a-z A-Z"], "^ABC$"),
    (["date", "+%Y"], "^2[0-9]{3}$"),
    (["sh", "-c", "seq 1 100 | tail -n 1"], "^100$"),
    (["id", "-u"], "^0$"),
    (["sh", "-c", "echo test > /tmp/f && cat /tmp/f"], "^test$"),
    (["sh", "-c", "test -d /proc && echo proc"], "^proc$"),
    (["sh", "-c", "echo $HOME"], "/"),
    (["basename", "/a/b/c.txt"], "^c.txt$"),
    (["sh", "-c", "echo one two three | awk '{print $2}'"], "^two$"),
    (["sh", "-c", "echo hello | sed s/hello/world/"], "^world$"),
    (["expr", "10", "+", "5"], "^15$"),
    (["sh", "-c", "ls / | grep -c etc"], "^1$"),
    (["echo", "done"], "^done$"),
]


def scenario_toml() -> str:
    lines = ['[test.metadata]', 'name = "overhead_20_steps"', ""]
    for i, (argv, regex) in enumerate(STEPS):
        lines += ["[[steps]]", f'name = "step_{i:02d}"', f"command = {json.dumps(argv)}",
                  f"expected_output_regex = {json.dumps(regex)}", ""]
    return "\n".join(lines)


def docker_script() -> str:
    """The hand-written baseline: same network isolation, same commands, same checks."""
    out = ["set -e", 'id="bench-$RANDOM$RANDOM"',
           'docker network create --internal "$id" >/dev/null',
           'trap \'docker rm -f "$id" >/dev/null 2>&1; docker network rm "$id" >/dev/null\' EXIT',
           f'docker run -d --init --name "$id" --network "$id" {IMAGE} sleep infinity >/dev/null']
    for argv, regex in STEPS:
        out.append(f'docker exec "$id" {shlex.join(argv)} | grep -Eq {shlex.quote(regex)}')
    return "\n".join(out) + "\n"


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env)
    took = time.perf_counter() - started
    if res.returncode != 0:
        sys.exit(f"bench command failed ({res.returncode}): {' '.join(cmd)}\n"
                 f"{res.stdout}\n{res.stderr}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-bytecode-cache", action="store_true",
                        help="time clnrm compiling its modules on every run (no .pyc)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        clnrm_env = dict(os.environ)
        if not args.no_bytecode_cache:
            clnrm_env.pop("PYTHONDONTWRITEBYTECODE", None)
            clnrm_env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        toml = Path(tmp) / f"overhead-{uuid.uuid4().hex[:6]}.clnrm.toml"
        toml.write_text(scenario_toml(), encoding="utf-8")
        script = Path(tmp) / "baseline.sh"
        script.write_text(docker_script(), encoding="utf-8")
        clnrm_cmd = [sys.executable, "-m", "clnrm", "run", str(toml)]
        docker_cmd = ["bash", str(script)]
        timed(clnrm_cmd, clnrm_env), timed(docker_cmd)  # warm page cache, bytecode, engine
        clnrm_s, docker_s = [], []
        for i in range(args.rounds):
            clnrm_s.append(timed(clnrm_cmd, clnrm_env))
            docker_s.append(timed(docker_cmd))
            print(f"round {i + 1}: clnrm {clnrm_s[-1]:.3f} s, docker CLI {docker_s[-1]:.3f} s",
                  file=sys.stderr)
    c, d = statistics.median(clnrm_s), statistics.median(docker_s)
    ratio = c / d
    print(f"clnrm median {c:.3f} s, docker CLI median {d:.3f} s, ratio {ratio:.2f}x "
          f"(target <= {TARGET}x; bytecode cache "
          f"{'off' if args.no_bytecode_cache else 'on'}, load {os.getloadavg()[0]:.2f})")
    print(json.dumps({"bench": "overhead", "steps": len(STEPS), "rounds": args.rounds,
                      "bytecode_cache": not args.no_bytecode_cache,
                      "load_avg_1m": round(os.getloadavg()[0], 2),
                      "clnrm_s": round(c, 3), "docker_cli_s": round(d, 3),
                      "ratio_vs_docker_cli": round(ratio, 3), "target": TARGET,
                      "met": ratio <= TARGET}))


if __name__ == "__main__":
    main()

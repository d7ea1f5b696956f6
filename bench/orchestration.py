"""Bringing a 10-service DAG up and down: clnrm against docker-compose and a docker script.

The DAG (4 levels, every service with a health check, each taking 1 s to
start listening):

    level 0  db, cache
    level 1  auth(db), api(db, cache), queue(cache)
    level 2  gateway(api, auth), worker(api, queue), search(api)
    level 3  frontend(gateway), monitor(worker, search)

The same image, app and health endpoint (HTTP GET / on :8080) are used
three ways, in one run, alternating to share drift in machine load:

- clnrm: a ``.clnrm.toml`` with ``depends_on`` and a readiness probe, run by
  ``python -m clnrm run`` (process start, planning, one step, teardown).  The
  probe is ``readiness = {http = "/"}`` from the host (default) or, with
  ``--clnrm-probe command``, a ``health_check`` running the same ``wget`` in
  the container that compose runs, with the same interval as its cap;
- docker-compose: ``up -d``, wait until every service is healthy, ``down``.
  Debian's docker-compose 1.29 has no ``up --wait`` (Compose v2 added it), so
  the closest equivalent is used: ``depends_on: {condition: service_healthy}``
  (a dependant starts once its dependencies are healthy) and, after ``up -d``
  returns, polling the engine until the last services are healthy too.
  Measured twice: with ``init: true`` (as clnrm runs containers, so ``down``
  stops them at once), and as compose files usually are, without an init,
  where the app is PID 1, ignores SIGTERM and ``down -t 1`` waits 1 s per
  level before killing it;
- a sequential docker CLI script: ``docker run`` each service in topological
  order, waiting for it to be healthy before the next, then ``rm -f`` all.

The health check interval (compose and the script) is 500 ms; the app-start
chain (4 levels x 1 s) is the floor no tool can beat.

Target (issue 5): clnrm <= 0.6x docker-compose (up + down).  Ends with one
JSON line of figures.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMAGE = "clnrm/busybox:latest"
TARGET = 0.6
APP_START_S = 1
INTERVAL = "500ms"  # health check interval, the same for all three
PORT = 8080

DAG: dict[str, list[str]] = {
    "db": [], "cache": [],
    "auth": ["db"], "api": ["db", "cache"], "queue": ["cache"],
    "gateway": ["api", "auth"], "worker": ["api", "queue"], "search": ["api"],
    "frontend": ["gateway"], "monitor": ["worker", "search"],
}
APP = (f"sleep {APP_START_S}; mkdir -p /w; echo ok > /w/index.html; "
       f"exec httpd -f -p {PORT} -h /w")
HEALTH = ["wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:{PORT}/"]


def topological() -> list[str]:
    done: list[str] = []
    while len(done) < len(DAG):
        done += [s for s, deps in DAG.items() if s not in done and all(d in done for d in deps)]
    return done


def clnrm_toml(probe: str = "http") -> str:
    ready = (f'readiness = {{ http = "/", port = {PORT} }}' if probe == "http" else
             f'health_check = {{ cmd = {json.dumps(HEALTH)}, interval = "{INTERVAL}", '
             "retries = 60 }")
    lines = ["[meta]", 'name = "orchestration_bench"', ""]
    for name, deps in DAG.items():
        lines += [f"[services.{name}]", f'image = "{IMAGE}"',
                  f"command = {json.dumps(['sh', '-c', APP])}",
                  f"depends_on = {json.dumps(deps)}", ready, ""]
    lines += ["[[steps]]", 'name = "all_up"', 'service = "frontend"',
              f"command = {json.dumps(HEALTH)}", ""]
    return "\n".join(lines)


def compose_yaml(init: bool = True) -> str:
    """Compose file format 2.4: the last one whose depends_on has health conditions in 1.29."""
    out = ["version: '2.4'", "services:"]
    for name, deps in DAG.items():
        out += [f"  {name}:", f"    image: {IMAGE}", *(["    init: true"] if init else []),
                f"    command: {json.dumps(['sh', '-c', APP])}",
                "    networks: [net]",
                "    healthcheck:", f"      test: {json.dumps(['CMD', *HEALTH])}",
                f"      interval: {INTERVAL}", "      timeout: 5s", "      retries: 60"]
        if deps:
            out.append("    depends_on:")
            out += [f"      {d}: {{condition: service_healthy}}" for d in deps]
    out += ["networks:", "  net:", "    internal: true"]
    return "\n".join(out) + "\n"


def wait_healthy_script(names_cmd: str) -> str:
    """Poll until every container listed by ``names_cmd`` is healthy (compose has no --wait)."""
    status = "docker inspect -f '{{.State.Health.Status}}' $ids | grep -v '^healthy$'"
    return f'ids=$({names_cmd})\nuntil [ -z "$({status})" ]; do sleep 0.1; done\n'


def compose_script(compose_file: Path, down: str = "down") -> str:
    project = "clnrmbench" + uuid.uuid4().hex[:6]
    dc = f"docker-compose -p {project} -f {shlex.quote(str(compose_file))}"
    return ("set -e\n"
            f"trap '{dc} down -t 1 >/dev/null 2>&1 || true' ERR\n"
            f"{dc} up -d >/dev/null 2>&1\n"
            + wait_healthy_script(f"{dc} ps -q")
            + 'echo "up $(date +%s.%N)" >&2\n'
            + f"{dc} {down} >/dev/null 2>&1\n")


def docker_script() -> str:
    """One service at a time, each waited for until healthy; then everything removed."""
    out = ["set -e", 'id="clnrmbench-$RANDOM$RANDOM"',
           'docker network create --internal "$id" >/dev/null',
           "cleanup() { docker rm -f $(docker ps -aq --filter label=bench=$id) >/dev/null "
           "2>&1 || true; docker network rm \"$id\" >/dev/null; }", "trap cleanup EXIT"]
    health = shlex.join(HEALTH)
    for name in topological():
        out.append(f'docker run -d --init --label bench="$id" --name "$id-{name}" '
                   f'--network "$id" --network-alias {name} --health-cmd {shlex.quote(health)} '
                   f"--health-interval {INTERVAL} --health-retries 60 {IMAGE} "
                   f"sh -c {shlex.quote(APP)} >/dev/null")
        out.append(f'until [ "$(docker inspect -f \'{{{{.State.Health.Status}}}}\' '
                   f'"$id-{name}")" = healthy ]; do sleep 0.1; done')
    out.append('echo "up $(date +%s.%N)" >&2')
    return "\n".join(out) + "\n"


def timed(cmd: list[str]) -> tuple[float, float | None]:
    """Wall time of ``cmd``, and when it reported "up" (seconds from its start), if it did."""
    started = time.time()
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    took = time.time() - started
    if res.returncode != 0:
        sys.exit(f"bench command failed ({res.returncode}): {' '.join(cmd)}\n"
                 f"{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    up = None
    for line in res.stderr.splitlines():
        if line.startswith("up "):
            up = float(line.split()[1]) - started
    return took, up


def write(folder: str, name: str, text: str) -> Path:
    path = Path(folder) / name
    path.write_text(text, encoding="utf-8")
    return path


def clnrm_up_s(report: Path, took: float) -> float:
    """When the last service was ready, from process start: the wall time minus what the
    test did after that moment (its step and teardown)."""
    [test] = json.loads(report.read_text(encoding="utf-8"))["tests"]
    return took - (test["duration_s"] - max(r["ready_s"] for r in test["services_timeline"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clnrm-probe", choices=["http", "command"], default="http",
                        help="clnrm's readiness: HTTP from the host, or compose's wget in the "
                             "container as a health_check")
    args = parser.parse_args()
    if shutil.which("docker-compose") is None:
        # `make bench` installs it (.ci/ensure-bench-tools.sh); without it the figure this
        # bench exists for cannot be measured, and the JSON line says so instead of a crash.
        print("docker-compose is not installed (apt-get install docker-compose)",
              file=sys.stderr)
        print(json.dumps({"bench": "orchestration", "skipped": "docker-compose is not "
                          "installed (apt-get install docker-compose)", "target": TARGET,
                          "met": False}))
        sys.exit(1)
    with tempfile.TemporaryDirectory() as tmp:
        toml = Path(tmp) / "dag.clnrm.toml"
        toml.write_text(clnrm_toml(args.clnrm_probe), encoding="utf-8")
        report = Path(tmp) / "report.json"
        scripts = {"compose.sh": compose_script(write(tmp, "init.yml", compose_yaml())),
                   "compose_no_init.sh": compose_script(
                       write(tmp, "no_init.yml", compose_yaml(init=False)), down="down -t 1"),
                   "docker.sh": docker_script()}
        for name, text in scripts.items():
            write(tmp, name, text)
        ways = {
            "clnrm": [sys.executable, "-m", "clnrm", "run", str(toml), "--report-json",
                      str(report)],
            "docker_compose": ["bash", str(Path(tmp) / "compose.sh")],
            "docker_compose_no_init": ["bash", str(Path(tmp) / "compose_no_init.sh")],
            "docker_cli_sequential": ["bash", str(Path(tmp) / "docker.sh")],
        }
        for cmd in ways.values():  # warm page cache and engine
            timed(cmd)
        totals: dict[str, list[float]] = {w: [] for w in ways}
        ups: dict[str, list[float]] = {w: [] for w in ways}
        for i in range(args.rounds):
            for way, cmd in ways.items():
                took, up = timed(cmd)
                totals[way].append(took)
                ups[way].append(clnrm_up_s(report, took) if way == "clnrm"
                                else up or float("nan"))
            print(f"round {i + 1}: " + ", ".join(
                f"{w} {totals[w][-1]:.2f} s (up {ups[w][-1]:.2f} s)" for w in ways),
                file=sys.stderr)
    total = {w: statistics.median(v) for w, v in totals.items()}
    up = {w: statistics.median(v) for w, v in ups.items()}
    floor = 4 * APP_START_S
    ratio = {w: total["clnrm"] / total[w] for w in ways if w != "clnrm"}
    for w in ways:
        print(f"{w:>23}: {total[w]:6.2f} s up+down (services up after {up[w]:.2f} s)")
    print("clnrm / " + ", clnrm / ".join(f"{w} {r:.2f}x" for w, r in ratio.items())
          + f"; target <= {TARGET}x docker-compose; app-start chain {floor:.1f} s")
    print(json.dumps({
        "bench": "orchestration", "services": len(DAG), "levels": 4, "rounds": args.rounds,
        "app_start_s": APP_START_S, "health_interval": INTERVAL, "clnrm_probe": args.clnrm_probe,
        **{f"{w}_s": round(t, 3) for w, t in total.items()},
        "up_s": {w: round(v, 3) for w, v in up.items()}, "app_start_chain_s": floor,
        **{f"ratio_vs_{w}": round(r, 3) for w, r in ratio.items()},
        "compose_wait": "docker-compose 1.29 has no `up --wait`: depends_on service_healthy "
                        "+ polling health after `up -d`",
        "target": TARGET, "met": ratio["docker_compose"] <= TARGET,
        "met_vs_no_init": ratio["docker_compose_no_init"] <= TARGET}))


if __name__ == "__main__":
    main()

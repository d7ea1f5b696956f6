"""A test that does not use a layer never imports it: the core path stays cheap.

Checked in a fresh interpreter (this process has imported everything by now):
a steps-only file is loaded and run through the CLI's own entry point on the
local backend, then ``sys.modules`` is read.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import REPO

# The layers' engines and what only they need; the layers' result models are data
# every TestResult carries and may be loaded, and so are the modules that register the
# layers and the fault catalog (clnrm.chaos.layer, clnrm.perf.layer, clnrm.chaos.faults:
# entry points, loaded with every plugin), but not the fault implementations.
LAZY = ("clnrm.chaos.engine", "clnrm.chaos.faults.toxics", "clnrm.chaos.faults.netfilter",
        "clnrm.chaos.faults.container", "clnrm.chaos.faults.resource",
        "clnrm.chaos.faults.clock", "clnrm.chaos.proxy", "clnrm.chaos.probes",
        "clnrm.chaos.resilience", "clnrm.perf.session", "clnrm.perf.judge",
        "clnrm.perf.baseline", "clnrm.perf.regression", "clnrm.perf.changepoint", "numpy",
        "scipy", "jinja2", "grpc", "chromadb", "ray")

PROBE = textwrap.dedent("""
    import json, sys
    from clnrm.cli import main
    lazy = json.loads(sys.argv[2])
    sys.argv = ["clnrm", "run", "--backend", "local", sys.argv[1]]
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    print(json.dumps({"code": code, "loaded": sorted(
        m for m in sys.modules if any(m == p or m.startswith(p + ".") for p in lazy))}))
""")


def _run(tmp_path: Path, body: str) -> dict[str, object]:
    f = tmp_path / "t.clnrm.toml"
    f.write_text(textwrap.dedent(body), encoding="utf-8")
    res = subprocess.run([sys.executable, "-c", PROBE, str(f), json.dumps(LAZY)],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_steps_only_run_imports_no_layer_engine(tmp_path: Path) -> None:
    out = _run(tmp_path, """
        [test.metadata]
        name = "plain"

        [[steps]]
        name = "hello"
        command = ["echo", "hello"]
        expected_output_regex = "^hello$"
    """)
    assert out == {"code": 0, "loaded": []}


def test_services_expectations_and_orchestration_import_no_chaos_or_perf_engine(
        tmp_path: Path) -> None:
    """The layer registry is consulted (orchestration is on) yet chaos and performance,
    registered but off, load nothing of their engines."""
    out = _run(tmp_path, f"""
        [test.metadata]
        name = "ordered"

        [services.idle]
        plugin = "local_process"
        command = ["sleep", "60"]

        [orchestration]
        timeout = "60s"

        [[orchestration.temporal]]
        first = "idle.start"
        then = "idle.ready"

        [[steps]]
        name = "hello"
        command = ["{sys.executable}", "-c", "print('hello')"]

        [[expect.span]]
        name = "clnrm.step"
    """)
    assert out["code"] == 0
    # a service gets the OTLP receiver, which serves gRPC: that is the core, not a layer
    layered = [m for m in out["loaded"] if m.split(".")[0] != "grpc"]  # type: ignore[attr-defined]
    assert layered == []


def test_probe_sees_a_layer_a_file_does_use(tmp_path: Path) -> None:
    """The check can fail: a templated file does load the template engine."""
    out = _run(tmp_path, """
        [test.metadata]
        name = "{{ 'templated' }}"

        [[steps]]
        name = "hello"
        command = ["echo", "hello"]
    """)
    assert out["code"] == 0 and "jinja2" in out["loaded"]  # type: ignore[operator]

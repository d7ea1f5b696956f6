"""The seams between layers, checked where they can break: in ``sys.modules``.

A result model that loads an engine, or an agent that loads Ray, still works,
so nothing else would notice; each check runs in a fresh interpreter, because
this test process has imported everything already.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO

AGENT_MODULES = tuple(f"clnrm.agents{m}" for m in (
    "", ".base", ".blackboard", ".negotiation", ".architect", ".orchestrator", ".chaos",
    ".performance", ".healer", ".intelligence"))


def loaded_after(imports: tuple[str, ...], watched: tuple[str, ...]) -> list[str]:
    """The ``watched`` modules present in ``sys.modules`` after importing ``imports``."""
    code = (f"import importlib, json, sys\nfor m in {list(imports)!r}:\n"
            "    importlib.import_module(m)\n"
            f"print(json.dumps(sorted(m for m in {list(watched)!r} if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def test_result_models_load_no_engine() -> None:
    watched = ("clnrm.perf.load", "clnrm.perf.sampler", "docker", "ray", "chromadb")
    assert loaded_after(("clnrm.results",), watched) == []


def test_the_checker_sees_an_engine_when_one_is_imported() -> None:
    # The check above must be able to fail: importing the engine directly shows up.
    assert loaded_after(("clnrm.results", "clnrm.perf.load"),
                        ("clnrm.perf.load",)) == ["clnrm.perf.load"]


def test_perf_engines_still_offer_their_result_models() -> None:
    from clnrm.perf import load, result, sampler

    assert load.LoadRunResult is result.LoadRunResult
    assert sampler.ContainerStatsSummary is result.ContainerStatsSummary


def test_agents_load_neither_ray_nor_chroma() -> None:
    # Agents are plain classes: ray_cluster/ wraps them in actors, memory/ hides the store.
    assert loaded_after(AGENT_MODULES, ("ray", "chromadb")) == []

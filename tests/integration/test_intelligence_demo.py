"""``clnrm generate --from`` on the demo system (issue 15), on the real engine.

The demo scenario is run three times, its spans mined, and the written test (the demo's
services and steps plus the learned expectations) must load and pass on a fresh run of
the demo; the same test judged against a changed export (a call dropped) must fail.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, run_cli

DEMO = REPO / "scenarios" / "demo" / "demo.clnrm.toml"

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module")
def generated(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from clnrm.images import build_images

    build_images(docker_client, ["busybox", "demo-redis", "demo-postgres", "demo-app"])
    out = tmp_path_factory.mktemp("generated")
    res = run_cli("generate", "--from", str(DEMO), "--runs", "3", "--out", str(out),
                  timeout=900)
    assert res.returncode == 0, res.stderr + res.stdout
    (test,) = sorted(out.glob("*.clnrm.toml"))
    return test


def test_generated_demo_test_keeps_the_steps_and_asserts_learned_calls(generated: Path
                                                                       ) -> None:
    text = generated.read_text(encoding="utf-8")
    assert "[services.gateway]" in text and "[[steps]]" in text
    assert "# seen in 3/3 traces" in text
    assert 'name = "SELECT items"' in text and 'name = "process jobs"' in text
    assert run_cli("validate", str(generated)).returncode == 0


@pytest.fixture(scope="module")
def fresh(generated: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One fresh run of the generated test, keeping its spans."""
    artifacts = tmp_path_factory.mktemp("fresh")
    res = run_cli("run", str(generated), "--format", "json", "--artifacts", str(artifacts),
                  timeout=600)
    return {"res": res, "spans": sorted(artifacts.glob("*/*.spans.jsonl"))}


def test_generated_demo_test_passes_on_a_fresh_demo_run(fresh: dict[str, Any]) -> None:
    res = fresh["res"]
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert json.loads(res.stdout)["tests"][0]["outcome"] == "passed"


def test_generated_demo_test_fails_when_a_call_disappears(generated: Path, fresh: dict[str, Any],
                                                          tmp_path: Path) -> None:
    (spans,) = fresh["spans"]
    lines = [json.loads(line) for line in spans.read_text(encoding="utf-8").splitlines()]
    mutant = tmp_path / "mutant.jsonl"
    mutant.write_text("".join(json.dumps(s) + "\n" for s in lines
                              if s["name"] != "UPDATE jobs"), encoding="utf-8")
    expectations = tmp_path / "only-expect.clnrm.toml"
    text = generated.read_text(encoding="utf-8")
    expectations.write_text('[meta]\nname = "mutant"\n'
                            + text[text.index("\n[[expect.span]]"):], encoding="utf-8")
    res = run_cli("run", str(expectations), "--traces", str(mutant))
    assert res.returncode == 1, res.stdout + res.stderr
    assert "UPDATE jobs" in res.stdout

"""What the healer learns lives in the shared memory (real Chroma): a process killed
right after a try loses nothing, and the next process starts from it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from clnrm.memory import open_memory

from clnrm.healing import Classification, FailureClass, FailureContext
from clnrm.healing.bandit import RemediationLedger

DIAG = Classification(failure_class=FailureClass.readiness_timeout,
                      evidence=["service 'db' not ready: tcp probe failed"],
                      context=FailureContext(service="db", image="clnrm/demo-postgres:latest",
                                             plugin="network_service", probe="tcp"))


def test_a_killed_healer_loses_no_learned_outcome(tmp_path: Path) -> None:
    store_dir = tmp_path / "memory"
    script = textwrap.dedent(f"""
        import os, signal
        from clnrm.healing import Classification
        from clnrm.healing.bandit import RemediationLedger
        from clnrm.memory import open_memory
        diag = Classification.model_validate_json({DIAG.model_dump_json()!r})
        ledger = RemediationLedger(open_memory({str(store_dir)!r}), run_id="killed")
        ledger.remember(diag, test="t", scenario="s.clnrm.toml", action="extend_timeout",
                        success=False, cost_s=4.0, attempt=1, detail="x8", heal="h1",
                        signature="s/t")
        ledger.remember(diag, test="t", scenario="s.clnrm.toml", action="extend_readiness",
                        success=True, cost_s=2.0, attempt=2, detail="x4", level=2,
                        params={{"factor": 2.0}}, heal="h1", signature="s/t")
        os.kill(os.getpid(), signal.SIGKILL)  # no close, no flush: as a killed actor
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == -9, done.stderr
    with open_memory(store_dir) as store:
        ledger = RemediationLedger(store, run_id="next")
        stats = ledger.bandit().stats()["readiness_timeout"]
        assert stats["extend_readiness"]["successes"] == 1
        assert stats["extend_timeout"]["tries"] == 1 and stats["extend_timeout"]["successes"] == 0
        # which remediation AND which magnitude: the same failure goes straight to it
        bandit = ledger.bandit()
        assert bandit.known_fix(DIAG, "s/t") == ("extend_readiness", 2)
        assert bandit.start_level(DIAG, "extend_readiness") == 2
        params = [r.metadata for r in ledger.records() if r.action == "extend_readiness"]
        assert params[0]["param_factor"] == 2.0 and params[0]["level"] == 2
        hits = store.query("how was the readiness timeout on db fixed", kind="remediation", k=2)
    details = [hit.record.detail for hit in hits]  # type: ignore[attr-defined]
    assert any("readiness timeout" in d and "fixed by extend_readiness" in d for d in details)


def test_folding_the_same_records_twice_learns_once(tmp_path: Path) -> None:
    with open_memory(tmp_path / "memory") as store:
        ledger = RemediationLedger(store)
        ledger.remember(DIAG, test="t", scenario="s", action="extend_readiness", success=True,
                        cost_s=1.0, attempt=1, detail="")
        bandit = ledger.bandit(0)
        assert bandit.fold_records(ledger.records()) == 0
        assert bandit.stats()["readiness_timeout"]["extend_readiness"]["tries"] == 1

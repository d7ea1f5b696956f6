"""A missing optional dependency is one line naming the extra, exit 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from clnrm.errors import ClnrmError
from clnrm.extras import EXTRAS, MissingExtraError, installed, missing, require

# Runs the CLI with the memory extra's modules made unimportable (a None entry in
# sys.modules makes `import chromadb` raise and find_spec report nothing).
WITHOUT_MEMORY = """
import sys
for name in ("chromadb", "sklearn"):
    sys.modules[name] = None
from clnrm.cli import main
sys.argv = ["clnrm", *sys.argv[1:]]
main()
"""


def test_require_names_the_extra_and_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(EXTRAS, "memory", ("clnrm_no_such_module_xyz",))
    with pytest.raises(MissingExtraError) as caught:
        require("memory", feature="clnrm memory")
    err = caught.value
    assert isinstance(err, ClnrmError) and err.exit_code == 2
    assert str(err) == ("clnrm memory needs the optional dependency clnrm_no_such_module_xyz: "
                        "pip install 'clnrm[memory]'")
    assert "\n" not in str(err)


def test_pypi_name_is_used_for_modules_named_differently(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(EXTRAS, "memory", ("sklearn",))
    with pytest.raises(MissingExtraError, match=r"scikit-learn: pip install 'clnrm\[memory\]'"):
        require("memory")


def test_installed_extra_passes_without_importing_it() -> None:
    assert installed("memory") and missing("memory") == []
    require("memory")
    # find_spec only locates the package: chromadb stays unimported in a fresh process
    code = ("import sys; from clnrm.extras import require; require('memory'); "
            "print('chromadb' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert res.stdout.strip() == "False", res.stderr


@pytest.mark.parametrize("argv", [["memory", "stats"], ["memory", "check"],
                                  ["perf", "baseline", "list"]])
def test_memory_commands_without_the_extra_say_so_in_one_line(argv: list[str]) -> None:
    res = subprocess.run([sys.executable, "-c", WITHOUT_MEMORY, *argv], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "pip install 'clnrm[memory]'" in lines[0] and "chromadb" in lines[0]

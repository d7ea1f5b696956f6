"""The ``clnrm_run`` fixture and folder parametrization, as a user's pytest project uses them.

A fresh folder holds a pytest.ini, an ``e2e/`` folder of test files and a test module
that parametrizes over it with :func:`clnrm.testing.scenario_files`; pytest runs it in
a subprocess on real Docker (``clnrm/busybox:latest``), and the summary is read back.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.integration.test_pytest_plugin import counts, run_pytest
from tests.scenario_texts import FAILING

IN_CONTAINER = """
    [meta]
    name = "in_container"

    [[steps]]
    name = "where"
    command = ["sh", "-c", "test -f /.dockerenv && echo inside-a-container"]
    expected_output_regex = "^inside-a-container$"
"""



USER_TESTS = '''
    from pathlib import Path

    import pytest

    from clnrm import Outcome
    from clnrm.testing import assert_passed, scenario_files

    HERE = Path(__file__).parent


    @pytest.mark.parametrize("path", scenario_files("e2e", root=HERE))
    def test_e2e(clnrm_run, path):
        assert_passed(clnrm_run(path))


    def test_typed_result(clnrm_run):
        result = clnrm_run(HERE / "e2e" / "a_ok.clnrm.toml", seed=11)
        [test] = result.tests
        assert result.backend == "docker" and result.seed == 11
        assert test.outcome is Outcome.PASSED
        assert test.steps[0].stdout.strip() == "inside-a-container"
'''


@pytest.mark.usefixtures("local_images", "no_leaks")
def test_fixture_and_folder_parametrization_on_docker(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    e2e = tmp_path / "e2e"
    e2e.mkdir()
    (e2e / "a_ok.clnrm.toml").write_text(textwrap.dedent(IN_CONTAINER), encoding="utf-8")
    (e2e / "b_bad.clnrm.toml").write_text(textwrap.dedent(FAILING), encoding="utf-8")
    (tmp_path / "test_user.py").write_text(textwrap.dedent(USER_TESTS), encoding="utf-8")

    res = run_pytest(tmp_path, "-v", "-rf", "test_user.py")
    out = res.stdout + res.stderr
    assert counts(res) == {"passed": 2, "failed": 1}, out
    assert "test_user.py::test_e2e[e2e/a_ok] PASSED" in out
    assert "test_user.py::test_e2e[e2e/b_bad] FAILED" in out
    assert "test_user.py::test_typed_result PASSED" in out
    # the failure is clnrm's explanation, and the failing step's output is attached
    assert "clnrm test 'exits_three' FAILED" in out and "(exit code 3)" in out
    assert "exits_three step boom stderr" in out and "went-wrong" in out
    # *.clnrm.toml files were not collected as items: the fixture needs no --clnrm
    assert "b_bad.clnrm.toml::" not in out

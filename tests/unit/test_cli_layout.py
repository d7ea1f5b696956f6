"""Where the command line's code lives (issue 13): ``clnrm/cli.py`` only assembles the app,
commands sit beside what they drive, and every CLI shares ``clnrm.cli_support`` instead of
reaching into another CLI's private helpers."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

from typer.testing import CliRunner

from tests.conftest import REPO

# Folders whose modules make up clnrm (agents/, memory/, ray_cluster/ install under clnrm.).
SOURCES = ("clnrm", "agents", "memory", "ray_cluster")


def cli_imports(source: str) -> list[tuple[str, str]]:
    """``(module, name)`` of every import from a CLI module (``clnrm.cli``, ``*.cli``,
    ``clnrm.cli_support``, ``clnrm.commands.*``) in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and (
                node.module.split(".")[-1] in ("cli", "cli_support")
                or node.module.startswith("clnrm.commands")):
            found += [(node.module, alias.name) for alias in node.names]
    return found


def _modules() -> dict[str, str]:
    return {str(path.relative_to(REPO)): path.read_text(encoding="utf-8")
            for folder in SOURCES for path in sorted((REPO / folder).rglob("*.py"))}


def test_the_checker_finds_a_private_cli_import() -> None:
    # The checks below must be able to fail.
    assert cli_imports("def f():\n    from clnrm.cli import _fail, app\n") == [
        ("clnrm.cli", "_fail"), ("clnrm.cli", "app")]
    assert cli_imports("from clnrm.commands.run import run_files\nimport os\n") == [
        ("clnrm.commands.run", "run_files")]


def test_no_module_imports_a_private_helper_of_a_cli() -> None:
    private = {path: [f"{module}.{name}" for module, name in cli_imports(text)
                      if name.startswith("_")]
               for path, text in _modules().items()}
    assert not {path: names for path, names in private.items() if names}


def test_only_the_console_script_imports_the_app() -> None:
    # Commands and the delegated groups go through clnrm.cli_support, never clnrm.cli.
    users = {path for path, text in _modules().items()
             if any(module == "clnrm.cli" for module, _ in cli_imports(text))}
    assert users == {"clnrm/_entry.py"}


def test_the_app_module_only_assembles() -> None:
    text = (REPO / "clnrm" / "cli.py").read_text(encoding="utf-8")
    assert len(text.splitlines()) < 200
    tree = ast.parse(text)
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert functions <= {"_version", "main_options", "delegate", "main"}, functions


def test_mounting_the_app_imports_no_command_body() -> None:
    """Every command module is imported for ``clnrm --help``: none may import what its
    command needs at module level."""
    watched = ["pydantic", "docker", "networkx", "numpy", "clnrm.api", "clnrm.runner",
               "clnrm.scenario", "clnrm.images", "clnrm.plugins", "clnrm.chaos.catalog",
               "clnrm.memory", "clnrm.perf.cli", "clnrm.swarm"]
    code = (f"import json, sys\nimport clnrm.cli\nprint(json.dumps(["
            f"m for m in {watched!r} if m in sys.modules]))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, timeout=120)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.splitlines()[-1]) == []


def test_a_delegated_group_is_one_line(tmp_path: Path) -> None:
    """``delegate(...)`` mounts a typer app that stays unimported until it runs, lists it in
    ``clnrm --help`` and hands it its arguments."""
    (tmp_path / "demo_group.py").write_text(textwrap.dedent("""
        import typer

        demo_app = typer.Typer(no_args_is_help=True)

        @demo_app.command()
        def hello(name: str) -> None:
            typer.echo(f"hello {name}")

        @demo_app.command()
        def bye() -> None:
            pass
    """), encoding="utf-8")
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        from typer.testing import CliRunner
        from clnrm.cli import app, delegate
        delegate("demo", "demo_group", "demo_app", "A group mounted with one line.")
        assert "demo_group" not in sys.modules
        top = CliRunner().invoke(app, ["--help"], prog_name="clnrm", env={{"COLUMNS": "200"}})
        assert "A group mounted with one line." in top.output, top.output
        assert "demo_group" not in sys.modules
        res = CliRunner().invoke(app, ["demo", "hello", "you"], prog_name="clnrm")
        assert (res.exit_code, res.output) == (0, "hello you\\n"), res.output
        print("ok")
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


def test_a_delegated_group_fails_like_the_others() -> None:
    """The memory group prints its errors through clnrm.cli_support too: one line, exit 2,
    and the traceback with the top-level --debug."""
    from clnrm.cli import app

    debug = CliRunner().invoke(app, ["--debug", "memory", "stats", "--memory", "/dev/null"],
                               prog_name="clnrm")
    assert debug.exit_code == 2 and "Traceback" in debug.output
    plain = CliRunner().invoke(app, ["memory", "stats", "--memory", "/dev/null"],
                               prog_name="clnrm")  # also resets --debug for later tests
    assert plain.exit_code == 2
    assert plain.output == "error: /dev/null: a character device, not a memory store folder\n"

"""Polish people notice (issue 17): help from the cache equals typer's, shell completion,
literal TOML tables in help, flags without a value type, -V, aligned `images list`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from importlib import import_module
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from clnrm import __version__
from clnrm.cli import _DELEGATED, app
from clnrm.commands.images import aligned as _aligned

CLNRM = Path(sys.executable).with_name("clnrm")
HELP_ARGVS = [[], ["--help"], ["chaos", "run", "--help"], ["memory", "--help"],
              ["perf", "baseline", "save", "--help"], ["images", "--help"]]


def _clnrm(*args: str, cache: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m clnrm ARGS`` with its own help cache (never the user's)."""
    full = {**os.environ, "XDG_CACHE_HOME": str(cache), **env}
    for name in ("COLUMNS", "CLNRM_HELP_CACHE"):
        if name not in env:
            full.pop(name, None)
    full = {k: v for k, v in full.items() if not k.endswith("_COMPLETE")}
    return subprocess.run([sys.executable, "-m", "clnrm", *args], capture_output=True,
                          text=True, env=full, timeout=300, stdin=subprocess.DEVNULL)


NAMED_SHELL = {"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
"""Completion for the shell the test names, not the one typer detects among pytest's
ancestors (under `make test` that is make's /bin/sh, which typer does not support)."""


def _same(a: subprocess.CompletedProcess[str], b: subprocess.CompletedProcess[str]) -> None:
    assert (a.returncode, a.stdout, a.stderr) == (b.returncode, b.stdout, b.stderr)


# -- help served from the cache is typer's help ---------------------------------------


@pytest.mark.parametrize("argv", HELP_ARGVS, ids=lambda a: " ".join(a) or "no-arguments")
def test_cached_help_equals_what_typer_prints(tmp_path: Path, argv: list[str]) -> None:
    typer_only = _clnrm(*argv, cache=tmp_path, CLNRM_HELP_CACHE="0")
    assert not (tmp_path / "clnrm").exists(), "CLNRM_HELP_CACHE=0 must not write a cache"
    miss = _clnrm(*argv, cache=tmp_path)  # typer prints it; the entry is written
    assert list((tmp_path / "clnrm" / "help").glob("*.help")), "nothing cached"
    hit = _clnrm(*argv, cache=tmp_path)
    _same(typer_only, miss)
    _same(typer_only, hit)
    assert "Usage: clnrm" in hit.stdout + hit.stderr
    assert hit.returncode == (2 if not argv else 0)


def test_a_cache_hit_imports_neither_typer_nor_rich(tmp_path: Path) -> None:
    _clnrm("--help", cache=tmp_path)
    hit = _clnrm("--help", cache=tmp_path, PYTHONPROFILEIMPORTTIME="1")
    imported = {line.split("|")[-1].strip() for line in hit.stderr.splitlines()}
    assert "clnrm._entry" in imported  # the profile did run
    assert not [m for m in imported if m.split(".")[0] in ("typer", "rich", "click")]
    assert "Usage: clnrm" in hit.stdout


def test_another_terminal_width_is_typer_help_for_that_width(tmp_path: Path) -> None:
    narrow = _clnrm("--help", cache=tmp_path)
    wide = _clnrm("--help", cache=tmp_path, COLUMNS="140")
    _same(wide, _clnrm("--help", cache=tmp_path, COLUMNS="140", CLNRM_HELP_CACHE="0"))
    assert wide.stdout != narrow.stdout and max(map(len, wide.stdout.splitlines())) > 100
    _same(narrow, _clnrm("--help", cache=tmp_path))


def test_an_entry_with_another_key_is_never_shown(tmp_path: Path) -> None:
    good = _clnrm("--help", cache=tmp_path)
    [entry] = (tmp_path / "clnrm" / "help").glob("*.help")
    key, _, _ = entry.read_bytes().partition(b"\n")
    stale = key.replace(__version__.encode(), b"0.0.0-old", 1)
    assert stale != key
    entry.write_bytes(stale + b"\n0 6\nSTALE\n")
    again = _clnrm("--help", cache=tmp_path)
    _same(good, again)
    assert entry.read_bytes().startswith(key + b"\n")  # re-cached under the current key


def test_an_entry_is_not_shown_once_a_module_it_was_rendered_from_changed(
        tmp_path: Path) -> None:
    good = _clnrm("chaos", "run", "--help", cache=tmp_path)
    [entry] = (tmp_path / "clnrm" / "help").glob("*.help")
    key, _, rest = entry.read_bytes().partition(b"\n")
    sources, _, _ = rest.partition(b"\n")
    cli = next(item for item in sources.split(b"\0") if item.split(b"\t")[0].endswith(
        os.path.join("chaos", "cli.py").encode()))  # the module that defines `chaos run`
    edited = sources.replace(cli, cli.split(b"\t")[0] + b"\t1:1")  # as if it changed
    entry.write_bytes(key + b"\n" + edited + b"\n0 6\nSTALE\n")
    _same(good, _clnrm("chaos", "run", "--help", cache=tmp_path))
    assert b"STALE" not in entry.read_bytes()


def test_sources_check_compares_size_and_mtime(tmp_path: Path) -> None:
    from clnrm._entry import _loaded_sources, _sources_unchanged, _stamp

    module = tmp_path / "m.py"
    module.write_text("x = 1\n")
    recorded = f"{module}\t{_stamp(str(module))}"
    assert _sources_unchanged(recorded)
    module.write_text("x = 22\n")
    assert not _sources_unchanged(recorded)
    assert not _sources_unchanged("")
    loaded = _loaded_sources()
    assert typer.__file__ in loaded and "/json/__init__.py" not in loaded  # stdlib: by version
    assert _sources_unchanged(loaded)


def test_a_closed_pipe_ends_quietly_like_typer(tmp_path: Path) -> None:
    def closed(**env: str) -> tuple[int, bytes]:
        full = {**os.environ, "XDG_CACHE_HOME": str(tmp_path), **env}
        read_end, write_end = os.pipe()
        os.close(read_end)  # a reader that is gone before anything is written
        try:
            res = subprocess.run([sys.executable, "-m", "clnrm", "--help"], env=full,
                                 stdout=write_end, stderr=subprocess.PIPE, timeout=300)
        finally:
            os.close(write_end)
        return res.returncode, res.stderr

    _clnrm("--help", cache=tmp_path)  # cached
    assert closed() == closed(CLNRM_HELP_CACHE="0") == (1, b"")


def test_an_unwritable_cache_still_prints_help(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    res = _clnrm("--help", cache=blocker)
    assert res.returncode == 0 and "Usage: clnrm" in res.stdout and not res.stderr


def test_only_help_requests_take_the_cache() -> None:
    from clnrm._entry import help_request

    assert help_request([]) and help_request(["--help"])
    assert help_request(["perf", "baseline", "save", "--help"])
    for argv in (["run", "x.toml", "--help"], ["--debug", "--help"], ["run"],
                 ["run", "--help", "x"], ["a", "b", "c", "d", "--help"], ["../x", "--help"]):
        assert not help_request(argv), argv


# -- version ----------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_version_flags(tmp_path: Path, flag: str) -> None:
    res = _clnrm(flag, cache=tmp_path)
    assert (res.returncode, res.stdout, res.stderr) == (0, f"clnrm {__version__}\n", "")
    typer_res = CliRunner().invoke(app, [flag], prog_name="clnrm")  # without the fast path
    assert (typer_res.exit_code, typer_res.output) == (0, res.stdout)


# -- shell completion ---------------------------------------------------------------------


def _complete(words: str, cword: int) -> list[str]:
    env = {**os.environ, "_CLNRM_COMPLETE": "complete_bash", "COMP_WORDS": words,
           "COMP_CWORD": str(cword)}
    res = subprocess.run([sys.executable, "-m", "clnrm"], capture_output=True, text=True,
                         env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    return res.stdout.split()


@pytest.mark.parametrize(("words", "cword", "expected"), [
    ("clnrm ", 1, {"run", "validate", "chaos", "images", "memory", "perf", "swarm"}),
    ("clnrm chaos ", 2, {"list", "run"}),
    ("clnrm memory ", 2, {"query", "stats", "export", "import", "forget"}),
    ("clnrm perf baseline ", 3, {"save", "show", "list", "diff"}),
    ("clnrm run --ba", 2, {"--backend"}),
])
def test_completion_lists_commands_and_options(words: str, cword: int,
                                               expected: set[str]) -> None:
    got = set(_complete(words, cword))
    assert expected <= got, got


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_show_completion_prints_a_script_for_clnrm(tmp_path: Path, shell: str) -> None:
    res = _clnrm("--show-completion", shell, cache=tmp_path, **NAMED_SHELL)
    assert res.returncode == 0, res.stderr
    assert "_CLNRM_COMPLETE" in res.stdout and "clnrm swarm" not in res.stdout
    binary = shutil.which(shell)
    if binary and shell in ("bash", "zsh"):
        script = tmp_path / f"completion.{shell}"
        script.write_text(res.stdout)
        assert subprocess.run([binary, "-n", str(script)]).returncode == 0


@pytest.mark.skipif(not CLNRM.exists() or not shutil.which("bash"), reason="needs bash")
def test_bash_sources_the_script_and_completes_subcommands(tmp_path: Path) -> None:
    script = _clnrm("--show-completion", "bash", cache=tmp_path, **NAMED_SHELL).stdout
    probe = (script + '\nCOMP_WORDS=(clnrm chaos ""); COMP_CWORD=2\n'
             '_clnrm_completion clnrm\nprintf "%s\\n" "${COMPREPLY[@]}"\n')
    env = {**os.environ, "PATH": f"{CLNRM.parent}:{os.environ['PATH']}"}
    res = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, env=env,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    assert set(res.stdout.split()) == {"list", "run"}


def test_install_completion_writes_the_users_bash_setup(tmp_path: Path) -> None:
    res = _clnrm("--install-completion", "bash", cache=tmp_path, HOME=str(tmp_path), **NAMED_SHELL)
    assert res.returncode == 0, res.stderr
    assert "clnrm" in (tmp_path / ".bashrc").read_text()


def test_sub_apps_do_not_offer_their_own_broken_completion(tmp_path: Path) -> None:
    res = _clnrm("swarm", "--show-completion", cache=tmp_path)
    assert res.returncode == 2 and "No such option" in res.stderr
    assert "complete" not in res.stdout


# -- what every help page shows -----------------------------------------------------------


def _commands() -> list[tuple[list[str], object]]:
    """(argv prefix, click command) for every command, the delegated groups included."""
    def walk(cmd: object, path: list[str]) -> list[tuple[list[str], object]]:
        found = [(path, cmd)]
        for name, sub in sorted(getattr(cmd, "commands", {}).items()):
            found += walk(sub, [*path, name])
        return found

    found = walk(typer.main.get_command(app), [])
    for name, (module, attr) in _DELEGATED.items():
        found += walk(typer.main.get_command(getattr(import_module(module), attr)), [name])
    return found


def _help(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("COLUMNS", "400")  # no wrapping: a bracketed phrase stays on one line
    res = CliRunner().invoke(app, [*argv, "--help"], prog_name="clnrm")
    assert res.exit_code == 0, res.output
    return res.output


def test_bracketed_text_in_help_is_shown_literally(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rich reads `[name]` as markup and drops it: `[[chaos.faults]]` and `[default: ...]`
    vanished.  Every bracketed phrase of every help text must be on its help page."""
    checked = 0
    for argv, cmd in _commands():
        texts = [getattr(cmd, "help", None) or ""]
        texts += [getattr(p, "help", None) or "" for p in getattr(cmd, "params", [])]
        wanted = [b.replace("\\[", "[") for t in texts for b in re.findall(r"\\?\[[^\]]*\]+", t)]
        if not wanted:
            continue
        shown = " ".join(_help(argv, monkeypatch).split())
        for phrase in wanted:
            assert " ".join(phrase.split()) in shown, (argv, phrase)
            checked += 1
    assert checked >= 3
    assert "[[chaos.faults]]" in _help(["chaos", "run"], monkeypatch)


def test_a_docstrings_first_paragraph_is_one_line_in_the_command_list(
        monkeypatch: pytest.MonkeyPatch) -> None:
    top = _help([], monkeypatch)
    for name, cmd in typer.main.get_command(app).commands.items():
        first = " ".join((cmd.help or "").split("\n\n")[0].split())
        row = next(line for line in top.splitlines() if line.startswith(f"│ {name} "))
        assert first in " ".join(row.split()), (name, row)  # one row, nothing cut


def test_flags_show_no_value_type(monkeypatch: pytest.MonkeyPatch) -> None:
    pages = {" ".join(argv): _help(argv, monkeypatch) for argv, _ in _commands()}
    assert len(pages) > 20
    bad = {name: page for name, page in pages.items() if "<bool>" in page}
    assert not bad, sorted(bad)
    top = pages[""]
    assert re.search(r"--verbose\s+-v\s+More log output", top), top
    assert "<int>" in pages["run"]  # options that take a value still show its type


# -- images list --------------------------------------------------------------------------


def test_aligned_columns_start_at_the_same_offsets() -> None:
    rows = [("present", "busybox", "clnrm/busybox:latest"),
            ("missing", "demo-postgres", "clnrm/demo-postgres:latest"),
            ("built", "build-app", "clnrm/build-app:1 (context /tmp/a b)")]
    lines = _aligned(rows)
    assert [line.index(row[1]) for line, row in zip(lines, rows, strict=True)] == [9] * 3
    assert [line.index(row[2]) for line, row in zip(lines, rows, strict=True)] == [24] * 3
    assert _aligned([]) == []


@pytest.mark.docker
def test_images_list_is_aligned(tmp_path: Path) -> None:
    res = _clnrm("images", "list", cache=tmp_path)
    assert res.returncode == 0, res.stderr
    lines = [line for line in res.stdout.splitlines() if line.strip()]
    assert len(lines) >= 6
    starts = {tuple(m.start() for m in re.finditer(r"(?:(?<=  )|^)\S", line))[:3]
              for line in lines}
    assert len(starts) == 1, res.stdout

"""Paths a user types (issue 18): devices, FIFOs, folders, huge or empty files, bad folders.

Every command that takes a path either uses it or exits 2 with one ``error:`` line, at
once: no traceback, no read of an endless device, no wait on a FIFO, no device node
replaced.  CLI cases run the real ``clnrm`` in a subprocess under a memory cap and a
generous timeout (a hang detector, not a timing assert); the fuzz set at the end mixes
special files and generated trace files under a time budget (``CLNRM_FUZZ_BUDGET_S``).
"""

from __future__ import annotations

import io
import json
import os
import resource
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clnrm.errors import ClnrmError, ScenarioError
from clnrm.otel.tracefile import MAX_TRACE_FILE_BYTES, load_trace_file
from clnrm.paths import PathError, check_folder, check_output_file, read_regular_file
from tests.conftest import REPO

TRACE = "0af7651916cd43dd8448eb211c80319c"
TEST_FILE = """[test.metadata]
name = "t"
[[steps]]
name = "s"
command = ["true"]
[[expect.span]]
name = "s0"
"""
HANG_S = 60  # generous: these detect a hang, they do not time anything


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))  # /dev/zero cannot eat the box


def clnrm(*args: str, cwd: Path,
          stdin: Any = subprocess.DEVNULL) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "clnrm", *args], capture_output=True, text=True,
                          timeout=HANG_S, cwd=cwd, stdin=stdin, preexec_fn=_limits,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


def one_line_error(res: subprocess.CompletedProcess[str]) -> str:
    """The exit-2 contract: one ``error:`` line on stderr, nothing else."""
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    return lines[0]


@contextmanager
def hang_guard(seconds: float = HANG_S) -> Iterator[None]:
    """Turn a blocked call (a FIFO open or read) into a failure instead of a stuck run."""
    def expired(signum: int, frame: object) -> None:
        raise TimeoutError(f"blocked for {seconds} s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "T.clnrm.toml").write_text(TEST_FILE, encoding="utf-8")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "folder").mkdir()
    (tmp_path / "file.txt").write_text("x\n", encoding="utf-8")
    (tmp_path / "empty.json").write_bytes(b"")
    (tmp_path / "blank.json").write_text(" \n\t\n", encoding="utf-8")
    return tmp_path


# -- clnrm.paths ---------------------------------------------------------------------------


def test_read_regular_file_refuses_every_other_kind_by_name(work: Path) -> None:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(work / "sock"))
    (work / "link").symlink_to("/dev/zero")
    expected = {"/dev/zero": "a character device", str(work / "fifo"): "a FIFO (named pipe)",
                str(work / "folder"): "a directory", str(work / "sock"): "a socket",
                str(work / "link"): "a character device"}
    try:
        with hang_guard():
            for path, kind in expected.items():
                with pytest.raises(PathError) as info:
                    read_regular_file(path, limit=10, what="trace file")
                assert str(info.value) == f"{path}: {kind}, not a regular trace file"
    finally:
        sock.close()
    assert read_regular_file(work / "file.txt", limit=10) == b"x\n"


def test_read_regular_file_stops_at_the_limit(work: Path) -> None:
    big = work / "big"
    big.write_bytes(b"a" * 11)
    with pytest.raises(PathError, match=r"file is 11 bytes, over the 10 bytes limit"):
        read_regular_file(big, limit=10)
    assert read_regular_file(big, limit=11) == b"a" * 11


def test_stdin_is_read_only_when_offered_and_within_the_limit(
        work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"x" * 20)))
    with pytest.raises(PathError, match=r"<stdin>: file is over the 10 bytes limit"):
        read_regular_file("-", limit=10, allow_stdin=True)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"abc")))
    assert read_regular_file("-", limit=10, allow_stdin=True) == b"abc"
    monkeypatch.chdir(work)
    with pytest.raises(PathError, match="No such file"):  # without the offer, - is a name
        read_regular_file("-", limit=10)


def test_output_and_folder_checks(work: Path) -> None:
    assert check_output_file(work / "new.jsonl") == work / "new.jsonl"
    assert check_output_file(work / "file.txt") == work / "file.txt"
    for bad, words in ((work / "fifo", "a FIFO"), (work / "folder", "a directory"),
                       ("/dev/full", "a character device"),
                       (work / "nope" / "x.jsonl", "No such file or directory"),
                       (work / "file.txt" / "x.jsonl", "cannot write file: Not a directory")):
        with pytest.raises(PathError, match=words):
            check_output_file(bad)
    assert check_folder(work / "folder" / "a" / "b") == work / "folder" / "a" / "b"
    with pytest.raises(PathError, match=r"a character device, not a folder"):
        check_folder("/dev/null")
    with pytest.raises(PathError, match=r"cannot be created, not a folder \(.*file.txt is a "
                                        r"regular file\)"):
        check_folder(work / "file.txt" / "sub")


def test_trace_file_over_the_documented_limit_is_refused_before_reading(work: Path) -> None:
    sparse = work / "huge.json"
    with sparse.open("wb") as fh:  # a hole: no disk used, st_size says it all
        fh.truncate(MAX_TRACE_FILE_BYTES + 1)
    with pytest.raises(ScenarioError) as info:
        load_trace_file(sparse)
    assert str(info.value) == (f"{sparse}: trace file is {MAX_TRACE_FILE_BYTES + 1} bytes, "
                               "over the 128 MiB limit")
    assert MAX_TRACE_FILE_BYTES == 128 << 20  # docs/spans.md states this figure


# -- the real CLI ---------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "words"), [
    (["validate", "/dev/zero"], "/dev/zero: a character device, not a test file or folder"),
    (["validate", "/dev/urandom"], "/dev/urandom: a character device"),
    (["validate", "fifo"], "fifo: a FIFO (named pipe), not a test file or folder"),
    (["run", "/dev/zero"], "/dev/zero: a character device"),
    (["run", "T.clnrm.toml", "--traces", "/dev/zero"],
     "/dev/zero: a character device, not a regular trace file"),
    (["run", "T.clnrm.toml", "--traces", "/dev/urandom"], "/dev/urandom: a character device"),
    (["run", "T.clnrm.toml", "--traces", "fifo"], "fifo: a FIFO (named pipe)"),
    (["run", "T.clnrm.toml", "--traces", "folder"], "folder: a directory"),
    (["run", "T.clnrm.toml", "--traces", "nope.json"],
     "nope.json: cannot read trace file: No such file or directory"),
    (["run", "T.clnrm.toml", "--traces", "empty.json"],
     "empty.json: no spans: the trace file is empty"),
    (["run", "T.clnrm.toml", "--traces", "blank.json"],
     "blank.json: no spans: the trace file holds only whitespace"),
    (["init", "/dev/null"], "/dev/null: a character device, not a project folder"),
    (["init", "file.txt"], "file.txt: a regular file, not a project folder"),
    (["init", "/proc/nope"], "cannot write the first test: /proc/nope: No such file"),
    (["memory", "stats", "--memory", "/dev/null"],
     "/dev/null: a character device, not a memory store folder"),
    (["memory", "stats", "--memory", "file.txt"], "file.txt: a regular file, not a memory"),
    (["memory", "stats", "--memory", "/proc/nope"],
     "/proc/nope: cannot open the memory store: No such file or directory"),
    (["perf", "baseline", "list", "--memory", "/dev/null"], "/dev/null: a character device"),
    (["memory", "export", "folder", "--memory", "mem"],
     "folder: a directory; clnrm only writes a new or regular export file"),
    (["memory", "export", "fifo", "--memory", "mem"], "fifo: a FIFO (named pipe); clnrm only"),
    (["memory", "export", "nope/x.jsonl", "--memory", "mem"],
     "cannot write export file: nope: No such file or directory"),
    (["memory", "import", "fifo", "--memory", "mem"], "fifo: a FIFO (named pipe), not a regular"),
    (["perf", "baseline", "save", "--from-report", "/dev/zero", "--memory", "mem"],
     "/dev/zero: a character device, not a regular JSON report"),
])
def test_a_bad_path_is_one_error_line_and_exit_2(work: Path, args: list[str],
                                                 words: str) -> None:
    line = one_line_error(clnrm(*args, cwd=work))
    assert words in line, line
    assert stat.S_ISFIFO(os.stat(work / "fifo").st_mode)  # never replaced nor written


def test_export_never_replaces_a_device_node(work: Path) -> None:
    """As root, the old export replaced /dev/full with a regular file; use a private copy."""
    node = work / "full"
    try:
        os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 7))
    except PermissionError:
        pytest.skip("mknod needs root (the FIFO case above covers non-root)")
    line = one_line_error(clnrm("memory", "export", str(node), "--memory", "mem", cwd=work))
    assert "a character device; clnrm only writes a new or regular export file" in line
    assert stat.S_ISCHR(os.stat(node).st_mode)


def test_traces_from_stdin_and_a_chain_deeper_than_the_cap(work: Path) -> None:
    rows = [{"name": f"s{i}", "trace_id": TRACE, "span_id": f"{i + 1:016x}",
             "parent_span_id": f"{i:016x}" if i else None} for i in range(20000)]
    chain = work / "chain.jsonl"
    chain.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    line = one_line_error(clnrm("run", "T.clnrm.toml", "--traces", "chain.jsonl", cwd=work))
    assert line == ("error: chain.jsonl:10001: span 's10000' is nested 10001 levels deep; "
                    "clnrm judges span trees at most 10000 levels deep")
    short = work / "short.jsonl"
    short.write_text("".join(json.dumps(r) + "\n" for r in rows[:3]), encoding="utf-8")
    with short.open("rb") as fh:
        ok = clnrm("run", "T.clnrm.toml", "--traces", "-", cwd=work, stdin=fh)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "1/1 expectation held, 3 spans" in ok.stdout
    line = one_line_error(clnrm("run", "T.clnrm.toml", "--traces", "-", cwd=work))
    assert line == "error: <stdin>: no spans: the trace file is empty"


# -- fuzz: special files and generated trace files, under a time budget ----------------------

FUZZ_BUDGET_S = float(os.environ.get("CLNRM_FUZZ_BUDGET_S", "20"))
_budget: dict[str, float] = {}


def _within_budget(name: str) -> bool:
    """True until this test has spent its share of CI time; later examples return at once."""
    start = _budget.setdefault(name, time.monotonic())
    return time.monotonic() - start < FUZZ_BUDGET_S


SPECIAL = ["/dev/zero", "/dev/urandom", "/dev/null", "/dev/full", "fifo", "folder", "sock",
           "link-to-zero", "sparse-huge", "missing"]


def _special(work: Path, kind: str) -> Path:
    path = work / kind
    if path.exists() or path.is_symlink() or kind.startswith("/"):
        return Path(kind) if kind.startswith("/") else path
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    elif kind == "sock":
        with socket.socket(socket.AF_UNIX) as s:
            s.bind(str(path))  # the socket file stays after close
    elif kind == "link-to-zero":
        path.symlink_to("/dev/zero")
    elif kind == "sparse-huge":
        with path.open("wb") as fh:
            fh.truncate(MAX_TRACE_FILE_BYTES + 1)
    return path


@settings(max_examples=int(os.environ.get("CLNRM_FUZZ_EXAMPLES", "60")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(SPECIAL), stdin=st.booleans())
def test_fuzz_special_files_are_refused_at_once(tmp_path: Path, kind: str, stdin: bool) -> None:
    if not _within_budget("special"):
        return
    path = _special(tmp_path, kind)
    with hang_guard(), pytest.raises(ScenarioError) as info:
        load_trace_file(path, allow_stdin=stdin)
    assert info.value.file == path and info.value.line is None
    assert "\n" not in str(info.value)


def _record(span: dict[str, Any], fmt: str) -> dict[str, Any]:
    if fmt == "spans.jsonl":
        return span
    otlp = {"traceId": span["trace_id"], "spanId": span["span_id"], "name": span["name"],
            "parentSpanId": span.get("parent_span_id") or "",
            "startTimeUnixNano": str(span.get("start_time_unix_nano", 0))}
    return {"resourceSpans": [{"scopeSpans": [{"spans": [otlp]}]}]}


@st.composite
def trace_files(draw: st.DrawFn) -> tuple[str, str]:
    """Span records with the edge cases of issue 18: repeated ids, times at and past uint64,
    parents that are missing, self, or form chains; then framed as lines or one document."""
    n = draw(st.integers(1, 12))
    ids = [draw(st.sampled_from([f"{i + 1:016x}" for i in range(n)] + ["00000000000000aa"]))
           for _ in range(n)]
    spans = []
    for i, sid in enumerate(ids):
        span: dict[str, Any] = {"name": f"s{i}", "trace_id": TRACE, "span_id": sid}
        parent = draw(st.one_of(st.none(), st.sampled_from(ids)))
        if parent is not None:
            span["parent_span_id"] = parent
        span["start_time_unix_nano"] = draw(st.sampled_from([0, 1, 2**63, 2**64 - 1, 2**64]))
        spans.append(span)
    fmt = draw(st.sampled_from(["spans.jsonl", "OTLP JSON"]))
    if fmt == "OTLP JSON" and draw(st.booleans()):
        doc = {"resourceSpans": [r["resourceSpans"][0] for r in
                                 (_record(s, fmt) for s in spans)]}
        return fmt, json.dumps(doc, indent=draw(st.sampled_from([None, 1, 2])))
    return fmt, "".join(json.dumps(_record(s, fmt)) + "\n" for s in spans)


@settings(max_examples=int(os.environ.get("CLNRM_FUZZ_EXAMPLES", "150")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(trace_files())
def test_fuzz_trace_files_load_or_fail_located(tmp_path: Path, case: tuple[str, str]) -> None:
    if not _within_budget("traces"):
        return
    _fmt, text = case
    path = tmp_path / "fuzz.json"
    path.write_text(text, encoding="utf-8")
    try:
        spans = load_trace_file(path)
    except ClnrmError as exc:
        assert isinstance(exc, ScenarioError) and exc.file == path
        assert exc.line is not None, str(exc)  # every content problem is located
        return
    keys = [(s.trace_id, s.span_id) for s in spans]
    assert len(set(keys)) == len(keys)  # duplicates never load
    assert all(0 <= (s.start_time_unix_nano or 0) < 2**64 for s in spans)


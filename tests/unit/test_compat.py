"""Every upstream file in the compatibility corpus loads, or is rejected with a located error.

Two sets of files:

* ``tests/fixtures/compat``: small files in the upstream format written by this project,
  always present, so a user's ``make test`` checks discovery, validation walking and the
  snapshot of rejected files (``FIXTURE_INVALID``) on its own.
* the upstream corpus, which lives outside the repo (``../shared/compat/clnrm``, or
  ``$CLNRM_COMPAT_DIR``) and exists beside CI's checkout but never in a user's clone.
  Its tests run where it is present and are reported as skipped, with the reason, where
  it is not; under CI (``$CI`` set) a missing corpus is a failure, so CI keeps running them.

``EXPECTED_INVALID`` / ``FIXTURE_INVALID`` are snapshots of the files we reject and why:
a change that makes a valid file invalid (or the reverse) fails here and must update the
snapshot on purpose.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import pytest

from clnrm.errors import ScenarioError
from clnrm.scenario import discover_test_files, load_scenario, validate_paths

COMPAT_DIR = Path(
    os.environ.get("CLNRM_COMPAT_DIR")
    or Path(__file__).resolve().parents[2].parent / "shared" / "compat" / "clnrm"
)
TEMPLATE_ENV_VARS = (
    "SERVICE_NAME",
    "ENV",
    "OTEL_ENDPOINT",
    "OTEL_TRACES_EXPORTER",
    "CLNRM_IMAGE",
    "FREEZE_CLOCK",
    "OTEL_TOKEN",
    "OTEL_EXPORTER",
    "TEST_ENV",
    "CI",
)


class Rejection(NamedTuple):
    """Why a file is invalid: a message fragment, and whether a line/key path applies."""

    fragment: str
    line: int | None
    key_path: str | None = None


_NO_IMAGE = "needs an image"
EXPECTED_INVALID: dict[str, Rejection] = {
    # not a test at all (a behaviour manifest)
    "examples/behaviors.clnrm.toml": Rejection("this is not a clnrm test", None),
    # invented expectation shapes ([expect.span] as a table of named rules)
    "examples/case-studies/fake-green-detection.toml": Rejection(
        "expected an array", 65, "expect.span"
    ),
    # invalid TOML: [report] digest = "..." then [report.digest]
    "examples/case-studies/redteam-otlp-env.clnrm.toml": Rejection("Cannot overwrite a value", 158),
    # invalid TOML: "basic strings" spanning lines
    "examples/clnrm-case-study/tests/ai-performance-benchmark.clnrm.toml": Rejection(
        "not valid TOML", 17
    ),
    # no image and plugins that need one (upstream rejects these too)
    "examples/llm-proxy-tests/tgi-integration.clnrm.toml": Rejection(
        _NO_IMAGE, 10, "services.tgi_service"
    ),
    "examples/multi-service-demo.clnrm.toml": Rejection(_NO_IMAGE, 13, "services.database"),
    "tests/surrealdb/basic-connection.clnrm.toml": Rejection(_NO_IMAGE, 14, "services.surrealdb"),
    "tests/surrealdb/data-persistence.clnrm.toml": Rejection(_NO_IMAGE, 17, "services.surrealdb"),
    "tests/surrealdb/namespace-database.clnrm.toml": Rejection(_NO_IMAGE, 14, "services.surrealdb"),
    "tests/surrealdb/toml-managed.clnrm.toml": Rejection(_NO_IMAGE, 17, "services.app_database"),
    # template uses [template.vars], which is not the template context (upstream fails too)
    "examples/templates/advanced-validators.clnrm.toml": Rejection(
        "'service_name' is not defined", 22
    ),
    # chaos drafts: run = [ {..}, ..], steps with run =, attrs.all = { x = { gte = 1 } }
    "tests/chaos/concurrent_chaos.clnrm.toml": Rejection(
        "expected a string", 60, "scenario[0].run"
    ),
    "tests/chaos/container_failures.clnrm.toml": Rejection(
        "expected a string", 217, "scenario[4].run"
    ),
    "tests/chaos/timeout_scenarios.clnrm.toml": Rejection(
        "required key 'command'", 139, "scenario[2].steps[0].command"
    ),
    # {% import %} of a macro file (upstream's built-in one is empty, so these fail there too)
    "tests/examples/advanced_macros_demo.clnrm.toml.tera": Rejection(
        "cannot include or import files", 7
    ),
    "tests/template/vars_rendering.clnrm.toml.tera": Rejection("cannot include or import files", 4),
    # the fuzz corpus's deliberately broken inputs
    "tests/fuzz/corpus/fuzz_toml_parser/edge_empty_name.toml": Rejection(
        "must not be blank", 2, "test.metadata.name"
    ),
    "tests/fuzz/corpus/fuzz_toml_parser/malformed_unclosed_bracket.toml": Rejection(
        "not valid TOML", 1
    ),
    # vars only, nothing to run
    "validation_tests/test_no_prefix.toml.tera": Rejection("nothing to run", None),
}


def _corpus() -> list[Path]:
    if not COMPAT_DIR.is_dir():
        return []
    return sorted(
        path
        for path in COMPAT_DIR.rglob("*")
        if path.is_file()
        and path.name.endswith((".toml", ".toml.tera"))
        and path.name != "cleanroom.toml"
    )


CORPUS = _corpus()
FIXTURES_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "compat"
FIXTURE_INVALID: dict[str, Rejection] = {
    "examples/no_image.clnrm.toml": Rejection(_NO_IMAGE, 6, "services.database"),
    "fuzz/empty_name.toml": Rejection("must not be blank", 2, "test.metadata.name"),
    "fuzz/malformed_unclosed_bracket.toml": Rejection("not valid TOML", 1),
    "validation_tests/vars_only.toml.tera": Rejection("nothing to run", None),
}
FIXTURES = sorted(
    path
    for path in FIXTURES_DIR.rglob("*")
    if path.name.endswith((".toml", ".toml.tera")) and path.name != "cleanroom.toml"
)
_CORPUS_MISSING = (
    f"upstream compatibility corpus not found at {COMPAT_DIR}: it exists beside CI's "
    "checkout, not in a clone (set CLNRM_COMPAT_DIR to run these)"
)
needs_corpus = pytest.mark.skipif(
    not CORPUS and not os.environ.get("CI"), reason=_CORPUS_MISSING
)


@pytest.fixture(autouse=True)
def stable_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Templates read the environment; pin the variables the corpus looks at."""
    for name in TEMPLATE_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", "/home/clnrm")


@needs_corpus
def test_corpus_is_present() -> None:
    """Under CI a missing corpus fails instead of silently skipping every corpus test."""
    assert CORPUS, _CORPUS_MISSING


@needs_corpus
@pytest.mark.parametrize("path", CORPUS, ids=lambda p: str(p.relative_to(COMPAT_DIR)))
def test_file_loads_or_is_rejected_with_a_located_error(path: Path) -> None:
    _check_file(path, COMPAT_DIR, EXPECTED_INVALID)


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: str(p.relative_to(FIXTURES_DIR)))
def test_fixture_loads_or_is_rejected_with_a_located_error(path: Path) -> None:
    _check_file(path, FIXTURES_DIR, FIXTURE_INVALID)


def _check_file(path: Path, root: Path, snapshot: dict[str, Rejection]) -> None:
    relative = path.relative_to(root).as_posix()
    expected = snapshot.get(relative)
    if expected is None:
        scenario = load_scenario(path)
        assert scenario.name
        assert scenario.steps or scenario.scenarios
        return
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    err = info.value
    text = str(err)
    assert text.startswith(str(path)), text
    assert expected.fragment in text
    assert err.line == expected.line, text
    if expected.line is not None:
        assert f"{path}:{expected.line}:" in text
    assert err.key_path == expected.key_path, text
    if expected.key_path is not None:
        assert f"[{expected.key_path}]" in text
    assert "internal error" not in text


@needs_corpus
def test_snapshot_names_only_files_that_exist() -> None:
    missing = [name for name in EXPECTED_INVALID if not (COMPAT_DIR / name).is_file()]
    assert not missing


def test_fixture_snapshot_names_only_files_that_exist() -> None:
    assert FIXTURES, f"no compat fixtures under {FIXTURES_DIR}"
    missing = [name for name in FIXTURE_INVALID if not (FIXTURES_DIR / name).is_file()]
    assert not missing


@needs_corpus
def test_strict_mode_never_crashes_on_the_corpus() -> None:
    _check_strict_mode(COMPAT_DIR)


def test_strict_mode_never_crashes_on_the_fixtures() -> None:
    _check_strict_mode(FIXTURES_DIR)


def _check_strict_mode(root: Path) -> None:
    outcomes = validate_paths([root], strict=True)
    assert outcomes
    assert all(o.ok or o.errors[0].file is not None for o in outcomes)
    assert all("internal error" not in str(e) for o in outcomes for e in o.errors)


@needs_corpus
def test_validate_walks_every_toml_file_and_the_project_file() -> None:
    _check_walk(COMPAT_DIR, CORPUS, EXPECTED_INVALID, "ubuntu:22.04")


def test_validate_walks_every_fixture_and_the_project_file() -> None:
    _check_walk(FIXTURES_DIR, FIXTURES, FIXTURE_INVALID, "debian:bookworm")


def _check_walk(root: Path, files: list[Path], snapshot: dict[str, Rejection],
                default_image: str) -> None:
    outcomes = validate_paths([root])
    names = {o.path for o in outcomes}
    assert names == set(files) | {root / "cleanroom.toml"}
    project = next(o for o in outcomes if o.kind == "project")
    assert project.status == "warnings"  # clnrm run does not read cleanroom.toml: it says so
    assert all("has no effect" in w.message for w in project.warnings)
    assert project.project is not None
    assert project.project.containers.default_image == default_image
    failed = sorted(o.path.relative_to(root).as_posix() for o in outcomes if not o.ok)
    assert failed == sorted(snapshot)


@needs_corpus
def test_discovery_finds_tests_but_not_the_project_file() -> None:
    _check_discovery(COMPAT_DIR, COMPAT_DIR / "tests/template/vars_rendering.clnrm.toml.tera")


def test_discovery_finds_fixture_tests_but_not_the_project_file() -> None:
    found = _check_discovery(FIXTURES_DIR,
                             FIXTURES_DIR / "tests/template/rendered.clnrm.toml.tera")
    # A plain ``.toml.tera`` (not ``.clnrm.toml.tera``) is validated but never run.
    runnable = {p for p in FIXTURES if not p.name.endswith(".toml.tera")
                or p.name.endswith(".clnrm.toml.tera")}
    assert set(found) == runnable


def _check_discovery(root: Path, template: Path) -> list[Path]:
    found = discover_test_files([root])
    assert root / "cleanroom.toml" not in found
    assert not any(p.suffix == ".md" for p in found)
    assert template in found
    return found

"""``clnrm generate``: tests learned from traces (issue 15).

Imports only typer at module level, like the command modules in
:mod:`clnrm.commands`, so ``clnrm --help`` does not pay for pydantic models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

FROM_CONFIDENCE = 0.75
"""--from's default threshold: a few runs cannot reach 0.95 (3 runs give 0.8 at most)."""


def _fail(exc: BaseException | str) -> NoReturn:
    from clnrm.cli_support import fail

    fail(exc)


def generate(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the tests into.")],
    traces: Annotated[Path | None, typer.Option(
        "--traces", help="Trace export to learn from: OTLP JSON, Jaeger JSON or spans.jsonl "
        "('-' reads stdin).")] = None,
    from_test: Annotated[Path | None, typer.Option(
        "--from", help="A test file to run (--runs times) and learn from; the generated "
        "tests keep its services and steps.")] = None,
    runs: Annotated[int, typer.Option(min=1, max=50, help="Runs of --from to record.")] = 3,
    backend: Annotated[str, typer.Option(help="Backend for --from: docker or local.")] = "docker",
    min_frequency: Annotated[float | None, typer.Option(
        "--min-pattern-frequency", min=0.0001, max=1.0,
        help="Drop patterns seen in fewer than this share of a request type's traces "
        "[default: 0.05].")] = None,
    confidence: Annotated[float | None, typer.Option(
        "--confidence-threshold", min=0.0, max=1.0,
        help="Assert only patterns at least this confident [default: 0.95 for --traces, "
        "0.75 for --from (a few runs)].")] = None,
    include_errors: Annotated[bool | None, typer.Option(
        "--include-error-scenarios/--no-error-scenarios",
        help="Also assert that frequent error paths keep appearing [default: no].")] = None,
    counts: Annotated[bool, typer.Option(
        "--counts/--no-counts",
        help="Assert span totals (they hold for an export with the same requests).")] = True,
    seed: Annotated[int, typer.Option(help="Seed of the noise detection's split.")] = 0,
) -> None:
    """Write one test per request type, learned from traces (exit 0), or exit 2 on bad input.

    Each assertion carries its support and confidence.  Judge an export with
    `clnrm run OUT --traces EXPORT`; tests generated --from a file run as they are.
    With --from, the file's [intelligence.generation] keys are used unless a flag is given.
    """
    if (traces is None) == (from_test is None):
        _fail("give exactly one of --traces FILE or --from TEST.clnrm.toml")
    flags = {"min_pattern_frequency": min_frequency, "confidence_threshold": confidence,
             "include_error_scenarios": include_errors}
    try:
        result = _generate(out, traces, from_test, runs=runs, backend=backend,
                           flags={k: v for k, v in flags.items() if v is not None},
                           options={"counts": counts, "seed": seed})
    except Exception as exc:
        _fail(exc)
    for line in result:
        typer.echo(line)


def _generate(out: Path, traces: Path | None, from_test: Path | None, *, runs: int,
              backend: str, flags: dict[str, Any], options: dict[str, Any]) -> list[str]:
    """Defaults, then (``--from``) the file's generation keys, then the flags given."""
    from clnrm.intelligence.generate import (
        generate_tests,
        record_scenario,
        scenario_body,
        write_tests,
    )
    from clnrm.intelligence.patterns import MiningOptions

    if from_test is not None:
        from clnrm.scenario.loader import load_scenario, read_text

        scenario = load_scenario(from_test)  # a bad file fails here, before anything runs
        steps = scenario_body(read_text(from_test))
        settings = {"confidence_threshold": FROM_CONFIDENCE}
        if scenario.intelligence is not None:
            settings |= scenario.intelligence.mining_settings()
        spans = record_scenario(from_test, runs=runs, backend=backend)
        # each run is judged alone: confidences, counts and envelopes are for one run
        generation = generate_tests(spans, MiningOptions(**options, **(settings | flags),
                                                         export_share=1 / runs),
                                    steps_toml=steps)
    else:
        assert traces is not None
        generation = generate_tests(traces, MiningOptions(**options, **flags))
    paths = write_tests(generation, out)
    mined = generation.mined
    lines = [f"learned from {mined.traces} traces ({mined.spans} spans), "
             f"{len(mined.request_types)} request types"]
    for path, test in zip(paths, generation.tests, strict=True):
        lines.append(f"wrote {path}: {test.assertions} assertions "
                     f"({test.request_type!r})")
    return lines

"""``clnrm heal list|stats|propose``: the remediation catalog, what was learned, and
proposed fixes to a test file (written only with ``--apply``).

Delegated from :mod:`clnrm.cli`, so nothing here is imported by ``clnrm --help``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from clnrm.cli_support import FormatOpt, OutputFormat, console, fail, load_all

heal_app = typer.Typer(help="Self-healing: the remediation catalog, what the healer learned, "
                            "and proposed fixes to test files.", no_args_is_help=True)

MemoryOpt = Annotated[str | None, typer.Option(
    "--memory", help="Shared memory store (folder or http://host:port) "
                     "[default: $CLNRM_MEMORY, else ~/.clnrm/memory].")]


@heal_app.command("list")
def heal_list(fmt: FormatOpt = OutputFormat.human) -> None:
    """Show every remediation: name, the failure classes it addresses, its parameters."""
    from clnrm.errors import ClnrmError
    from clnrm.output import emit, expect_json

    expect_json("heal list" if fmt is OutputFormat.json else None)
    try:
        from clnrm.healing.remedies import remediation_types

        entries = [cls.describe() for cls in remediation_types().values()]
    except ClnrmError as exc:
        fail(exc)
    if fmt is OutputFormat.json:
        emit("heal list", entries)
        return
    out = console()
    for e in entries:
        kind = " (proposes a patch)" if e["proposal"] else ""
        out.print(f"[bold]{e['name']}[/]{kind}: {e['summary']}", soft_wrap=True)
        out.print(f"    classes: {', '.join(e['classes'])}", soft_wrap=True, markup=False)
        if e["parameters"]:
            params = ", ".join(f"{k}={v}" for k, v in e["parameters"].items())
            levels = (f" (level 1; {e['levels']} levels, each doubling the change)"
                      if e.get("levels", 1) > 1 else "")
            out.print(f"    parameters: {params}{levels}", soft_wrap=True, markup=False)


@heal_app.command("stats")
def heal_stats(memory: MemoryOpt = None, fmt: FormatOpt = OutputFormat.human) -> None:
    """Per failure class: remediations tried, successes, and the learned preference."""
    from clnrm.errors import ClnrmError
    from clnrm.output import emit, expect_json

    expect_json("heal stats" if fmt is OutputFormat.json else None)
    try:
        from clnrm.healing.bandit import RemediationLedger
        from clnrm.memory import open_memory

        with open_memory(memory) as store:
            stats = RemediationLedger(store).bandit().stats()
    except ClnrmError as exc:
        fail(exc)
    rows = [{"failure_class": cls, "remediation": name, **figures}
            for cls, arms in stats.items() for name, figures in arms.items()]
    if fmt is OutputFormat.json:
        emit("heal stats", rows)
        return
    out = console()
    if not rows:
        out.print("nothing learned yet: run failing tests with clnrm run --heal")
    for cls, arms in stats.items():
        out.print(f"[bold]{cls}[/]", soft_wrap=True)
        ranked = sorted(arms.items(), key=lambda kv: -kv[1]["preference"])
        for name, f in ranked:
            out.print(f"    {name}: {f['successes']:g}/{f['tries']:g} healed, preference "
                      f"{f['preference']:.2f}, mean cost {f['mean_cost_s']:.1f} s",
                      soft_wrap=True, markup=False)


@heal_app.command("propose")
def heal_propose(
    path: Annotated[Path, typer.Argument(help="A test file.")],
    apply: Annotated[bool, typer.Option("--apply", help="Write the patch to the file.")]
    = False,
    fmt: FormatOpt = OutputFormat.human,
    default_image: Annotated[str, typer.Option(
        help="Image for steps that name no service.")] = "clnrm/busybox:latest",
) -> None:
    """Run the file once; for a wrong port or host in it, print a patch (exit 1 when
    there is something to fix, 0 when the test passed or no patch fits)."""
    from clnrm.errors import ClnrmError
    from clnrm.output import emit, expect_json

    expect_json("heal propose" if fmt is OutputFormat.json else None)
    try:
        from clnrm.api import run_options
        from clnrm.healing.classify import classify
        from clnrm.healing.heal import _not_healable
        from clnrm.healing.model import FailureClass, HealingReport
        from clnrm.healing.runs import scenario_runner

        scenarios = load_all([path], strict=False)
        if len(scenarios) != 1:
            raise ClnrmError(f"{path}: propose takes one test file")
        sc = scenarios[0]
        test = scenario_runner(run_options(default_image=default_image))(sc)
        payload: dict[str, Any] = {"file": str(path), "outcome": test.outcome.value,
                                   "failure_class": None, "patch": None, "applied": False,
                                   "evidence": ""}
        if test.outcome.value != "passed":
            diag = classify(test, sc)
            payload["failure_class"] = diag.failure_class.value
            payload["evidence"] = diag.evidence_text
            if diag.failure_class is FailureClass.port_or_config_mismatch:
                report = HealingReport(failure_class=diag.failure_class.value, healed=False)
                patch = (_not_healable(sc, test, diag, report, _policy(sc)).healing
                         or report).patch
                payload["patch"] = patch
                if apply and patch and diag.port is not None:
                    _apply(path, patch)
                    payload["applied"] = True
    except ClnrmError as exc:
        fail(exc)
    if fmt is OutputFormat.json:
        emit("heal propose", payload)
    else:
        out = console()
        out.print(f"{path}: {payload['outcome']}"
                  + (f" [{payload['failure_class']}]" if payload["failure_class"] else ""),
                  soft_wrap=True, markup=False)
        if payload["evidence"]:
            out.print(f"    evidence: {payload['evidence']}", soft_wrap=True, markup=False)
        if payload["patch"]:
            out.print(payload["patch"], soft_wrap=True, markup=False)
            out.print("applied" if payload["applied"] else "not applied: pass --apply")
        elif payload["failure_class"]:
            out.print("no patch fits this failure (clnrm run --heal remediates the "
                      "environment)")
    raise typer.Exit(1 if payload["patch"] and not payload["applied"] else 0)


def _policy(sc: Any) -> Any:
    from clnrm.healing.heal import HealingPolicy

    return HealingPolicy.of(sc)


def _apply(path: Path, patch: str) -> None:
    """Apply a unified diff made by :func:`clnrm.healing.remediations.port_patch` (one hunk set,
    whole-line replacements) to ``path``."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    removed = [ln[1:] for ln in patch.splitlines(keepends=True)
               if ln.startswith("-") and not ln.startswith("---")]
    added = [ln[1:] for ln in patch.splitlines(keepends=True)
             if ln.startswith("+") and not ln.startswith("+++")]
    for old, new in zip(removed, added, strict=False):
        index = lines.index(old)
        lines[index] = new
    path.write_text("".join(lines), encoding="utf-8")

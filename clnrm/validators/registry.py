"""The built-in validators, declared once, and the call that runs them all.

:data:`BUILTIN_VALIDATORS` is the only list of validators in clnrm; the
runner, ``clnrm analyze`` and the benchmark all go through :func:`validate`.
A third-party validator is any object meeting
:class:`~clnrm.validators.base.SpanValidator`, either passed in ``validators=``
or returned by an installed plugin's ``clnrm_validators`` hook
(:func:`installed_validators`: the built-ins, then every plugin's).
``[[expect.performance]]`` and ``[[expect.resilience]]`` are judged by the
performance and chaos layers, not here.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Final, NamedTuple

from clnrm.otel.span import Span
from clnrm.results import ValidationResult, ValidationStatus
from clnrm.scenario.expect import Expect
from clnrm.validators.base import Declarations, Source, SpanValidator
from clnrm.validators.counts import CountsValidator
from clnrm.validators.graph import GraphValidator
from clnrm.validators.hermeticity import HermeticityValidator
from clnrm.validators.index import SpanIndex
from clnrm.validators.order import OrderValidator
from clnrm.validators.span import SpanShapeValidator
from clnrm.validators.status import StatusValidator
from clnrm.validators.window import WindowValidator

BUILTIN_VALIDATORS: Final[tuple[SpanValidator, ...]] = (
    SpanShapeValidator(),
    GraphValidator(),
    CountsValidator(),
    WindowValidator(),
    OrderValidator(),
    StatusValidator(),
    HermeticityValidator(),
)
"""Every ``[expect.*]`` table clnrm judges from spans, in the order results are reported
when the source file is unknown."""


def _not_a_validator(item: object) -> tuple[str, str] | None:
    if isinstance(item, SpanValidator):
        return None
    return ("which is not a span validator",
            "return instances with a name and validate(expect, index, where) "
            "(clnrm.validators.SpanValidator)")


@lru_cache(maxsize=1)
def installed_validators() -> tuple[SpanValidator, ...]:
    """The built-in validators, then those of every installed plugin (``clnrm_validators``
    hook); a name claimed twice is an error, not last-wins."""
    from clnrm import plugins

    found: dict[str, SpanValidator] = plugins.collect(
        "clnrm_validators", "validator", lambda v: v.name, pm=plugins.installed_plugins(),
        check=_not_a_validator, builtins=BUILTIN_VALIDATORS)
    return tuple(found.values())


class ValidationTally(NamedTuple):
    """How many results of each status; ``ok`` when nothing failed or errored."""

    passed: int
    failed: int
    errors: int
    skipped: int

    @property
    def ok(self) -> bool:
        return not self.failed and not self.errors


def validate(
    expect: Expect,
    spans: Sequence[Span] | SpanIndex,
    *,
    source: Source = None,
    validators: Sequence[SpanValidator] | None = None,
) -> list[ValidationResult]:
    """Judge ``spans`` against every expectation of ``expect``.

    One result per expectation entry or rule.  With ``source`` (the TOML
    file), ``declared_at`` is ``file:line [key]`` and results come in the
    order they are written in the file; without it, in validator order and
    declaration order within each table.  Never raises for a failed
    expectation; a validator that raises yields one ERROR result instead.
    Pass a prebuilt :class:`SpanIndex` to judge several ``Expect`` objects
    against the same spans without re-indexing.  ``validators`` defaults to
    :func:`installed_validators`.
    """
    if validators is None:
        validators = installed_validators()
    index = spans if isinstance(spans, SpanIndex) else SpanIndex(spans)
    where = Declarations(source)
    results: list[ValidationResult] = []
    for validator in validators:
        try:
            results += validator.validate(expect, index, where)
        except Exception as exc:  # a broken validator must not hide the others' verdicts
            results.append(ValidationResult(
                validator=validator.name,
                expectation=f"{validator.name} validator",
                status=ValidationStatus.ERROR,
                message=f"{validator.name} validator raised {type(exc).__name__}: {exc}",
                expected="the expectations to be evaluated",
                seen=f"{type(exc).__name__}: {exc}",
                declared_at=where.at(("expect", validator.name)),
            ))
    if where.file is not None:
        results.sort(key=lambda r: where.line_for(r.declared_at))
    return results


def summarize(results: Sequence[ValidationResult]) -> ValidationTally:
    """Counts by status, e.g. for a one-line report footer or an exit code."""
    counts = {status: 0 for status in ValidationStatus}
    for result in results:
        counts[result.status] += 1
    return ValidationTally(
        passed=counts[ValidationStatus.PASS],
        failed=counts[ValidationStatus.FAIL],
        errors=counts[ValidationStatus.ERROR],
        skipped=counts[ValidationStatus.SKIP],
    )

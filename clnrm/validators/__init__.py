"""Judge the spans of a run against the ``[expect.*]`` tables of its test file.

    validate(expect, spans, *, source=None, validators=installed_validators())
        -> list[ValidationResult]            one per expectation entry or rule
    summarize(results) -> ValidationTally    (passed, failed, errors, skipped)
    SpanIndex(spans)                          built once, shared by every validator

Semantics follow upstream clnrm (``shared/UPSTREAM.md`` section c); where
upstream was clearly wrong the module of that validator says what changed
and why.
"""

from __future__ import annotations

from clnrm.validators.base import Declarations, Source, SpanValidator
from clnrm.validators.counts import CountsValidator
from clnrm.validators.graph import GraphValidator
from clnrm.validators.hermeticity import EXTERNAL_SERVICE_KEYS, HermeticityValidator
from clnrm.validators.index import SpanIndex
from clnrm.validators.order import OrderValidator
from clnrm.validators.registry import (
    BUILTIN_VALIDATORS,
    ValidationTally,
    installed_validators,
    summarize,
    validate,
)
from clnrm.validators.span import SpanShapeValidator
from clnrm.validators.status import StatusValidator
from clnrm.validators.window import WindowValidator

__all__ = [
    "BUILTIN_VALIDATORS",
    "CountsValidator",
    "Declarations",
    "EXTERNAL_SERVICE_KEYS",
    "GraphValidator",
    "HermeticityValidator",
    "OrderValidator",
    "Source",
    "SpanIndex",
    "SpanShapeValidator",
    "SpanValidator",
    "StatusValidator",
    "ValidationTally",
    "WindowValidator",
    "installed_validators",
    "summarize",
    "validate",
]

"""The performance layer's judgements as typed models: :class:`Verdict` and :class:`ChangePoint`.

Why a module of their own: :class:`clnrm.perf.result.PerformanceResult` carries them and
:mod:`clnrm.results` imports that, so loading or rendering a result must not import
numpy, which the engines that produce them (:mod:`clnrm.perf.regression`,
:mod:`clnrm.perf.changepoint`) need.  Reports read these fields by name (typed), not
back out of dicts with ``.get``; the JSON they dump to is the same as the engines'
``model_dump()`` always was.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, TypeAlias

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer

Direction: TypeAlias = Literal["higher_is_worse", "lower_is_worse"]
"""Which way a metric gets worse: latencies grow, throughputs shrink."""


def _null_is_nan(value: object) -> object:
    return math.nan if value is None else value


def _finite_or_null(value: float) -> float | None:
    return value if math.isfinite(value) else None


Figure = Annotated[float, BeforeValidator(_null_is_nan),
                   PlainSerializer(_finite_or_null, return_type=float | None, when_used="json")]
"""A float as the dicts these models replaced had it in JSON: a non-finite figure is
``null`` (pydantic writes ``inf`` for a typed float in ``model_dump(mode="json")``, which
``json.dumps`` turns into invalid JSON), and ``null`` loads back as NaN."""


class Verdict(BaseModel):
    """The judgement of one metric; plain data that reports render as they are.

    ``effect_pct`` is signed (+ = the statistic grew); ``shift_pct`` is the change of
    the robust location the test is about.  ``p_value`` is one-sided towards
    *worse*, ``p_adjusted`` corrected across the metrics of one ``compare`` call.
    ``regressed`` = significant, beyond the floor and beyond the allowed threshold;
    ``fails`` = regressed and ``fail_on_regression``.
    """

    model_config = ConfigDict(frozen=True)

    metric: str
    direction: Direction
    regressed: bool
    fails: bool
    significant: bool
    effect_pct: Figure
    ci_low_pct: Figure
    ci_high_pct: Figure
    shift_pct: Figure
    p_value: Figure
    p_adjusted: Figure
    confidence: Figure
    statistic: str
    test: str
    n_baseline: int
    n_current: int
    runs_baseline: int
    runs_current: int
    dropped: int = 0
    allowed_pct: float | None = None
    message: str


class ChangePoint(BaseModel):
    """A shift in a history: ``index`` is the first run after it.

    ``before_mean`` / ``after_mean`` are the means of the segments on either side
    (bounded by the neighbouring change points); ``change_pct`` is the relative step.
    """

    model_config = ConfigDict(frozen=True)

    index: int
    run_id: str | None
    before_mean: Figure
    after_mean: Figure
    change_pct: Figure
    p_value: Figure

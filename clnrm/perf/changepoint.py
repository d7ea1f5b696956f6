"""Where did a history of runs shift?  E-divisive means with a permutation test.

This is the method of Matteson & James (2014, "A nonparametric approach for multiple
change point analysis of multivariate data") that Hunter/Apache Otava and MongoDB's
CI use on per-run performance series: split the series where the energy distance
between the two sides is largest, keep the split only if a permutation test says
such a split is unlikely in a shuffled series, and repeat inside the pieces.  It
assumes nothing about the noise's distribution, which matters for latencies.

Why not the libraries: Apache Otava 0.8 pins ``numpy==2.2.*`` and ``scipy<1.17`` and
brings BigQuery, Slack and Postgres clients; MongoDB's ``signal-processing-algorithms``
needs ``numpy<2``; ``ruptures`` segments but has no significance test.  The whole
algorithm is ~100 lines of numpy here, checked against Otava in ``bench/regression.py``.

A segment needs at least ``min_size`` runs (2 by default), so one slow run is an
outlier, not a change point; a shift is found once it has lasted two runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise
from typing import Final

import numpy as np

# The model lives in a numpy-free module (a result carries it); imported here by name.
from clnrm.perf.verdict import ChangePoint as ChangePoint

PERMUTATION_CHUNK: Final = 100
"""Permutations are drawn in chunks; testing stops once significance is out of reach."""
MAX_BATCH_CELLS: Final = 4_000_000
"""Upper bound on permutations x length^2 held in memory at once."""


def change_points(
    history: Sequence[float],
    *,
    run_ids: Sequence[str] | None = None,
    alpha: float = 0.01,
    seed: int = 0,
    min_size: int = 2,
    permutations: int | None = None,
    free_end: bool = False,
) -> list[ChangePoint]:
    """All significant change points of ``history``, sorted by index.

    Non-finite values are skipped (indices still refer to ``history``).  Each
    accepted split has a permutation p-value <= ``alpha``; the default number of
    permutations (``5 / alpha``, at least 199) lets a p-value that small be seen.
    Deterministic for a given ``seed``.

    ``free_end``: the split's right segment may end before the piece does (Matteson &
    James's e-divisive maximises over that end, kappa, too, as Apache Otava does), so a
    bump that comes and goes in the middle of a piece is found; without it the right
    segment runs to the piece's end (a step that lasts, what ``clnrm run``'s history
    check looks for; ``tests/unit/test_perf_changepoint_otava.py`` checks both against
    Otava).
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if min_size < 1:
        raise ValueError(f"min_size must be >= 1, got {min_size}")
    if run_ids is not None and len(run_ids) != len(history):
        raise ValueError(f"run_ids has {len(run_ids)} entries for {len(history)} runs")
    raw = np.asarray(history, dtype=float)
    keep = np.flatnonzero(np.isfinite(raw))
    series = raw[keep]
    n_perm = permutations or max(199, math.ceil(5 / alpha) - 1)
    rng = np.random.default_rng(seed)
    cuts: list[tuple[int, float]] = []  # (position in `series`, p-value)
    while True:
        bounds = [0, *sorted(c for c, _ in cuts), len(series)]
        segments = [(a, b) for a, b in pairwise(bounds)
                    if b - a >= 2 * min_size]
        if not segments:
            break
        best = max(((_best_split(series[a:b][None, :], min_size, free_end), a, b)
                    for a, b in segments), key=lambda item: item[0][1][0])
        (tau, q_obs), a, _ = best
        p = _permutation_p(series, segments, float(q_obs[0]), min_size, n_perm, alpha, rng,
                           free_end)
        if p > alpha:
            break
        cuts.append((a + int(tau[0]), p))
    return _describe(keep, series, sorted(cuts), run_ids)


def _best_split(batch: np.ndarray, min_size: int,
                free_end: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """For each row of ``batch`` (R x N), the split index and its scaled energy distance.

    Q(tau) = m n / (m + n) * (2 E|X-Y| - E|X-X'| - E|Y-Y'|) with X = z[:tau], Y =
    z[tau:], every pair sum read off a 2-D prefix sum of |z_i - z_j|.
    """
    r, n = batch.shape
    dist = np.abs(batch[:, :, None] - batch[:, None, :])
    prefix = np.zeros((r, n + 1, n + 1))
    prefix[:, 1:, 1:] = dist.cumsum(axis=1).cumsum(axis=2)
    if free_end:
        return _best_split_free_end(prefix, n, min_size)
    taus = np.arange(min_size, n - min_size + 1)
    m, k = taus.astype(float), (n - taus).astype(float)
    xx = prefix[:, taus, taus]
    xy = prefix[:, taus, n] - xx
    yy = prefix[:, n, n][:, None] - 2 * prefix[:, taus, n] + xx
    with np.errstate(invalid="ignore", divide="ignore"):
        within_x = np.where(m > 1, xx / (m * (m - 1)), 0.0)
        within_y = np.where(k > 1, yy / (k * (k - 1)), 0.0)
    q = m * k / (m + k) * (2 * xy / (m * k) - within_x - within_y)
    best = np.argmax(q, axis=1)
    return taus[best], q[np.arange(r), best]


def _best_split_free_end(prefix: np.ndarray, n: int,
                         min_size: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_best_split` with Y = z[tau:kappa] for every kappa >= tau + min_size."""
    r = prefix.shape[0]
    taus, kappas = np.meshgrid(np.arange(min_size, n - min_size + 1),
                               np.arange(2 * min_size, n + 1), indexing="ij")
    ok = kappas - taus >= min_size
    t, k_end = taus[ok], kappas[ok]
    m, k = t.astype(float), (k_end - t).astype(float)
    xx = prefix[:, t, t]
    xy = prefix[:, t, k_end] - xx
    yy = prefix[:, k_end, k_end] - 2 * prefix[:, t, k_end] + xx
    with np.errstate(invalid="ignore", divide="ignore"):
        within_x = np.where(m > 1, xx / (m * (m - 1)), 0.0)
        within_y = np.where(k > 1, yy / (k * (k - 1)), 0.0)
    q = m * k / (m + k) * (2 * xy / (m * k) - within_x - within_y)
    best = np.argmax(q, axis=1)
    return t[best], q[np.arange(r), best]


def _permutation_p(series: np.ndarray, segments: list[tuple[int, int]], q_obs: float,
                   min_size: int, n_perm: int, alpha: float,
                   rng: np.random.Generator, free_end: bool = False) -> float:
    """Share of within-segment shuffles whose best split is at least as strong.

    Stops early (Besag & Clifford) once more exceedances were seen than a p-value
    <= alpha allows: the test is then already lost and the exact p does not matter.
    """
    longest = max(b - a for a, b in segments)
    chunk = max(1, min(PERMUTATION_CHUNK, MAX_BATCH_CELLS // (longest * longest)))
    limit = math.floor(alpha * (n_perm + 1))  # p <= alpha needs at most limit - 1 hits
    hits = done = 0
    while done < n_perm:
        size = min(chunk, n_perm - done)
        q_max = np.full(size, -np.inf)
        for a, b in segments:
            shuffled = rng.permuted(np.tile(series[a:b], (size, 1)), axis=1)
            q_max = np.maximum(q_max, _best_split(shuffled, min_size, free_end)[1])
        hits += int(np.sum(q_max >= q_obs - 1e-12 * max(1.0, abs(q_obs))))
        done += size
        if hits >= limit and done < n_perm:
            return (hits + 1) / (done + 1)
    return (hits + 1) / (n_perm + 1)


def _describe(keep: np.ndarray, series: np.ndarray,
              cuts: list[tuple[int, float]], run_ids: Sequence[str] | None) -> list[ChangePoint]:
    bounds = [0, *(c for c, _ in cuts), len(series)]
    out = []
    for i, (cut, p) in enumerate(cuts):
        before = float(series[bounds[i]:cut].mean())
        after = float(series[cut:bounds[i + 2]].mean())
        index = int(keep[cut])
        out.append(ChangePoint(
            index=index, run_id=run_ids[index] if run_ids is not None else None,
            before_mean=before, after_mean=after,
            change_pct=100.0 * (after - before) / abs(before) if before else 0.0,
            p_value=p,
        ))
    return out

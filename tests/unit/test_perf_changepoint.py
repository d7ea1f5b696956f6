"""Change points in a history of runs: real steps found where they are, noise left alone."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from clnrm.perf.changepoint import change_points


def noisy(seed: int, levels: list[tuple[int, float]], sd: float = 0.03) -> list[float]:
    """Per-run medians: each (runs, level) piece with multiplicative noise of ``sd``."""
    rng = np.random.default_rng(seed)
    return [level * math.exp(rng.normal(0, sd)) for count, level in levels
            for _ in range(count)]


def test_step_is_found_at_the_first_slow_run() -> None:
    history = noisy(1, [(30, 40.0), (6, 48.0)])
    ids = [f"run-{i}" for i in range(len(history))]
    [cp] = change_points(history, run_ids=ids)
    assert cp.index == 30 and cp.run_id == "run-30"
    assert cp.change_pct == pytest.approx(20, abs=4)
    assert cp.before_mean == pytest.approx(40, rel=0.03)
    assert cp.p_value <= 0.01


def test_flat_noisy_histories_have_no_change_point() -> None:
    found = {seed: change_points(noisy(seed, [(40, 40.0)], sd=0.05)) for seed in range(25)}
    assert {seed: cps for seed, cps in found.items() if cps} == {}


def test_heavy_tailed_noise_and_one_slow_run_are_not_change_points() -> None:
    rng = np.random.default_rng(7)
    history = list(40 * rng.lognormal(0, 0.05, 40))
    history[20] *= 1.5  # a noisy neighbour, once
    history[-1] *= 1.5  # and again in the newest run: not a shift until it lasts
    assert change_points(history) == []


def test_two_steps_are_both_found_with_their_directions() -> None:
    cps = change_points(noisy(2, [(20, 40.0), (20, 50.0), (20, 42.0)], sd=0.02))
    assert [c.index for c in cps] == [20, 40]
    assert cps[0].change_pct > 0 > cps[1].change_pct
    assert cps[0].after_mean == pytest.approx(cps[1].before_mean)


def test_non_finite_runs_are_skipped_but_indices_kept() -> None:
    history = noisy(3, [(20, 40.0), (10, 60.0)])
    history[5] = math.nan
    history[25] = math.inf
    [cp] = change_points(history)
    assert cp.index == 20 and math.isfinite(cp.after_mean)


def test_same_seed_same_answer() -> None:
    history = noisy(4, [(25, 40.0), (3, 44.0)])
    assert change_points(history, seed=5) == change_points(history, seed=5)


@pytest.mark.parametrize("history", [[], [1.0], [1.0, 2.0, 3.0], [5.0] * 30])
def test_short_or_constant_histories_have_no_change_point(history: list[float]) -> None:
    assert change_points(history) == []


def test_bad_arguments_are_caller_errors() -> None:
    with pytest.raises(ValueError, match="alpha"):
        change_points([1.0] * 10, alpha=1.5)
    with pytest.raises(ValueError, match="run_ids"):
        change_points([1.0] * 10, run_ids=["a"])
    with pytest.raises(ValueError, match="min_size"):
        change_points([1.0] * 10, min_size=0)


# -- against a reference: e-divisive written out from its definition --------------------


def reference_q(z: list[float], tau: int) -> float:
    """Matteson & James (2014), eq. 5 with alpha = 1, summed pair by pair (no prefix sums):
    Q(X, Y) = m n / (m + n) * (2/(mn) sum|x-y| - 1/C(m,2) sum_{i<k}|x_i-x_k|
    - 1/C(n,2) sum_{j<k}|y_j-y_k|) with X = z[:tau], Y = z[tau:]."""
    x, y = z[:tau], z[tau:]
    m, n = len(x), len(y)
    between = sum(abs(a - b) for a in x for b in y) * 2 / (m * n)
    within_x = (sum(abs(x[i] - x[k]) for i in range(m) for k in range(i + 1, m))
                / (m * (m - 1) / 2)) if m > 1 else 0.0
    within_y = (sum(abs(y[j] - y[k]) for j in range(n) for k in range(j + 1, n))
                / (n * (n - 1) / 2)) if n > 1 else 0.0
    return m * n / (m + n) * (between - within_x - within_y)


def reference_change_points(z: list[float], *, alpha: float, min_size: int, seed: int,
                            permutations: int) -> list[int]:
    """Hierarchical e-divisive with a permutation test, written plainly: the best split
    of each piece by :func:`reference_q`, kept while the permutation p <= alpha."""
    rng = np.random.default_rng(seed)
    cuts: list[int] = []

    def best(lo: int, hi: int) -> tuple[float, int]:
        piece = z[lo:hi]
        return max((reference_q(piece, t), lo + t)
                   for t in range(min_size, len(piece) - min_size + 1))

    while True:
        bounds = [0, *sorted(cuts), len(z)]
        pieces = [(a, b) for a, b in itertools.pairwise(bounds)
                  if b - a >= 2 * min_size]
        if not pieces:
            return sorted(cuts)
        q, at = max(best(a, b) for a, b in pieces)
        hits = 0
        for _ in range(permutations):
            shuffled = list(z)
            for a, b in pieces:
                shuffled[a:b] = list(rng.permutation(shuffled[a:b]))
            q_perm = max(max(reference_q(shuffled[a:b], t)
                             for t in range(min_size, b - a - min_size + 1)) for a, b in pieces)
            hits += q_perm >= q - 1e-12 * max(1.0, abs(q))
        if (hits + 1) / (permutations + 1) > alpha:
            return sorted(cuts)
        cuts.append(at)


@pytest.mark.parametrize("seed", range(6))
def test_the_split_statistic_is_the_energy_distance_of_the_definition(seed: int) -> None:
    from clnrm.perf.changepoint import _best_split

    rng = np.random.default_rng(seed)
    z = list(rng.lognormal(0, 0.3, 17) * np.r_[np.ones(9), np.full(8, 1.0 + 0.1 * seed)])
    for min_size in (1, 2, 3):
        tau, q = _best_split(np.asarray(z)[None, :], min_size)
        expected = max((reference_q(z, t), t) for t in range(min_size, len(z) - min_size + 1))
        assert q[0] == pytest.approx(expected[0], rel=1e-9)
        assert int(tau[0]) == expected[1]


@pytest.mark.parametrize(("seed", "levels"), [
    (11, [(12, 40.0), (8, 46.0)]),
    (12, [(10, 40.0), (8, 52.0), (8, 41.0)]),
    (13, [(20, 40.0)]),
    (14, [(15, 40.0), (3, 44.0)]),
])
def test_change_points_agree_with_the_plain_reference(seed: int,
                                                      levels: list[tuple[int, float]]) -> None:
    """Same series, same alpha: the same change points as the plainly written algorithm
    (different shuffles, so only decisions far from the threshold are compared)."""
    history = noisy(seed, levels, sd=0.02)
    ours = [c.index for c in change_points(history, alpha=0.01, seed=1, permutations=199)]
    ref = reference_change_points(history, alpha=0.01, min_size=2, seed=2, permutations=199)
    assert ours == ref

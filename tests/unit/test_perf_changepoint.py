"""Change points in a history of runs: real steps found where they are, noise left alone."""

from __future__ import annotations

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

"""``clnrm.perf.changepoint`` against the reference itself: Apache Otava's e-divisive.

Otava pins numpy 2.2 / scipy 1.16, so it lives in its own venv (``.clnrm/bench/
otava-venv``, built offline from the wheels ``make bench-tools`` downloads; the same one
``bench/regression.py`` uses); when it is missing the test downloads Otava's wheels from
the package index (as ``make bench-tools`` does) and builds it, and is skipped, with the
reason, only where that cannot be done outside CI (under ``CI`` it fails instead).
Both sides run e-divisive with a permutation test at alpha 0.01 on the same series;
shuffles differ, so the series are chosen with decisions far from the threshold.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from clnrm.perf.changepoint import change_points


def series(seed: int, levels: list[tuple[int, float]], sd: float = 0.02) -> list[float]:
    rng = np.random.default_rng(seed)
    return [level * math.exp(rng.normal(0, sd)) for count, level in levels
            for _ in range(count)]


CASES = [
    series(1, [(30, 20.0)]),
    series(2, [(25, 20.0)], sd=0.05),
    series(3, [(20, 20.0), (10, 23.0)]),
    series(4, [(12, 20.0), (12, 26.0), (12, 20.5)]),
    series(5, [(30, 20.0), (5, 24.0)]),
    series(6, [(15, 40.0), (15, 30.0)], sd=0.03),
]


@lru_cache(maxsize=1)
def _bench() -> ModuleType:
    """bench/regression.py: its Otava venv builder and its e-divisive script are the
    reference this test checks, so the test runs the bench's own, not a copy."""
    path = Path(__file__).resolve().parents[2] / "bench" / "regression.py"
    spec = importlib.util.spec_from_file_location("clnrm_bench_regression", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def otava_python() -> Path:
    """Otava's venv, built as the bench builds it (wheels fetched first if missing)."""
    bench = _bench()
    python, why = bench.ensure_otava()
    if python is None:
        got = subprocess.run([sys.executable, "-m", "pip", "download", "-q",
                              f"apache-otava=={bench.OTAVA_VERSION}", "-d", str(bench.WHEELS)],
                             capture_output=True, text=True, timeout=900, check=False)
        python, why = bench.ensure_otava()
        why = why or (got.stderr.strip().splitlines() or ["?"])[-1]
    if python is None:
        if os.environ.get("CI"):
            pytest.fail(f"Otava's reference could not be built in CI: {why}")
        pytest.skip(f"Otava's reference could not be built here: {why}")
    return Path(python)


def test_change_points_are_otavas_on_the_same_series(otava_python: Path) -> None:
    payload = "".join(json.dumps({"series": s, "alpha": 0.01, "permutations": 199,
                                  "seed": k}) + "\n" for k, s in enumerate(CASES))
    done = subprocess.run([str(otava_python), "-c", _bench().OTAVA_EDIVISIVE], input=payload,
                          text=True, capture_output=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    theirs = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(theirs) == len(CASES)
    assert theirs[0] == [] and theirs[2] and len(theirs[3]) == 2  # the cases are what they say
    for free_end in (True, False):
        ours = [[c.index for c in change_points(s, alpha=0.01, seed=k, min_size=1,
                                                permutations=199, free_end=free_end)]
                for k, s in enumerate(CASES)]
        for k, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            if not free_end and k == 3:
                # a bump that comes and goes: with the right segment running to the end
                # of the piece (the history check's step that lasts) no split explains it
                assert a == [], a
                continue
            assert len(a) == len(b) and all(abs(x - y) <= 1
                                            for x, y in zip(a, b, strict=True)), \
                f"series {k} (free_end={free_end}): ours {a}, Otava's {b}"

"""The demo app's exact-delay knobs (``FIXED_DELAY_MS``, ``DB_READ_DELAY_MS``).

``bench/regression_e2e.py`` knows the true size of a slowdown only because these are
read exactly: fractions of a millisecond survive, and a bad value (negative, NaN,
infinite, not a number) is reported and replaced by 0 rather than starting a service
that sleeps forever or crashes on its first request.  ``config`` is stdlib-only, so it
is imported from the package data the image is built from, without containers.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from types import ModuleType

import pytest

from tests.conftest import REPO

APP_DIR = REPO / "clnrm" / "images" / "demo-app"


@pytest.fixture
def config(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.syspath_prepend(str(APP_DIR))
    yield importlib.import_module("demoapp.config")
    for name in [m for m in sys.modules if m == "demoapp" or m.startswith("demoapp.")]:
        del sys.modules[name]


def test_delays_default_to_zero(config: ModuleType) -> None:
    s = config.Settings.from_env("api", {})
    assert s.fixed_delay_s == 0.0
    assert s.db_read_delay_s == 0.0


def test_delays_keep_fractions_of_a_millisecond(config: ModuleType) -> None:
    s = config.Settings.from_env("api", {"FIXED_DELAY_MS": "12.5", "DB_READ_DELAY_MS": "0.25"})
    assert s.fixed_delay_s == pytest.approx(0.0125)
    assert s.db_read_delay_s == pytest.approx(0.00025)


@pytest.mark.parametrize("raw", ["-1", "nan", "inf", "soon"])
def test_bad_delay_is_reported_and_replaced_by_zero(
    config: ModuleType, raw: str, capsys: pytest.CaptureFixture[str]
) -> None:
    s = config.Settings.from_env("api", {"DB_READ_DELAY_MS": raw, "FIXED_DELAY_MS": raw})
    assert s.db_read_delay_s == 0.0
    assert s.fixed_delay_s == 0.0
    err = capsys.readouterr().err
    assert f"ignoring DB_READ_DELAY_MS={raw!r}" in err
    assert f"ignoring FIXED_DELAY_MS={raw!r}" in err

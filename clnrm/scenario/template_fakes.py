"""Fake-data template functions (``fake_name()``, ``fake_email(seed=1)``...).

Upstream uses the ``fake`` crate; a test fixture only needs plausible,
reproducible values, so these draw from small built-in word lists.  Each
takes an optional ``seed=``; without one it uses the render's RNG (seeded by
``[determinism] seed``).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from clnrm.scenario.template_functions import RenderRuntime, count_arg, rfc3339

_FIRST: Final = tuple("Ada Alan Grace Linus Barbara Ken Margaret Dennis Radia Edsger".split())
_LAST: Final = tuple("Lovelace Turing Hopper Torvalds Liskov Thompson Hamilton Ritchie".split())
_WORDS: Final = tuple(
    "alpha bravo cedar delta ember fjord garnet harbor iris juniper "
    "kelp lumen maple nectar onyx prism quartz raven sable tundra".split()
)
_COMPANIES: Final = tuple("Acme Globex Initech Umbrella Hooli Stark Wayne Tyrell".split())
_SUFFIXES: Final = tuple("Inc LLC Ltd Group Labs".split())
_CITIES: Final = tuple("Lisbon Oslo Kyoto Austin Nairobi Quito Tallinn Perth".split())
_STREETS: Final = ("Main St", "Oak Ave", "Elm Rd", "Pine Ln", "Cedar Blvd", "Lake Dr")
_COUNTRIES: Final = tuple("Portugal Norway Japan Kenya Ecuador Estonia Australia".split())
_STATES: Final = tuple("CA NY TX WA OR MA CO".split())
_TLDS: Final = tuple("com org net io dev".split())


def fake_functions(rt: RenderRuntime) -> dict[str, Callable[..., Any]]:
    """Every ``fake_*`` function, bound to one render's RNG."""

    def fake(build: Callable[..., Any]) -> Callable[..., Any]:
        def call(seed: object = None, **kwargs: Any) -> Any:
            return build(rt.rng_for(seed), **kwargs)

        return call

    return {
        "fake_uuid": lambda: str(uuid.UUID(int=rt.rng.getrandbits(128), version=4)),
        "fake_uuid_seeded": fake(lambda r: str(uuid.UUID(int=r.getrandbits(128), version=4))),
        "fake_name": fake(lambda r: f"{r.choice(_FIRST)} {r.choice(_LAST)}"),
        "fake_first_name": fake(lambda r: r.choice(_FIRST)),
        "fake_last_name": fake(lambda r: r.choice(_LAST)),
        "fake_username": fake(lambda r: f"{r.choice(_FIRST).lower()}{r.randint(1, 999)}"),
        "fake_email": fake(
            lambda r: f"{r.choice(_FIRST).lower()}.{r.choice(_LAST).lower()}@example.com"
        ),
        "fake_domain": fake(lambda r: f"{r.choice(_WORDS)}.{r.choice(_TLDS)}"),
        "fake_url": fake(lambda r: f"https://{r.choice(_WORDS)}.{r.choice(_TLDS)}"),
        "fake_ipv4": fake(lambda r: "10." + ".".join(str(r.randint(0, 255)) for _ in range(3))),
        "fake_ipv6": fake(lambda r: "fd00:" + ":".join(f"{r.getrandbits(16):x}" for _ in range(7))),
        "fake_mac_address": fake(lambda r: ":".join(f"{r.getrandbits(8):02x}" for _ in range(6))),
        "fake_street": fake(lambda r: f"{r.randint(1, 999)} {r.choice(_STREETS)}"),
        "fake_city": fake(lambda r: r.choice(_CITIES)),
        "fake_state": fake(lambda r: r.choice(_STATES)),
        "fake_zip": fake(lambda r: f"{r.randint(10000, 99999)}"),
        "fake_country": fake(lambda r: r.choice(_COUNTRIES)),
        "fake_phone": fake(lambda r: f"+1-555-{r.randint(100, 999)}-{r.randint(1000, 9999)}"),
        "fake_company": fake(lambda r: f"{r.choice(_COMPANIES)} {r.choice(_SUFFIXES)}"),
        "fake_word": fake(lambda r: r.choice(_WORDS)),
        "fake_words": fake(
            lambda r, count=3: " ".join(r.choice(_WORDS) for _ in range(count_arg(count, "count")))
        ),
        "fake_sentence": fake(_sentence),
        "fake_paragraph": fake(lambda r: " ".join(_sentence(r) for _ in range(3))),
        "fake_int": fake(lambda r, min=0, max=1000: r.randint(int(min), int(max))),
        "fake_int_range": fake(lambda r, min=0, max=100: r.randint(int(min), int(max))),
        "fake_float": fake(lambda r, min=0.0, max=1.0: round(r.uniform(float(min), float(max)), 6)),
        "fake_bool": fake(lambda r, ratio=50: r.randint(1, 100) <= int(ratio)),
        "fake_string": fake(lambda r, len=8: _alnum(r, count_arg(len, "len"))),
        "fake_port": fake(lambda r: r.randint(1024, 65535)),
        "fake_semver": fake(lambda r: f"{r.randint(0, 9)}.{r.randint(0, 20)}.{r.randint(0, 50)}"),
        "fake_hex_color": fake(lambda r: f"#{r.getrandbits(24):06x}"),
        "fake_date": fake(lambda r: _fake_moment(r).date().isoformat()),
        "fake_time": fake(lambda r: _fake_moment(r).time().isoformat()),
        "fake_datetime": fake(lambda r: rfc3339(_fake_moment(r))),
        "fake_timestamp": fake(lambda r: int(_fake_moment(r).timestamp())),
    }


def _alnum(rng: random.Random, n: int) -> str:
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return "".join(rng.choice(letters) for _ in range(n))


def _sentence(rng: random.Random, min: int = 4, max: int = 10) -> str:
    low, high = count_arg(min, "min", 200), count_arg(max, "max", 200)
    words = [rng.choice(_WORDS) for _ in range(rng.randint(low, high) if low <= high else low)]
    return (" ".join(words).capitalize() + ".") if words else ""


def _fake_moment(rng: random.Random) -> datetime:
    start = datetime(2000, 1, 1, tzinfo=UTC)
    return start + timedelta(seconds=rng.randint(0, 30 * 365 * 86400))

"""The Tera functions and filters upstream test files call, re-made for Jinja.

Upstream registers ~80 functions (``clnrm-template/src/functions``).  The ones
the compatibility corpus uses are here with the same names and keyword
arguments, plus the obvious siblings.  Two rules make rendering reproducible:

* a function given ``seed=`` is a pure function of that seed;
* otherwise it draws from the render's RNG, which ``[determinism] seed``
  seeds, and reads the render's clock, which ``[determinism] freeze_clock``
  freezes.  Without ``[determinism]`` both are real (random, wall clock).

The ``fake_*`` functions live in :mod:`clnrm.scenario.template_fakes`.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from jinja2 import Undefined

_CROCKFORD: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class TemplateFunctionError(Exception):
    """A template function was called wrongly; the message is shown to the author."""


class RenderRuntime:
    """Clock and RNG shared by every function of one render."""

    def __init__(self, *, seed: int | None = None, freeze_clock: str | None = None) -> None:
        self.rng = random.Random(seed)
        self.frozen: datetime | None = None
        if freeze_clock:
            try:
                parsed = datetime.fromisoformat(freeze_clock)
            except ValueError:
                parsed = None
            if parsed is not None:
                self.frozen = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        self._seq: dict[str, int] = {}

    def now(self) -> datetime:
        return self.frozen if self.frozen is not None else datetime.now(UTC)

    def rng_for(self, seed: object) -> random.Random:
        """A private RNG when ``seed=`` is given, else the render's shared one."""
        if seed is None or _is_undefined(seed):
            return self.rng
        if isinstance(seed, bool) or not isinstance(seed, int | str | float):
            raise TemplateFunctionError(f"seed must be a number, got {seed!r:.40}")
        return random.Random(str(seed))

    # -- functions ------------------------------------------------------------------

    def functions(self) -> dict[str, Callable[..., Any]]:
        rt = self
        fns: dict[str, Callable[..., Any]] = {
            "now_rfc3339": lambda: rfc3339(rt.now()),
            "now_unix": lambda: int(rt.now().timestamp()),
            "now_ms": lambda: int(rt.now().timestamp() * 1000),
            "now_plus": rt.now_plus,
            "sha256": _sha256,
            "toml_encode": toml_encode,
            "uuid_v4": rt.uuid_v4,
            "uuid_v5": _uuid_v5,
            "uuid_v7": rt.uuid_v7,
            "ulid": rt.ulid,
            "trace_id": lambda seed=None: "%032x" % (rt.rng_for(seed).getrandbits(128) or 1),
            "span_id": lambda seed=None: "%016x" % (rt.rng_for(seed).getrandbits(64) or 1),
            "traceparent": rt.traceparent,
            "rand_hex": lambda n=16, seed=None: _hex(rt.rng_for(seed), count_arg(n, "n")),
            "seq": rt.seq,
            "pick": lambda list=(), seed=None: _pick(rt.rng_for(seed), _items(list)),
            "shuffle": lambda list=(), seed=None: _shuffled(rt.rng_for(seed), _items(list)),
            "sample": lambda list=(), k=1, seed=None: _sample(rt.rng_for(seed), _items(list), k),
            "weighted": lambda pairs=(), seed=None: _weighted(rt.rng_for(seed), pairs),
            "slug": lambda s="": slugify(s),
            "kebab": lambda s="": kebab(s),
            "snake": lambda s="": snake(s),
        }
        from clnrm.scenario.template_fakes import fake_functions  # noqa: PLC0415 - cycle

        fns.update(fake_functions(self))
        return fns

    def now_plus(
        self, seconds: float = 0, minutes: float = 0, hours: float = 0, days: float = 0
    ) -> str:
        delta = timedelta(
            seconds=float(seconds), minutes=float(minutes), hours=float(hours), days=float(days)
        )
        return rfc3339(self.now() + delta)

    def uuid_v4(self, seed: object = None) -> str:
        bits = self.rng_for(seed).getrandbits(128)
        return str(uuid.UUID(int=bits, version=4))

    def uuid_v7(self, seed: object = None) -> str:
        ms = int(self.now().timestamp() * 1000) & ((1 << 48) - 1)
        rand = self.rng_for(seed).getrandbits(80)
        value = (ms << 80) | rand
        value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
        value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
        return str(uuid.UUID(int=value))

    def ulid(self, seed: object = None) -> str:
        ms = int(self.now().timestamp() * 1000) & ((1 << 48) - 1)
        value = (ms << 80) | self.rng_for(seed).getrandbits(80)
        return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))

    def traceparent(self, sampled: bool = True, seed: object = None) -> str:
        rng = self.rng_for(seed)
        trace, span = rng.getrandbits(128) or 1, rng.getrandbits(64) or 1
        return f"00-{trace:032x}-{span:016x}-{'01' if sampled else '00'}"

    def seq(self, name: str = "default", start: int = 0, step: int = 1) -> int:
        value = self._seq.get(str(name), int(start))
        self._seq[str(name)] = value + int(step)
        return value


# -- filters ----------------------------------------------------------------------


def tera_filters() -> dict[str, Callable[..., Any]]:
    """Filters whose Tera spelling differs from Jinja's (keyword names, extra names)."""
    return {
        "default": _default,
        "slugify": slugify,
        "slug": slugify,
        "kebab": kebab,
        "snake": snake,
        "replace": _replace,
        "join": _join,
        "json_encode": lambda value, pretty=False: json.dumps(
            value, indent=2 if pretty else None, default=str
        ),
        "as_str": lambda value: _text(value),
        "split": lambda value, pat=" ": str(value).split(str(pat)),
    }


def _default(subject: Any, /, *args: Any, **kwargs: Any) -> Any:
    """Tera ``default(value=x)`` and Jinja ``default(x[, boolean])`` both work.

    ``subject`` is positional-only because Tera's keyword is itself ``value``.
    """
    fallback = kwargs.pop("value", args[0] if args else "")
    boolean = bool(kwargs.pop("boolean", args[1] if len(args) > 1 else False))
    if kwargs:
        raise TemplateFunctionError(f"default() got unexpected arguments: {', '.join(kwargs)}")
    if _is_undefined(subject) or (boolean and not subject):
        return fallback
    return subject


def _replace(
    value: Any, old: Any = None, new: Any = None, count: int | None = None, **kwargs: Any
) -> str:
    old = kwargs.pop("from", old)
    new = kwargs.pop("to", new)
    if old is None or new is None:
        raise TemplateFunctionError("replace() needs from= and to= (or two positional arguments)")
    return str(value).replace(str(old), str(new), -1 if count is None else int(count))


def _join(value: Any, d: str = "", sep: str | None = None) -> str:
    return (d if sep is None else str(sep)).join(_text(item) for item in _items(value))


def slugify(value: Any) -> str:
    words = re.findall(r"[A-Za-z0-9]+", _split_camel(_text(value)))
    return "-".join(word.lower() for word in words)


def kebab(value: Any) -> str:
    return slugify(value)


def snake(value: Any) -> str:
    return slugify(value).replace("-", "_")


# -- helpers ----------------------------------------------------------------------


def _is_undefined(value: object) -> bool:
    return isinstance(value, Undefined)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _split_camel(text: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", text)


def rfc3339(moment: datetime) -> str:
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def count_arg(value: Any, name: str, limit: int = 10_000) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError) as exc:
        raise TemplateFunctionError(f"{name} must be a whole number, got {value!r:.40}") from exc
    if not 0 <= number <= limit:
        raise TemplateFunctionError(f"{name} must be between 0 and {limit}, got {number}")
    return number


def _items(value: Any) -> list[Any]:
    if (
        isinstance(value, Mapping | str | bytes)
        or not isinstance(value, Sequence)
    ):
        raise TemplateFunctionError(f"expected a list, got {type(value).__name__}")
    return list(value)


def _hex(rng: random.Random, n: int) -> str:
    return "".join(f"{rng.randrange(16):x}" for _ in range(n))


def _pick(rng: random.Random, items: list[Any]) -> Any:
    if not items:
        raise TemplateFunctionError("pick() needs a non-empty list")
    return rng.choice(items)


def _shuffled(rng: random.Random, items: list[Any]) -> list[Any]:
    rng.shuffle(items)
    return items


def _sample(rng: random.Random, items: list[Any], k: Any) -> list[Any]:
    size = count_arg(k, "k", limit=len(items))
    return rng.sample(items, size)


def _weighted(rng: random.Random, pairs: Any) -> Any:
    values, weights = [], []
    for pair in _items(pairs):
        if not isinstance(pair, Sequence) or isinstance(pair, str) or len(pair) != 2:
            raise TemplateFunctionError("weighted() pairs must be [value, weight]")
        values.append(pair[0])
        weights.append(float(pair[1]))
    if not values or sum(weights) <= 0:
        raise TemplateFunctionError("weighted() needs at least one positive weight")
    return rng.choices(values, weights=weights)[0]


def _sha256(s: Any = "") -> str:
    return hashlib.sha256(_text(s).encode()).hexdigest()


def _uuid_v5(ns: Any = "", name: Any = "") -> str:
    try:
        namespace = uuid.UUID(str(ns))
    except ValueError as exc:
        raise TemplateFunctionError(f"uuid_v5(): ns must be a UUID, got {ns!r:.40}") from exc
    return str(uuid.uuid5(namespace, _text(name)))


def toml_encode(value: Any = None) -> str:
    """A value as a TOML literal (inline table / array / string / number)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Mapping):
        return (
            "{"
            + ", ".join(f"{json.dumps(str(k))} = {toml_encode(v)}" for k, v in value.items())
            + "}"
        )
    if isinstance(value, Sequence) and not isinstance(value, str):
        return "[" + ", ".join(toml_encode(v) for v in value) + "]"
    return json.dumps(_text(value))

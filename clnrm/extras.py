"""Optional dependencies: one clear error naming the extra, never an ImportError traceback.

``pip install clnrm`` brings the core loop only; the memory (Chroma, scikit-learn), the
swarm (Ray) and the MiniLM embedding are extras. A command that needs one calls
:func:`require` before importing anything from it, so a missing extra is one line and
exit 2. ``find_spec`` only looks the module up: nothing heavy is imported here.
"""

from __future__ import annotations

from importlib.util import find_spec
from typing import Final

from clnrm.errors import ClnrmError

EXTRAS: Final[dict[str, tuple[str, ...]]] = {
    "memory": ("chromadb", "sklearn"),
    "swarm": ("ray",),
    "minilm": ("sentence_transformers", "torch"),
}
"""Extra name -> the top-level modules it provides (as imported, not as named on PyPI)."""

_DISTRIBUTIONS: Final = {"sklearn": "scikit-learn", "sentence_transformers":
                         "sentence-transformers"}


class MissingExtraError(ClnrmError):
    """A command needs an optional dependency that is not installed."""

    def __init__(self, extra: str, module: str, *, feature: str) -> None:
        name = _DISTRIBUTIONS.get(module, module)
        super().__init__(f"{feature} needs the optional dependency {name}: "
                         f"pip install 'clnrm[{extra}]'")
        self.extra = extra
        self.module = module


def missing(extra: str) -> list[str]:
    """The modules of ``extra`` that cannot be imported here (empty when it is installed)."""
    absent = []
    for module in EXTRAS[extra]:
        try:
            found = find_spec(module) is not None
        except (ImportError, ValueError):  # a broken parent package, or __spec__ is None
            found = False
        if not found:
            absent.append(module)
    return absent


def installed(extra: str) -> bool:
    """True when every module of ``extra`` can be imported."""
    return not missing(extra)


def require(extra: str, *, feature: str | None = None) -> None:
    """Raise :class:`MissingExtraError` (exit 2) unless every module of ``extra`` is there.

    ``feature`` names what needs it in the message (default ``clnrm <extra>``).
    """
    absent = missing(extra)
    if absent:
        raise MissingExtraError(extra, absent[0], feature=feature or f"clnrm {extra}")

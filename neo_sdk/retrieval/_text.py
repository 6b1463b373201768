"""Search baselines: BM25 over item texts and a dense MiniLM retriever, both with full ranking.

Both index the same text an item's SIDs are built from (:meth:`Catalog.item_texts`: the entity
type's declared text fields, labelled), so a search model and its baselines read the same
information. Both rank every item of the type; ties (e.g. items sharing no query word under BM25)
fall back to catalog order.

The runtime's search fuses them (:class:`HybridRetriever`); ``neo_sdk.evaluation`` scores them as baselines.

Example:
    >>> bm25 = BM25Retriever.from_catalog(catalog, "movie")
    >>> bm25.search("toy story john lasseter animation", 3)  # ML-100k with people
    ['movie:1', 'movie:1344', 'movie:548']
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from neo_sdk.catalog import Catalog
from neo_sdk.errors import ConfigError
from neo_sdk.retrieval._index import ItemIndex, top_k

if TYPE_CHECKING:
    from neo_sdk.sids import Embedder


class BM25Retriever:
    """Okapi BM25 (library ``bm25s``) over item texts, English stop words removed, no stemming.

    Args:
        texts: item id -> text, in the order that breaks score ties.
        k1, b: the BM25 parameters (the usual 1.5 and 0.75).
    """

    name = "bm25"

    def __init__(self, texts: Mapping[str, str], *, k1: float = 1.5, b: float = 0.75) -> None:
        if not texts:
            raise ConfigError("BM25Retriever needs at least one item text")
        self._bm25s = _import_bm25s()
        self.index = ItemIndex(list(texts))
        self._zeros = np.zeros(len(self.index))
        corpus = self._tokenize(list(texts.values()))
        self._model = self._bm25s.BM25(k1=k1, b=b)
        self._model.index(corpus, show_progress=False)

    @classmethod
    def from_catalog(cls, catalog: Catalog, entity_type: str, **kwargs: Any) -> BM25Retriever:
        """Index every item of ``entity_type`` by its catalog text."""
        return cls(catalog.item_texts(entity_type), **kwargs)

    def _tokenize(self, texts: list[str]) -> list[list[str]]:
        out = self._bm25s.tokenize(texts, stopwords="en", return_ids=False, show_progress=False)
        return [list(tokens) for tokens in out]

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every item. Shape: (n_items,)."""
        tokens = self._tokenize([query])[0]
        if not tokens:  # only stop words or punctuation: nothing to match
            return self._zeros.copy()
        return np.asarray(self._model.get_scores(tokens), dtype=np.float64)

    def search(self, query: str, k: int) -> list[str]:
        return top_k(self.scores(query), k, self.index, set(), self._zeros)


class DenseRetriever:
    """Cosine similarity between the query embedding and each item text's embedding.

    Item embeddings come from :func:`neo_sdk.sids.embed_texts` (the same on-disk cache the SID
    builder fills, so a catalog with SIDs embeds nothing again); queries are embedded on the fly.

    Args:
        texts: item id -> text.
        embedder: an :class:`~neo_sdk.sids.Embedder`, a sentence-transformers folder, or ``None``
            for the default all-MiniLM-L6-v2.
        cache: read and fill the embedding cache under ``neo_home()/embeddings``.
        progress: show a progress bar while embedding item texts.
    """

    name = "dense-minilm"

    def __init__(
        self,
        texts: Mapping[str, str],
        embedder: Embedder | str | Path | None = None,
        *,
        cache: bool = True,
        progress: bool = False,
    ) -> None:
        from neo_sdk.sids import embed_texts, resolve_embedder

        if not texts:
            raise ConfigError("DenseRetriever needs at least one item text")
        self.embedder = resolve_embedder(embedder)
        self.index = ItemIndex(list(texts))
        self._zeros = np.zeros(len(self.index))
        vecs = embed_texts(self.embedder, list(texts.values()), cache=cache, progress=progress)
        self.vectors = _normalize(vecs)  # (n_items, dim)

    @classmethod
    def from_catalog(
        cls, catalog: Catalog, entity_type: str, embedder: Embedder | str | Path | None = None,
        **kwargs: Any,
    ) -> DenseRetriever:
        """Embed every item of ``entity_type`` by its catalog text."""
        return cls(catalog.item_texts(entity_type), embedder, **kwargs)

    def scores(self, query: str) -> np.ndarray:
        """Cosine similarity of every item to the query. Shape: (n_items,)."""
        q = _normalize(np.asarray(self.embedder.encode([query]), dtype=np.float32))[0]  # (dim,)
        return (self.vectors @ q).astype(np.float64)

    def search(self, query: str, k: int) -> list[str]:
        return top_k(self.scores(query), k, self.index, set(), self._zeros)


def _normalize(vecs: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    return vecs / np.maximum(norms, 1e-12)


def _import_bm25s() -> Any:
    try:
        import bm25s
    except ModuleNotFoundError as exc:
        raise ConfigError("BM25Retriever needs the bm25s package: pip install 'bm25s>=0.2'") from exc
    return bm25s

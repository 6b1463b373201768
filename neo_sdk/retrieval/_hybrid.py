"""Hybrid retrieval: BM25 and dense rankings merged by reciprocal-rank fusion.

Reciprocal-rank fusion (Cormack et al., 2009) adds ``1 / (60 + rank)`` over the rankings an item
appears in: it needs no score calibration between retrievers, and an item near the top of either
list stays near the top. The runtime uses it for the search candidates the model ranks.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from neo_sdk.catalog import Catalog
from neo_sdk.retrieval._text import BM25Retriever, DenseRetriever

if TYPE_CHECKING:
    from neo_sdk.sids import Embedder

RRF_K = 60  # the fusion constant of the original paper


def reciprocal_rank_fusion(rankings: Sequence[Sequence[str]], *, weights: Sequence[float] | None = None,
                           constant: int = RRF_K) -> list[str]:
    """Items of every ranking, best fused score first (ties: first appearance)."""
    weights = list(weights) if weights is not None else [1.0] * len(rankings)
    scores: dict[str, float] = {}
    for weight, ranking in zip(weights, rankings, strict=True):
        for rank, item in enumerate(ranking, 1):
            scores[item] = scores.get(item, 0.0) + weight / (constant + rank)
    order = {item: n for n, item in enumerate(scores)}
    return sorted(scores, key=lambda item: (-scores[item], order[item]))


class HybridRetriever:
    """BM25 and dense retrieval over the same item texts, fused by :func:`reciprocal_rank_fusion`.

    Args:
        texts: item id -> text (:meth:`Catalog.item_texts`).
        embedder: for the dense side (default all-MiniLM-L6-v2; item vectors come from the cache
            the SID builder fills).
        depth: how deep each retriever's list goes into the fusion.
    """

    name = "hybrid"

    def __init__(self, texts: Mapping[str, str], embedder: Embedder | str | Path | None = None, *,
                 depth: int = 200, cache: bool = True) -> None:
        self.bm25 = BM25Retriever(texts)
        self.dense = DenseRetriever(texts, embedder, cache=cache)
        self.index = self.bm25.index
        self.depth = depth

    @classmethod
    def from_catalog(cls, catalog: Catalog, entity_type: str, embedder: Embedder | str | Path | None = None,
                     **kwargs: Any) -> HybridRetriever:
        """Index every item of ``entity_type`` by its catalog text."""
        return cls(catalog.item_texts(entity_type), embedder, **kwargs)

    def rank(self, query: str, n: int, allowed: Collection[str] | None = None, *, lexical: bool = False) -> list[str]:
        """The ``n`` best items for ``query`` among ``allowed`` (``None``: every item); with
        ``lexical``, none when no word of ``query`` occurs in an allowed item's text (BM25 finds nothing)."""
        keep = None
        if allowed is not None:
            keep = np.zeros(len(self.index), dtype=bool)
            keep[self.index.columns(set(allowed))] = True
        lists = []
        for scores, positive_only in ((self.bm25.scores, True), (self.dense.scores, False)):
            scored = scores(query)
            if keep is not None:
                scored = np.where(keep, scored, -np.inf)
            order = np.argsort(-scored, kind="stable")[: self.depth]
            lists.append([self.index.ids[i] for i in order
                          if np.isfinite(scored[i]) and (scored[i] > 0 or not positive_only)])
            if lexical and not lists[0]:
                return []
        return reciprocal_rank_fusion(lists)[:n]

    def search(self, query: str, k: int) -> list[str]:
        return self.rank(query, k)

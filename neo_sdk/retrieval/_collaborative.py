"""Collaborative retrieval: the items a history predicts, learned from every user's interactions.

EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019): a closed-form
item-item model. With ``X`` the binary users x items matrix, ``P = (XᵀX + λI)⁻¹`` and
``B = -P / diag(P)`` with a zero diagonal; a history ``x`` scores items by ``x B``. It is the
runtime's candidate generator for a personalised search (a history, stated facts, no words left):
the model ranks its candidates, as it ranks the text retrievers' (``neo_sdk.session``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence

import numpy as np
from scipy import sparse  # comes with sentence-transformers

from neo_sdk.retrieval._index import ItemIndex

# Ridge weight λ: the value Steck reports for MovieLens-20M; the demo catalog's personalised hit@10
# moves by 0.01 between 300 and 1000 (bench/RESULTS.md).
EASE_L2 = 500.0
# The dense item-item inverse costs items² memory and items³ time: the most interacted this many
# items are modelled (5,000: 200 MB a matrix, about 600 MB at the peak of the fit, 7.5 s on 2 cores;
# the demo's 1,682: 0.6 s); the rest are never candidates.
EASE_MAX_ITEMS = 5000


class CollaborativeRetriever:
    """EASE over the interactions in ``histories`` (module docs).

    Args:
        histories: user id -> item ids interacted with (repeats count once).
        l2: the ridge weight λ.
        max_items: model only the most interacted this many items (ties: id order).

    Attributes:
        index: the modelled items, by column.
        weights: the item-item matrix ``B``. Shape: (n_items, n_items).
    """

    name = "collaborative"

    def __init__(self, histories: Mapping[str, Sequence[str]], *, l2: float = EASE_L2,
                 max_items: int = EASE_MAX_ITEMS) -> None:
        counts = Counter(item for history in histories.values() for item in set(history))
        ranked = sorted(counts, key=lambda item: (-counts[item], item))[:max_items]
        self.index = ItemIndex(sorted(ranked))
        n = len(self.index)
        rows, cols = [], []
        for user, history in enumerate(histories.values()):
            modelled = self.index.columns(set(history))
            rows += [user] * len(modelled)
            cols += modelled.tolist()
        users_items = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(histories), n))
        gram = (users_items.T @ users_items).toarray()
        gram[np.diag_indices(n)] += l2
        inverse = np.linalg.inv(gram)
        weights = -inverse / np.diag(inverse)
        np.fill_diagonal(weights, 0.0)
        self.weights = weights.astype(np.float32)

    def scores(self, history: Sequence[str]) -> np.ndarray:
        """One score per modelled item for ``history`` (items it does not model are skipped; none
        modelled: all 0). Shape: (n_items,)."""
        return self.weights[self.index.columns(set(history))].sum(axis=0, dtype=np.float64)

    def rank(self, history: Sequence[str], n: int, allowed: Collection[str] | None = None, *,
             fill: Sequence[str] = ()) -> list[str]:
        """The ``n`` items ``history`` predicts best among ``allowed`` (``None``: every modelled
        item), best first (ties: id order), then items of ``fill`` up to ``n`` (those it does not
        model, e.g. the most popular); empty when no item of the history or of ``allowed`` is modelled."""
        if not self.index.columns(set(history)).size:
            return []
        cols = np.arange(len(self.index)) if allowed is None else self.index.columns(set(allowed))
        scores = self.scores(history)
        ranked = [self.index.ids[c] for c in cols[np.lexsort((cols, -scores[cols]))][:n]]
        chosen = set(ranked)
        return (ranked + [i for i in fill if i not in chosen])[:n] if ranked else []

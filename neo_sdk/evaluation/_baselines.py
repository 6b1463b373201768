"""Classic recommendation baselines, fitted on training histories only: random, popularity, item-kNN.

Every ``fit`` takes ``split.train`` (a mapping user id -> item ids, oldest first), never the
:class:`~neo_sdk.catalog.Split` itself, so a baseline cannot see a validation or test target even
by accident. The item universe is the catalog's items of ``entity_type``: a baseline ranks all of
them (full ranking) and nothing else, so its invalid-item rate is 0 by construction. Without an
``entity_type`` the catalog decides: the type users interact with most (:func:`resolve_entity_types`).

Tie-break, everywhere: higher score first, then more training interactions (popularity), then
catalog order (item id). Stated because MovieLens has many equal counts and the tie-break moves
HR@10 by a few thousandths.

SASRec lives in :mod:`neo_sdk.evaluation._sasrec` (it needs torch).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from neo_sdk.catalog import Catalog, Split
from neo_sdk.errors import ConfigError
from neo_sdk.retrieval import ItemIndex, top_k

Train = Mapping[str, Sequence[str]]


def resolve_entity_types(catalog: Catalog, wanted: Sequence[str] | None = None) -> list[str]:
    """The entity types to rank: :meth:`Catalog.target_types` (``wanted``, checked, else every type
    users interact with, most interacted first)."""
    return catalog.target_types(wanted)


def resolve_entity_type(catalog: Catalog, entity_type: str | None = None) -> str:
    """``entity_type`` (checked), else the type users interact with most."""
    return resolve_entity_types(catalog, [entity_type] if entity_type else None)[0]


def train_counts(train: Train, index: ItemIndex) -> np.ndarray:
    """Interactions per indexed item in the training histories. Shape: (n_items,), float64."""
    counts = np.zeros(len(index), dtype=np.float64)
    for items in _histories(train):
        for item in items:
            pos = index.position.get(item)
            if pos is not None:
                counts[pos] += 1
    return counts


class RandomRanker:
    """Uniformly random full ranking, fixed per ``(seed, user)``: the floor every model must clear."""

    name = "random"

    def __init__(self, catalog: Catalog, entity_type: str | None = None, seed: int = 0) -> None:
        self.entity_type = resolve_entity_type(catalog, entity_type)
        self.index = ItemIndex.from_catalog(catalog, self.entity_type)
        self.seed = seed

    def rank(self, user_id: str, history: list[str], k: int, exclude: set[str]) -> list[str]:
        rng = random.Random(f"{self.seed}|{user_id}")  # str seeds hash stably (SHA-512)
        pool = [i for i in self.index.ids if i not in exclude]
        return rng.sample(pool, min(k, len(pool)))


class Popularity:
    """Most interacted items in the training histories, the same list for everyone.

    Whether seen items are skipped is the harness's ``exclude_seen`` choice: with it this is
    "popularity excluding seen", without it plain popularity.

    Attributes:
        counts: training interactions per item, aligned with ``index.ids``.
        entity_type: the type ranked (``None`` when built from a bare index).
    """

    name = "popularity"

    def __init__(self, index: ItemIndex, counts: np.ndarray, entity_type: str | None = None) -> None:
        self.index = index
        self.entity_type = entity_type
        self.counts = counts
        self.order = np.lexsort((np.arange(len(counts)), -counts))

    @classmethod
    def fit(cls, train: Train, catalog: Catalog, entity_type: str | None = None) -> Popularity:
        """Count interactions in ``train`` (= ``split.train``) over items of ``entity_type``
        (default: the type users interact with most)."""
        entity_type = resolve_entity_type(catalog, entity_type)
        index = ItemIndex.from_catalog(catalog, entity_type)
        return cls(index, train_counts(train, index), entity_type)

    @classmethod
    def over(cls, train: Train, item_ids: Sequence[str], entity_type: str | None = None) -> Popularity:
        """Popularity over the items ``item_ids``, taken in id order (the catalog's order), for a
        caller that holds a type's items but not the catalog: the training probes read them from
        the SID table. Over the catalog's items of a type it ranks exactly as :meth:`fit`.

        Raises:
            ConfigError: no items.
        """
        if not len(item_ids):
            raise ConfigError(f"no {entity_type!r} items to rank")
        index = ItemIndex(sorted(str(i) for i in item_ids))
        return cls(index, train_counts(train, index), entity_type)

    def rank(self, user_id: str, history: list[str], k: int, exclude: set[str]) -> list[str]:
        out: list[str] = []
        for i in self.order:
            item = self.index.ids[i]
            if item not in exclude:
                out.append(item)
                if len(out) == k:
                    break
        return out


class ItemKNN:
    """Item-to-item co-occurrence cosine; a user's score for an item sums its similarity to the history.

    ``sim(i, j) = |U_i ∩ U_j| / sqrt(|U_i| |U_j|)`` over the users of ``train`` (each user counted
    once per item), with ``sim(i, i) = 0``. History items may be of any type that occurs in
    training (e.g. followed authors); only items of ``entity_type`` are ranked.

    With ``recency_decay`` (0 < d < 1) the history item ``t`` steps before the most recent one
    weighs ``d ** t``; ``None`` weighs all equally.

    Attributes:
        sim: similarity from every training/indexed item (rows, ``sources``) to every ranked item
            (columns, ``index``). Shape: (n_sources, n_items), float32.
    """

    name = "item-knn"

    def __init__(
        self,
        index: ItemIndex,
        sources: ItemIndex,
        sim: np.ndarray,
        counts: np.ndarray,
        recency_decay: float | None = None,
        entity_type: str | None = None,
    ) -> None:
        if recency_decay is not None and not 0 < recency_decay < 1:
            raise ConfigError(f"recency_decay must be in (0, 1) or None, got {recency_decay}")
        self.index = index
        self.sources = sources
        self.sim = sim
        self.counts = counts
        self.recency_decay = recency_decay
        self.entity_type = entity_type
        if recency_decay is not None:
            self.name = f"item-knn (recency {recency_decay:g})"

    @classmethod
    def fit(
        cls,
        train: Train,
        catalog: Catalog,
        entity_type: str | None = None,
        *,
        recency_decay: float | None = None,
    ) -> ItemKNN:
        """Build the similarity matrix from ``train`` (= ``split.train``); ranks ``entity_type``
        (default: the type users interact with most)."""
        entity_type = resolve_entity_type(catalog, entity_type)
        index = ItemIndex.from_catalog(catalog, entity_type)
        histories = _histories(train)
        seen = {item for items in histories for item in items}
        extra = sorted(seen - set(index.position))
        sources = ItemIndex(index.ids + extra)  # ranked items first: column j == source row j
        rows, cols = [], []
        for u, items in enumerate(histories):
            for item in set(items):
                rows.append(u)
                cols.append(sources.position[item])
        x = sp.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, cols)),
            shape=(max(len(histories), 1), len(sources)),
        )
        co = (x.T @ x).tocsr()  # (n_sources, n_sources) co-occurrence counts
        norms = np.sqrt(np.asarray(co.diagonal(), dtype=np.float64))
        co = co[:, : len(index)].toarray().astype(np.float64)  # (n_sources, n_items)
        denom = np.outer(norms, norms[: len(index)])
        sim = np.divide(co, denom, out=np.zeros_like(co), where=denom > 0)
        diag = np.arange(len(index))
        sim[diag, diag] = 0.0
        return cls(index, sources, sim.astype(np.float32), train_counts(train, index), recency_decay, entity_type)

    def scores(self, history: Sequence[str]) -> np.ndarray:
        """Summed (optionally recency-weighted) similarity of each ranked item. Shape: (n_items,)."""
        rows, weights = [], []
        n = len(history)
        for t, item in enumerate(history):
            pos = self.sources.position.get(item)
            if pos is None:
                continue
            rows.append(pos)
            weights.append(1.0 if self.recency_decay is None else self.recency_decay ** (n - 1 - t))
        if not rows:
            return np.zeros(len(self.index), dtype=np.float64)
        w = np.asarray(weights, dtype=np.float64)
        return w @ self.sim[np.asarray(rows)].astype(np.float64)

    def rank(self, user_id: str, history: list[str], k: int, exclude: set[str]) -> list[str]:
        return top_k(self.scores(history), k, self.index, exclude, self.counts)


def _histories(train: Train) -> list[Sequence[str]]:
    if isinstance(train, Split):
        raise ConfigError("fit takes split.train (training histories only), not the whole Split")
    return [train[u] for u in sorted(train)]

"""The ranked universe of one entity type: item ids by column, and top-k with ties broken."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from neo_sdk.catalog import Catalog
from neo_sdk.errors import ConfigError


class ItemIndex:
    """The ranked universe: ids of every catalog item of one type, in catalog (id) order.

    Attributes:
        ids: item ids; position = column index. Shape: (n_items,).
        position: id -> column index.
    """

    def __init__(self, ids: Sequence[str]) -> None:
        self.ids: list[str] = list(ids)
        self.position: dict[str, int] = {item: i for i, item in enumerate(self.ids)}

    @classmethod
    def from_catalog(cls, catalog: Catalog, entity_type: str) -> ItemIndex:
        ids = [item.id for item in catalog.items(entity_type)]
        if not ids:
            raise ConfigError(f"the catalog has no {entity_type!r} items to rank")
        return cls(ids)

    def __len__(self) -> int:
        return len(self.ids)

    def columns(self, items: Sequence[str] | set[str]) -> np.ndarray:
        """Column indices of the ids that are in the index (others are skipped)."""
        return np.array([self.position[i] for i in items if i in self.position], dtype=np.int64)


def top_k(
    scores: np.ndarray, k: int, index: ItemIndex, exclude: set[str], tiebreak: np.ndarray
) -> list[str]:
    """The ``k`` best ids by score, then ``tiebreak`` (higher first), then index order.

    Args:
        scores: one score per item. Shape: (n_items,).
        tiebreak: secondary key, e.g. training counts. Shape: (n_items,).
    """
    scores = np.asarray(scores, dtype=np.float64).copy()
    cols = index.columns(exclude)
    if cols.size:
        scores[cols] = -np.inf
    order = np.lexsort((np.arange(len(scores)), -tiebreak, -scores))
    keep = max(0, min(k, len(scores) - cols.size))
    return [index.ids[i] for i in order[:keep]]

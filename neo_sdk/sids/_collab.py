"""Collaborative vectors: what co-occurs in users' histories, as dense item vectors.

Content-only Semantic IDs put items together that *read* alike. A recommender also needs items
that are *consumed* together: on MovieLens-100k, a model that only counts the level-1 codes of a
user's last 10 items and multiplies by item popularity scores HR@10 0.075 with content SIDs, below
popularity (0.095, 200 validation users), and 0.145 when each item's embedding also carries the
vector below at weight 0.5, while the text coherence of level-1 codes drops from 0.490 to 0.470
(``python bench/sid_signal.py``). So :func:`build_sids` appends these vectors to the text embeddings
(``SIDConfig.collaborative``): codes then follow taste as well as text, and "which codes come
next" becomes learnable from the codes already in a history.

Recipe: positive PMI of item pairs that occur within ``window`` positions of each other in a
user's history, then a truncated SVD (scipy, sparse). Only the **training part** of the
leave-one-out split is read (each user's last two interactions are left out), so validation and
test targets never shape the SIDs. Items never seen in a history (people in MovieLens, new items)
take the mean vector of the items they are related to in the catalog, or zeros: content alone
then places them.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence

import numpy as np

from neo_sdk.catalog import Catalog, leave_one_out

logger = logging.getLogger(__name__)


def cooccurrence_sequences(catalog: Catalog) -> list[list[str]]:
    """Users' training histories (leave-one-out train part), oldest first."""
    return [items for items in leave_one_out(catalog).train.values() if len(items) > 1]


MAX_PAIRS = 20_000_000  # co-occurrence pairs counted at most (memory: ~1 GB at this size)


def ppmi_svd(sequences: Sequence[Sequence[str]], *, window: int, dim: int,
             max_pairs: int = MAX_PAIRS) -> tuple[list[str], np.ndarray]:
    """Item ids and their L2-normalised PPMI-SVD vectors. Shape: (N, d), ``d <= dim``.

    Past ``max_pairs`` window pairs the window shrinks, and below a window of 2 a seeded sample of
    the histories is used, so memory stays bounded on logs of any size (logged when it happens).
    """
    import scipy.sparse as sp
    from scipy.sparse.linalg import svds

    def pairs(w: int) -> int:
        return sum(max(0, min(w, len(s) - 1)) * len(s) for s in sequences)

    while window > 2 and pairs(window) > max_pairs:
        window = max(2, window * max_pairs // pairs(window))
    if pairs(window) > max_pairs:
        keep = max(1, int(len(sequences) * max_pairs / pairs(window)))
        sequences = random.Random(0).sample(list(sequences), keep)
        logger.info("co-occurrence: %d histories sampled to stay under %d pairs", keep, max_pairs)
    logger.info("co-occurrence window %d over %d histories", window, len(sequences))

    index: dict[str, int] = {}
    encoded = [np.fromiter((index.setdefault(i, len(index)) for i in seq), dtype=np.int64, count=len(seq))
               for seq in sequences]
    n = len(index)
    counts = sp.csr_matrix((n, n), dtype=np.float64)
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    pending = 0

    def flush() -> sp.csr_matrix:  # bounded memory: pairs are summed per ~4M, not all held at once
        r, c = np.concatenate(rows), np.concatenate(cols)
        rows.clear()
        cols.clear()
        return sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(n, n))

    for ids in encoded:
        for offset in range(1, min(window, len(ids) - 1) + 1):
            rows.append(ids[:-offset])
            cols.append(ids[offset:])
            pending += len(ids) - offset
        if pending > 4_000_000:
            counts = counts + flush()
            pending = 0
    if rows:
        counts = counts + flush()
    if n < 3 or counts.nnz == 0:
        return list(index), np.zeros((n, 0), dtype=np.float32)
    counts = (counts + counts.T).tocsr()  # symmetric: order within the window does not matter
    total = counts.sum()
    marginal = np.asarray(counts.sum(1)).ravel()
    coo = counts.tocoo()
    pmi = np.log(coo.data * total / (marginal[coo.row] * marginal[coo.col]))
    keep = pmi > 0
    ppmi = sp.csr_matrix((pmi[keep], (coo.row[keep], coo.col[keep])), shape=(n, n))
    k = max(1, min(dim, n - 2))
    u, s, _ = svds(ppmi, k=k, random_state=0)
    order = np.argsort(-s)
    vectors = (u[:, order] * np.sqrt(s[order])).astype(np.float32)
    return list(index), _unit(vectors)


def collaborative_vectors(
    catalog: Catalog, item_ids: Sequence[str], *, window: int = 20, dim: int = 48,
    sequences: Sequence[Sequence[str]] | None = None,
    space: tuple[list[str], np.ndarray] | None = None,
) -> np.ndarray | None:
    """Unit collaborative vectors for ``item_ids`` (zeros where nothing is known).

    ``space``: a :func:`ppmi_svd` result to reuse (one per catalog, shared by its entity types);
    computed from ``sequences`` (default: the catalog's training histories) when omitted.

    Returns ``None`` when the catalog's histories are too thin to say anything (fewer than
    ``2 * dim`` distinct items co-occur), so callers fall back to content alone.
    Shape: (len(item_ids), d).
    """
    if space is None:
        if sequences is None:
            sequences = cooccurrence_sequences(catalog)
        space = ppmi_svd(sequences, window=window, dim=dim)
    known_ids, vectors = space
    if len(known_ids) < 2 * dim or vectors.shape[1] == 0:
        logger.info("collaborative vectors skipped: %d items co-occur in histories (need %d)",
                    len(known_ids), 2 * dim)
        return None
    known = dict(zip(known_ids, vectors, strict=True))
    out = np.zeros((len(item_ids), vectors.shape[1]), dtype=np.float32)
    missing = []
    for k, item in enumerate(item_ids):
        if item in known:
            out[k] = known[item]
        else:
            missing.append(k)
    if missing:
        neighbours = _relation_neighbours(catalog, {item_ids[k] for k in missing})
        for k in missing:
            linked = [known[j] for j in neighbours.get(item_ids[k], ()) if j in known]
            if linked:
                out[k] = np.mean(linked, axis=0)
        out[missing] = _unit(out[missing])
    return out


def _relation_neighbours(catalog: Catalog, items: set[str]) -> dict[str, list[str]]:
    """Items linked to each of ``items`` by a catalog relation, either direction."""
    out: dict[str, list[str]] = {}
    for relation in catalog.relations():
        src, dst = relation.src, relation.dst
        if src in items:
            out.setdefault(src, []).append(dst)
        if dst in items:
            out.setdefault(dst, []).append(src)
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.where(norms > 0, x / np.where(norms > 0, norms, 1), 0).astype(np.float32)

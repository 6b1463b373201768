"""Residual k-means (RQ-KMeans) per entity type, with plain or capacity-constrained assignment.

Geometry: embeddings are L2-normalised first (MiniLM/mpnet are trained for cosine similarity), so
level 1 clusters directions; level m clusters the residual ``x - sum_{l<m} C_l[code_l]``, left as is
(residuals are *not* renormalised, so their shrinking norm keeps later levels fine-grained).

Assignment modes:

* ``plain``: every item goes to its nearest centroid at every level (classic RQ-KMeans). On
  MovieLens-100k this is very unbalanced: many items share a full code tuple.
* ``balanced`` (default, chosen by the diagnostics, see ``neo sids report``): levels ``1..M-1`` use a
  capacity-constrained assignment (each code takes at most ``ceil(slack * n / K)`` items; items go
  greedily to their nearest code that still has room, closest items first), and the last level gives
  each item the nearest code that no other item *with the same prefix* holds yet. Centroids are then
  re-estimated as the mean of the residuals they received, so saved centroids describe the codes.
  The last-level rule is what makes tuples unique; the disambiguation code is then almost always 0.

Determinism: faiss k-means is seeded (``seed + level``) and runs single-threaded while training
(``faiss.omp_set_num_threads(1)``), so the same embeddings give the same codes on any core count.
The embedder itself is not bit-stable across processes (MiniLM differs in the 7th decimal between
runs), which can flip near-ties; the embedding cache makes rebuilds reuse the exact same vectors, so
a rebuild with the same seed gives identical SIDs.

Measured on MovieLens-100k + OMDb people (MiniLM, default M=2; ``neo sids report``):

=========  ======  ==============  ==============  ==============  ====================
type       mode    unique tuples   collision rate  largest bucket  level-1 coherence
=========  ======  ==============  ==============  ==============  ====================
movie      plain   942 / 1,682     65.6%           10              0.478 (x1.31 random)
movie      bal.    1,682 / 1,682   0.0%            1               0.478 (x1.31 random)
person     plain   1,968 / 3,937   73.9%           11              0.422 (x1.32 random)
person     bal.    3,937 / 3,937   0.0%            1               0.424 (x1.32 random)
=========  ======  ==============  ==============  ==============  ====================

Balanced is the default: every tuple unique at no cost in level-1 coherence.

**Default shape: the last position ranks, it does not cluster.** :func:`default_shape` uses one
k-means level fewer than it takes to make tuples unique, so each code tuple is a *bucket* of about
``K / 2`` items, and the final (disambiguation) code ranks the items of a bucket by popularity. A
fine content level was the bottleneck of next-item recommendation: a model must learn which of ~26
children of a level-1 code is likely, per code, with a token that means something different under
every parent. On MovieLens-100k (15 CPU minutes) that level ranked the target at median 10.5 of 31
children, below popularity (4); with a popularity-ranked last code the model matched popularity
there and next-item HR@10 went from 0.035 to 0.09, while text -> SID after stage 2 stayed at
hit@10 0.265 (``bench/RESULTS.md``). Explicit ``--levels`` keep the old meaning: M k-means levels.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from neo_sdk.errors import ConfigError, SIDError

logger = logging.getLogger(__name__)

MAX_CODES = 256


def default_shape(n_items: int) -> tuple[int, int]:
    """Default ``(levels M, codes K)`` for a type with ``n_items`` items.

    Rule: take the fewest levels ``L >= 2`` for which ``K = ceil((2 n)^(1/L))``, rounded up to a
    multiple of 8, is at most 256 (so ``K^L`` is about twice the item count), and cap ``K`` at
    ``n``; then use ``M = L - 1`` k-means levels. Items sharing all ``M`` codes form a bucket of
    about ``K / 2`` items that the final code ranks by popularity (module docs). Examples: 300
    items -> (1, 32); 1,682 -> (1, 64); 100k -> (2, 64); 1M -> (2, 128); 10M -> (3, 72).

    Raises:
        SIDError: ``n_items < 1``.
    """
    if n_items < 1:
        raise SIDError("cannot size a quantizer for a type with no items")
    levels = 2
    while True:
        k = math.ceil((2 * n_items) ** (1 / levels) - 1e-9)
        k = max(8, 8 * math.ceil(k / 8))
        if k <= MAX_CODES:
            break
        levels += 1
    return levels - 1, max(1, min(k, n_items))


@dataclass(frozen=True)
class SIDConfig:
    """How Semantic IDs are built.

    Attributes:
        levels: residual levels ``M`` for every type (``None``: :func:`default_shape` per type).
        codes: codes per level ``K`` for every type (``None``: :func:`default_shape` per type).
        per_type: overrides ``{entity_type: (levels | None, codes | None)}``.
        seed: k-means seed; the same seed and embeddings give identical SIDs.
        balanced: capacity-constrained assignment (see module docs) instead of nearest-centroid.
        slack: level capacity factor for balanced mode, ``ceil(slack * n / K)`` items per code.
        niter: k-means iterations per level.
        normalize: L2-normalise embeddings before quantizing.
        collaborative: weight of the collaborative vector appended to each unit text embedding
            (:mod:`neo_sdk.sids._collab`; 0 = content only). Used where the catalog has histories.
        cf_window: co-occurrence window (positions) of the collaborative vectors.
        cf_dim: dimensions of the collaborative vectors.
    """

    levels: int | None = None
    codes: int | None = None
    per_type: Mapping[str, tuple[int | None, int | None]] = field(default_factory=dict)
    seed: int = 0
    balanced: bool = True
    slack: float = 1.5
    niter: int = 25
    normalize: bool = True
    collaborative: float = 0.5
    cf_window: int = 20
    cf_dim: int = 48

    def __post_init__(self) -> None:
        if self.collaborative < 0:
            raise ConfigError(f"collaborative must be >= 0 (0 = content only), got {self.collaborative}")
        if self.cf_window < 1 or self.cf_dim < 1:
            raise ConfigError(f"cf_window and cf_dim must be >= 1, got {self.cf_window} and {self.cf_dim}")
        pairs = [(self.levels, self.codes), *self.per_type.values()]
        for levels, codes in pairs:
            if levels is not None and not 1 <= levels <= 8:
                raise ConfigError(f"levels must be between 1 and 8, got {levels}")
            if codes is not None and not 1 <= codes <= 4096:
                raise ConfigError(f"codes must be between 1 and 4096, got {codes}")
        if self.slack < 1.0:
            raise ConfigError(f"slack must be >= 1.0 (1.0 = perfectly balanced), got {self.slack}")
        if self.niter < 1:
            raise ConfigError(f"niter must be >= 1, got {self.niter}")

    def shape_for(self, entity_type: str, n_items: int) -> tuple[int, int]:
        """``(M, K)`` for a type: per-type override, then global value, then the default rule."""
        lv, cd = self.per_type.get(entity_type, (None, None))
        levels = lv if lv is not None else self.levels
        codes = cd if cd is not None else self.codes
        if levels is None or codes is None:
            d_levels, d_codes = default_shape(n_items)
            levels = levels if levels is not None else d_levels
            codes = codes if codes is not None else d_codes
        return levels, codes

    def to_json(self) -> dict[str, object]:
        return {
            "levels": self.levels, "codes": self.codes,
            "per_type": {k: list(v) for k, v in sorted(self.per_type.items())},
            "seed": self.seed, "balanced": self.balanced, "slack": self.slack,
            "niter": self.niter, "normalize": self.normalize, "collaborative": self.collaborative,
            "cf_window": self.cf_window, "cf_dim": self.cf_dim,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> SIDConfig:
        per_type = {k: (v[0], v[1]) for k, v in dict(data.get("per_type") or {}).items()}  # type: ignore[call-overload]
        kwargs = {k: data[k] for k in ("levels", "codes", "seed", "balanced", "slack", "niter", "normalize",
                                            "collaborative", "cf_window", "cf_dim") if k in data}
        return cls(per_type=per_type, **kwargs)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ResidualQuantizer:
    """Trained centroids of one entity type.

    Attributes:
        centroids: Shape: (M, K, D) float32; level m's codebook for the level-m residual.
        normalize: whether inputs are L2-normalised before quantizing.
    """

    centroids: np.ndarray
    normalize: bool = True

    def __post_init__(self) -> None:
        if self.centroids.ndim != 3 or not np.isfinite(self.centroids).all():
            raise SIDError(f"quantizer centroids must be a finite (M, K, D) array, got {self.centroids.shape}")

    @property
    def levels(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def codes(self) -> int:
        return int(self.centroids.shape[1])

    @property
    def dim(self) -> int:
        return int(self.centroids.shape[2])

    def prepare(self, x: np.ndarray) -> np.ndarray:
        """Validate and (optionally) L2-normalise inputs. Shape: (N, D) -> (N, D) float32."""
        return prepare(x, self.normalize, self.dim)

    def assign(self, x: np.ndarray, *, alternatives: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Nearest-centroid codes for new vectors using the saved centroids (no retraining).

        Args:
            x: vectors. Shape: (N, D).
            alternatives: how many last-level candidates to return, nearest first.

        Returns:
            ``(codes, last)``: codes Shape: (N, M) int32; last Shape: (N, alternatives) int32, the
            nearest last-level codes (``last[:, 0] == codes[:, -1]``).
        """
        r = self.prepare(x)
        n = r.shape[0]
        codes = np.zeros((n, self.levels), dtype=np.int32)
        last = np.zeros((n, max(1, alternatives)), dtype=np.int32)
        for m in range(self.levels):
            dist = sq_dist(r, self.centroids[m])
            if m == self.levels - 1 and alternatives > 1:
                k = min(alternatives, self.codes)
                part = np.argpartition(dist, k - 1, axis=1)[:, :k]
                order = np.argsort(np.take_along_axis(dist, part, 1), axis=1, kind="stable")
                last = np.take_along_axis(part, order, 1).astype(np.int32)
                codes[:, m] = last[:, 0]
            else:
                codes[:, m] = np.argmin(dist, axis=1)
                if m == self.levels - 1:
                    last[:, 0] = codes[:, m]
            r = r - self.centroids[m][codes[:, m]]
        return codes, last


def prepare(x: np.ndarray, normalize: bool, dim: int | None = None) -> np.ndarray:
    """Check finiteness and dimension, then optionally L2-normalise. Shape: (N, D) float32."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise SIDError(f"embeddings must be a 2-D array, got shape {x.shape}")
    if dim is not None and x.shape[1] != dim:
        raise SIDError(
            f"embedding dimension {x.shape[1]} does not match the quantizer's {dim}; use the embedder the"
            " SIDs were built with (see `neo sids report`) or rebuild with `neo sids build`"
        )
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise SIDError(f"{int(bad.sum())} embeddings contain NaN or inf (rows {np.flatnonzero(bad)[:5].tolist()})")
    if normalize:
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        if (norms == 0).any():
            raise SIDError(f"{int((norms == 0).sum())} embeddings are all zeros and cannot be normalised")
        x = x / norms
    return np.ascontiguousarray(x, dtype=np.float32)


def sq_dist(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances. Shape: (N, D), (K, D) -> (N, K)."""
    d: np.ndarray = (x * x).sum(1)[:, None] - 2.0 * (x @ c.T) + (c * c).sum(1)[None, :]
    np.maximum(d, 0.0, out=d)
    return d


def kmeans(x: np.ndarray, k: int, *, seed: int, niter: int) -> np.ndarray:
    """faiss k-means centroids, single-threaded for bit-identical results. Shape: (N, D) -> (K, D)."""
    import faiss

    n, d = x.shape
    if k > n:
        raise SIDError(f"cannot make {k} clusters from {n} vectors")
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        km = faiss.Kmeans(d, k, niter=niter, seed=seed, verbose=False, min_points_per_centroid=1,
                          max_points_per_centroid=100_000)
        km.train(np.ascontiguousarray(x, dtype=np.float32))
        return np.asarray(km.centroids, dtype=np.float32).reshape(k, d).copy()
    finally:
        faiss.omp_set_num_threads(threads)


def capacity_assign(dist: np.ndarray, groups: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """Greedy capacity-constrained assignment, vectorised in rounds.

    Each round every unassigned item proposes its nearest code that still has room in its group;
    per (group, code), the closest proposers are accepted up to the remaining capacity. Repeats until
    every item is placed. If a group has more items than ``K * capacity`` the overflow goes to its
    nearest code regardless (the disambiguation code separates them later).

    Args:
        dist: Shape: (N, K) distances.
        groups: Shape: (N,) int group of each item (0..G-1); capacity applies per (group, code).
        capacity: Shape: (G,) int maximum items per code within each group.

    Returns:
        Shape: (N,) int32 codes.
    """
    n, k = dist.shape
    g = int(groups.max()) + 1 if n else 0
    load = np.zeros((g, k), dtype=np.int64)
    out = np.full(n, -1, dtype=np.int32)
    todo = np.arange(n)
    while todo.size:
        grp = groups[todo]
        full = load[grp] >= capacity[grp][:, None]  # (m, K)
        d = np.where(full, np.inf, dist[todo])
        best = np.argmin(d, axis=1)
        bestd = d[np.arange(todo.size), best]
        stuck = ~np.isfinite(bestd)
        if stuck.any():  # group over capacity everywhere: nearest code, collisions allowed
            idx = todo[stuck]
            out[idx] = np.argmin(dist[idx], axis=1)
            np.add.at(load, (groups[idx], out[idx]), 1)
            todo, grp, best, bestd = todo[~stuck], grp[~stuck], best[~stuck], bestd[~stuck]
            if not todo.size:
                break
        key = grp.astype(np.int64) * k + best
        order = np.lexsort((todo, bestd, key))  # by cell, then distance, then index (stable ties)
        skey = key[order]
        starts = np.r_[0, np.flatnonzero(np.diff(skey)) + 1]
        rank = np.arange(skey.size) - np.repeat(starts, np.diff(np.r_[starts, skey.size]))
        room = capacity[grp[order]] - load[grp[order], best[order]]
        take = order[rank < room]
        out[todo[take]] = best[take]
        np.add.at(load, (grp[take], best[take]), 1)
        placed = np.zeros(todo.size, dtype=bool)
        placed[take] = True
        todo = todo[~placed]
    return out


def prefix_groups(codes: np.ndarray) -> np.ndarray:
    """Group index of each row's code tuple. Shape: (N, m) -> (N,) int64 (all zeros when m == 0)."""
    n, m = codes.shape
    if m == 0 or n == 0:
        return np.zeros(n, dtype=np.int64)
    base = int(codes.max()) + 1
    if codes.min() >= 0 and m * math.log2(max(base, 2)) < 62:  # pack into one int64: a fast 1-D sort
        key = np.zeros(n, dtype=np.int64)
        for j in range(m):
            key = key * base + codes[:, j].astype(np.int64)
        _, inv = np.unique(key, return_inverse=True)
    else:
        _, inv = np.unique(codes, axis=0, return_inverse=True)
    return inv.reshape(-1).astype(np.int64)


def train_residual(
    x: np.ndarray, levels: int, codes: int, *, seed: int, niter: int, balanced: bool,
    slack: float, normalize: bool,
) -> tuple[ResidualQuantizer, np.ndarray]:
    """Train a residual quantizer and assign the training items.

    Args:
        x: embeddings. Shape: (N, D).
        levels: M; codes: K; seed, niter: k-means settings.
        balanced: capacity-constrained assignment (module docs); else nearest centroid.
        slack: capacity factor for levels < M in balanced mode.
        normalize: L2-normalise first.

    Returns:
        ``(quantizer, codes)``; codes Shape: (N, M) int32 (no disambiguation position).

    Raises:
        SIDError: K larger than the item count, non-finite input.
    """
    r = prepare(x, normalize)
    n, d = r.shape
    if codes > n:
        raise SIDError(
            f"{codes} codes per level but only {n} items; use --codes {max(1, n // 4) or 1} or fewer"
        )
    out = np.zeros((n, levels), dtype=np.int32)
    cents = np.zeros((levels, codes, d), dtype=np.float32)
    for m in range(levels):
        c = kmeans(r, codes, seed=seed + m, niter=niter)
        dist = sq_dist(r, c)
        if not balanced:
            a = np.argmin(dist, axis=1).astype(np.int32)
        elif m < levels - 1:
            cap = math.ceil(slack * n / codes)
            a = capacity_assign(dist, np.zeros(n, dtype=np.int64), np.array([cap]))
        else:
            grp = prefix_groups(out[:, :m])
            sizes = np.bincount(grp)
            a = capacity_assign(dist, grp, np.maximum(1, -(-sizes // codes)))
        if balanced:  # centroids = means of what they received (empty codes keep the k-means centroid)
            sums = np.zeros_like(c, dtype=np.float64)
            np.add.at(sums, a, r)
            cnt = np.bincount(a, minlength=codes)
            used = cnt > 0
            c = c.copy()
            c[used] = (sums[used] / cnt[used, None]).astype(np.float32)
        cents[m] = c
        out[:, m] = a
        r = r - c[a]
    return ResidualQuantizer(cents, normalize), out

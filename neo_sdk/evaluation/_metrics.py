"""Ranking metrics for one relevant item per user, over full rankings.

Every metric here is derived from one number per user: the 0-based position of the target in the
ranking the model returned (``-1`` when the target is not in it). Under leave-one-out there is one
relevant item, so

* ``HR@K`` (= Recall@K) is 1 when the target is in the first K positions, else 0;
* ``NDCG@K`` is ``1 / log2(position + 2)`` when the target is in the first K positions, else 0
  (the ideal DCG of a single relevant item is 1, so no normalisation is left to do).

Keeping the per-user ranks (not only means) lets callers compute seed spreads, paired differences
and bootstrap intervals afterwards (:mod:`neo_sdk.evaluation._bootstrap`).

Ties. The metrics read positions in a ranking, never scores, so how tied scores become positions is
the ranker's stated tie-break, applied before scoring: the baselines order by higher score, then
more training interactions, then catalog (item id) order (:func:`neo_sdk.retrieval.top_k`); beam
search orders by log-probability. A target tied with other items is therefore neither credited at
the best tied position nor averaged over the tie: it gets the one position the tie-break gives it.

Edge cases: a user whose ranking is empty (e.g. every item of the type already seen) scores 0; K
larger than the ranking (or the catalog) is allowed, and HR@K is then 1 for every ranked target.

Example:
    >>> ranks = target_ranks([["a", "b", "c"], ["c", "a"]], ["b", "z"])
    >>> ranks.tolist()
    [1, -1]
    >>> summarize(ranks, ks=(1, 5))
    {'HR@1': 0.0, 'HR@5': 0.5, 'NDCG@1': 0.0, 'NDCG@5': 0.31546487678572877}
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence

import numpy as np

from neo_sdk.errors import ConfigError

DEFAULT_KS: tuple[int, ...] = (5, 10, 30)


def target_ranks(rankings: Sequence[Sequence[str]], targets: Sequence[str]) -> np.ndarray:
    """The 0-based position of each target in its ranking, ``-1`` if absent.

    A target listed twice counts at its first position (a ranker cannot gain by repeating it).

    Returns:
        Shape: (n_users,), int64.
    """
    if len(rankings) != len(targets):
        raise ConfigError(f"{len(rankings)} rankings for {len(targets)} targets; pass one per user")
    out = np.full(len(targets), -1, dtype=np.int64)
    for u, (ranking, target) in enumerate(zip(rankings, targets, strict=True)):
        for pos, item in enumerate(ranking):
            if item == target:
                out[u] = pos
                break
    return out


def hit_rate(ranks: np.ndarray, k: int) -> np.ndarray:
    """Per-user HR@K (1.0 / 0.0) from :func:`target_ranks` output. Shape: (n_users,)."""
    _check_k(k)
    ranks = np.asarray(ranks)
    return ((ranks >= 0) & (ranks < k)).astype(np.float64)


def ndcg(ranks: np.ndarray, k: int) -> np.ndarray:
    """Per-user NDCG@K with one relevant item: ``1 / log2(rank + 2)`` inside the top K, else 0."""
    _check_k(k)
    ranks = np.asarray(ranks)
    hit = (ranks >= 0) & (ranks < k)
    gains = np.zeros(ranks.shape, dtype=np.float64)
    gains[hit] = 1.0 / np.log2(ranks[hit].astype(np.float64) + 2.0)
    return gains


def per_user(ranks: np.ndarray, ks: Iterable[int] = DEFAULT_KS) -> dict[str, np.ndarray]:
    """Per-user ``HR@K`` and ``NDCG@K`` arrays for each K, keyed like ``"HR@10"``."""
    out: dict[str, np.ndarray] = {}
    ks = sorted(set(ks))
    for k in ks:
        out[f"HR@{k}"] = hit_rate(ranks, k)
    for k in ks:
        out[f"NDCG@{k}"] = ndcg(ranks, k)
    return out


def summarize(ranks: np.ndarray, ks: Iterable[int] = DEFAULT_KS) -> dict[str, float]:
    """Means over users of :func:`per_user` (0.0 for every metric when there are no users)."""
    return {
        name: float(values.mean()) if values.size else 0.0
        for name, values in per_user(ranks, ks).items()
    }


def invalid_count(
    rankings: Iterable[Sequence[str]], valid_ids: Collection[str]
) -> tuple[int, int]:
    """How many ranked ids are not in ``valid_ids`` (e.g. catalog items of the target type).

    Returns:
        ``(invalid, total)``: invalid ids and all ids returned, summed over rankings.
    """
    invalid = total = 0
    for ranking in rankings:
        total += len(ranking)
        invalid += sum(1 for item in ranking if item not in valid_ids)
    return invalid, total


def rate(count: int, total: int) -> float:
    """``count / total``, 0.0 when there is nothing to count."""
    return count / total if total else 0.0


def seed_spread(
    runs: Sequence[Mapping[str, float]],
) -> dict[str, tuple[float, float]]:
    """Mean and sample standard deviation of each metric over runs (e.g. seeds).

    Args:
        runs: one metrics mapping per run; only metrics present in every run are reported.

    Returns:
        ``{metric: (mean, std)}``; ``std`` is 0.0 for a single run (``ddof=1`` otherwise).
    """
    if not runs:
        return {}
    names = [n for n in runs[0] if all(n in r for r in runs[1:])]
    out: dict[str, tuple[float, float]] = {}
    for name in names:
        values = np.array([r[name] for r in runs], dtype=np.float64)
        std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        out[name] = (float(values.mean()), std)
    return out


def dcg_discount(position: int) -> float:
    """The NDCG gain of a hit at 0-based ``position`` (handy for hand-checked tests)."""
    return 1.0 / math.log2(position + 2)


def _check_k(k: int) -> None:
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"K must be a positive integer, got {k!r}")

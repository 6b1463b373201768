"""The evaluation protocol: rank every item for held-out users and search queries, score, report.

The protocol is the one in ``shared/design/benchmarks.md``: a leave-one-out :class:`Split`
(last interaction = test, second-to-last = validation), **full ranking** over every catalog item of
the target type (no sampled negatives), HR@K and NDCG@K for K in (5, 10, 30), and the invalid-item
rate next to them.

A *ranker* is anything with ``rank(user_id, history, k, exclude) -> list[str]`` (or a plain
callable with that signature). The harness gives it only the user's history before the target
(``split.valid_history`` or ``split.test_history``) and, with ``exclude_seen``, that history as the
set of ids not to return. It never shows the ranker a target. Trained rankers are fitted on
``split.train`` alone (see :mod:`neo_sdk.evaluation._baselines`). A ranker may also offer
``rank_batch(users, histories, k, excludes)`` (and a ``batch_size``): the harness then asks it for
several users at once (a language model decodes a batch in one pass); the results must not depend
on the batching.

The target type is the caller's ``entity_type``, else the ranker's own ``entity_type`` attribute,
else the type users interact with most in the catalog: no type is assumed.

A *retriever* is anything with ``search(query, k) -> list[str]`` (or a callable).

Example:
    >>> split = leave_one_out(catalog, entity_type="movie")
    >>> pop = Popularity.fit(split.train, catalog, entity_type="movie")
    >>> report = evaluate_ranker(pop, split, stage="test", sample_size=None, catalog=catalog)
    >>> round(report.metrics["HR@10"], 4), report.n_users, report.invalid_rate
    (0.0859, 943, 0.0)
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
from tqdm.auto import tqdm

from neo_sdk.catalog import Catalog, Split
from neo_sdk.errors import ConfigError
from neo_sdk.evaluation._baselines import resolve_entity_type
from neo_sdk.evaluation._metrics import (
    DEFAULT_KS,
    invalid_count,
    per_user,
    rate,
    summarize,
    target_ranks,
)

Stage = Literal["valid", "test"]
DEV_SAMPLE_SIZE = 200


@runtime_checkable
class Ranker(Protocol):
    """A recommender under evaluation."""

    def rank(self, user_id: str, history: list[str], k: int, exclude: set[str]) -> list[str]:
        """The ``k`` best item ids for this user, best first, none of them in ``exclude``."""
        ...


@runtime_checkable
class Retriever(Protocol):
    """A search model under evaluation."""

    def search(self, query: str, k: int) -> list[str]:
        """The ``k`` best item ids for a natural-language query, best first."""
        ...


RankFn = Callable[[str, list[str], int, set[str]], list[str]]
SearchFn = Callable[[str, int], list[str]]


@dataclass
class EvalReport:
    """The result of one evaluation run.

    Attributes:
        method: a label for tables and charts (the ranker's ``name`` attribute or class name).
        stage: ``"valid"``, ``"test"`` or ``"search"``.
        metrics: mean ``HR@K`` / ``NDCG@K`` over the evaluated users (or queries).
        n_users: users (or queries) evaluated.
        seconds: wall time of the ranking loop (fitting is not included).
        invalid_rate: share of returned ids that are not catalog items of the target type.
        excluded_rate: share of returned ids that were in the exclude set (seen items).
        users: the evaluated user ids (or query strings), in evaluation order.
        ranks: the target's 0-based position in each returned ranking, ``-1`` when absent.
            Shape: (n_users,).
        ks: the cut-offs reported.
        config: how the run was made (split kind, sample size, seed, k, entity type, ...).
    """

    method: str
    stage: str
    metrics: dict[str, float]
    n_users: int
    seconds: float
    invalid_rate: float
    excluded_rate: float = 0.0
    users: list[str] = field(default_factory=list)
    ranks: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    ks: tuple[int, ...] = DEFAULT_KS
    config: dict[str, Any] = field(default_factory=dict)

    def per_user(self) -> dict[str, np.ndarray]:
        """Per-user metric arrays (same keys as :attr:`metrics`), aligned with :attr:`users`."""
        return per_user(self.ranks, self.ks)

    def to_dict(self, *, include_per_user: bool = False) -> dict[str, Any]:
        """Plain JSON-able data; per-user ids and ranks only when asked (they are long)."""
        out: dict[str, Any] = {
            "method": self.method,
            "stage": self.stage,
            "metrics": {k: round(v, 6) for k, v in self.metrics.items()},
            "n_users": self.n_users,
            "seconds": round(self.seconds, 3),
            "invalid_rate": self.invalid_rate,
            "excluded_rate": self.excluded_rate,
            "ks": list(self.ks),
            "config": self.config,
        }
        if include_per_user:
            out["users"] = list(self.users)
            out["ranks"] = [int(r) for r in self.ranks]
        return out

    def to_json(self, *, include_per_user: bool = False, indent: int | None = 2) -> str:
        """:meth:`to_dict` as sorted JSON."""
        return json.dumps(self.to_dict(include_per_user=include_per_user), indent=indent, sort_keys=True)


def sample_users(
    split: Split, stage: Stage = "valid", sample_size: int | None = DEV_SAMPLE_SIZE, seed: int = 0
) -> list[str]:
    """A fixed sample of the users that have a target in ``stage``, sorted by id.

    The same ``(split, stage, sample_size, seed)`` always gives the same users (Python's
    ``random.Random(seed).sample`` over the sorted ids). ``sample_size=None``, or a size at least
    the number of users, gives all of them.
    """
    candidates = sorted(_targets(split, stage))
    if sample_size is None or sample_size >= len(candidates):
        return candidates
    if sample_size < 1:
        raise ConfigError(f"sample_size must be positive or None (all users), got {sample_size}")
    return sorted(random.Random(seed).sample(candidates, sample_size))


def evaluate_ranker(
    ranker: Ranker | RankFn,
    split: Split,
    *,
    catalog: Catalog,
    stage: Stage = "valid",
    users: Sequence[str] | None = None,
    sample_size: int | None = DEV_SAMPLE_SIZE,
    seed: int = 0,
    k: int = 30,
    ks: Sequence[int] = DEFAULT_KS,
    entity_type: str | None = None,
    exclude_seen: bool = True,
    method: str | None = None,
    progress: bool = True,
) -> EvalReport:
    """Rank for held-out users and score the targets (full ranking, one relevant item).

    Args:
        ranker: an object with ``rank(user_id, history, k, exclude)`` or such a callable.
        split: the split; targets come from ``split.valid`` / ``split.test``, what the ranker
            sees from ``split.valid_history`` / ``split.test_history``.
        catalog: used for the set of valid ids (items of ``entity_type``).
        stage: ``"valid"`` for development, ``"test"`` for reported numbers.
        users: evaluate exactly these users (overrides ``sample_size``).
        sample_size: evaluate a fixed sample of this many users (see :func:`sample_users`);
            ``None`` for all users with a target.
        seed: the sampling seed.
        k: ranking depth asked of the ranker; must be at least the largest of ``ks``.
        ks: the cut-offs reported.
        entity_type: the target type; every target must be an item of it. Default: the
            ranker's ``entity_type`` attribute, else the type users interact with most.
        exclude_seen: pass the history as ``exclude`` (a target already in the history then
            cannot be hit; this never happens in MovieLens, where each movie is rated once).
        method: label for the report; default the ranker's ``name`` or class name.
        progress: show a tqdm bar.

    Returns:
        An :class:`EvalReport`.

    Raises:
        ConfigError: bad ``stage``/``k``/``ks``, unknown users, or a target that is not an item
            of ``entity_type`` (build the split with ``leave_one_out(catalog, entity_type=...)``).
    """
    ks = tuple(sorted(set(ks)))
    if not ks or ks[0] < 1 or k < ks[-1]:
        raise ConfigError(f"k={k} must be at least the largest cut-off in ks={ks}, all positive")
    targets = _targets(split, stage)
    histories = split.valid_history if stage == "valid" else split.test_history
    chosen = list(users) if users is not None else sample_users(split, stage, sample_size, seed)
    missing = [u for u in chosen if u not in targets]
    if missing:
        raise ConfigError(f"users without a {stage} target in this split: {missing[:5]}")
    entity_type = entity_type or getattr(ranker, "entity_type", None) or resolve_entity_type(catalog)
    valid_ids = {item.id for item in catalog.items(entity_type)}
    wrong = [targets[u] for u in chosen if targets[u] not in valid_ids]
    if wrong:
        raise ConfigError(
            f"{len(wrong)} {stage} targets are not {entity_type!r} items (e.g. {wrong[0]!r}); build"
            f" the split with leave_one_out(catalog, entity_type={entity_type!r})"
        )
    rank = _rank_fn(ranker)
    rank_batch = getattr(ranker, "rank_batch", None)
    batch = max(1, int(getattr(ranker, "batch_size", 1))) if callable(rank_batch) else 1
    rankings: list[list[str]] = []
    excluded = 0
    start = time.perf_counter()
    bar = tqdm(total=len(chosen), desc=f"rank {stage}", unit="user", disable=not progress)
    for lo in range(0, len(chosen), batch):
        group = chosen[lo : lo + batch]
        group_histories = [list(histories.get(user, [])) for user in group]  # copies: rankers cannot edit the split
        excludes = [set(h) if exclude_seen else set() for h in group_histories]
        if batch > 1:
            got = rank_batch(group, group_histories, k, [set(e) for e in excludes])  # type: ignore[misc]
        else:
            got = [rank(group[0], group_histories[0], k, set(excludes[0]))]
        for ranking, exclude in zip(got, excludes, strict=True):
            ranking = list(ranking)[:k]
            excluded += sum(1 for item in ranking if item in exclude)
            rankings.append(ranking)
        bar.update(len(group))
    bar.close()
    seconds = time.perf_counter() - start
    ranks = target_ranks(rankings, [targets[u] for u in chosen])
    invalid, total = invalid_count(rankings, valid_ids)
    return EvalReport(
        method=method or _name(ranker),
        stage=stage,
        metrics=summarize(ranks, ks),
        n_users=len(chosen),
        seconds=seconds,
        invalid_rate=rate(invalid, total),
        excluded_rate=rate(excluded, total),
        users=chosen,
        ranks=ranks,
        ks=ks,
        config={
            "split": split.kind,
            "stage": stage,
            "users": "given" if users is not None else ("all" if sample_size is None else "sample"),
            "sample_size": None if users is not None else sample_size,
            "seed": seed,
            "k": k,
            "entity_type": entity_type,
            "exclude_seen": exclude_seen,
            "n_items": len(valid_ids),
        },
    )


def evaluate_search(
    retriever: Retriever | SearchFn,
    queries: Sequence[tuple[str, str]],
    k: int = 30,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    catalog: Catalog | None = None,
    entity_type: str | None = None,
    method: str | None = None,
    progress: bool = True,
) -> EvalReport:
    """Score a retriever on ``(query, target_item_id)`` pairs (full ranking, one target each).

    Args:
        retriever: an object with ``search(query, k)`` or such a callable.
        queries: natural-language queries, each with the one item it should find.
        k: retrieval depth; cut-offs in ``ks`` above ``k`` are dropped.
        ks: the cut-offs reported.
        catalog, entity_type: when both are given, the invalid-item rate counts returned ids
            that are not items of ``entity_type``; otherwise it is reported as 0.
        method: label; default the retriever's ``name`` or class name.
        progress: show a tqdm bar.
    """
    ks = tuple(sorted({c for c in ks if c <= k})) or (k,)
    search = getattr(retriever, "search", retriever)
    if not callable(search):
        raise ConfigError(f"{retriever!r} is not a retriever: it needs search(query, k) -> list[str]")
    rankings: list[list[str]] = []
    start = time.perf_counter()
    for query, _target in tqdm(queries, desc="search", unit="query", disable=not progress):
        rankings.append(list(search(query, k))[:k])
    seconds = time.perf_counter() - start
    ranks = target_ranks(rankings, [t for _, t in queries])
    invalid_rate = 0.0
    if catalog is not None and entity_type is not None:
        valid_ids = {item.id for item in catalog.items(entity_type)}
        invalid_rate = rate(*invalid_count(rankings, valid_ids))
    return EvalReport(
        method=method or _name(retriever),
        stage="search",
        metrics=summarize(ranks, ks),
        n_users=len(queries),
        seconds=seconds,
        invalid_rate=invalid_rate,
        users=[q for q, _ in queries],
        ranks=ranks,
        ks=ks,
        config={"k": k, "entity_type": entity_type, "n_queries": len(queries)},
    )


# ------------------------------------------------------------------------ helpers
def _targets(split: Split, stage: str) -> dict[str, str]:
    if stage == "valid":
        return split.valid
    if stage == "test":
        return split.test
    raise ConfigError(f"stage must be 'valid' or 'test', got {stage!r}")


def _rank_fn(ranker: object) -> RankFn:
    fn = getattr(ranker, "rank", ranker)
    if not callable(fn):
        raise ConfigError(
            f"{ranker!r} is not a ranker: it needs rank(user_id, history, k, exclude) -> list[str]"
        )
    return fn  # type: ignore[no-any-return]


def _name(obj: object) -> str:
    name = getattr(obj, "name", None)
    if isinstance(name, str) and name:
        return name
    return getattr(obj, "__name__", None) or type(obj).__name__

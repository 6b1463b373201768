"""The search measurement (issue 15), shared by ``bench/search.py`` and ``neo eval``.

Four query families built from catalog facts (:func:`query_builder`, ``n`` queries each, seeded):
navigational, descriptive known-item, attribute (scored by precision) and personalised (a user's
held-out validation item described by a category value and its decade, asked with the user's
training history, and again without it). Families a catalog cannot build (too few items, no
category or year facts) are reported as skipped.

Methods: BM25, dense MiniLM, the runtime's hybrid retriever (reciprocal-rank fusion of both),
popularity among the matching items (personalised only; seen items excluded when the history is
known), the collaborative retriever (EASE on the training histories) among them (personalised with
a history), and any loaded runtime (a ``Neo``, duck-typed: ``neo.session(...).ask(text, task="search",
format="ids", k=k)``) whose every returned item is checked (exists, has the type, not seen).
Retrievers do not read histories; on personalised queries the items in the history are dropped
from their answers (the runtime excludes them the same way). A runtime is measured fairly when it
serves :func:`train_only_catalog` (its popularity and collaborative retrieval then count training
interactions only, as the baselines do).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from neo_sdk.evaluation._search import BM25Retriever, DenseRetriever
from neo_sdk.evaluation._search_queries import (
    QueryBuilder,
    SearchQuery,
    popularity_among_matching,
    query_builder,
    query_score,
    unique_share,
)

if TYPE_CHECKING:
    from neo_sdk.catalog import Catalog, Split

#: Table columns: (key, family of the queries, anonymous, label).
COLUMNS = (
    ("navigational", "navigational", False, "nav hit@{k}"),
    ("descriptive", "descriptive", False, "desc hit@{k}"),
    ("attribute", "attribute", False, "attr P@{k}"),
    ("personalised", "personalised", False, "pers hit@{k}"),
    ("personalised_no_history", "personalised", True, "pers-no-history hit@{k}"),
)
POPULARITY = "popularity-among-matching"
COLLABORATIVE = "collaborative-among-matching"

SearchFn = Callable[[SearchQuery, int, bool], list[str]]
Log = Callable[[str], None]


def percentiles(values: Sequence[float], qs: Sequence[float] = (50, 90)) -> dict[str, float | None]:
    """``{"p50": ..., "p90": ...}`` of the values (``None`` when there are none)."""
    import numpy as np

    arr = np.asarray(values, dtype=np.float64)
    return {f"p{q:g}": (float(np.percentile(arr, q)) if arr.size else None) for q in qs}


@dataclass
class SearchRow:
    """One method's results: per column the per-query scores, and per request the latency; for a
    runtime also what it returned (invalid, wrong-type and seen items), failures and examples."""

    method: str
    scores: dict[str, list[float]] = field(default_factory=dict)
    latency_s: list[float] = field(default_factory=list)
    returned: int = 0
    invalid: int = 0
    wrong_type: int = 0
    seen: int = 0
    errors: list[str] = field(default_factory=list)
    reasons: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    runtime_ms: list[float] = field(default_factory=list)

    def mean(self, column: str) -> float | None:
        values = self.scores.get(column)
        return sum(values) / len(values) if values else None

    def rate(self, count: int) -> float:
        return count / self.returned if self.returned else 0.0

    def to_dict(self) -> dict[str, Any]:
        lat = percentiles(self.latency_s)
        out: dict[str, Any] = {
            "method": self.method,
            "metrics": {c: self.mean(c) for c in self.scores},
            "n": {c: len(v) for c, v in self.scores.items()},
            "latency_p50_s": lat["p50"], "latency_p90_s": lat["p90"],
            "per_query": self.scores,
        }
        if self.returned or self.errors or self.runtime_ms:
            out.update({
                "returned": self.returned, "invalid_rate": self.rate(self.invalid),
                "wrong_type_rate": self.rate(self.wrong_type), "seen_rate": self.rate(self.seen),
                "errors": len(self.errors), "error_examples": self.errors[:5],
                "runtime_total_ms": percentiles(self.runtime_ms), "reasons_examples": self.reasons,
            })
        return out


def run_method(method: str, search: SearchFn, queries: Mapping[str, Sequence[SearchQuery]], k: int,
               columns: Sequence[str] | None = None, row: SearchRow | None = None, *, progress: bool = True) -> SearchRow:
    """Ask every query of the chosen columns; score each answer (:func:`query_score`)."""
    row = row or SearchRow(method)
    for key, family, anonymous, _ in COLUMNS:
        if columns is not None and key not in columns:
            continue
        scores = row.scores.setdefault(key, [])
        for query in tqdm(queries.get(family, ()), desc=f"{method} · {key}", unit="query", leave=False,
                          disable=not progress):
            started = time.perf_counter()
            ranked = search(query, k, anonymous)
            row.latency_s.append(time.perf_counter() - started)
            scores.append(query_score(query, ranked, k))
    return row


def retriever_search(retriever: Any) -> SearchFn:
    """A retriever as a search function; on personalised queries with a known history the seen
    items are dropped from the answer (retrieved deeper, so ``k`` items remain)."""

    def search(query: SearchQuery, k: int, anonymous: bool) -> list[str]:
        seen = set() if anonymous else set(query.history)
        ranked = retriever.search(query.text, k + len(seen))
        return [i for i in ranked if i not in seen][:k]

    return search


class PrecomputedDense:
    """A :class:`DenseRetriever` whose query embeddings are encoded once, in batches, up front
    (the same ranking: cosine, ties in catalog order); unknown queries are encoded on the fly."""

    name = "dense-minilm"

    def __init__(self, dense: DenseRetriever, texts: Sequence[str], batch: int = 64, *, progress: bool = True) -> None:
        import numpy as np

        self.dense = dense
        unique = list(dict.fromkeys(texts))
        started = time.perf_counter()
        vectors = [np.asarray(dense.embedder.encode(unique[i:i + batch]), dtype=np.float32)
                   for i in tqdm(range(0, len(unique), batch), desc="embed queries", unit="batch", leave=False,
                                 disable=not progress)]
        matrix = np.concatenate(vectors) if vectors else np.zeros((0, dense.vectors.shape[1]), np.float32)
        matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
        self.queries = dict(zip(unique, matrix, strict=True))
        self.encode_s = (time.perf_counter() - started) / max(len(unique), 1)  # amortised, per query

    def search(self, query: str, k: int) -> list[str]:
        import numpy as np

        q = self.queries.get(query)
        if q is None:
            return self.dense.search(query, k)
        scores = (self.dense.vectors @ q).astype(np.float64)
        order = np.lexsort((np.arange(len(scores)), -scores))[:k]
        return [self.dense.index.ids[i] for i in order]


def neo_search(neo: Any, row: SearchRow, entity_type: str, known: set[str] | frozenset[str]) -> SearchFn:
    """The runtime contract: an in-memory session (with the query's history, or none), ``ask``
    with ``task="search"``; checks every returned item (exists, has the type, not seen)."""

    def search(query: SearchQuery, k: int, anonymous: bool) -> list[str]:
        history = None if anonymous or not query.history else list(query.history)
        try:
            session = neo.session(user=None, history=history, persist=False)
            answer = session.ask(query.text, task="search", format="ids", k=k, entity_type=entity_type)
        except Exception as exc:  # a failed request scores 0 and is reported, the run goes on
            row.errors.append(f"{query.family}{' (no history)' if anonymous else ''}: {query.text!r}: "
                              f"{type(exc).__name__}: {exc}")
            return []
        items = [i for i in answer.items if getattr(i, "role", "answer") == "answer"]
        row.returned += len(items)
        row.invalid += sum(i.id not in known for i in items)
        row.wrong_type += sum(i.type != entity_type for i in items)
        row.seen += sum(i.id in set(history or ()) for i in items)
        if "total_ms" in answer.timings:
            row.runtime_ms.append(float(answer.timings["total_ms"]))
        examples = row.reasons.setdefault(query.family + ("_no_history" if anonymous else ""), [])
        if len(examples) < 3:
            request = answer.request
            examples.append({"query": query.text, "reasons": list(request.reasons),
                             "year_min": getattr(request, "year_min", None),
                             "year_max": getattr(request, "year_max", None),
                             "items": [i.id for i in items][:5]})
        return [i.id for i in items]

    return search


# ------------------------------------------------------------------ the whole measurement
@dataclass
class SearchSetup:
    """The queries of one search measurement and what they were built from.

    Attributes:
        queries: family -> queries (empty for a family the catalog cannot build).
        skipped: family -> why it has no queries.
        known: every catalog item id (a runtime's answers outside it are invalid).
    """

    builder: QueryBuilder
    queries: dict[str, list[SearchQuery]]
    skipped: dict[str, str]
    known: frozenset[str]
    n: int
    seed: int

    @property
    def entity_type(self) -> str:
        return self.builder.entity_type

    @property
    def texts(self) -> list[str]:
        return [q.text for qs in self.queries.values() for q in qs]


def search_setup(catalog: Catalog, split: Split, *, n: int, seed: int = 0,
                 entity_type: str | None = None) -> SearchSetup:
    """Build ``n`` queries per family on ``catalog`` (facts from ``split.train``, personalised
    targets ``split.valid``); a family that yields none is recorded as skipped, with why."""
    builder = query_builder(catalog, split, seed=seed, entity_type=entity_type)
    queries = {
        "navigational": builder.navigational(n),
        "descriptive": builder.descriptive(n),
        "attribute": builder.attribute(n),
        "personalised": builder.personalised(split.valid, split.valid_history or split.train, n),
    }
    skipped = {family: _why_empty(family, builder) for family, qs in queries.items() if not qs}
    return SearchSetup(builder, queries, skipped, frozenset(catalog.item_ids()), n, seed)


def _why_empty(family: str, builder: QueryBuilder) -> str:
    if family == "personalised" and not builder.years:
        return f"the {builder.entity_type} items have no year"
    if family in ("attribute", "personalised") and not builder.category_field:
        return f"the {builder.entity_type} items have no category field"
    reasons = {
        "navigational": "no item has a title to ask for",
        "descriptive": "no item has facts without a title word that narrow the items down to 3 or fewer",
        "attribute": "no stated fact matches at least 10 items",
        "personalised": "no user's validation item has a category value and a year",
    }
    return reasons[family]


def retriever_rows(catalog: Catalog, setup: SearchSetup, k: int, *, progress: bool = True,
                   log: Log | None = None) -> tuple[list[SearchRow], float]:
    """BM25, dense MiniLM (query embeddings encoded up front) and hybrid rows; also the dense
    retriever's amortised query-encoding seconds (not in its latency)."""
    from neo_sdk.retrieval import HybridRetriever

    say: Log = log or (lambda _line: None)
    etype = setup.entity_type
    bm25 = BM25Retriever.from_catalog(catalog, etype)
    say("embedding item texts for the dense retriever (cached when the SIDs were built from them)")
    dense = PrecomputedDense(DenseRetriever.from_catalog(catalog, etype, progress=progress), setup.texts,
                             progress=progress)
    hybrid = HybridRetriever.from_catalog(catalog, etype)  # the runtime's candidates: BM25 + dense, RRF
    rows = []
    for name, retriever in (("bm25", bm25), ("dense-minilm", dense), ("hybrid", hybrid)):
        rows.append(run_method(name, retriever_search(retriever), setup.queries, k, progress=progress))
        say(f"  {name}: done")
    return rows, dense.encode_s


def popularity_row(setup: SearchSetup, k: int, *, progress: bool = True) -> SearchRow:
    """Popularity among the items a personalised query describes (training counts)."""
    popularity = setup.builder.facts.counts
    return run_method(POPULARITY,
                      lambda q, k, anonymous: popularity_among_matching(q, popularity, k, exclude_seen=not anonymous),
                      setup.queries, k, columns=("personalised", "personalised_no_history"), progress=progress)


def collaborative_search(setup: SearchSetup) -> SearchFn:
    """The collaborative retriever (EASE fitted on the training histories) ranking the items a
    personalised query describes, seen excluded; popularity among them fills up an answer when it
    models too few: the runtime's personalised candidates, without the model."""
    from neo_sdk.retrieval import CollaborativeRetriever

    facts = setup.builder.facts
    retriever = CollaborativeRetriever(facts.train)

    def search(query: SearchQuery, k: int, anonymous: bool) -> list[str]:
        seen = set(query.history)
        popular = popularity_among_matching(query, facts.counts, k)
        allowed = [i for i in query.matching if i not in seen]
        return retriever.rank(query.history, k, allowed=allowed, fill=popular) or popular

    return search


def collaborative_row(setup: SearchSetup, k: int, *, progress: bool = True) -> SearchRow:
    """:func:`collaborative_search` on the personalised queries asked with a history."""
    return run_method(COLLABORATIVE, collaborative_search(setup), setup.queries, k, columns=("personalised",),
                      progress=progress)


@contextmanager
def train_only_catalog(catalog: Catalog, split: Split) -> Iterator[Path]:
    """The path of a throwaway copy of ``catalog`` without ``split``'s validation and test
    interactions: the catalog a runtime serves while it is measured on them."""
    with tempfile.TemporaryDirectory(prefix="neo-train-only-") as folder:
        path = Path(folder) / "train_only.db"
        catalog.copy_without(split.held_out(), path).close()
        yield path


def runtime_row(label: str, neo: Any, setup: SearchSetup, k: int, *, progress: bool = True) -> SearchRow:
    """Every query asked of a loaded runtime (:func:`neo_search`)."""
    row = SearchRow(label)
    return run_method(label, neo_search(neo, row, setup.entity_type, setup.known), setup.queries, k, row=row,
                      progress=progress)


def search_table(rows: Sequence[SearchRow], k: int) -> str:
    """A markdown table: one row per method, a column per measure and the p50 seconds per request."""
    labels = [label.format(k=k) for *_, label in COLUMNS]
    lines = ["| method | " + " | ".join(labels) + " | p50 s |", "|---|" + "---|" * (len(labels) + 1)]
    for row in rows:
        cells = ["–" if (v := row.mean(key)) is None else f"{v:.3f}" for key, *_ in COLUMNS]
        p50 = percentiles(row.latency_s)["p50"]
        lines.append(f"| {row.method} | " + " | ".join(cells) + f" | {'–' if p50 is None else f'{p50:.4f}'} |")
    return "\n".join(lines)


def personalised_ratio(row: SearchRow, rows: Sequence[SearchRow]) -> float | None:
    """``row``'s personalised hit@k over popularity-among-matching's (``None`` when either is missing or 0)."""
    pop = next((r.mean("personalised") for r in rows if r.method == POPULARITY), None)
    mine = row.mean("personalised")
    return mine / pop if mine is not None and pop else None


def search_summary(setup: SearchSetup, rows: Sequence[SearchRow], k: int, *, runtimes: Sequence[str] = (),
                   dense_encode_s: float | None = None) -> dict[str, Any]:
    """The JSON-able result: every row, the queries per family (and skipped ones), the runtimes'
    personalised hit@k over popularity-among-matching, and the markdown table."""
    return {
        "entity_type": setup.entity_type, "items": len(setup.builder.ids), "k": k, "n": setup.n, "seed": setup.seed,
        "queries": {family: len(qs) for family, qs in setup.queries.items()}, "skipped": setup.skipped,
        "descriptive_unique_share": unique_share(setup.queries["descriptive"]),
        "dense_query_encode_ms_amortised": None if dense_encode_s is None else 1000 * dense_encode_s,
        "runtimes": list(runtimes),
        "neo_personalised_over_popularity": {r.method: personalised_ratio(r, rows) for r in rows
                                             if r.method in runtimes},
        "rows": {r.method: r.to_dict() for r in rows}, "table": search_table(rows, k),
    }


def measure_search(catalog: Catalog, split: Split, runtimes: Mapping[str, Any] | None = None, *, n: int = 50,
                   seed: int = 0, k: int = 10, entity_type: str | None = None, with_retrievers: bool = True,
                   progress: bool = False, log: Log | None = None) -> dict[str, Any]:
    """Measure search on ``catalog`` (module docstring): :func:`search_summary` of every row.

    Args:
        split: the leave-one-out split of ``entity_type`` (facts from ``split.train``).
        runtimes: label -> loaded runtime (a ``Neo``), e.g. ``{"neo": neo}``; each gets a row.
        n: queries per family.
        k: answer length scored (hit@k, P@k).
        entity_type: the type searched (default: the most interacted).
        with_retrievers: add the BM25, dense and hybrid rows (MiniLM; item vectors from the cache).
        log: receives one line per step.
    """
    say: Log = log or (lambda _line: None)
    started = time.perf_counter()
    setup = search_setup(catalog, split, n=n, seed=seed, entity_type=entity_type)
    say(f"search: {setup.entity_type}, queries " + ", ".join(f"{f} {len(q)}" for f, q in setup.queries.items()))
    rows: list[SearchRow] = []
    for label, neo in (runtimes or {}).items():
        rows.append(runtime_row(label, neo, setup, k, progress=progress))
        say(f"  {label}: done ({len(rows[-1].errors)} failed requests)")
    encode_s = None
    if with_retrievers:
        retrievers, encode_s = retriever_rows(catalog, setup, k, progress=progress, log=say)
        rows += retrievers
    rows.append(popularity_row(setup, k, progress=progress))
    rows.append(collaborative_row(setup, k, progress=progress))
    result = search_summary(setup, rows, k, runtimes=list(runtimes or {}), dense_encode_s=encode_s)
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result

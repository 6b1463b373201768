"""Search benchmark (issue 15): four query families built from catalog facts, every method in one run.

Families (``neo_sdk.evaluation.build_search_queries``, ``--n`` queries each, seeded):
navigational (the title as typed), descriptive known-item (2-3 facts, no title word), attribute
(stated facts with >= 10 matching items, scored by precision: the share of returned items that
satisfy every fact) and personalised (a user's held-out validation item described by a category
value and its decade, asked with the user's training history). The personalised family is also
asked without history (an anonymous visitor), next to popularity among the matching items.

Methods: BM25, dense MiniLM, the runtime's hybrid retriever (``neo_sdk.retrieval.HybridRetriever``:
reciprocal-rank fusion of both, constant 60, query encoded per request), popularity among the
matching items (personalised only; seen items excluded when the history is known), and with
``--bundle`` the model through the runtime: "neo" (``Neo.load(...)``, the full search path) and
"model alone" (``Neo.load(..., retrieval=False)``: no retriever candidates, no filters from stated
facts). Retrievers do not read histories; on personalised queries the items in the history are
dropped from their answers (the runtime excludes them the same way).

Prints a table (hit@10 / P@10 per family, p50 seconds per request), the ratio of neo's personalised
hit@10 to popularity-among-matching, the model rows' invalid-item and wrong-type rates, and writes
JSON (``--json``) and a bar chart (``--png``).

Usage: python bench/search.py --db CATALOG [--bundle DIR] [--n 200] [--seed 0] [--k 10]
       [--type movie] [--json OUT] [--png OUT] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tqdm.auto import tqdm

from neo_sdk.catalog import Catalog, leave_one_out
from neo_sdk.evaluation import (
    BM25Retriever,
    DenseRetriever,
    SearchQuery,
    popularity_among_matching,
    query_builder,
    query_score,
    resolve_entity_type,
    unique_share,
)
from neo_sdk.retrieval import HybridRetriever

# table columns: (key, family of the queries, anonymous, label)
COLUMNS = (
    ("navigational", "navigational", False, "nav hit@{k}"),
    ("descriptive", "descriptive", False, "desc hit@{k}"),
    ("attribute", "attribute", False, "attr P@{k}"),
    ("personalised", "personalised", False, "pers hit@{k}"),
    ("personalised_no_history", "personalised", True, "pers-no-history hit@{k}"),
)


@dataclass
class Row:
    """One method's results: per column the per-query scores, and per request the latency."""

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
                "returned": self.returned,
                "invalid_rate": self.invalid / self.returned if self.returned else 0.0,
                "wrong_type_rate": self.wrong_type / self.returned if self.returned else 0.0,
                "seen_rate": self.seen / self.returned if self.returned else 0.0,
                "errors": len(self.errors), "error_examples": self.errors[:5],
                "runtime_total_ms": percentiles(self.runtime_ms), "reasons_examples": self.reasons,
            })
        return out


def percentiles(values: Sequence[float], qs: Sequence[float] = (50, 90)) -> dict[str, float]:
    """``{"p50": ..., "p90": ...}`` of the values (NaN when there are none)."""
    import numpy as np

    arr = np.asarray(values, dtype=np.float64)
    return {f"p{q:g}": (float(np.percentile(arr, q)) if arr.size else float("nan")) for q in qs}


SearchFn = Callable[[SearchQuery, int, bool], list[str]]


def run_method(method: str, search: SearchFn, queries: dict[str, list[SearchQuery]], k: int,
               columns: Sequence[str] | None = None, row: Row | None = None) -> Row:
    """Ask every query of the chosen columns; score each answer (:func:`query_score`)."""
    row = row or Row(method)
    for key, family, anonymous, _ in COLUMNS:
        if columns is not None and key not in columns:
            continue
        scores = row.scores.setdefault(key, [])
        for query in tqdm(queries[family], desc=f"{method} · {key}", unit="query", leave=False):
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

    def __init__(self, dense: DenseRetriever, texts: Sequence[str], batch: int = 64) -> None:
        import numpy as np

        self.dense = dense
        unique = list(dict.fromkeys(texts))
        started = time.perf_counter()
        vectors = [np.asarray(dense.embedder.encode(unique[i:i + batch]), dtype=np.float32)
                   for i in tqdm(range(0, len(unique), batch), desc="embed queries", unit="batch", leave=False)]
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


def neo_search(neo: Any, row: Row, entity_type: str, known: set[str]) -> SearchFn:
    """The runtime contract: an in-memory session (with the query's history, or none), ``ask``
    with ``task="search"``; checks every returned item (exists, has the type, not seen)."""

    def search(query: SearchQuery, k: int, anonymous: bool) -> list[str]:
        history = None if anonymous or not query.history else list(query.history)
        try:
            session = neo.session(user=None, history=history, persist=False)
            answer = session.ask(query.text, task="search", format="ids", k=k)
        except Exception as exc:
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
        key = query.family + ("_no_history" if anonymous else "")
        examples = row.reasons.setdefault(key, [])
        if len(examples) < 3:
            request = answer.request
            examples.append({"query": query.text, "reasons": list(request.reasons),
                             "year_min": getattr(request, "year_min", None),
                             "year_max": getattr(request, "year_max", None),
                             "items": [i.id for i in items][:5]})
        return [i.id for i in items]

    return search


def load_neo(bundle: Path, db: Path, *, model_alone: bool) -> tuple[Any | None, str]:
    """``Neo.load`` per the runtime contract; ``(None, why)`` when the runtime cannot do it yet."""
    try:
        from neo_sdk import Neo
    except ImportError as exc:
        return None, f"neo_sdk.Neo is not importable ({exc})"
    kwargs: dict[str, Any] = {"catalog": str(db), "sessions": ":memory:"}
    if model_alone:
        kwargs["retrieval"] = False
    try:
        return Neo.load(bundle, **kwargs), ""
    except TypeError as exc:
        if model_alone and "retrieval" in str(exc):
            return None, "Neo.load has no retrieval= option yet (the runtime contract's model-alone switch)"
        return None, f"Neo.load failed: {type(exc).__name__}: {exc}"
    except Exception as exc:
        return None, f"Neo.load failed: {type(exc).__name__}: {exc}"


def print_table(rows: list[Row], k: int) -> str:
    labels = [label.format(k=k) for *_, label in COLUMNS]
    lines = ["| method | " + " | ".join(labels) + " | p50 s |",
             "|---|" + "---|" * (len(labels) + 1)]
    for row in rows:
        cells = []
        for key, *_ in COLUMNS:
            value = row.mean(key)
            cells.append("–" if value is None else f"{value:.3f}")
        p50 = percentiles(row.latency_s)["p50"]
        lines.append(f"| {row.method} | " + " | ".join(cells) + f" | {p50:.4f} |")
    table = "\n".join(lines)
    print(table)
    return table


def save_png(rows: list[Row], path: Path, k: int, title: str) -> Path:
    """Grouped bars: one group per measure (family), one bar per method."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels = [label.format(k=k) for *_, label in COLUMNS]
    fig = Figure(figsize=(10, 4.8), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    width = 0.8 / max(len(rows), 1)
    x = np.arange(len(COLUMNS))
    for j, row in enumerate(rows):
        values = [row.mean(key) for key, *_ in COLUMNS]
        heights = [v if v is not None else 0.0 for v in values]
        bars = ax.bar(x + (j - (len(rows) - 1) / 2) * width, heights, width, label=row.method)
        ax.bar_label(bars, labels=["" if v is None else f"{v:.2f}" for v in values], fontsize=6, padding=1)
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_xlabel("query family (measure)")
    ax.set_ylabel("score (hit@k or precision@k)")
    ax.set_ylim(0, 1.25)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, ncols=min(len(rows), 3), loc="upper right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, required=True, help="catalog database")
    parser.add_argument("--bundle", type=Path, default=None, help="trained bundle: adds the neo and model-alone rows")
    parser.add_argument("--n", type=int, default=200, help="queries per family")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--k", type=int, default=10, help="answer length scored (hit@k, P@k)")
    parser.add_argument("--type", default=None, help="entity type searched (default: the most interacted)")
    parser.add_argument("--json", type=Path, default=None, help="write the results as JSON")
    parser.add_argument("--png", type=Path, default=None, help="write a bar chart")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)

    if not args.db.exists():
        parser.error(f"no catalog at {args.db}")
    model_rows = "neo, model alone" if args.bundle else "no model rows (pass --bundle DIR)"
    print(f"search bench: 4 query families x {args.n} (seed {args.seed}) on {args.db}; methods: bm25, "
          f"dense-minilm, hybrid, popularity-among-matching (personalised); {model_rows}", flush=True)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    catalog = Catalog(args.db)
    entity_type = resolve_entity_type(catalog, args.type)
    split = leave_one_out(catalog, entity_type=entity_type)
    builder = query_builder(catalog, split, seed=args.seed, entity_type=entity_type)
    queries = {
        "navigational": builder.navigational(args.n),
        "descriptive": builder.descriptive(args.n),
        "attribute": builder.attribute(args.n),
        "personalised": builder.personalised(split.valid, split.valid_history or split.train, args.n),
    }
    known = set(catalog.item_ids())
    print(f"{entity_type}: {len(builder.ids)} items, {len(split.valid)} users with a validation item; queries: "
          + ", ".join(f"{f} {len(q)}" for f, q in queries.items())
          + f"; descriptive with one answer: {unique_share(queries['descriptive']):.3f}", flush=True)
    for family, qs in queries.items():
        examples = " | ".join(repr(q.text) for q in qs[:3]) or "(none: too few items match)"
        print(f"  e.g. {family}: {examples}")

    rows: list[Row] = []
    bm25 = BM25Retriever.from_catalog(catalog, entity_type)
    print("embedding item texts for the dense retriever...", flush=True)
    dense = PrecomputedDense(DenseRetriever.from_catalog(catalog, entity_type, progress=True),
                             [q.text for qs in queries.values() for q in qs])
    print(f"dense query embeddings encoded up front in batches: {1000 * dense.encode_s:.1f} ms/query amortised"
          " (not in the dense p50)", flush=True)
    hybrid = HybridRetriever.from_catalog(catalog, entity_type)  # the runtime's candidates: BM25 + dense, RRF
    for name, retriever in (("bm25", bm25), ("dense-minilm", dense), ("hybrid", hybrid)):
        rows.append(run_method(name, retriever_search(retriever), queries, args.k))
        print(f"  {name}: done", flush=True)
    popularity = builder.facts.counts
    rows.append(run_method(
        "popularity-among-matching",
        lambda q, k, anonymous: popularity_among_matching(q, popularity, k, exclude_seen=not anonymous),
        queries, args.k, columns=("personalised", "personalised_no_history")))

    notes: list[str] = []
    if args.bundle is not None:
        for label, alone in (("neo", False), ("model alone", True)):
            neo, why = load_neo(args.bundle, args.db, model_alone=alone)
            if neo is None:
                notes.append(f"{label}: skipped: {why}")
                print(f"  {label}: skipped: {why}", flush=True)
                continue
            row = Row(label)
            try:
                run_method(label, neo_search(neo, row, entity_type, known), queries, args.k, row=row)
            finally:
                neo.close()
            rows.append(row)
            print(f"  {label}: done ({len(row.errors)} failed requests)", flush=True)

    total = time.perf_counter() - started
    command = "python " + " ".join(shlex.quote(a) for a in (sys.argv if argv is None else ["bench/search.py", *argv]))
    machine = f"{platform.machine()}, {os.cpu_count()} CPU cores"
    print(f"\ncommand: {command}\nmachine: {machine}\ntotal: {total:.0f}s\n")
    table = print_table(rows, args.k)
    by_name = {row.method: row for row in rows}
    pop = by_name["popularity-among-matching"].mean("personalised")
    ratios: dict[str, float | None] = {}
    for row in rows:
        if row.method in ("neo", "model alone"):
            mine = row.mean("personalised")
            ratios[row.method] = mine / pop if mine is not None and pop else None
            d = row.to_dict()
            lat = percentiles(row.latency_s)
            print(f"{row.method}: pers hit@{args.k} / popularity-among-matching = "
                  f"{'–' if ratios[row.method] is None else f'{ratios[row.method]:.2f}'}x; "
                  f"invalid {d['invalid_rate']:.4f}, wrong type {d['wrong_type_rate']:.4f}, "
                  f"seen {d['seen_rate']:.4f} of {row.returned} items; failed requests {len(row.errors)}; "
                  f"latency p50 {lat['p50']:.3f}s p90 {lat['p90']:.3f}s")
            for error in row.errors[:3]:
                print(f"   error: {error}")
    if args.bundle is None:
        print("model rows: not run (no --bundle)")
    for note in notes:
        print(note)

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "command": command, "machine": machine, "seconds": round(total, 1), "catalog": str(args.db),
            "bundle": str(args.bundle) if args.bundle else None, "entity_type": entity_type, "k": args.k,
            "n": args.n, "seed": args.seed, "notes": notes, "table": table,
            "dense_query_encode_ms_amortised": 1000 * dense.encode_s,
            "descriptive_unique_share": unique_share(queries["descriptive"]),
            "neo_personalised_over_popularity": ratios,
            "rows": {row.method: row.to_dict() for row in rows},
            "queries": {f: [q.to_dict() for q in qs] for f, qs in queries.items()},
        }, indent=1, ensure_ascii=False))
        print(f"wrote {args.json}")
    if args.png:
        title = (f"Search on {args.db.name} ({entity_type}): {args.n} queries per family, seed {args.seed}"
                 + ("" if args.bundle else ", retrievers only"))
        print(f"wrote {save_png(rows, args.png, args.k, title)}")
    catalog.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

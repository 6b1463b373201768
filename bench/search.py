"""Search benchmark (issue 15): four query families built from catalog facts, every method in one run.

Families (``neo_sdk.evaluation.build_search_queries``, ``--n`` queries each, seeded):
navigational (the title as typed), descriptive known-item (2-3 facts, no title word), attribute
(stated facts with >= 10 matching items, scored by precision: the share of returned items that
satisfy every fact) and personalised (a user's held-out validation item described by a category
value and its decade, asked with the user's training history). The personalised family is also
asked without history (an anonymous visitor), next to popularity among the matching items.

Methods: BM25, dense MiniLM, the runtime's hybrid retriever (``neo_sdk.retrieval.HybridRetriever``:
reciprocal-rank fusion of both, constant 60, query encoded per request), popularity among the
matching items (personalised only; seen items excluded when the history is known), the
collaborative retriever among them (EASE on the training histories; personalised with a history),
and with ``--bundle`` the model through the runtime: "neo" (``Neo.load(...)``, the full search path)
and "model alone" (``Neo.load(..., retrieval=False)``: no retriever candidates, no filters from
stated facts). The runtimes serve a copy of the catalog without the validation and test
interactions, so their popularity and collaborative retrieval count what the baselines count.
Retrievers do not read histories; on personalised queries the items in the history are dropped
from their answers (the runtime excludes them the same way).

Prints a table (hit@10 / P@10 per family, p50 seconds per request), the ratio of neo's personalised
hit@10 to popularity-among-matching, the model rows' invalid-item and wrong-type rates, and writes
JSON (``--json``) and a bar chart (``--png``). The measurement is the library's
(``neo_sdk.evaluation``: ``search_setup``, ``retriever_rows``, ``runtime_row``, ``search_summary``,
``plot_search``), the same code ``neo eval --search N`` runs.

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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from neo_sdk.catalog import Catalog, leave_one_out
from neo_sdk.evaluation import (
    SearchRow,
    SearchSetup,
    collaborative_row,
    neo_search,
    plot_search,
    popularity_row,
    resolve_entity_type,
    retriever_rows,
    runtime_row,
    search_setup,
    search_summary,
    train_only_catalog,
    unique_share,
)

Row = SearchRow  # the names tests/test_search_queries.py reads from this script
__all__ = ["Row", "main", "neo_search"]


def model_rows(bundle: Path, db: Path, setup: SearchSetup, k: int) -> list[SearchRow]:
    """The neo and model-alone (``retrieval=False``) rows, one runtime loaded at a time."""
    from neo_sdk import Neo

    rows = []
    for label, retrieval in (("neo", True), ("model alone", False)):
        with Neo.load(bundle, catalog=db, sessions=":memory:", retrieval=retrieval) as neo:
            rows.append(runtime_row(label, neo, setup, k))
        print(f"  {label}: done ({len(rows[-1].errors)} failed requests)", flush=True)
    return rows


def print_runtime(method: str, result: dict[str, Any]) -> None:
    row, k = result["rows"][method], result["k"]
    ratio = result["neo_personalised_over_popularity"][method]
    p50, p90 = row["latency_p50_s"], row["latency_p90_s"]
    print(f"{method}: pers hit@{k} / popularity-among-matching = {'–' if ratio is None else f'{ratio:.2f}'}x; "
          f"invalid {row.get('invalid_rate', 0.0):.4f}, wrong type {row.get('wrong_type_rate', 0.0):.4f}, "
          f"seen {row.get('seen_rate', 0.0):.4f} of {row.get('returned', 0)} items; failed requests "
          f"{row.get('errors', 0)}; latency p50 {p50 or float('nan'):.3f}s p90 {p90 or float('nan'):.3f}s")
    for error in row.get("error_examples", [])[:3]:
        print(f"   error: {error}")


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
    runtimes = "neo, model alone" if args.bundle else "no model rows (pass --bundle DIR)"
    print(f"search bench: 4 query families x {args.n} (seed {args.seed}) on {args.db}; methods: bm25, "
          f"dense-minilm, hybrid, popularity- and collaborative-among-matching (personalised); {runtimes}", flush=True)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    catalog = Catalog(args.db)
    entity_type = resolve_entity_type(catalog, args.type)
    split = leave_one_out(catalog, entity_type=entity_type)
    setup = search_setup(catalog, split, n=args.n, seed=args.seed, entity_type=entity_type)
    descriptive = unique_share(setup.queries["descriptive"])
    print(f"{entity_type}: {len(setup.builder.ids)} items, {len(split.valid)} users with a validation item; queries: "
          + ", ".join(f"{f} {len(q)}" for f, q in setup.queries.items())
          + f"; descriptive with one answer: {descriptive:.3f}", flush=True)
    for family, qs in setup.queries.items():
        examples = " | ".join(repr(q.text) for q in qs[:3]) or f"(none: {setup.skipped[family]})"
        print(f"  e.g. {family}: {examples}")

    rows, encode_s = retriever_rows(catalog, setup, args.k, log=lambda line: print(line, flush=True))
    print(f"dense query embeddings encoded up front in batches: {1000 * encode_s:.1f} ms/query amortised"
          " (not in the dense p50)", flush=True)
    rows.append(popularity_row(setup, args.k))
    rows.append(collaborative_row(setup, args.k))
    if args.bundle is not None:
        print("the runtimes serve a copy of the catalog without the validation and test interactions", flush=True)
        with train_only_catalog(catalog, split) as served:
            rows += model_rows(args.bundle, served, setup, args.k)
    result = search_summary(setup, rows, args.k, runtimes=[r.method for r in rows if r.method in ("neo", "model alone")],
                            dense_encode_s=encode_s)

    total = time.perf_counter() - started
    command = "python " + " ".join(shlex.quote(a) for a in (sys.argv if argv is None else ["bench/search.py", *argv]))
    machine = f"{platform.machine()}, {os.cpu_count()} CPU cores"
    print(f"\ncommand: {command}\nmachine: {machine}\ntotal: {total:.0f}s\n")
    print(result["table"])
    for method in result["runtimes"]:
        print_runtime(method, result)
    if args.bundle is None:
        print("model rows: not run (no --bundle)")

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "command": command, "machine": machine, "seconds": round(total, 1), "catalog": str(args.db),
            "bundle": str(args.bundle) if args.bundle else None, **result,
            "queries": {f: [q.to_dict() for q in qs] for f, qs in setup.queries.items()},
        }, indent=1, ensure_ascii=False))
        print(f"wrote {args.json}")
    if args.png:
        title = (f"Search on {args.db.name} ({entity_type}): {args.n} queries per family, seed {args.seed}"
                 + ("" if args.bundle else ", retrievers only"))
        print(f"wrote {plot_search(result, args.png, title)}")
    catalog.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Personalised search signals (issue 15): what orders items by taste inside the stated facts?

For the personalised queries of ``bench/search.py`` (a user's validation item described by a
category value and its decade, asked with the training history) it compares, inside the items the
request's facts allow: popularity, the model's constrained ranking with the history, item
co-occurrence with the history, and their reciprocal-rank fusions; then the same queries asked by
an anonymous visitor through ``Session.ask``. ``--train-only`` loads the bundle on a copy of the
catalog without the validation and test interactions, so served popularity and co-occurrence see
training interactions only (the fair setting); without it the runtime sees every interaction.

Usage: python bench/personalised_signals.py --db demo/catalog.db --bundle demo/bundle [--n 150] [--train-only]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import tempfile
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
from tqdm.auto import tqdm

from neo_sdk import Neo
from neo_sdk.catalog import Catalog, leave_one_out
from neo_sdk.decoding import beam_search_items
from neo_sdk.evaluation import popularity_among_matching, query_builder
from neo_sdk.retrieval import reciprocal_rank_fusion


def train_only_copy(db: Path, held_out: list[tuple[str, str]], folder: Path) -> Path:
    """A copy of the catalog without the held-out (user, item) interactions (a benchmark's fixture:
    raw SQL on a throwaway copy, never on a user's catalog)."""
    copy = folder / "train_only.db"
    shutil.copy(db, copy)
    with sqlite3.connect(copy) as conn:
        conn.executemany("DELETE FROM interactions WHERE user_id=? AND item_id=?", held_out)
    return copy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--n", type=int, default=150)
    parser.add_argument("--train-only", action="store_true")
    args = parser.parse_args()
    catalog = Catalog(args.db)
    etype = next(iter(catalog.interacted_types()))
    split = leave_one_out(catalog, entity_type=etype)
    builder = query_builder(catalog, split, seed=0, entity_type=etype)
    queries = builder.personalised(split.valid, split.train, args.n)
    print(f"{len(queries)} personalised queries ({etype}), {'train-only' if args.train_only else 'full'} catalog")
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db
        if args.train_only:
            db = train_only_copy(args.db, [(u, i) for part in (split.valid, split.test) for u, i in part.items()],
                                 Path(tmp))
        neo = Neo.load(args.bundle, catalog=db, sessions=":memory:")
        hits: dict[str, list[bool]] = defaultdict(list)
        started = time.perf_counter()
        for q in tqdm(queries, desc="personalised", unit="query"):
            history = list(q.history)
            session = neo.session(history=history, persist=False)
            request = session.resolve(q.text, task="search", format="ids", k=10)
            flt = neo.responder.item_filter(request, session.excluded(request))
            positions = np.flatnonzero(flt.allowed)
            allowed = [neo.responder.ids[p] for p in positions]
            beams = min(20, len(allowed))
            prompt_request = request.model_copy(update={"task": "next_item", "k": beams})
            prompt = neo.encoder.prompt_ids(neo.prompt_text(prompt_request, history, None))
            model = [s.item_id for s in beam_search_items(
                neo.model, [prompt], neo.trie, neo.tokens, k=beams, num_beams=beams, filters=flt,
                pad_token_id=neo.encoder.end_id)[0]]
            popular = [neo.responder.ids[p] for p in positions[np.argsort(-neo.responder.popularity[positions],
                                                                           kind="stable")[:20]]]
            score: dict[str, float] = defaultdict(float)
            for h in history[-20:]:
                for other, sim in neo.facts.cooccurring(h)[:300]:
                    score[other] += sim if other in set(allowed) else 0.0
            knn = [i for i in sorted(score, key=lambda i: -score[i]) if score[i] > 0][:20]
            decoded = set(model)
            lists = {
                "popularity among matching (benchmark baseline)": popularity_among_matching(
                    q, builder.facts.counts, 10),
                "model inside the facts": model,
                "co-occurrence with the history": knn,
                "RRF(model, popularity of decoded) = runtime": reciprocal_rank_fusion(
                    [model, [i for i in popular if i in decoded]]),
                "RRF(model, popularity, co-occurrence)": reciprocal_rank_fusion([model, popular, knn]),
            }
            for name, ranked in lists.items():
                hits[name].append(q.target in ranked[:10])
            visitor = neo.session(persist=False).ask(q.text, task="search", format="ids", k=10)
            hits["visitor (Session.ask, no history)"].append(q.target in [i.id for i in visitor.items])
            hits["popularity among matching, seen kept (visitor baseline)"].append(
                q.target in popularity_among_matching(q, builder.facts.counts, 10, exclude_seen=False))
        neo.close()
    print(f"{time.perf_counter() - started:.0f} s")
    for name, values in hits.items():
        print(f"{name:<58} hit@10 {np.mean(values):.3f}")


if __name__ == "__main__":
    main()

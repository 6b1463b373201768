"""Personalised search signals (issue 15): what orders items by taste inside the stated facts?

For the personalised queries of ``bench/search.py`` (a user's validation item described by a
category value and its decade, asked with the training history) it compares, inside the items the
request's facts allow: popularity, the model's constrained ranking with the history (beam search
over every allowed item), item co-occurrence with the history, the collaborative retriever (EASE,
the runtime's personalised candidates), reciprocal-rank fusions of them, and the runtime itself
(``Session.ask``); then the same queries asked by an anonymous visitor. The runtime serves a copy
of the catalog without the validation and test interactions (``train_only_catalog``), so its
popularity, co-occurrence and collaborative retrieval count training interactions only.

Usage: python bench/personalised_signals.py --db demo/catalog.db --bundle demo/bundle [--n 200]
"""

from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
from tqdm.auto import tqdm

from neo_sdk import Neo
from neo_sdk.catalog import Catalog, leave_one_out
from neo_sdk.decoding import beam_search_items
from neo_sdk.evaluation import popularity_among_matching, query_builder, train_only_catalog
from neo_sdk.retrieval import reciprocal_rank_fusion
from neo_sdk.session._decode import CANDIDATE_WEIGHT, SEARCH_CANDIDATES

MODEL_BEAMS = 100  # the model's order over (up to) this many allowed items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--n", type=int, default=200)
    args = parser.parse_args()
    catalog = Catalog(args.db)
    etype = next(iter(catalog.interacted_types()))
    split = leave_one_out(catalog, entity_type=etype)
    builder = query_builder(catalog, split, seed=0, entity_type=etype)
    queries = builder.personalised(split.valid, split.train, args.n)
    print(f"{len(queries)} personalised queries ({etype}); the runtime serves the training interactions only")
    hits: dict[str, list[bool]] = defaultdict(list)
    started = time.perf_counter()
    with train_only_catalog(catalog, split) as served, Neo.load(args.bundle, catalog=served, sessions=":memory:") as neo:
        responder = neo.responder
        for q in tqdm(queries, desc="personalised", unit="query"):
            history = list(q.history)
            session = neo.session(history=history, persist=False)
            request = session.resolve(q.text, task="search", format="ids", k=10)
            flt = responder.item_filter(request, session.excluded(request))
            allowed = [responder.ids[p] for p in np.flatnonzero(flt.allowed)]
            beams = min(MODEL_BEAMS, len(allowed))
            prompt_request = request.model_copy(update={"task": "next_item", "k": beams})
            prompt = neo.encoder.prompt_ids(neo.prompt_text(prompt_request, history, None))
            model = [s.item_id for s in beam_search_items(
                neo.model, [prompt], neo.trie, neo.tokens, k=beams, num_beams=beams, filters=flt,
                pad_token_id=neo.encoder.end_id)[0]]
            popular = popularity_among_matching(q, builder.facts.counts, 50)
            score: dict[str, float] = defaultdict(float)
            inside = set(allowed)
            for h in history[-20:]:
                for other, sim in neo.facts.cooccurring(h)[:300]:
                    score[other] += sim if other in inside else 0.0
            knn = [i for i in sorted(score, key=lambda i: -score[i]) if score[i] > 0][:50]
            ease = responder.collaborative.rank(history, 50, allowed=allowed)
            candidates = ease[:SEARCH_CANDIDATES]
            lists = {
                "popularity among matching (benchmark baseline)": popular,
                "model inside the facts": model,
                "co-occurrence with the history": knn,
                "collaborative retriever (EASE)": ease,
                "RRF(model, popularity)": reciprocal_rank_fusion([model, popular]),
                "RRF(model, popularity, co-occurrence)": reciprocal_rank_fusion([model, popular, knn]),
                "RRF(model, EASE candidates; weights 1, 2)": reciprocal_rank_fusion(
                    [[i for i in model if i in set(candidates)], candidates], weights=[1.0, CANDIDATE_WEIGHT]),
            }
            for name, ranked in lists.items():
                hits[name].append(q.target in ranked[:10])
            answer = session.ask(q.text, task="search", format="ids", k=10)
            hits["runtime (Session.ask with the history)"].append(q.target in [i.id for i in answer.items])
            visitor = neo.session(persist=False).ask(q.text, task="search", format="ids", k=10)
            hits["visitor (Session.ask, no history)"].append(q.target in [i.id for i in visitor.items])
            hits["popularity among matching, seen kept (visitor baseline)"].append(
                q.target in popularity_among_matching(q, builder.facts.counts, 10, exclude_seen=False))
    print(f"{time.perf_counter() - started:.0f} s")
    for name, values in hits.items():
        print(f"{name:<58} hit@10 {np.mean(values):.3f}")


if __name__ == "__main__":
    main()

"""How much next-item signal do a catalog's SIDs carry, before any LLM training?

A code-counting model scores each unseen movie by (how often its level-1 code occurs among the
user's last 10 items + 1) x (its training popularity), and is scored like the model: HR@10 on the
leave-one-out validation targets of a fixed sample of users, seen items excluded. With SIDs
that carry no taste this equals popularity; the gap is what a model can learn from the codes of a
history alone. Level-1 text coherence (mean squared norm of the mean unit text embedding of a
code) says what the SIDs keep of the text.

    python bench/sid_signal.py --db demo/catalog.db [--users 200]

Needs a catalog with MovieLens-style histories; embeddings come from the cache after the first run.
"""

from __future__ import annotations

import argparse
import random
from collections import Counter

import numpy as np

from neo_sdk.catalog import Catalog, leave_one_out
from neo_sdk.sids import (
    default_shape,
    embed_texts,
    item_texts,
    resolve_embedder,
    train_residual,
)
from neo_sdk.sids._collab import collaborative_vectors, cooccurrence_sequences


def code_count_hr(codes: np.ndarray, ids: list[str], split, users: list[str], pop: np.ndarray, k: int = 10) -> float:
    index = {item: n for n, item in enumerate(ids)}
    level1 = codes[:, 0]
    hits = 0
    for user in users:
        history = [index[i] for i in split.valid_history[user] if i in index]
        counts = Counter(level1[history[-10:]].tolist())
        score = np.log(np.array([counts.get(c, 0) + 1.0 for c in level1])) + np.log(pop + 1)
        score[history] = -np.inf
        hits += index.get(split.valid[user], -1) in np.argsort(-score)[:k]
    return hits / len(users)


def coherence(codes: np.ndarray, unit_text: np.ndarray) -> float:
    values = [float((unit_text[codes[:, 0] == c].mean(0) ** 2).sum()) for c in np.unique(codes[:, 0])
              if (codes[:, 0] == c).sum() > 1]
    return float(np.mean(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", default="demo/catalog.db")
    parser.add_argument("--type", default="movie")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--weights", default="0,0.25,0.5,1,2", help="collaborative weights to compare")
    args = parser.parse_args()

    catalog = Catalog(args.db)
    split = leave_one_out(catalog)
    items = list(catalog.items(args.type))
    ids = [i.id for i in items]
    text = embed_texts(resolve_embedder(None), item_texts(items, catalog.entity_types()[args.type].text_fields),
                       progress=False)
    unit = text / np.linalg.norm(text, axis=1, keepdims=True)
    sequences = cooccurrence_sequences(catalog)
    taste = collaborative_vectors(catalog, ids, sequences=sequences)
    train_pop = Counter(i for seq in split.train.values() for i in seq)
    pop = np.array([train_pop.get(i, 0) for i in ids], dtype=np.float64)
    users = random.Random(0).sample(sorted(split.valid), min(args.users, len(split.valid)))
    levels, k = default_shape(len(ids))
    popular = code_count_hr(np.zeros((len(ids), 1), dtype=np.int64), ids, split, users, pop)
    print(f"{args.type}: {len(ids)} items, level-1 K={k}, {len(users)} validation users; popularity HR@10 {popular:.3f}")
    print("| collaborative weight | code-count HR@10 | vs popularity | level-1 text coherence |")
    print("|---|---|---|---|")
    for weight in [float(w) for w in args.weights.split(",")]:
        x = unit if weight == 0 or taste is None else np.concatenate([unit, weight * taste], 1)
        _, codes = train_residual(x, levels, k, seed=0, niter=25, balanced=True, slack=1.5, normalize=True)
        hr = code_count_hr(codes, ids, split, users, pop)
        print(f"| {weight:g} | {hr:.3f} | {hr / max(popular, 1e-9):.2f}x | {coherence(codes, unit):.3f} |")


if __name__ == "__main__":
    main()

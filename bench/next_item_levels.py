"""Where does a bundle's next-item ranking fail: the first code, or the codes after it?

For a fixed sample of validation users (training phrasings, as sessions use):

* level 1: the model's distribution over first codes right after the span opener: how many
  distinct top-1 codes across users (1 = the same answer for everyone), how often the top-1 code
  occurs in the user's last 10 items, and whether the target's first code is in the top 5, next to
  a model that ranks first codes by their count in those 10 items;
* level 2, teacher-forced with the target's true first code: the target's rank among the unseen
  items under that code, by the model's next-code logit and by training popularity.

    python bench/next_item_levels.py --bundle demo/bundle --db demo/catalog.db [--users 60]
"""

from __future__ import annotations

import argparse
import os
import random
from collections import Counter

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from neo_sdk.bundle import load_bundle
from neo_sdk.catalog import Catalog, leave_one_out
from neo_sdk.prompts import load_prompts
from neo_sdk.tasks import format_history
from neo_sdk.training import ExampleEncoder


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--type", default="movie")
    parser.add_argument("--users", type=int, default=60)
    args = parser.parse_args()
    catalog = Catalog(args.db)
    contents = load_bundle(args.bundle, catalog=catalog)
    model, vocab = contents.model.eval(), contents.vocab
    prompts = load_prompts(contents.prompts_dir, defaults=False)
    encoder = ExampleEncoder(contents.tokenizer, vocab, system=prompts.system)
    split = leave_one_out(catalog)
    rng = random.Random(0)
    users = random.Random(0).sample(sorted(split.valid), min(args.users, len(split.valid)))
    sids = vocab.table.by_type(args.type)
    codes = {str(i): c for i, c in zip(sids.item_ids, sids.codes, strict=True)}
    grid = vocab.code_token_ids(args.type)
    first = torch.as_tensor(grid[0][grid[0] >= 0])
    popularity = Counter(i for h in split.train.values() for i in h)
    top1: Counter[int] = Counter()
    in_history = model_top5 = count_top5 = 0
    model_rank, pop_rank, children = [], [], []
    for user in users:
        history, target = split.valid_history[user], split.valid[user]
        recent = Counter(int(codes[i][0]) for i in history[-10:] if i in codes)
        prompt = prompts.render("next_item", "train", rng, history=format_history(history, 10), type=args.type,
                                user=user)
        ids = encoder.prompt_ids(prompt) + [vocab.opener_id]
        logits = model(torch.tensor([ids])).logits[0, -1, first]
        best, true_first = int(logits.argmax()), int(codes[target][0])
        top1[best] += 1
        in_history += best in recent
        model_top5 += int((logits > logits[true_first]).sum()) < 5
        count_top5 += true_first in [c for c, _ in recent.most_common(5)]
        logits = model(torch.tensor([ids + [int(grid[0][true_first])]])).logits[0, -1]
        seen = set(history)
        kids = [i for i, c in codes.items() if c[0] == true_first and i not in seen]
        by_model = sorted(kids, key=lambda i: -float(logits[int(grid[1][codes[i][1]])]))
        by_pop = sorted(kids, key=lambda i: -popularity[i])
        model_rank.append(by_model.index(target))
        pop_rank.append(by_pop.index(target))
        children.append(len(kids))
    n = len(users)
    print(f"{args.bundle}: {n} validation users")
    print(f"level 1: {len(top1)} distinct top-1 codes; top-1 in the last 10 items for {in_history / n:.2f};"
          f" target's code in top 5: model {model_top5 / n:.2f}, history-count model {count_top5 / n:.2f}")
    print(f"level 2 given the true first code (median {np.median(children):.0f} unseen children):"
          f" target rank median model {np.median(model_rank):.1f}, popularity {np.median(pop_rank):.1f}")


if __name__ == "__main__":
    main()

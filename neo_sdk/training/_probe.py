"""Quick quality probes run after each stage (on a fixed sample, seeded), reported in the bundle.

* ``sid_to_type``: greedy answer to an eval-family "type of {item}?" starts with the right type.
* ``text_to_sid``: the item named by an eval-family query (phrasings never trained on) is in the
  constrained top-10 of its type.
* ``next_item``: HR@10 / NDCG@10 on the leave-one-out **validation** targets, already-seen items
  excluded by the trie, next to popularity-excluding-seen on the same users.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from neo_sdk.catalog import Split
from neo_sdk.decoding import Decoder, TrieFilter, beam_search_items
from neo_sdk.prompts import PromptSet
from neo_sdk.tasks import MAX_HISTORY, CatalogFacts, format_history, item_marker, item_queries


def _sample(values: Sequence[Any], n: int, seed: int | str) -> list[Any]:
    values = sorted(values)
    return values if len(values) <= n else random.Random(seed).sample(values, n)


def _probe_items(facts: CatalogFacts, n: int, seed: int) -> list[str]:
    """``n`` catalog items, drawn by a generator of their own.

    Drawn with ``random.Random(seed)`` like the training samplers, the probe picked mostly the
    items whose queries the stage-2 output fit had seen (the two draws were correlated: 142 of 200,
    where a third was expected), so it read hit@10 0.225 where items the fit never saw score 0.017.
    """
    return _sample([i for t in facts.by_type for i in facts.by_type[t]], n, f"probe items:{seed}")


@torch.no_grad()
def probe_sid_to_type(decoder: Decoder, facts: CatalogFacts, prompts: PromptSet, *, n: int = 200,
                      seed: int = 0) -> float:
    """Share of sampled items whose type the model names first (greedy, eval phrasings)."""
    rng = random.Random(seed)
    items = _probe_items(facts, n, seed)
    correct = 0
    for item in tqdm(items, desc="probe sid->type", unit="item"):
        prompt = prompts.render("sid_to_type", "eval", rng, item=item_marker(item))
        ids = torch.tensor([decoder.encoder.prompt_ids(prompt)], device=decoder.model.device)
        out = decoder.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=3,
                                     do_sample=False, num_beams=1, pad_token_id=decoder.encoder.end_id)
        text = decoder.encoder.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
        correct += text.strip().lower().startswith(facts.type_of(item))
    return correct / max(1, len(items))


def text_to_sid_rankings(decoder: Decoder, facts: CatalogFacts, prompts: PromptSet, *, n: int = 200,
                         seed: int = 0, k: int = 10) -> dict[str, list[str]]:
    """For each probed item, the top-``k`` items an eval-family query for it decodes to (beams
    restricted to the item's type)."""
    rng = random.Random(seed)
    out: dict[str, list[str]] = {}
    for item in tqdm(_probe_items(facts, n, seed), desc="probe text->sid", unit="item"):
        etype = facts.type_of(item)
        _, query = rng.choice(item_queries(facts, item))
        prompt = prompts.render("text_to_sid", "eval", rng, query=query, type=etype)
        flt = TrieFilter.create(decoder.trie, entity_types=[etype])
        ranked = beam_search_items(decoder.model, [decoder.encoder.prompt_ids(prompt)], decoder.trie,
                                   decoder.tokens, k=k, filters=flt)[0]
        out[item] = [r.item_id for r in ranked]
    return out


def probe_text_to_sid(decoder: Decoder, facts: CatalogFacts, prompts: PromptSet, *, n: int = 200,
                      seed: int = 0, k: int = 10) -> dict[str, float]:
    """hit@1 / hit@k of eval-family queries (:func:`text_to_sid_rankings`)."""
    rankings = text_to_sid_rankings(decoder, facts, prompts, n=n, seed=seed, k=k)
    m = max(1, len(rankings))
    return {"hit@1": sum(got[:1] == [item] for item, got in rankings.items()) / m,
            f"hit@{k}": sum(item in got for item, got in rankings.items()) / m}


def probe_next_item(decoder: Decoder, split: Split, prompts: PromptSet, *,
                    entity_types: Sequence[str] | None = None, n: int | None = 200, seed: int = 0, k: int = 10,
                    max_history: int = MAX_HISTORY, batch: int = 8, stage: str = "valid",
                    family: str = "eval") -> dict[str, Any]:
    """HR@k / NDCG@k on ``stage`` targets (seen items excluded) vs popularity on the same users.

    Each user is asked for the entity type of their own target (the request names the type, as a
    person asking "recommend a podcast" does), so a catalog with several interacted types is
    probed on each in proportion to its share of the targets; ``entity_types`` keeps only targets
    of those types (``None``: every type). Popularity is :class:`neo_sdk.evaluation.Popularity`
    (what ``neo eval`` compares with) over the SID table's items of the target's type: training
    interactions, ties by item id, never-trained items last, seen items excluded. ``per_type``
    breaks the numbers down.

    ``family``: the phrasings asked (``eval``: held out from training; ``train``: the phrasing
    family the runtime's sessions use). ``n=None`` evaluates every user. Validation uses the
    training history; test also sees the validation item, as in the leave-one-out protocol.
    """
    from neo_sdk.evaluation import (  # one scorer for probes and neo eval
        Popularity,
        hit_rate,
        ndcg,
        target_ranks,
    )

    table = decoder.encoder.vocab.table
    type_of = {str(i): t for t in table.entity_types for i in table.by_type(t).item_ids}
    rng = random.Random(seed)
    targets = split.valid if stage == "valid" else split.test
    histories = split.valid_history if stage == "valid" else split.test_history
    wanted = set(entity_types) if entity_types else None
    eligible = [u for u, target in targets.items()
                if target in type_of and (wanted is None or type_of[target] in wanted)]
    users = _sample(eligible, n if n is not None else len(eligible), seed)
    # the harness's popularity (neo eval's baseline): training counts, ties by id, untrained items last
    popularity = {t: Popularity.over(split.train, table.by_type(t).item_ids.tolist(), t)
                  for t in {type_of[targets[u]] for u in users}}
    model_lists, pop_lists = [], []
    for start in tqdm(range(0, len(users), batch), desc="probe next item", unit="batch"):
        group = users[start : start + batch]
        prompts_ids, filters = [], []
        for user in group:
            history, etype = histories[user], type_of[targets[user]]
            prompt = prompts.render("next_item", family, rng, history=format_history(history, max_history),
                                    type=etype, user=user)
            prompts_ids.append(decoder.encoder.prompt_ids(prompt))
            filters.append(TrieFilter.create(decoder.trie, entity_types=[etype], exclude=set(history)))
        results = beam_search_items(decoder.model, prompts_ids, decoder.trie, decoder.tokens, k=k,
                                    filters=filters)
        for user, ranked in zip(group, results, strict=True):
            model_lists.append([r.item_id for r in ranked])
            seen = set(histories[user])
            pop_lists.append(popularity[type_of[targets[user]]].rank(user, list(histories[user]), k, seen))
    goal = [targets[u] for u in users]
    model_ranks, pop_ranks = target_ranks(model_lists, goal), target_ranks(pop_lists, goal)

    def scores(mask: np.ndarray) -> dict[str, float]:
        def mean(values: np.ndarray) -> float:
            return float(values[mask].mean()) if mask.any() else 0.0

        return {f"hr@{k}": mean(hit_rate(model_ranks, k)), f"ndcg@{k}": mean(ndcg(model_ranks, k)),
                f"popularity_hr@{k}": mean(hit_rate(pop_ranks, k)),
                f"popularity_ndcg@{k}": mean(ndcg(pop_ranks, k)), "users": int(mask.sum())}

    user_types = np.array([type_of[t] for t in goal], dtype=object)
    out: dict[str, Any] = scores(np.ones(len(users), dtype=bool))
    out["per_type"] = {t: scores(user_types == t) for t in sorted(set(user_types.tolist()))}
    return out

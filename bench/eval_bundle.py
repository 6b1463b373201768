"""Evaluate a trained bundle: next-item HR/NDCG (leave-one-out per entity type users interact with,
seen items excluded by the trie) next to popularity-excluding-seen and item-kNN on the same users
(``neo_sdk.evaluation.compare_next_item``, the library behind ``neo eval``), and text->SID /
SID->type on held-out phrasings (the training probes).

Usage: python bench/eval_bundle.py --bundle B --db DB [--stage test] [--users N|all] [--type T] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from neo_sdk.bundle import load_bundle
from neo_sdk.catalog import Catalog
from neo_sdk.decoding import build_decoder
from neo_sdk.encoding import ExampleEncoder
from neo_sdk.evaluation import compare_next_item
from neo_sdk.prompts import load_prompts
from neo_sdk.tasks import CatalogFacts
from neo_sdk.training._probe import probe_sid_to_type, probe_text_to_sid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--stage", choices=["valid", "test"], default="test")
    parser.add_argument("--users", default="all", help="users per entity type: a number, or all")
    parser.add_argument("--type", action="append", dest="types",
                        help="entity type (repeatable; default: every type users interact with)")
    parser.add_argument("--items", type=int, default=300, help="items for the text->SID / type probes")
    parser.add_argument("--family", default="eval", help="next-item phrasing family: eval (held out) or train")
    parser.add_argument("--skip-text", action="store_true", help="next item only")
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()
    catalog = Catalog(args.db)
    contents = load_bundle(args.bundle, catalog=catalog)
    if os.environ.get("NEO_DEVICE"):
        contents.model.to(os.environ["NEO_DEVICE"])
    started = time.perf_counter()
    users = None if args.users == "all" else int(args.users)
    comparison = compare_next_item(contents, catalog, entity_types=args.types, stage=args.stage, sample_size=users,
                                   family=args.family, progress=True)
    print(comparison.table())
    result = {"bundle": args.bundle, "family": args.family, "stage": args.stage, **comparison.to_dict()}
    if not args.skip_text:
        prompts = load_prompts(contents.prompts_dir, defaults=False)
        encoder = ExampleEncoder(contents.tokenizer, contents.vocab, system=prompts.system)
        decoder = build_decoder(contents.model, encoder)
        facts = CatalogFacts(catalog, prompts)
        result["text_to_sid"] = probe_text_to_sid(decoder, facts, prompts, n=args.items, seed=1)
        result["sid_to_type"] = probe_sid_to_type(decoder, facts, prompts, n=args.items, seed=1)
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result, indent=1, sort_keys=True))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()

"""Evaluate a trained bundle: next-item HR/NDCG (leave-one-out, seen items excluded by the trie)
next to popularity-excluding-seen on the same users, and text->SID on held-out phrasings.

Usage: python bench/eval_bundle.py --bundle B --db DB [--stage test] [--users N|all] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from neo_sdk.bundle import load_bundle
from neo_sdk.catalog import Catalog, leave_one_out
from neo_sdk.prompts import load_prompts
from neo_sdk.tasks import CatalogFacts
from neo_sdk.training import ExampleEncoder
from neo_sdk.training._probe import build_decoder, probe_next_item, probe_sid_to_type, probe_text_to_sid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--stage", choices=["valid", "test"], default="test")
    parser.add_argument("--users", default="all", help="a number, or all")
    parser.add_argument("--items", type=int, default=300, help="items for the text->SID / type probes")
    parser.add_argument("--family", default="eval", help="next-item phrasing family: eval (held out) or train")
    parser.add_argument("--skip-text", action="store_true", help="next item only")
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()
    catalog = Catalog(args.db)
    contents = load_bundle(args.bundle, catalog=catalog)
    if os.environ.get("NEO_DEVICE"):
        contents.model.to(os.environ["NEO_DEVICE"])
    prompts = load_prompts(contents.prompts_dir, defaults=False)
    encoder = ExampleEncoder(contents.tokenizer, contents.vocab, system=prompts.system)
    decoder = build_decoder(contents.model, encoder)
    training = contents.manifest["training"]
    started = time.perf_counter()
    users = None if args.users == "all" else int(args.users)
    result = {
        "bundle": args.bundle,
        "next_item": probe_next_item(decoder, leave_one_out(catalog), prompts, entity_type=training["target_type"],
                                     n=users, stage=args.stage, max_history=training["max_history"],
                                     family=args.family),
        "family": args.family,
    }
    if not args.skip_text:
        facts = CatalogFacts(catalog, prompts)
        result["text_to_sid"] = probe_text_to_sid(decoder, facts, prompts, n=args.items, seed=1)
        result["sid_to_type"] = probe_sid_to_type(decoder, facts, prompts, n=args.items, seed=1)
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["stage"] = args.stage
    print(json.dumps(result, indent=1, sort_keys=True))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()

"""``neo eval``: next-item quality of a trained bundle next to popularity and item-kNN.

A thin wrapper over :func:`neo_sdk.evaluation.compare_next_item`: leave-one-out per entity type,
full ranking over every item of the type, the user's history excluded for every method, HR and
NDCG at 5 and 10 on the same users. The bundle ranks by constrained beam search with phrasings it
was never trained on.
"""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    ev = sub.add_parser(
        "eval", help="next-item HR/NDCG of a bundle next to popularity and item-kNN",
        description="Evaluate a trained bundle on leave-one-out next-item targets of each entity type"
                    " users interact with (or --type), next to popularity (seen items excluded) and"
                    " item-kNN fitted on the training histories only, on the same users.",
    )
    ev.add_argument("--bundle", required=True, help="bundle folder (neo train --out)")
    ev.add_argument("--db", help="catalog SQLite file (default: the one the bundle was trained on)")
    ev.add_argument("--split", choices=["valid", "test"], default="test",
                    help="which held-out item: the last (test, default) or the one before (valid)")
    ev.add_argument("--users", default="200", type=_users, metavar="N|all",
                    help="users per entity type, a fixed seeded sample (default 200; all: every user)")
    ev.add_argument("--type", action="append", dest="types", metavar="TYPE",
                    help="entity type to evaluate (repeatable; default: every type users interact with)")
    ev.add_argument("--family", choices=["eval", "train"], default="eval",
                    help="prompt phrasings asked of the model (eval: never trained on)")
    ev.add_argument("--seed", type=int, default=0, help="user sample and phrasing seed")
    ev.add_argument("--json", action="store_true", help="print the full result as JSON")
    ev.set_defaults(handler=_eval)


def _users(text: str) -> int | None:
    if text == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number of users or 'all'") from None
    if value < 1:
        raise argparse.ArgumentTypeError("--users must be at least 1")
    return value


def _eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from neo_sdk.bundle import read_manifest
    from neo_sdk.catalog import Catalog
    from neo_sdk.errors import BundleError
    from neo_sdk.evaluation import compare_next_item

    db = Path(args.db) if args.db else Path(read_manifest(Path(args.bundle), verify=False)["catalog"])
    if not db.exists():
        raise BundleError(f"the catalog {db} does not exist; pass --db with the catalog the bundle was trained on")
    types = [t.strip() for arg in args.types or () for t in arg.split(",") if t.strip()]
    with Catalog(db) as catalog:
        result = compare_next_item(args.bundle, catalog, entity_types=types or None, stage=args.split,
                                   sample_size=args.users, seed=args.seed, family=args.family)
    print(json.dumps(result.to_dict(), indent=1, sort_keys=True) if args.json else result.table())
    return 0

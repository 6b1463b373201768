"""``neo catalog``: declare entity types, import files or built-in datasets, stats, show an item."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

from neo_sdk.errors import CatalogError, ConfigError


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    group = sub.add_parser("catalog", help="import, inspect and manage the item catalog")
    commands = group.add_subparsers(dest="catalog_command", metavar="COMMAND", required=True)

    imp = commands.add_parser(
        "import",
        help="import a file (CSV, JSONL, RecBole) or a built-in dataset, atomically",
        description=(
            "Import a file or a built-in dataset. Every import is atomic: if any row is bad,"
            " nothing is written and the error names the file, line and column."
            " Built-in datasets: movielens-100k, movielens-1m."
        ),
    )
    imp.add_argument("source", help="a file path, or a dataset name (movielens-100k, movielens-1m)")
    imp.add_argument("--db", required=True, help="catalog SQLite file (created if missing)")
    imp.add_argument("--kind", choices=["items", "users", "interactions", "relations"],
                     help="what the file holds (RecBole .item/.user/.inter imply it)")
    imp.add_argument("--type", dest="entity_type", help="entity type of every imported item")
    imp.add_argument("--format", choices=["csv", "jsonl", "recbole"], help="default: from the extension")
    imp.add_argument("--column", action="append", default=[], metavar="NAME=SOURCE",
                     help="map a canonical column to the file's column, e.g. --column id=movieId")
    imp.add_argument("--upsert", action="store_true", help="update items/users whose id exists")
    imp.add_argument("--create-users", action="store_true",
                     help="let interactions create users that do not exist yet")
    imp.add_argument("--with-people", action="store_true",
                     help="built-in MovieLens: add directors, writers and lead actors from OMDb")
    imp.add_argument("--json", action="store_true", help="print the import report as JSON")
    imp.set_defaults(handler=_import)

    declare = commands.add_parser("declare", help="declare an entity type and its text fields")
    declare.add_argument("entity_type", help="type name, lowercase (e.g. movie)")
    declare.add_argument("--db", required=True)
    declare.add_argument("--text-fields", default="title",
                         help="comma-separated fields that form the item text (default: title)")
    declare.add_argument("--description", default="")
    declare.set_defaults(handler=_declare)

    stats = commands.add_parser("stats", help="counts per entity type, users, interactions, relations")
    stats.add_argument("--db", required=True)
    stats.add_argument("--json", action="store_true", help="machine-readable output")
    stats.set_defaults(handler=_stats)

    show = commands.add_parser("show", help="print one item (exit 1 if the id is unknown)")
    show.add_argument("item_id")
    show.add_argument("--db", required=True)
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=_show)


def _open(db: str, *, must_exist: bool = True) -> Any:
    from neo_sdk.catalog import Catalog

    if must_exist and not Path(db).exists():
        raise CatalogError(f"no catalog at {db}; create one with `neo catalog import ... --db {db}`")
    return Catalog(db)


def _columns(pairs: list[str]) -> dict[str, str]:
    mapping = {}
    for pair in pairs:
        name, sep, source = pair.partition("=")
        if not sep or not name or not source:
            raise ConfigError(f"--column expects NAME=SOURCE (e.g. id=movieId), got {pair!r}")
        mapping[name.strip()] = source.strip()
    return mapping


def _import(args: argparse.Namespace) -> int:
    from neo_sdk.catalog import DATASETS, import_file, load_dataset

    started = time.perf_counter()
    if args.source in DATASETS:
        with _open(args.db, must_exist=False) as catalog:
            report: dict[str, Any] = load_dataset(
                catalog, args.source, with_people=args.with_people, progress=sys.stderr.isatty()
            )
    else:
        if not Path(args.source).exists():
            known = ", ".join(DATASETS)
            raise CatalogError(f"{args.source}: no such file, and not a built-in dataset ({known})")
        with _open(args.db, must_exist=False) as catalog:
            result = import_file(
                catalog, args.source, args.kind, format=args.format, entity_type=args.entity_type,
                columns=_columns(args.column), upsert=args.upsert, create_users=args.create_users,
            )
        report = dataclasses.asdict(result)
    report["seconds"] = round(time.perf_counter() - started, 2)
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        for key, value in report.items():
            print(f"{key}: {value}")
    return 0


def _declare(args: argparse.Namespace) -> int:
    fields = [f.strip() for f in args.text_fields.split(",") if f.strip()]
    with _open(args.db, must_exist=False) as catalog:
        entity = catalog.declare_type(args.entity_type, fields, args.description)
    print(f"declared {entity.name}: text fields {', '.join(entity.text_fields)}")
    return 0


def _stats(args: argparse.Namespace) -> int:
    with _open(args.db) as catalog:
        stats = catalog.stats()
    if args.json:
        print(json.dumps(stats, indent=2, sort_keys=True))
        return 0
    print(f"catalog {args.db}")
    for name, counts in stats["entity_types"].items():
        print(f"  {name:<12} {counts['items']:>9,} items ({counts['active']:,} active)")
    print(f"  users        {stats['users']:>9,}")
    print(f"  interactions {stats['interactions']:>9,}")
    print(f"  relations    {stats['relations']['total']:>9,}")
    join = stats.get("info", {}).get("dataset", {}).get("join")
    if join:
        print(f"  OMDb join coverage: {join['matched']:,} / {join['total']:,} movies"
              f" ({100 * join['share_movies']:.1f}%), {100 * join['share_interactions']:.1f}% of interactions")
    return 0


def _show(args: argparse.Namespace) -> int:
    with _open(args.db) as catalog:
        item = catalog.get(args.item_id)
        related = catalog.links(item.id)
    record = dataclasses.asdict(item)
    record["relations"] = {k: [list(r) for r in v] for k, v in related.items()}
    if args.json:
        print(json.dumps(record, indent=2, sort_keys=True))
        return 0
    print(f"{item.id}  [{item.entity_type}]  {item.title}{'' if item.active else '  (inactive)'}")
    for key, value in item.fields.items():
        print(f"  {key}: {value}")
    for relation, other in related["out"]:
        print(f"  {relation} -> {other}")
    for relation, other in related["in"]:
        print(f"  <- {relation} {other}")
    return 0

"""``neo sids build | report | assign``: thin wrappers over :mod:`neo_sdk.sids`."""

from __future__ import annotations

import argparse
import json
import logging

from neo_sdk.errors import SIDError

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    sids = subparsers.add_parser("sids", help="build, inspect and extend Semantic IDs")
    sub = sids.add_subparsers(dest="sids_command", metavar="SUBCOMMAND", required=True)

    build = sub.add_parser("build", help="embed items and build SIDs per entity type (replaces existing SIDs)")
    build.add_argument("--db", required=True, help="catalog database")
    build.add_argument("--levels", type=int, default=None, help="residual levels M (default: from each type's size)")
    build.add_argument("--codes", type=int, default=None, help="codes per level K (default: from each type's size)")
    build.add_argument("--embedder", default=None, help="sentence-transformers folder (default all-MiniLM-L6-v2)")
    build.add_argument("--seed", type=int, default=0, help="k-means seed (same seed, same SIDs)")
    build.add_argument("--type", dest="types", action="append", default=None, metavar="T",
                       help="build only this entity type (repeatable; default: every type with items)")
    mode = build.add_mutually_exclusive_group()
    mode.add_argument("--balanced", dest="balanced", action="store_true", default=True,
                      help="capacity-constrained assignment (default: fewer collisions, same coherence)")
    mode.add_argument("--plain", dest="balanced", action="store_false", help="nearest-centroid assignment")
    build.add_argument("--slack", type=float, default=None, help="balanced mode: per-code capacity factor (>= 1)")
    build.add_argument("--collaborative", type=float, default=None, metavar="W",
                       help="weight of the co-occurrence vector appended to each text embedding"
                            " (default 0.5; 0: content only; used where the catalog has histories)")
    build.add_argument("--no-progress", action="store_true", help="hide the embedding progress bar")
    build.set_defaults(handler=_build)

    report = sub.add_parser("report", help="diagnostics: code usage, collisions, prefix coherence")
    report.add_argument("--db", required=True, help="catalog database")
    report.add_argument("--json", action="store_true", help="print the full report as JSON")
    report.add_argument("--png", default=None, metavar="PATH", help="write a PNG of per-level code usage")
    report.add_argument("--embedder", default=None, help="override the embedder recorded at build time")
    report.set_defaults(handler=_report)

    assign = sub.add_parser("assign", help="give SIDs to items added since the build (saved centroids)")
    assign.add_argument("--db", required=True, help="catalog database")
    assign.add_argument("--embedder", default=None, help="override the embedder recorded at build time")
    assign.add_argument("--type", dest="types", action="append", default=None, metavar="T",
                        help="only this entity type (repeatable; default: every built type)")
    assign.add_argument("--no-progress", action="store_true", help="hide the embedding progress bar")
    assign.set_defaults(handler=_assign)


def _open(path: str):  # type: ignore[no-untyped-def]
    from pathlib import Path

    from neo_sdk.catalog import Catalog

    logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # its INFO lines are noise here
    if not Path(path).exists():
        raise SIDError(f"catalog {path} does not exist; create it with `neo catalog import ... --db {path}`")
    return Catalog(path)


def _build(args: argparse.Namespace) -> int:
    from neo_sdk.sids import SIDConfig, build_sids

    kwargs = {k: v for k, v in (("slack", args.slack), ("collaborative", args.collaborative)) if v is not None}
    config = SIDConfig(levels=args.levels, codes=args.codes, seed=args.seed, balanced=args.balanced, **kwargs)
    with _open(args.db) as catalog:
        result = build_sids(catalog, config, embedder=args.embedder, entity_types=args.types,
                            progress=not args.no_progress)
    for s in result.stats.values():
        print(
            f"{s.entity_type}: {s.items} items, M={s.levels} K={s.codes} -> SIDs of {s.levels + 1} tokens;"
            f" {s.unique_tuples} k-means buckets, largest {s.largest_bucket} (the last code ranks a bucket by"
            f" popularity); co-occurrence vectors for {s.collaborative_items} items ({s.seconds:.1f} s)"
        )
    print(f"build {result.build_id}: {len(result.table)} SIDs, content hash {result.table.content_hash[:16]}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from neo_sdk.sids import save_usage_png, sid_report
    from neo_sdk.sids._report import summary_lines

    with _open(args.db) as catalog:
        report = sid_report(catalog, embedder=args.embedder)
    if args.png:
        save_usage_png(report, args.png)
        logger.info("wrote %s", args.png)
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print("\n".join(summary_lines(report)))
    return 0


def _assign(args: argparse.Namespace) -> int:
    from neo_sdk.sids import assign_new

    with _open(args.db) as catalog:
        result = assign_new(catalog, embedder=args.embedder, entity_types=args.types,
                            progress=not args.no_progress)
    if not result:
        print("every active item already has a SID")
    for name, pairs in result.items():
        print(f"{name}: assigned {len(pairs)} new SIDs")
    if result:
        print(f"bundles trained on this catalog serve the new items without retraining;"
              f" `neo bundle refresh BUNDLE --db {args.db}` records them in a bundle")
    return 0

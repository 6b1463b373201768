"""``neo bundle verify | refresh | export``: check a bundle, record a grown catalog, export weights."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from neo_sdk.errors import BundleError


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    bundle = sub.add_parser("bundle", help="verify, refresh or export a trained bundle")
    commands = bundle.add_subparsers(dest="bundle_command", metavar="COMMAND", required=True)
    verify = commands.add_parser("verify", help="check checksums and print the manifest summary")
    verify.add_argument("bundle")
    verify.add_argument("--db", default=None,
                        help="also check that this catalog's SIDs extend the bundle's (no model is loaded)")
    verify.set_defaults(handler=_verify)
    refresh = commands.add_parser(
        "refresh", help="record that the bundle serves a catalog grown since training (no retraining)",
        description="Check that every item the bundle was trained on keeps its SID in the catalog, then"
                    " record the catalog's new items (given SIDs by `neo sids assign`) in the manifest.",
    )
    refresh.add_argument("bundle")
    refresh.add_argument("--db", default=None, help="catalog database (default: the one the bundle records)")
    refresh.set_defaults(handler=_refresh)
    export = commands.add_parser("export", help="write a plain Hugging Face folder")
    export.add_argument("bundle")
    export.add_argument("--out", required=True)
    export.add_argument("--merged", action="store_true", required=True,
                        help="merge adapters into the weights (the only export form)")
    export.set_defaults(handler=_export)


def _open(db: str) -> Any:
    from neo_sdk.catalog import Catalog

    if not Path(db).exists():
        raise BundleError(f"catalog {db} does not exist; pass --db with the catalog the bundle serves")
    return Catalog(db)


def _verify(args: argparse.Namespace) -> int:
    from neo_sdk.bundle import check_catalog, read_manifest

    manifest = read_manifest(Path(args.bundle))
    keys = ("kind", "base_model", "tokenizer_size", "sid_table_hash", "catalog", "extension")
    summary = {k: manifest[k] for k in keys if k in manifest}
    summary["files"] = len(manifest["files"])
    if args.db:
        with _open(args.db) as catalog:
            _, extension = check_catalog(args.bundle, catalog, manifest=manifest)
        summary["checked_catalog"] = {"path": str(Path(args.db).resolve())} | extension.to_json()
    print(json.dumps(summary, indent=1, sort_keys=True))
    return 0


def _refresh(args: argparse.Namespace) -> int:
    from neo_sdk.bundle import read_manifest, refresh_bundle

    db = args.db or read_manifest(Path(args.bundle), verify=False)["catalog"]  # refresh verifies
    with _open(db) as catalog:
        extension = refresh_bundle(args.bundle, catalog)
    print(json.dumps({"bundle": str(Path(args.bundle).resolve()), "catalog": str(Path(db).resolve())}
                     | extension.to_json(), indent=1, sort_keys=True))
    return 0


def _export(args: argparse.Namespace) -> int:
    from neo_sdk.bundle import export_merged

    print(export_merged(args.bundle, args.out))
    return 0

"""The ``neo`` command line: thin wrappers over the library, one module per command group.

Each ``_<group>.py`` module exposes ``register(subparsers)``; handlers receive the parsed
``argparse.Namespace`` and return an exit code. Any :class:`NeoError` is printed as
``error: <message>`` on stderr with exit code 1 — no traceback for mistakes the user can fix.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from neo_sdk.errors import NeoError


def build_parser() -> argparse.ArgumentParser:
    from neo_sdk.cli import _ask, _bundle, _catalog, _eval, _model, _sids, _train

    parser = argparse.ArgumentParser(
        prog="neo", description="neo-sdk: one language-steerable LLM over your catalog."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    version = sub.add_parser("version", help="print the neo-sdk version")
    version.set_defaults(handler=_version)
    _catalog.register(sub)
    _sids.register(sub)
    _model.register(sub)
    _train.register(sub)
    _bundle.register(sub)
    _ask.register(sub)
    _eval.register(sub)
    return parser


def _version(args: argparse.Namespace) -> int:
    from neo_sdk import __version__

    print(f"neo-sdk {__version__}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s"
    )
    try:
        return int(args.handler(args) or 0)
    except NeoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""The ``neo`` command line: thin wrappers over the library, one module per command group.

Each ``_<group>.py`` module exposes ``register(subparsers)``; handlers receive the parsed
``argparse.Namespace`` and return an exit code. Any :class:`NeoError` is printed as
``error: <message>`` on stderr with exit code 1 — no traceback for mistakes the user can fix;
settings refused before any work starts (``neo train``'s) exit with 2, as argparse's errors do.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from neo_sdk.errors import NeoError


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose ``populate`` hook adds arguments the first time it parses or
    prints help, so building ``neo``'s parser loads no command's heavy modules: ``neo train``'s
    flags come from ``TrainSettings``, which imports torch. Sub-commands get this class too."""

    def __init__(self, *args: Any, populate: Callable[[argparse.ArgumentParser], None] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._populate = populate

    def populated(self) -> Parser:
        """This parser with every argument added."""
        populate, self._populate = self._populate, None
        if populate is not None:
            populate(self)
        return self

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        return super(Parser, self.populated()).parse_known_args(args, namespace)

    def format_usage(self) -> str:
        return super(Parser, self.populated()).format_usage()

    def format_help(self) -> str:
        return super(Parser, self.populated()).format_help()


def build_parser() -> argparse.ArgumentParser:
    from neo_sdk.cli import _ask, _bundle, _catalog, _eval, _model, _serve, _sids, _train

    parser = Parser(prog="neo", description="neo-sdk: one language-steerable LLM over your catalog.")
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
    _serve.register(sub)
    return parser


def _version(args: argparse.Namespace) -> int:
    from neo_sdk import __version__

    print(f"neo-sdk {__version__}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.INFO
    if not logging.getLogger().handlers:  # the handler is ours: libraries that set DEBUG on their own (bm25s) stay quiet
        logging.basicConfig(level=level, format="%(levelname)s %(message)s")
        logging.getLogger().handlers[0].setLevel(level)
    try:
        return int(args.handler(args) or 0)
    except NeoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

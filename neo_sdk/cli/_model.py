"""``neo model``: prepare (convert and cache) a base model, or chat with it."""

from __future__ import annotations

import argparse

# neo_sdk.model imports torch; it is imported inside the handlers so that building the parser
# (every ``neo`` call, ``neo version`` included) stays fast. The default is therefore None here and
# means neo_sdk.model.DEFAULT_BASE.
_BASE_HELP = "alias, local model folder or hub id (default: the bundled alias smollm2-135m-instruct)"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``model`` command group to the ``neo`` parser."""
    group = subparsers.add_parser("model", help="prepare or try the base LLM")
    commands = group.add_subparsers(dest="model_command", metavar="SUBCOMMAND", required=True)

    prepare = commands.add_parser(
        "prepare", help="convert the base model once (GGUF -> cached folder) and print its folder"
    )
    prepare.add_argument("--base", default=None, help=_BASE_HELP)
    prepare.set_defaults(handler=_prepare)

    chat = commands.add_parser("chat", help="answer one message with the base model (greedy)")
    chat.add_argument("message", help="the user message")
    chat.add_argument("--base", default=None, help=_BASE_HELP)
    chat.add_argument("--max-new-tokens", type=_positive_int, default=32, help="most tokens to generate (default: 32)")
    chat.set_defaults(handler=_chat)


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _prepare(args: argparse.Namespace) -> int:
    from neo_sdk.model import DEFAULT_BASE, resolve_base

    print(resolve_base(args.base or DEFAULT_BASE))
    return 0


def _chat(args: argparse.Namespace) -> int:
    from neo_sdk.model import DEFAULT_BASE, chat, load_base_model

    model, tokenizer = load_base_model(args.base or DEFAULT_BASE)
    print(chat(model, tokenizer, args.message, max_new_tokens=args.max_new_tokens))
    return 0

"""``neo train``: staged training into a bundle (``neo bundle`` lives in :mod:`neo_sdk.cli._bundle`).

Its settings flags are generated from :class:`~neo_sdk.training.TrainSettings` (type, default,
choices and help), so a new field is a new flag; see the class for the metadata keys.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from collections.abc import Callable
from typing import Any, Literal


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    train = sub.add_parser(
        "train", help="stage 2 (alignment) and stage 3 (instruction tuning) into a bundle",
        description="Train a bundle from a catalog whose SIDs are built (neo sids build)."
                    " Multi-GPU: accelerate launch -m neo_sdk train ...",
        populate=_add_train_settings,  # TrainSettings imports torch: only when `neo train` is used
    )
    train.add_argument("--db", required=True, help="catalog SQLite file with SIDs")
    train.add_argument("--out", required=True, help="bundle folder to write")
    train.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    train.add_argument("--no-probes", action="store_true", help="skip the quality probes")
    train.set_defaults(handler=_train)


def _add_train_settings(parser: argparse.ArgumentParser) -> None:
    from neo_sdk.training import TrainSettings

    add_settings_arguments(parser.add_argument_group("training settings (TrainSettings)"), TrainSettings)


def add_settings_arguments(parser: Any, cls: type) -> None:
    """One flag per field of the dataclass ``cls``, from its type, default and metadata (``help``,
    ``flag``, ``none``, ``repeat``, ``metavar``). Each flag's default is left to ``cls``: a flag not
    given is not passed (:func:`settings_from_args`)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        meta, dashed = f.metadata, f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        kind, optional = _unwrap(hints[f.name])
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": meta.get("help", "")}
        if kind is bool:  # a switch: the flag turns the default around
            flag = meta.get("flag", f"--no-{dashed}" if default else f"--{dashed}")
            if default:
                kwargs["help"] += " (on by default; this flag turns it off)"
            parser.add_argument(flag, action="store_false" if default else "store_true", **kwargs)
            continue
        flag = meta.get("flag", f"--{dashed}")
        if typing.get_origin(kind) is Literal:
            kwargs["choices"] = typing.get_args(kind)
        elif typing.get_origin(kind) is tuple:
            item = typing.get_args(kind)[0]
            pairs = typing.get_origin(item) is tuple
            kwargs["metavar"] = meta.get("metavar", "KEY=VALUE,..." if pairs else "NAME,...")
            kwargs["type"] = _pairs(kwargs["metavar"], typing.get_args(item)[1]) if pairs else _comma_list
            if meta.get("repeat"):
                kwargs["action"] = "append"
        else:
            kwargs["type"] = _none_for(meta["none"], kind) if optional and "none" in meta else kind
        if default not in (None, ()):
            kwargs["help"] += f" (default: {_show(default)})"
        if "choices" not in kwargs:
            kwargs["metavar"] = meta.get("metavar", kwargs.get("metavar", flag.lstrip("-").replace("-", "_").upper()))
        parser.add_argument(flag, **kwargs)


def settings_from_args(args: argparse.Namespace, cls: type | None = None) -> Any:
    """The ``cls`` (default ``TrainSettings``) the flags in ``args`` describe; fields whose flag was
    not given keep the class default. Raises ``ConfigError`` for a value the class refuses."""
    if cls is None:
        from neo_sdk.training import TrainSettings as cls
    given = vars(args)
    values = {}
    for f in dataclasses.fields(cls):
        if f.name in given:
            value = given[f.name]
            if isinstance(value, list):  # a repeatable flag: one tuple per use
                value = tuple(v for part in value for v in part)
            values[f.name] = value
    return cls(**values)


def _unwrap(hint: Any) -> tuple[Any, bool]:
    """``(T, True)`` for ``T | None``, else ``(hint, False)``."""
    args = typing.get_args(hint)
    if type(None) in args and typing.get_origin(hint) is not Literal:
        (inner,) = [a for a in args if a is not type(None)]
        return inner, True
    return hint, False


def _comma_list(text: str) -> tuple[str, ...]:
    """``"movie, person"`` -> ``("movie", "person")``."""
    return tuple(p.strip() for p in text.split(",") if p.strip())


def _pairs(metavar: str, value_type: type) -> Callable[[str], tuple[tuple[str, Any], ...]]:
    """A parser of ``"text_to_sid=3,sid_to_type=2"`` -> ``(("text_to_sid", 3.0), ("sid_to_type", 2.0))``."""
    form = metavar.split(",")[0]

    def parse(text: str) -> tuple[tuple[str, Any], ...]:
        pairs = []
        for part in _comma_list(text):
            key, _, value = part.partition("=")
            try:
                pairs.append((key.strip(), value_type(value)))
            except ValueError:
                raise argparse.ArgumentTypeError(f"{part!r}: expected {form}") from None
        return tuple(pairs)

    return parse


def _none_for(none: Any, kind: type) -> Callable[[str], Any]:
    """``kind(text)``, but the value ``none`` stands for ``None`` (``--lora-layers 0``: every layer)."""

    def parse(text: str) -> Any:
        value = kind(text)
        return None if value == none else value

    parse.__name__ = kind.__name__  # argparse names it in "invalid int value"
    return parse


def _show(default: Any) -> str:
    if isinstance(default, tuple):
        return ",".join(f"{v[0]}={v[1]:g}" if isinstance(v, tuple) else str(v) for v in default)
    return str(default)


def _train(args: argparse.Namespace) -> int:
    from neo_sdk.errors import ConfigError
    from neo_sdk.training import train

    try:
        settings = settings_from_args(args)
    except ConfigError as exc:  # refused before any minute is spent; 2 like argparse's own errors
        print(f"error: {exc}", file=sys.stderr)
        return 2
    metrics = train(args.db, args.out, settings, resume=args.resume, probes=not args.no_probes)
    print(json.dumps(metrics, indent=1, sort_keys=True))
    return 0

"""The runtime: ``Neo`` (a loaded bundle), ``Session`` (a conversation), ``Answer``, steering.

The answer types and session stores import light; ``Neo``, ``Session`` and the steering resolver
(torch, retrievers behind them) load on first use, so ``neo_sdk.client`` stays quick to import.

Example:
    >>> from neo_sdk import Neo                                  # doctest: +SKIP
    >>> session = Neo.load("demo/bundle").session(user="196")    # doctest: +SKIP
    >>> print(session.ask("movies like this, explain why"))      # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

from neo_sdk.session._answer import (
    TASKS,
    Answer,
    ItemCard,
    ItemPart,
    ItemRef,
    Link,
    Request,
    StreamEvent,
    TextPart,
)
from neo_sdk.session._store import SessionStore, SessionStoreLike, open_session_store

_LAZY = {
    "Neo": "neo_sdk.session._neo",
    "Session": "neo_sdk.session._session",
    "PostgresSessionStore": "neo_sdk.session._pg_store",
    "DialogueState": "neo_sdk.session._steering",
    "SteeringVocabulary": "neo_sdk.session._steering",
    "resolve": "neo_sdk.session._steering",
    "normalize_title": "neo_sdk.retrieval",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'neo_sdk.session' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "TASKS",
    "Answer",
    "DialogueState",
    "ItemCard",
    "ItemPart",
    "ItemRef",
    "Link",
    "Neo",
    "PostgresSessionStore",
    "Request",
    "Session",
    "SessionStore",
    "SessionStoreLike",
    "SteeringVocabulary",
    "StreamEvent",
    "TextPart",
    "normalize_title",
    "open_session_store",
    "resolve",
]

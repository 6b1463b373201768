"""The runtime: ``Neo`` (a loaded bundle), ``Session`` (a conversation), ``Answer``, steering.

Example:
    >>> from neo_sdk import Neo                                  # doctest: +SKIP
    >>> session = Neo.load("demo/bundle").session(user="196")    # doctest: +SKIP
    >>> print(session.ask("movies like this, explain why"))      # doctest: +SKIP
"""

from neo_sdk.retrieval import normalize_title
from neo_sdk.session._answer import (
    TASKS,
    Answer,
    ItemPart,
    ItemRef,
    Request,
    StreamEvent,
    TextPart,
)
from neo_sdk.session._neo import Neo
from neo_sdk.session._pg_store import PostgresSessionStore
from neo_sdk.session._session import Session
from neo_sdk.session._steering import DialogueState, SteeringVocabulary, resolve
from neo_sdk.session._store import SessionStore, open_session_store

__all__ = [
    "TASKS",
    "Answer",
    "DialogueState",
    "ItemPart",
    "ItemRef",
    "Neo",
    "PostgresSessionStore",
    "Request",
    "Session",
    "SessionStore",
    "SteeringVocabulary",
    "StreamEvent",
    "TextPart",
    "normalize_title",
    "open_session_store",
    "resolve",
]

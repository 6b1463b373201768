"""A LangChain chat model asked through a SQLite cache: the one way the SDK calls an outside LLM
(the LLM teacher of stage 3 labels, the judge of ``neo eval --judge``).

The model is given as an object or as ``"module:factory"`` (a function returning one, what
``--teacher`` and ``--judge`` take). Replies are keyed by the sha256 of the model's name, the system
prompt and the prompt, so asking the same thing again never calls the model twice.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neo_sdk.errors import ConfigError, NeoError

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel


class CachedChat:
    """A chat model and its reply cache.

    Args:
        model: a ``BaseChatModel``, or ``"module:factory"``.
        role: what the model is for ("teacher", "judge"): named in every error.
        cache: SQLite file of the replies (table ``chat_replies``); ``None``: in memory only.
        name: the model's name in the cache key (default: the factory spec or the class name).
            Change it when you change the model behind the same factory.

    Attributes:
        calls: replies asked of the model; ``hits``: replies read from the cache.
    """

    def __init__(self, model: BaseChatModel | str, *, role: str, cache: str | Path | None = None,
                 name: str | None = None) -> None:
        from langchain_core.language_models import BaseChatModel

        if isinstance(model, str):
            spec = model
            model = load_factory(spec, role)
            name = name or spec
        if not isinstance(model, BaseChatModel):
            raise ConfigError(f"{role} model must be a langchain-core BaseChatModel, got {type(model).__name__}")
        self.model, self.role = model, role
        self.name = name or type(model).__name__
        self.calls = self.hits = 0
        self.cache = str(cache) if cache is not None else ":memory:"
        if cache is not None:
            Path(cache).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.cache)
        if cache is not None:
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS chat_replies (key TEXT PRIMARY KEY, model TEXT NOT NULL, system TEXT NOT NULL,"
            " prompt TEXT NOT NULL, reply TEXT NOT NULL, created_at REAL NOT NULL)"
        )
        self._db.commit()

    def close(self) -> None:
        self._db.close()

    def ask(self, system: str, prompt: str) -> str:
        """The model's reply to ``prompt`` as text, stripped (from the cache when asked before).

        Raises:
            NeoError: the model failed (the replies so far stay cached: a rerun asks only the rest).
        """
        key = hashlib.sha256(f"{self.name}\x00{system}\x00{prompt}".encode()).hexdigest()
        row = self._db.execute("SELECT reply FROM chat_replies WHERE key=?", [key]).fetchone()
        if row is not None:
            self.hits += 1
            return str(row[0])
        from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

        messages: list[BaseMessage] = [*([SystemMessage(system)] if system else []), HumanMessage(prompt)]
        try:
            reply = reply_text(self.model.invoke(messages).content).strip()
        except Exception as exc:  # any provider error: translated once, here
            raise NeoError(f"{self.role} model {self.name!r} failed: {exc}") from exc
        self.calls += 1
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO chat_replies VALUES (?,?,?,?,?,?)",
                             [key, self.name, system, prompt, reply, time.time()])
        return reply


def load_factory(spec: str, role: str) -> Any:
    """The model a ``"module:factory"`` spec makes; the module is also looked for in the current
    folder, as ``python -m`` does (the ``neo`` script alone would not). Raises :class:`ConfigError`
    naming ``role``."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"{role} {spec!r}: expected 'module:factory', e.g. 'my_{role}s:ollama'")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{role} {spec!r}: cannot import {attr!r} from {module_name!r}: {exc}") from exc
    if not callable(factory):
        raise ConfigError(f"{role} {spec!r}: {attr!r} is not callable")
    return factory()


def reply_text(content: Any) -> str:
    """A message's content as text (a string, or the text blocks of a list of blocks)."""
    if isinstance(content, str):
        return content
    parts = []
    for block in content or []:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
    return " ".join(parts)

"""Teachers write the text labels of stage 3: explanations, user profiles, similarity reasons.

* :class:`TemplateTeacher` (offline, the default) fills the ``teacher.*`` sentence patterns of the
  prompt files with facts from the catalog only: people, genres and decades the recommended item
  shares with the history. Deterministic given the random generator it is handed.
* :class:`LangChainTeacher` asks any LangChain chat model (given as an object or as
  ``"module:factory"``), giving it the grounded template label as its facts, and swaps item titles
  in the answer for item markers. Answers are cached in SQLite, keyed by a hash of the model name
  and the prompt, so rebuilding the examples never calls the model twice for the same prompt.
"""

from __future__ import annotations

import hashlib
import importlib
import random
import sqlite3
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from neo_sdk.errors import ConfigError, NeoError
from neo_sdk.tasks._example import ITEM_MARKER, item_marker
from neo_sdk.tasks._facts import CatalogFacts

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel


@runtime_checkable
class Teacher(Protocol):
    """Writes text labels. ``history`` is oldest first; every method returns plain text in which
    items are mentioned only as markers ``[[item:ID]]``."""

    name: str

    def explain(
        self, facts: CatalogFacts, history: Sequence[str], target: str, rng: random.Random
    ) -> str: ...

    def profile(self, facts: CatalogFacts, history: Sequence[str], rng: random.Random) -> str: ...

    def similar(self, facts: CatalogFacts, anchor: str, item: str, rng: random.Random) -> str: ...


class TemplateTeacher:
    """Grounded labels from catalog facts and the ``teacher.*`` patterns in ``prompts/``.

    Example:
        >>> TemplateTeacher().explain(facts, ["movie:100"], "movie:50", random.Random(0))
        'Like [[item:100]], it is directed by ... .'
    """

    name = "template"

    def __init__(self, *, max_items: int = 2, max_genres: int = 2) -> None:
        self.max_items = max_items
        self.max_genres = max_genres

    def explain(
        self, facts: CatalogFacts, history: Sequence[str], target: str, rng: random.Random
    ) -> str:
        p = facts.prompts
        recent = list(reversed(history))  # most recent first: those are cited first
        clauses: list[str] = []
        # 1. a person (director, writer, star...) shared with history items
        by_person: dict[tuple[str, str], list[str]] = {}
        for h in recent:
            for rd in facts.shared(target, h)["people"]:
                by_person.setdefault(rd, []).append(h)
        if by_person:
            (relation, person), items = max(
                by_person.items(), key=lambda kv: (len(kv[1]), -recent.index(kv[1][0]))
            )
            clauses.append(p.render_teacher(
                "explain_person", rng, items=facts.markers(items[: self.max_items]),
                relation=facts.relation_words(relation), name=facts.title(person),
                role=facts.role_word(relation),
            ))
        # 2. genres shared with history items
        target_genres = facts.genres(target)
        genre_count = Counter(g for h in recent for g in facts.genres(h) if g in target_genres)
        if genre_count:
            top = sorted(genre_count, key=lambda g: (-genre_count[g], target_genres.index(g)))
            genres = top[: self.max_genres]
            items = [h for h in recent if set(genres) & set(facts.genres(h))][: self.max_items]
            clauses.append(p.render_teacher(
                "explain_genre", rng, items=facts.markers(items), genres=facts.join(genres),
                type=facts.type_of(target),
            ))
        # 3. the decade, only when nothing more specific was found
        decade = facts.decade(target)
        if not clauses and decade:
            items = [h for h in recent if facts.decade(h) == decade][: self.max_items]
            if items:
                clauses.append(p.render_teacher(
                    "explain_decade", rng, items=facts.markers(items), decade=decade
                ))
        if not clauses:
            year = facts.year(target)
            if target_genres and year:
                clauses.append(p.render_teacher(
                    "explain_fallback", rng, genres=facts.join(target_genres[: self.max_genres]),
                    year=year, type=facts.type_of(target),
                ))
            else:
                clauses.append(p.render_teacher("explain_popular", rng, type=facts.type_of(target)))
        return " ".join(clauses)

    def profile(self, facts: CatalogFacts, history: Sequence[str], rng: random.Random) -> str:
        p = facts.prompts
        history = list(history)
        clauses: list[str] = []
        kinds = Counter(facts.type_of(h) for h in history)
        main_type = max(kinds, key=lambda t: (kinds[t], t)) if kinds else "item"
        threshold = 2 if len(history) >= 4 else 1
        genres = Counter(g for h in history for g in facts.genres(h))
        top = [g for g, n in sorted(genres.items(), key=lambda kv: (-kv[1], kv[0])) if n >= threshold]
        if top:
            clauses.append(p.render_teacher(
                "profile_genres", rng, genres=facts.join(top[:3]), types=p.plural(main_type)
            ))
        decades = Counter(d for h in history if (d := facts.decade(h)))
        dated = sum(decades.values())
        common = [d for d, n in sorted(decades.items(), key=lambda kv: (-kv[1], kv[0]))
                  if dated and n / dated >= 0.3][:2]
        if common:
            clauses.append(p.render_teacher("profile_decades", rng, decades=facts.join(common)))
        people: Counter[str] = Counter(dst for h in history for _, dst in facts.forward[h])
        for h in history:
            if facts.reverse.get(h):  # the history holds the person itself (a follow): strong
                people[h] += 2
        names = [d for d, n in sorted(people.items(), key=lambda kv: (-kv[1], kv[0])) if n >= 2][:2]
        if names:
            clauses.append(p.render_teacher(
                "profile_people", rng, names=facts.join([facts.title(n) for n in names])
            ))
        if not clauses:
            clauses.append(p.render_teacher("profile_fallback", rng, types=p.plural(main_type)))
        return " ".join(clauses)

    def similar(self, facts: CatalogFacts, anchor: str, item: str, rng: random.Random) -> str:
        p = facts.prompts
        shared = facts.shared(anchor, item)
        clauses: list[str] = []
        if shared["people"]:
            relation, person = shared["people"][0]
            clauses.append(p.render_teacher(
                "similar_person", rng, relation=facts.relation_words(relation),
                name=facts.title(person), role=facts.role_word(relation),
            ))
        if shared["genres"]:
            clauses.append(p.render_teacher(
                "similar_genre", rng, genres=facts.join(shared["genres"][: self.max_genres])
            ))
        if shared["works"]:
            clauses.append(p.render_teacher(
                "similar_work", rng, items=facts.markers(shared["works"][: self.max_items])
            ))
        if not clauses and shared["decade"]:
            clauses.append(p.render_teacher("similar_decade", rng, decade=shared["decade"]))
        if not clauses:
            clauses.append(p.render_teacher("similar_cooccur", rng))
        return " ".join(clauses)


class LangChainTeacher:
    """Labels from a LangChain chat model, cached in SQLite.

    Args:
        model: a ``BaseChatModel``, or ``"module:factory"`` naming a function that returns one
            (what ``--teacher`` takes on the command line).
        cache: SQLite file for the labels (table ``teacher_labels``); ``None``: in memory only.
        name: the model's name in the cache key (default: the factory spec or the class name).
            Change it when you change the model behind the same factory.

    Attributes:
        calls: how many times the model was actually called (cache misses).
    """

    def __init__(
        self, model: BaseChatModel | str, *, cache: str | Path | None = None, name: str | None = None
    ) -> None:
        from langchain_core.language_models import BaseChatModel

        if isinstance(model, str):
            spec = model
            model = _load_factory(spec)
            name = name or spec
        if not isinstance(model, BaseChatModel):
            raise ConfigError(
                f"teacher model must be a langchain-core BaseChatModel, got {type(model).__name__}"
            )
        self.model = model
        self.name = name or type(model).__name__
        self.calls = 0
        self._grounding = TemplateTeacher()
        self._db = sqlite3.connect(str(cache) if cache is not None else ":memory:")
        if cache is not None:
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS teacher_labels (key TEXT PRIMARY KEY, model TEXT NOT NULL,"
            " prompt TEXT NOT NULL, label TEXT NOT NULL, created_at REAL NOT NULL)"
        )
        self._db.commit()

    def close(self) -> None:
        self._db.close()

    def explain(
        self, facts: CatalogFacts, history: Sequence[str], target: str, rng: random.Random
    ) -> str:
        grounded = self._grounding.explain(facts, history, target, rng)
        shown = list(history)[-10:]
        prompt = facts.prompts.render_teacher(
            "llm_explain", history="; ".join(facts.label(h) for h in shown),
            target=facts.label(target), facts=_titled(facts, grounded),
        )
        return _markered(facts, self.ask(facts, prompt), [*shown, target])

    def profile(self, facts: CatalogFacts, history: Sequence[str], rng: random.Random) -> str:
        grounded = self._grounding.profile(facts, history, rng)
        shown = list(history)[-10:]
        prompt = facts.prompts.render_teacher(
            "llm_profile", history="; ".join(facts.label(h) for h in shown), facts=grounded
        )
        return _markered(facts, self.ask(facts, prompt), shown)

    def similar(self, facts: CatalogFacts, anchor: str, item: str, rng: random.Random) -> str:
        grounded = self._grounding.similar(facts, anchor, item, rng)
        prompt = facts.prompts.render_teacher(
            "llm_similar", item=facts.label(anchor), similar=facts.label(item), facts=grounded
        )
        return _markered(facts, self.ask(facts, prompt), [anchor, item])

    def ask(self, facts: CatalogFacts, prompt: str) -> str:
        """The model's one-line answer to ``prompt`` (from the cache when asked before)."""
        system = facts.prompts.render_teacher("llm_system") if facts.prompts.teacher.get(
            "llm_system") else ""
        key = hashlib.sha256(f"{self.name}\x00{system}\x00{prompt}".encode()).hexdigest()
        row = self._db.execute("SELECT label FROM teacher_labels WHERE key=?", [key]).fetchone()
        if row is not None:
            return str(row[0])
        from langchain_core.messages import HumanMessage, SystemMessage

        messages: list[Any] = ([SystemMessage(system)] if system else []) + [HumanMessage(prompt)]
        try:
            reply = self.model.invoke(messages)
        except Exception as exc:  # any provider error: translate once, here
            raise NeoError(f"teacher model {self.name!r} failed: {exc}") from exc
        self.calls += 1
        label = " ".join(_text(reply.content).split())
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO teacher_labels VALUES (?,?,?,?,?)",
                [key, self.name, prompt, label, time.time()],
            )
        return label


def _load_factory(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"teacher {spec!r}: expected 'module:factory', e.g. 'my_teachers:ollama'")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"teacher {spec!r}: cannot import {attr!r} from {module_name!r}: {exc}") from exc
    if not callable(factory):
        raise ConfigError(f"teacher {spec!r}: {attr!r} is not callable")
    return factory()


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = []
    for block in content or []:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
    return " ".join(parts)


def _titled(facts: CatalogFacts, text: str) -> str:
    """Markers replaced by titles (what a text-only model reads)."""
    return ITEM_MARKER.sub(lambda m: facts.title(m.group(1)) if m.group(1) in facts.items
                           else m.group(0), text)


def _markered(facts: CatalogFacts, text: str, item_ids: Sequence[str]) -> str:
    """Titles of ``item_ids`` in a model's answer replaced by their markers (longest title first)."""
    for item_id in sorted(set(item_ids), key=lambda i: -len(facts.title(i))):
        title = facts.title(item_id)
        if len(title) >= 3 and title in text:
            text = text.replace(title, item_marker(item_id))
    return text

"""Grounds: the catalog facts an explanation or a profile may state, found once and used twice.

* In **training**, a stage 3 explanation is ``<item> <grounds line> <sentence>`` and a profile is
  ``<grounds line> <sentence>``: the teacher's sentence states only facts of the line.
* At **serving**, the runtime writes the grounds line itself right after the item the model chose
  (or at the start of a profile) and the model writes the sentence: it verbalises facts it is
  shown instead of recalling them from an item's Semantic ID, which a small model gets wrong.

The line is part of the model's context, never of the answer shown. Everything comes from the
catalog (category field, year field, relations) and the prompt words, so any catalog works.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from neo_sdk.tasks._facts import CatalogFacts
from neo_sdk.tasks._wording import category_word

GROUNDS_VERSION = 2  # recorded in a bundle trained with grounds lines (the runtime writes them only then)
GROUNDS_VERSIONS = (1, 2)  # lines the runtime can write: 2 writes category values as lower-case words
# Kept short: every grounds token is paid for in training time (an explanation example is already
# the longest kind), and a short line is easier to verbalise faithfully.
MAX_CITED = 1  # basis items cited per shared fact
MAX_PEOPLE = 1  # the item's own people, and people it shares with the basis
MAX_GENRES = 3


@dataclass(frozen=True)
class ExplanationGrounds:
    """What is true of ``target`` and what it shares with the basis (the history, or the item a
    "like this" request is about), most recent basis items first."""

    target: str
    genres: list[str]  # the target's own category values
    year: int | None
    people: list[tuple[str, str]]  # the target's own (relation, related item)
    shared_people: list[tuple[str, str, list[str]]]  # (relation, person, basis items with it)
    shared_genres: list[tuple[list[str], list[str]]]  # ([genres], basis items with them)
    decade_items: list[str]  # basis items from the target's decade
    decade: str | None = None

    def line(self, facts: CatalogFacts) -> str:
        """The grounds as one line of context, e.g. ``Facts: comedy, drama; 1995; directed by X;
        shares X with [[item:1]]; comedy like [[item:5]].`` (category values as the sentence
        writes them, :func:`~neo_sdk.tasks.category_word`)."""
        words = facts.prompts
        parts: list[str] = []
        if self.genres:
            parts.append(", ".join(category_word(g) for g in self.genres))
        if self.year:
            parts.append(str(self.year))
        parts += [f"{facts.relation_words(r)} {facts.title(p)}" for r, p in self.people]
        like = words.word("grounds", "like", "like")
        shares = words.word("grounds", "shares", "shares")
        parts += [f"{shares} {facts.title(p)} {words.word('grounds', 'with', 'with')} {facts.markers(items)}"
                  for _, p, items in self.shared_people]
        parts += [f"{facts.category_words(genres)} {like} {facts.markers(items)}" for genres, items in self.shared_genres]
        if self.decade and self.decade_items:
            parts.append(f"{self.decade} {like} {facts.markers(self.decade_items)}")
        return f"{words.word('grounds', 'facts', 'Facts')}: {'; '.join(parts)}."


def explanation_grounds(facts: CatalogFacts, basis: Sequence[str], target: str) -> ExplanationGrounds:
    """The grounds of explaining ``target`` to someone who knows ``basis`` (oldest first)."""
    recent = list(dict.fromkeys(reversed([b for b in basis if b != target])))
    by_person: dict[tuple[str, str], list[str]] = {}
    for item in recent:
        for relation_person in facts.shared(target, item)["people"]:
            by_person.setdefault(relation_person, []).append(item)
    shared_people = [(r, p, items[:MAX_CITED]) for (r, p), items in
                     sorted(by_person.items(), key=lambda kv: (-len(kv[1]), recent.index(kv[1][0])))][:MAX_PEOPLE]
    own = facts.genres(target)
    counts = Counter(g for item in recent for g in facts.genres(item) if g in own)
    top = sorted(counts, key=lambda g: (-counts[g], own.index(g)))[:2]
    shared_genres = []
    if top:
        items = [i for i in recent if set(top) <= set(facts.genres(i))] or \
                [i for i in recent if set(top) & set(facts.genres(i))]
        shared_genres.append((top, items[:MAX_CITED]))
    decade = facts.decade(target)
    decade_items = [i for i in recent if decade and facts.decade(i) == decade][:MAX_CITED]
    shared = {(r, p) for r, p, _ in shared_people}
    people = [rp for rp in dict.fromkeys(facts.forward.get(target, [])) if rp not in shared][:MAX_PEOPLE]
    return ExplanationGrounds(target, own[:MAX_GENRES], facts.year(target), people, shared_people, shared_genres,
                              decade_items, decade)


@dataclass(frozen=True)
class ProfileGrounds:
    """What a history is mostly made of: category values, decades and related items that recur."""

    main_type: str
    genres: list[str] = field(default_factory=list)  # most frequent first (at most 3)
    decades: list[str] = field(default_factory=list)  # at most 2, each >= 30% of the dated items
    names: list[str] = field(default_factory=list)  # related items (people) that recur, at most 2

    def line(self, facts: CatalogFacts) -> str:
        """E.g. ``Facts: drama, comedy, thriller; 1990s; Alan Parker.``"""
        parts = [", ".join(category_word(g) for g in self.genres)] if self.genres else []
        if self.decades:
            parts.append(", ".join(self.decades))
        if self.names:
            parts.append(", ".join(facts.title(n) for n in self.names))
        if not parts:
            parts.append(facts.prompts.plural(self.main_type))
        return f"{facts.prompts.word('grounds', 'facts', 'Facts')}: {'; '.join(parts)}."


def profile_grounds(facts: CatalogFacts, history: Sequence[str]) -> ProfileGrounds:
    """The grounds of describing a user from ``history``."""
    history = list(history)
    kinds = Counter(facts.type_of(h) for h in history)
    main_type = max(kinds, key=lambda t: (kinds[t], t)) if kinds else "item"
    threshold = 2 if len(history) >= 4 else 1
    genres = Counter(g for h in history for g in facts.genres(h))
    top = [g for g, n in sorted(genres.items(), key=lambda kv: (-kv[1], kv[0])) if n >= threshold][:MAX_GENRES]
    decades = Counter(d for h in history if (d := facts.decade(h)))
    dated = sum(decades.values())
    common = [d for d, n in sorted(decades.items(), key=lambda kv: (-kv[1], kv[0])) if n / dated >= 0.3][:2] \
        if dated else []
    people: Counter[str] = Counter(dst for h in history for _, dst in facts.forward[h])
    for h in history:
        if facts.reverse.get(h):  # the history holds the person itself (a follow): strong
            people[h] += 2
    names = [d for d, n in sorted(people.items(), key=lambda kv: (-kv[1], kv[0])) if n >= 2][:2]
    return ProfileGrounds(main_type, top, common, names)


"""The facts a request states, read generically from the catalog: category values, and related
items named with their relation words ("directed by X", "starring Y", "hosted by Z", "by W").

Everything comes from the catalog and the prompt words, so the same reader serves movies, books,
podcasts or products:

* **categories**: the values of each type's category field (:attr:`CatalogFacts.category_field`),
  matched with simple English word forms ("comedies", "romantic", "animated", "sci fi");
* **related items**: the names of items that are the target of a relation (people, hosts,
  authors), matched in full, or by last name right after a relation phrase ("by kubrick");
  the relation phrase before a name (the prompts' ``relations`` and ``roles`` words, e.g.
  "directed by", "director", "starring", "actor") picks the relation; "by", "with", "featuring"
  and "from" leave it open (any relation);
* what is left is the **free text** a retriever matches.

Years and decades are read by the steering resolver itself.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from neo_sdk.tasks import CatalogFacts

_NAME_MAX_WORDS = 5
_RELATION_MAX_WORDS = 3
_OPEN_RELATION = ("by", "with", "featuring", "from", "starring")  # a relation word of unknown relation
_JOINERS = ("and", "or", "&")
# word forms of a category value: (suffix of the value, suffix of the derived word)
_FORMS = (("y", "ies"), ("y", "ic"), ("ce", "tic"), ("ion", "ed"), ("ary", "aries"), ("", "s"), ("", "es"))


# Words of a request that ask rather than describe: they never reach a retriever
_CHATTER = frozenset({
    "find", "search", "look", "looking", "show", "give", "get", "want", "wanted", "need", "like", "love",
    "loved", "enjoy", "enjoyed", "recommend", "recommended", "recommendation", "recommendations", "suggest",
    "suggestion", "suggestions", "pick", "choose", "watch", "see", "read", "listen", "play", "hear",
    "something", "anything", "everything", "good", "great", "nice", "best", "top", "fun", "interesting",
    "please", "could", "would", "can", "tonight", "today", "weekend", "kind", "sort", "maybe", "also", "list",
    "ids", "id", "titles", "title", "catalog", "options", "ideas", "idea", "whatever", "thing", "things",
    "mood", "feel", "feeling", "fancy", "craving", "crave", "vibe", "vibes", "rec", "recs", "hey", "hi",
    "thanks", "pls", "plz", "got", "night", "evening", "afternoon", "binge", "stream", "streaming",
})


def content_words(text: str) -> str:
    """The words of ``text`` that describe something: stop words and request chatter ("find",
    "recommend", "something good", "tonight") dropped. Empty when nothing is left."""
    from bm25s.stopwords import STOPWORDS_EN_PLUS

    return " ".join(w for w in words(text) if w not in _CHATTER and w not in STOPWORDS_EN_PLUS)


def words(text: str) -> list[str]:
    """Lower-case ASCII words of a text (accents dropped, apostrophes and punctuation split)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return re.findall(r"[a-z0-9]+", ascii_text)


def normalize_title(title: str) -> str:
    """Lowercase, accents and punctuation removed, year dropped, ``Usual Suspects, The`` -> ``the usual suspects``."""
    text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode().lower()
    text = re.sub(r"\s*\((?:\d{4}|[^)]*)\)\s*$", "", text.strip())
    moved = re.match(r"^(.*), (the|a|an|la|le|les|il|el|der|die|das)$", text)
    if moved:
        text = f"{moved.group(2)} {moved.group(1)}"
    return re.sub(r"[^a-z0-9]+", " ", text).strip()


@dataclass(frozen=True)
class StatedFacts:
    """What a request states about the items it wants.

    Attributes:
        categories: category values every answer must have.
        related: ``(relation, item id)`` pairs every answer must be linked by (relation ``None``:
            any relation).
        free_text: the request's words once the facts are read out.
        phrases: the words that stated each fact, in order (for ``Request.reasons``).
    """

    categories: tuple[str, ...] = ()
    related: tuple[tuple[str | None, str], ...] = ()
    free_text: str = ""
    phrases: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.categories or self.related)


@dataclass(frozen=True)
class Mention:
    """One fact stated in a list of words: words ``start:stop`` (a relation phrase included).

    Attributes:
        kind: ``"category"`` or ``"related"``.
        value: the category value, or the related item's id.
        relation: the relation a related name was stated with (``None``: any relation).
        name_start: where the related name itself begins (after its relation phrase).
    """

    start: int
    stop: int
    kind: str
    value: str
    relation: str | None = None
    name_start: int | None = None


class FactReader:
    """Reads :class:`StatedFacts` out of request text, with the vocabulary of one catalog."""

    def __init__(self, facts: CatalogFacts) -> None:
        self.facts = facts
        self.categories: dict[str, str] = {}  # word form (space-joined words) -> category value
        for etype, field in facts.category_field.items():
            if field is None:
                continue
            for item in facts.by_type[etype]:
                for value in facts.genres(item):
                    for form in _category_forms(value):
                        self.categories.setdefault(form, value)
        self.names: dict[str, str] = {}  # full name words -> item id (the most popular wins)
        self.surnames: dict[str, str] = {}
        named = sorted((i for i in facts.items if facts.reverse.get(i)), key=lambda i: (facts.popularity[i], i))
        for item in named:
            name = words(facts.title(item))
            if len(name) >= 2:
                self.names[" ".join(name)] = item
            if name:  # a last name, or a one-word name ("by homer"): read only after a relation phrase
                self.surnames[name[-1]] = item
        self.relations: dict[str, str | None] = dict.fromkeys(_OPEN_RELATION)
        for relation in sorted({r for links in facts.forward.values() for r, _ in links}):
            for phrase, plural in ((facts.relation_words(relation), False), (facts.role_word(relation), True)):
                form = " ".join(words(phrase))
                if form:
                    self.relations[form] = relation
                    if plural:
                        self.relations.setdefault(form + "s", relation)

    def read(self, text: str) -> StatedFacts:
        """The facts ``text`` states, and the words left."""
        tokens = words(text)
        found = self.mentions(tokens)
        used = [False] * len(tokens)
        for mention in found:
            for n in range(mention.start, mention.stop):
                used[n] = True
        free = " ".join(t for t, u in zip(tokens, used, strict=True) if not u)
        return StatedFacts(
            categories=tuple(dict.fromkeys(m.value for m in found if m.kind == "category")),
            related=tuple(dict.fromkeys((m.relation, m.value) for m in found if m.kind == "related")),
            free_text=free, phrases=tuple(" ".join(tokens[m.start : m.stop]) for m in found),
        )

    def mentions(self, tokens: Sequence[str]) -> list[Mention]:
        """Every fact stated in ``tokens`` (lower-case words, as :func:`words` gives), in text order.

        Related item names are read first (with the relation phrase before them), then category
        values in the words left; a token that matches nothing (e.g. a placeholder) stops a match.
        """
        tokens = list(tokens)
        used = [False] * len(tokens)
        found: list[Mention] = []
        names: list[tuple[int, int, str]] = []
        taken = [False] * len(tokens)
        for start, length, item in self._names(tokens):
            if not any(taken[start : start + length]):
                names.append((start, length, item))
                for n in range(start, start + length):
                    taken[n] = True
        last_relation: str | None = None
        for start, length, item in sorted(names):
            relation, phrase_start = self._relation_before(tokens, start, used)
            if phrase_start == start and found and _joined(tokens, used, start):
                relation = last_relation  # "starring tom hanks and meg ryan"
            for n in range(phrase_start, start + length):
                used[n] = True
            last_relation = relation
            found.append(Mention(phrase_start, start + length, "related", item, relation, start))
        for length in range(3, 0, -1):
            for start in range(len(tokens) - length + 1):
                form = " ".join(tokens[start : start + length])
                if form in self.categories and not any(used[start : start + length]):
                    for n in range(start, start + length):
                        used[n] = True
                    found.append(Mention(start, start + length, "category", self.categories[form]))
        return sorted(found, key=lambda m: (m.start, m.kind))

    def _names(self, tokens: list[str]) -> Iterable[tuple[int, int, str]]:
        """Full names (longest first), then last names right after a relation phrase."""
        for length in range(min(_NAME_MAX_WORDS, len(tokens)), 1, -1):
            for start in range(len(tokens) - length + 1):
                item = self.names.get(" ".join(tokens[start : start + length]))
                if item is not None:
                    yield start, length, item
        for start in range(1, len(tokens)):
            item = self.surnames.get(tokens[start])
            if item is not None and self._relation_before(tokens, start, [False] * len(tokens))[1] < start:
                yield start, 1, item

    def _relation_before(self, tokens: list[str], start: int, used: list[bool]) -> tuple[str | None, int]:
        """The relation named by the words just before ``start``, and where they begin."""
        for length in range(min(_RELATION_MAX_WORDS, start), 0, -1):
            begin = start - length
            phrase = " ".join(tokens[begin:start])
            if phrase in self.relations and not any(used[begin:start]):
                return self.relations[phrase], begin
        return None, start


def _joined(tokens: list[str], used: list[bool], start: int) -> bool:
    """Whether the word before ``start`` joins this name to a fact just read ("X and Y")."""
    return start >= 2 and tokens[start - 1] in _JOINERS and used[start - 2]


def _category_forms(value: str) -> set[str]:
    """Word forms of a category value: itself, plurals, simple adjective forms."""
    base = words(value)
    if not base:
        return set()
    forms = {" ".join(base), "".join(base)}
    if len(base) > 1 and len(base[-1]) == 1:  # "children's" -> "children"
        forms.add(" ".join(base[:-1]))
    head, last = base[:-1], base[-1]
    for suffix, derived in _FORMS:
        if last.endswith(suffix) and len(last) - len(suffix) >= 3:
            forms.add(" ".join([*head, last[: len(last) - len(suffix)] + derived]))
    return forms

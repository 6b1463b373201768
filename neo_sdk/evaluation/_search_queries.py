"""Search query families built from catalog facts, their scores, and the search baselines.

Four families measure text -> item search the way people ask (issue 15, "measure first"):

* **navigational**: the title alone as a user types it (lower-cased, year and parentheticals
  removed, a trailing article moved to the front: ``"Usual Suspects, The"`` -> ``"the usual
  suspects"``), sometimes with a few words around it (``"find the usual suspects"``);
* **descriptive** known-item: 2-3 facts of one item (year or decade, a category value, a related
  item's name with its relation words, ``"directed by X"``), no title word; only items those facts
  narrow down to a few are asked for, and :func:`unique_share` reports how many have one answer;
* **attribute**: stated facts with many answers (``"comedy movies from the 1990s"``, ``"films
  starring X"``, ``"drama movies after 1995"``), scored by precision: the share of returned items
  that satisfy every fact (:class:`Fact`); only predicates with at least 10 matching items are kept;
* **personalised**: a user's held-out next item described by one category value and its decade
  (``"a 90s comedy"``), asked with that user's training history.

Nothing is movie-specific: the category field, the year field and the relations come from
:class:`~neo_sdk.tasks.CatalogFacts` (the catalog's own fields and relations); relation words
(``directed_by`` -> "directed by") and other words for a type (``film`` for ``movie``) come from the
prompt words. The phrasings here are written for evaluation and are not the training templates.

Scoring: :func:`hit_at_k` (known-item families), :func:`precision_at_k` (attribute), and the
baseline the personalised family must beat, :func:`popularity_among_matching`. ``bench/search.py``
runs them for BM25, dense, the runtime's hybrid retriever (``neo_sdk.retrieval``) and the model.

Example:
    >>> queries = build_search_queries(catalog, split, n=200, seed=0)   # ML-100k with people
    >>> q = queries["attribute"][0]
    >>> q.text, len(q.matching), [f.describe() for f in q.predicate]     # doctest: +SKIP
    ('crime movies from the 1970s', 23, ['genres = Crime', 'year in 1970..1979'])
    >>> precision_at_k(bm25.search(q.text, 10), q.matching, 10)          # doctest: +SKIP
    0.6
"""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from neo_sdk.errors import ConfigError

if TYPE_CHECKING:
    from neo_sdk.catalog import Catalog, Split
    from neo_sdk.prompts import PromptSet
    from neo_sdk.tasks import CatalogFacts

SEARCH_FAMILIES: tuple[str, ...] = ("navigational", "descriptive", "attribute", "personalised")
FactKind = Literal["category", "year", "related"]

#: Function words ignored when checking that a descriptive query holds no title word.
STOPWORDS = frozenset({
    "a", "an", "the", "of", "and", "or", "in", "on", "at", "to", "for", "from", "with", "by", "as", "is", "it",
    "its", "this", "that", "these", "those", "my", "me", "i", "you", "your", "some", "any", "all", "one", "not",
    "no",
})
# Articles a catalog title may carry at its end ("Usual Suspects, The", "Cité des enfants, La").
_ARTICLES = "the|a|an|la|le|les|l'|el|los|las|il|lo|gli|die|der|das|den|het|een|de"
_TRAILING_ARTICLE = re.compile(rf"^(?P<body>.+?),\s*(?P<art>{_ARTICLES})(?P<rest>\s*[:\-].*)?$", re.IGNORECASE)
_PARENS = re.compile(r"\s*[(\[][^)\]]*[)\]]")
_LEADING_ARTICLE = re.compile(rf"^(?:{_ARTICLES})\s+", re.IGNORECASE)
_WORD = re.compile(r"[^\W_]+")


# --------------------------------------------------------------------------------- data
@dataclass(frozen=True)
class Fact:
    """One stated fact of a query, checkable on any item.

    Attributes:
        kind: ``"category"`` (``value`` is one of the item's category labels), ``"year"`` (the
            item's year lies in ``low..high``, either end open when ``None``) or ``"related"``
            (the item links to the item ``value`` by relation ``key``).
        key: the category field, the year field or the relation name (as the catalog spells it).
        value: the category label or the related item's id (empty for a year).
        low, high: the year range, inclusive.
    """

    kind: FactKind
    key: str
    value: str = ""
    low: int | None = None
    high: int | None = None

    def holds(self, facts: CatalogFacts, item_id: str) -> bool:
        """Whether the item satisfies this fact (read from the catalog facts, not from an index)."""
        if self.kind == "category":
            return self.value in facts.genres(item_id)
        if self.kind == "year":
            year = facts.year(item_id)
            return year is not None and (self.low is None or year >= self.low) and (
                self.high is None or year <= self.high)
        return (self.key, self.value) in facts.forward.get(item_id, [])

    def describe(self) -> str:
        """``genres = Comedy``, ``year in 1990..1999``, ``stars -> person:tom-hanks``."""
        if self.kind == "category":
            return f"{self.key} = {self.value}"
        if self.kind == "year":
            return f"{self.key} in {'' if self.low is None else self.low}..{'' if self.high is None else self.high}"
        return f"{self.key} -> {self.value}"


@dataclass(frozen=True)
class SearchQuery:
    """One evaluation query.

    Attributes:
        text: what the user types.
        family: one of :data:`SEARCH_FAMILIES`.
        entity_type: the type of the items it asks for.
        target: the one item it should find (navigational, descriptive, personalised).
        predicate: the facts the text states (descriptive, attribute, personalised).
        matching: items of ``entity_type`` satisfying every fact of ``predicate`` (attribute: the
            relevant set; descriptive: the items the facts leave; personalised: the items the
            description fits). Navigational: the target alone.
        user, history: who asks, and their training history, oldest first (personalised).
    """

    text: str
    family: str
    entity_type: str
    target: str | None = None
    predicate: tuple[Fact, ...] = ()
    matching: frozenset[str] = frozenset()
    user: str | None = None
    history: tuple[str, ...] = ()

    @property
    def unique(self) -> bool:
        """The stated facts leave one item."""
        return len(self.matching) == 1

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "family": self.family, "entity_type": self.entity_type,
                "target": self.target, "predicate": [f.describe() for f in self.predicate],
                "n_matching": len(self.matching), "user": self.user, "history_length": len(self.history)}


# --------------------------------------------------------------------------------- text helpers
def clean_title(title: str) -> str:
    """A title as a user types it: parentheticals (years, alternative titles) removed, a trailing
    article moved to the front, lower-cased, single spaces.

    >>> clean_title("Usual Suspects, The (1995)")
    'the usual suspects'
    >>> clean_title("Cité des enfants perdus, La (City of Lost Children, The)")
    'la cité des enfants perdus'
    """
    text = _PARENS.sub("", title).strip()
    match = _TRAILING_ARTICLE.match(text)
    if match:
        text = f"{match['art']} {match['body']}{match['rest'] or ''}"
    return " ".join(text.lower().split())


def title_words(text: str) -> set[str]:
    """Content words of a text (lower-cased, :data:`STOPWORDS` removed), for title-word checks."""
    return {w for w in _WORD.findall(text.lower()) if w not in STOPWORDS}


def type_nouns(prompts: PromptSet, entity_type: str) -> list[str]:
    """Singular words for an entity type: its name, then prompt synonyms whose plural is also a
    synonym of it (``film``/``films`` -> ``movie``), so only nouns are used."""
    synonyms = prompts.words.get("synonyms", {})
    nouns = [entity_type.replace("_", " ")]
    for word, target in synonyms.items():
        if target == entity_type and word not in nouns and synonyms.get(prompts.plural(word)) == entity_type:
            nouns.append(word)
    return nouns


def _article(next_word: str) -> str:
    """``a`` or ``an`` before a word (by its first letter or number: an 80s, an 11, a 90s)."""
    w = next_word.lower()
    return "an" if (w[:1] in "aeiou" and w[:1].isalpha()) or w.startswith(("8", "11", "18")) else "a"


def _decade_words(low: int) -> list[str]:
    """Adjective forms of a decade: ``1990s`` and, in the 1900s, ``90s``."""
    return [f"{low}s", f"{low % 100:02d}s"] if 1900 <= low < 2000 else [f"{low}s"]


# --------------------------------------------------------------------------------- builder
class QueryBuilder:
    """Builds the four query families for one entity type of a catalog.

    Every family draws from its own random stream (``seed`` and the family name), so a family's
    queries do not depend on which other families were built or in what order.

    Args:
        facts: the catalog facts (build them with the training histories only:
            ``CatalogFacts(catalog, prompts, split.train)``; popularity comes from them).
        entity_type: the type to search; default the type users interact with most.
        seed: the random seed.
    """

    def __init__(self, facts: CatalogFacts, entity_type: str | None = None, *, seed: int = 0) -> None:
        self.facts = facts
        self.prompts = facts.prompts
        if entity_type is None:
            interacted = [t for t in facts.catalog.interacted_types() if facts.by_type.get(t)]
            if not interacted:
                raise ConfigError("no entity type has interactions; pass entity_type")
            entity_type = interacted[0]
        if not facts.by_type.get(entity_type):
            raise ConfigError(f"the catalog has no {entity_type!r} items to search")
        self.entity_type = entity_type
        self.seed = seed
        self.ids: list[str] = sorted(facts.by_type[entity_type])
        self.category_field = facts.category_field.get(entity_type) or ""
        self.year_field = facts.year_field.get(entity_type) or ""
        self.years: dict[str, int] = {i: y for i in self.ids if (y := facts.year(i)) is not None}
        self.labels: dict[str, list[str]] = {i: facts.genres(i) for i in self.ids}
        self.by_label: dict[str, set[str]] = defaultdict(set)
        for item_id, labels in self.labels.items():
            for label in labels:
                self.by_label[label].add(item_id)
        self.by_link: dict[tuple[str, str], set[str]] = defaultdict(set)
        self.links_into: dict[str, set[str]] = defaultdict(set)  # related item -> relations from this type
        for item_id in self.ids:
            for relation, dst in facts.forward.get(item_id, []):
                if dst != item_id and dst in facts.items:
                    self.by_link[(relation, dst)].add(item_id)
                    self.links_into[dst].add(relation)
        self.nouns = type_nouns(self.prompts, entity_type)
        # a year verb from the year field's own name ("published after 2015"), if it reads as one
        self.year_verb = self.year_field if self.year_field.endswith("ed") else ""

    # ----------------------------------------------------------------- predicates
    def matching(self, predicate: Iterable[Fact]) -> frozenset[str]:
        """Items of the type satisfying every fact."""
        out = set(self.ids)
        for fact in predicate:
            if fact.kind == "category":
                out &= self.by_label.get(fact.value, set())
            elif fact.kind == "year":
                out = {i for i in out if i in self.years
                       and (fact.low is None or self.years[i] >= fact.low)
                       and (fact.high is None or self.years[i] <= fact.high)}
            else:
                out &= self.by_link.get((fact.key, fact.value), set())
        return frozenset(out)

    def _rng(self, family: str) -> random.Random:
        return random.Random(f"{self.seed}:{family}")

    def _category(self, label: str) -> Fact:
        return Fact("category", self.category_field, label)

    def _decade(self, year: int) -> Fact:
        low = year // 10 * 10
        return Fact("year", self.year_field, low=low, high=low + 9)

    def _related(self, relation: str, dst: str) -> Fact:
        return Fact("related", relation, dst)

    # ----------------------------------------------------------------- phrases
    def _noun(self, rng: random.Random, plural: bool) -> str:
        noun = rng.choice(self.nouns)
        return self.prompts.plural(noun) if plural else noun

    def _year_adjective(self, fact: Fact, rng: random.Random) -> str | None:
        """A year fact read before the noun (``90s``, ``1995``), if it has such a form."""
        if fact.low is not None and fact.high is not None:
            if fact.high - fact.low == 9 and fact.low % 10 == 0:
                return rng.choice(_decade_words(fact.low))
            if fact.low == fact.high:
                return str(fact.low)
        return None

    def _year_clause(self, fact: Fact, rng: random.Random) -> str:
        verb = [self.year_verb] if self.year_verb else []
        low, high = fact.low, fact.high
        if low is not None and high is not None and high - low == 9 and low % 10 == 0:
            word = rng.choice(_decade_words(low))
            return rng.choice([f"from the {word}", f"from the {word}", f"of the {word}"]
                              + [f"{v} in the {word}" for v in verb])
        if low is not None and low == high:
            return rng.choice([f"from {low}", f"from {low}", f"({low})"] + [f"{v} in {low}" for v in verb])
        if low is not None and high is not None:
            return rng.choice([f"between {low} and {high}", f"from {low} to {high}"])
        if low is not None:
            return rng.choice([f"after {low - 1}", f"after {low - 1}", f"since {low}", f"newer than {low - 1}"]
                              + [f"{v} after {low - 1}" for v in verb])
        assert high is not None
        return rng.choice([f"before {high + 1}", f"before {high + 1}", f"older than {high + 1}"]
                          + [f"{v} before {high + 1}" for v in verb])

    def _short_by(self, fact: Fact) -> bool:
        """Whether ``by X`` / ``X movies`` name this relation unambiguously: the related item is
        linked to this type by that one relation only."""
        return self.links_into.get(fact.value, set()) == {fact.key}

    def _related_clause(self, fact: Fact, rng: random.Random) -> str:
        words = self.facts.relation_words(fact.key)
        name = self.facts.title(fact.value)
        forms = [f"{words} {name}"] * 3
        if words.endswith(" by") and self._short_by(fact):
            forms.append(f"by {name}")
        return rng.choice(forms)

    def phrase(self, predicate: Sequence[Fact], rng: random.Random, *, plural: bool) -> str:
        """A noun phrase stating every fact: adjectives (decade or year, category labels), the
        type noun (sometimes left out after a category), then clauses (relations, other years)."""
        adjectives: list[str] = []
        clauses: list[str] = []
        leading_name = ""
        for fact in predicate:
            if fact.kind == "year":
                adjective = self._year_adjective(fact, rng) if rng.random() < 0.45 else None
                if adjective:
                    adjectives.insert(0, adjective)
                else:
                    clauses.append(self._year_clause(fact, rng))
            elif fact.kind == "category":
                adjectives.append(fact.value.lower())
            elif (not leading_name and len(predicate) <= 2 and self._short_by(fact) and rng.random() < 0.25):
                leading_name = self.facts.title(fact.value)  # "tom hanks movies"
            else:
                same = [f for f in predicate if f.kind == "related" and f.key == fact.key and f != fact]
                if same and predicate.index(same[0]) < predicate.index(fact):
                    continue  # named with the first item of the same relation
                if same:  # "starring X and Y"
                    names = [self.facts.title(f.value) for f in (fact, *same)]
                    clauses.append(f"{self.facts.relation_words(fact.key)} {self.facts.join(names)}")
                else:
                    clauses.append(self._related_clause(fact, rng))
        rng.shuffle(clauses)
        has_category = any(f.kind == "category" for f in predicate)
        drop_noun = has_category and not plural and not leading_name and rng.random() < 0.25
        noun = "" if drop_noun else self._noun(rng, plural)
        head = " ".join(w for w in [leading_name, *adjectives, noun] if w)
        text = head
        for n, clause in enumerate(clauses):
            if clause.startswith("(") or n == 0:
                text += " " + clause
            else:
                text += rng.choice([" ", " and ", ", "]) + clause
        return text

    @staticmethod
    def _cased(text: str, rng: random.Random) -> str:
        """About half the queries are typed all lower-case."""
        return text.lower() if rng.random() < 0.5 else text

    # ----------------------------------------------------------------- families
    def navigational(self, n: int) -> list[SearchQuery]:
        """The target's title as a user types it; only items whose title is unique in the type."""
        rng = self._rng("navigational")
        keys: dict[str, str] = {}
        for item_id in self.ids:
            keys[item_id] = _LEADING_ARTICLE.sub("", clean_title(self.facts.title(item_id)))
        counts = Counter(keys.values())
        pool = [i for i in self.ids if counts[keys[i]] == 1 and _WORD.search(keys[i])]
        rng.shuffle(pool)
        out = []
        for item_id in pool[:n]:
            title = clean_title(self.facts.title(item_id))
            if rng.random() < 0.2:
                title = _LEADING_ARTICLE.sub("", title)  # "usual suspects"
            noun = self._noun(rng, plural=False)
            templates = ["{t}"] * 6 + ["find {t}", "{t} {noun}", "looking for {t}", "{t} {noun} please", "search {t}"]
            if not _LEADING_ARTICLE.match(title):
                templates.append("the {noun} {t}")
            template = rng.choice(templates)
            out.append(SearchQuery(template.format(t=title, noun=noun), "navigational", self.entity_type,
                                   target=item_id, matching=frozenset([item_id])))
        return out

    def _candidate_facts(self, item_id: str, banned: set[str]) -> dict[str, list[Fact]]:
        """An item's facts usable in a descriptive query, by kind; facts naming a title word dropped."""
        out: dict[str, list[Fact]] = {"year": [], "category": [], "related": []}
        year = self.years.get(item_id)
        if year is not None:
            out["year"] = [Fact("year", self.year_field, low=year, high=year), self._decade(year)]
        out["category"] = [self._category(g) for g in self.labels[item_id] if not title_words(g) & banned]
        out["related"] = [self._related(r, d) for r, d in self.facts.forward.get(item_id, [])
                          if (r, d) in self.by_link and not title_words(self.facts.title(d)) & banned]
        return out

    def descriptive(self, n: int, *, max_matches: int = 3, tries: int = 24) -> list[SearchQuery]:
        """2-3 facts of an item (at most one year fact and one category value), no title word.

        Items are drawn uniformly; for each, ``tries`` random fact combinations are scored by how
        many items satisfy them all, and the narrowest is kept if it leaves at most
        ``max_matches`` items (else the item is skipped): :func:`unique_share` says how many
        queries have one answer.
        """
        rng = self._rng("descriptive")
        pool = list(self.ids)
        rng.shuffle(pool)
        out: list[SearchQuery] = []
        for item_id in pool:
            if len(out) >= n:
                break
            banned = title_words(self.facts.title(item_id))
            candidates = self._candidate_facts(item_id, banned)
            best: tuple[int, tuple[Fact, ...]] | None = None
            for _ in range(tries):
                chosen: list[Fact] = []
                if candidates["year"] and rng.random() < 0.8:
                    chosen.append(rng.choice(candidates["year"]))
                if candidates["category"] and rng.random() < 0.8:
                    chosen.append(rng.choice(candidates["category"]))
                related = candidates["related"]
                want = rng.choice([1, 1, 2]) if related else 0
                chosen += rng.sample(related, min(want, len(related)))
                if not 2 <= len(chosen) <= 3:
                    continue
                size = len(self.matching(chosen))
                if best is None or size < best[0]:
                    best = (size, tuple(chosen))
            if best is None or best[0] > max_matches:
                continue
            predicate = best[1]
            for _ in range(5):  # a template word (a type noun, a lead word) may also be one of the title's words
                text = self._cased(self._descriptive_text(predicate, rng), rng)
                if not title_words(text) & banned:
                    out.append(SearchQuery(text, "descriptive", self.entity_type, target=item_id,
                                           predicate=predicate, matching=self.matching(predicate)))
                    break
        return out

    def _descriptive_text(self, predicate: Sequence[Fact], rng: random.Random) -> str:
        body = self.phrase(predicate, rng, plural=False)
        lead = rng.choice(["", "", "", "a", "the", "that", "which is the", "looking for the", "find the"])
        if lead == "a":
            lead = _article(body.split()[0])
        return f"{lead} {body}".strip()

    def attribute(self, n: int, *, min_matches: int = 10, max_attempts: int | None = None) -> list[SearchQuery]:
        """Stated facts with at least ``min_matches`` items, one query per distinct predicate.

        Shapes: category + decade, a related item alone, category + related item, category + open
        year range (after / before), two category values, one category value, one decade.
        Values come from a randomly drawn item, so each predicate holds for at least one item.
        """
        rng = self._rng("attribute")
        shapes = [("category", "decade")] * 4 + [("related",)] * 4 + [("category", "related")] * 2 + [
            ("category", "range")] * 3 + [("category", "category"), ("category",), ("decade",), ("related", "range")]
        seen: set[tuple[Fact, ...]] = set()
        out: list[SearchQuery] = []
        attempts = max_attempts if max_attempts is not None else 200 * max(n, 1)
        for _ in range(attempts):
            if len(out) >= n:
                break
            item_id = rng.choice(self.ids)
            predicate = self._draw_predicate(rng.choice(shapes), item_id, rng)
            if predicate is None:
                continue
            key = tuple(sorted(predicate, key=lambda f: f.describe()))
            if key in seen:
                continue
            matching = self.matching(predicate)
            if len(matching) < min_matches or not self._every_fact_cuts(predicate, matching):
                continue
            seen.add(key)
            out.append(SearchQuery(self._cased(self._attribute_text(predicate, rng), rng), "attribute",
                                   self.entity_type, predicate=predicate, matching=matching))
        return out

    def _every_fact_cuts(self, predicate: Sequence[Fact], matching: frozenset[str]) -> bool:
        """No stated fact is idle: leaving any one out matches more items ("before 2005" in a
        catalog that ends in 1998 says nothing)."""
        if len(predicate) == 1:
            return len(matching) < len(self.ids)
        return all(len(self.matching([g for g in predicate if g is not f])) > len(matching) for f in predicate)

    def _draw_predicate(self, shape: Sequence[str], item_id: str, rng: random.Random) -> tuple[Fact, ...] | None:
        labels = self.labels[item_id]
        year = self.years.get(item_id)
        links = [(r, d) for r, d in self.facts.forward.get(item_id, []) if (r, d) in self.by_link]
        predicate: list[Fact] = []
        used_labels: set[str] = set()
        for part in shape:
            if part == "category":
                free = [g for g in labels if g not in used_labels]
                if not free:
                    return None
                label = rng.choice(free)
                used_labels.add(label)
                predicate.append(self._category(label))
            elif part == "decade":
                if year is None:
                    return None
                predicate.append(self._decade(year))
            elif part == "range":
                if year is None:
                    return None
                if rng.random() < 0.5:  # after Y: Y a round year below the item's
                    cut = (year - 1) // 5 * 5 - 5 * rng.randint(0, 2)
                    predicate.append(Fact("year", self.year_field, low=cut + 1))
                else:  # before Y
                    cut = -(-(year + 1) // 5) * 5 + 5 * rng.randint(0, 2)
                    predicate.append(Fact("year", self.year_field, high=cut - 1))
            elif part == "related":
                if not links:
                    return None
                # people with many items of the type are the ones asked about ("films starring X")
                relation, dst = rng.choices(links, weights=[len(self.by_link[link]) for link in links])[0]
                predicate.append(self._related(relation, dst))
        return tuple(predicate)

    def _attribute_text(self, predicate: Sequence[Fact], rng: random.Random) -> str:
        body = self.phrase(predicate, rng, plural=True)
        lead = rng.choice(["", "", "", "", "show me", "list", "all", "any good", "some", "i want"])
        return f"{lead} {body}".strip()

    def personalised(
        self, targets: Mapping[str, str], histories: Mapping[str, Sequence[str]], n: int
    ) -> list[SearchQuery]:
        """For users drawn at random: their held-out item (``targets``, e.g. ``split.valid``)
        described by one of its category values and its decade, asked with ``histories[user]``
        (e.g. ``split.valid_history``). Users whose target has no category or year, is of another
        type, or is already in their history are skipped."""
        rng = self._rng("personalised")
        users = sorted(targets)
        rng.shuffle(users)
        out: list[SearchQuery] = []
        for user in users:
            if len(out) >= n:
                break
            target = targets[user]
            history = tuple(histories.get(user, ()))
            if target not in self.labels or target in history or target not in self.years or not self.labels[target]:
                continue
            label = rng.choice(self.labels[target])
            predicate = (self._category(label), self._decade(self.years[target]))
            out.append(SearchQuery(self._cased(self._personal_text(predicate, rng), rng), "personalised",
                                   self.entity_type, target=target, predicate=predicate,
                                   matching=self.matching(predicate), user=user, history=history))
        return out

    def _personal_text(self, predicate: Sequence[Fact], rng: random.Random) -> str:
        category, decade = predicate
        assert decade.low is not None
        label = category.value.lower()
        word = rng.choice(_decade_words(decade.low))
        noun, nouns = self._noun(rng, False), self._noun(rng, True)
        template = rng.choice([
            "{a} {word} {label}", "{a} {word} {label} {noun}", "some {label} {nouns} from the {word}",
            "{label} from the {word}", "any good {label} {nouns} from the {word}?",
            "something {label} from the {word}", "in the mood for {a} {label} {noun} from the {word}",
            "{word} {label} {nouns} for me", "{label} {nouns}, {word}", "what {word} {label} should i pick",
        ])
        text = template.format(a="{a}", word=word, label=label, noun=noun, nouns=nouns)
        if "{a}" in text:
            after = text.split("{a}", 1)[1].split()[0]
            text = text.replace("{a}", _article(after), 1)
        return text


def build_search_queries(
    catalog: Catalog,
    split: Split,
    *,
    n: int = 200,
    seed: int = 0,
    entity_type: str | None = None,
    prompts: PromptSet | None = None,
    families: Sequence[str] = SEARCH_FAMILIES,
) -> dict[str, list[SearchQuery]]:
    """The query families of a catalog: ``n`` queries each (fewer where the catalog has fewer).

    Facts and popularity come from ``split.train``; personalised queries ask for ``split.valid``
    with ``split.valid_history``.
    """
    builder = query_builder(catalog, split, seed=seed, entity_type=entity_type, prompts=prompts)
    out: dict[str, list[SearchQuery]] = {}
    for family in families:
        if family == "personalised":
            out[family] = builder.personalised(split.valid, split.valid_history or split.train, n)
        elif family in SEARCH_FAMILIES:
            out[family] = getattr(builder, family)(n)
        else:
            raise ConfigError(f"unknown query family {family!r} (known: {', '.join(SEARCH_FAMILIES)})")
    return out


def query_builder(
    catalog: Catalog, split: Split | None = None, *, seed: int = 0, entity_type: str | None = None,
    prompts: PromptSet | None = None,
) -> QueryBuilder:
    """A :class:`QueryBuilder` over ``catalog`` with train-only facts (``split.train``)."""
    from neo_sdk.prompts import load_prompts
    from neo_sdk.tasks import CatalogFacts

    facts = CatalogFacts(catalog, prompts or load_prompts(), split.train if split is not None else None)
    return QueryBuilder(facts, entity_type, seed=seed)


# --------------------------------------------------------------------------------- scores
def hit_at_k(ranked: Sequence[str], target: str | None, k: int) -> float:
    """1.0 when ``target`` is among the first ``k`` items, else 0.0."""
    if k < 1:
        raise ConfigError(f"k must be at least 1, got {k}")
    return float(target is not None and target in list(ranked)[:k])


def precision_at_k(ranked: Sequence[str], matching: Collection[str], k: int) -> float:
    """Share of the returned items (the first ``k``) that satisfy every stated fact, i.e. are in
    ``matching``. An empty answer scores 0; a short one is scored on what it returned (repeats
    count once)."""
    if k < 1:
        raise ConfigError(f"k must be at least 1, got {k}")
    returned = list(dict.fromkeys(ranked))[:k]
    if not returned:
        return 0.0
    return sum(item in matching for item in returned) / len(returned)


def query_score(query: SearchQuery, ranked: Sequence[str], k: int = 10) -> float:
    """The family's score of one answer: precision@k for attribute queries, hit@k otherwise."""
    if query.family == "attribute":
        return precision_at_k(ranked, query.matching, k)
    return hit_at_k(ranked, query.target, k)


def unique_share(queries: Sequence[SearchQuery]) -> float:
    """Share of queries whose stated facts leave exactly one item (descriptive family)."""
    return sum(q.unique for q in queries) / len(queries) if queries else 0.0


def popularity_among_matching(
    query: SearchQuery, popularity: Mapping[str, float], k: int, *, exclude_seen: bool = True
) -> list[str]:
    """The baseline a personalised search must beat: the items the query's facts describe, ranked
    by training popularity (ties: id order), the user's history excluded unless ``exclude_seen``
    is off (a visitor whose history is hidden).

    Args:
        popularity: item id -> training interactions (``CatalogFacts.counts``).
    """
    seen = set(query.history) if exclude_seen else set()
    pool = [i for i in query.matching if i not in seen]
    return sorted(pool, key=lambda i: (-popularity.get(i, 0), i))[:k]

"""Groundedness of explanations and user profiles: the checkable claims of a text, each checked
against catalog facts.

A claim is a catalog fact the text states, read with the catalog's own vocabulary (no fixed word
list), so the same checker serves movies, books, podcasts or products:

* **category**: a value of a type's category field (genres, topics...), in simple English word
  forms ("romances", "science-fiction"), read by :class:`~neo_sdk.retrieval.FactReader`;
* **related**: the name of a related item (a person, author, host), with the relation phrase
  before it when there is one ("hosted by X" must be a ``hosted_by`` link);
* **year** and **decade**: ``1994``, ``1990s``, ``the 90s``, ``'90s``, ``90's``, ``nineties``;
* **title**: another item cited, as a marker ``[[item:ID]]`` or as its title. A title followed by
  a year in parentheses (an item label, ``Title (1995)``) may be any catalog item; a title alone
  is read only for the items the text may cite (the history, the focus item) and the
  recommended item itself. The year after a title belongs to the title claim.

The same pass reads the text's form (:class:`~neo_sdk.retrieval.FormChecker`): a comparison
without an item or a broken category list is a fault (``Grounding.faults``); a text passes when it
has no false claim and no fault.

Words that are no catalog fact are no claim: "a warm, funny story" states nothing checkable.
Naming the recommended item itself asserts nothing; a wrong year after it is a false year claim.
A related name with no relation phrase right before it takes the relation of a role word of the
prompts earlier in its clause ("same writer as X: <name>"), else any relation holds. Clauses end
at ``. ! ? ;`` and bound the emphasis words of profiles ("mostly", "favors").
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace

from neo_sdk.retrieval._form import Fault, FormChecker
from neo_sdk.retrieval._stated import FactReader, Mention, normalize_title, words
from neo_sdk.tasks import ITEM_MARKER, CatalogFacts

# words after which the facts of the same clause are claimed to dominate ("mostly X", "favors the 1990s")
_EMPHASIS = frozenset({
    "mostly", "mainly", "largely", "primarily", "chiefly", "predominantly", "especially", "often", "usually",
    "favors", "favours", "favor", "favour", "favorite", "favourite", "favorites", "favourites",
})
_SPELLED_DECADES = {"twenties": 1920, "thirties": 1930, "forties": 1940, "fifties": 1950, "sixties": 1960,
                    "seventies": 1970, "eighties": 1980, "nineties": 1990}
_TOP_CATEGORIES = 3  # "mostly X": X among the history's 3 most common category values (ties included)
_TOP_DECADES = 2  # "favors the 1990s": among the history's 2 most common decades (ties included)
_RELATION_MAX_WORDS = 3
_HOLE = "\x00"  # stands for a word already read (a cited title): matches no fact
_TOKEN = re.compile(rf"{ITEM_MARKER.pattern}|([^\W_]+)|([.!?;])")
_YEAR_AFTER = re.compile(r"\s*\((\d{4})\)")
_APOSTROPHES = ("'", "\u2019")


@dataclass(frozen=True)
class Claim:
    """One checkable claim of a text.

    Attributes:
        kind: ``"category"``, ``"year"``, ``"decade"``, ``"related"`` or ``"title"``.
        text: the words of the text that state it.
        value: the claimed value: a category value, a year (int), a decade (``"1990s"``), a
            related item id, or a cited item id.
        subject: what it was checked against: ``"item"`` (the recommended item), ``"history"``,
            ``"focus"`` or ``"user"`` (a profile: the user's history).
        holds: whether the catalog confirms it.
        reason: why it does not hold (empty when it holds).
    """

    kind: str
    text: str
    value: str | int
    subject: str
    holds: bool
    reason: str = ""


@dataclass
class Grounding:
    """The claims found in one text, in text order."""

    claims: list[Claim] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)  # form faults: true facts that read broken

    @property
    def true(self) -> list[Claim]:
        return [c for c in self.claims if c.holds]

    @property
    def false(self) -> list[Claim]:
        return [c for c in self.claims if not c.holds]

    @property
    def checkable(self) -> int:
        return len(self.claims)

    @property
    def all_true(self) -> bool:
        """True when no claim is false (also when there is none)."""
        return not self.false

    @property
    def passes(self) -> bool:
        """Fit to show: no false claim and no form fault."""
        return self.all_true and not self.faults


@dataclass(frozen=True)
class _Token:
    norm: str  # lower-case ASCII word; "" for an item marker
    start: int  # character span in the text
    end: int
    clause: int  # clauses end at . ! ? ; (not after an initial such as "K.")
    item: str | None = None  # the marker's item id


@dataclass(frozen=True)
class _Stated:
    """A fact the text states, before it is checked."""

    kind: str
    first: int  # token span
    stop: int
    text: str
    value: str | int
    relation: str | None = None  # related: the stated relation (None: any)
    year: int | None = None  # title: the year in parentheses after it
    about: str | None = None  # category: the cited item it qualifies ("the fantasy X")
    emphatic: bool = False  # after "mostly", "favors"... in the same clause


class GroundednessChecker:
    """Finds the checkable claims of explanations and profiles and checks them against the catalog.

    Args:
        facts: the catalog's facts (items, category field values, years, relations, prompt words).

    Example:
        >>> checker = GroundednessChecker(facts)
        >>> checker.check_explanation("Also Fantasy, from the 1960s.", "book:earthsea").all_true
        True
        >>> checker.check_explanation("Written by Frank Herbert.", "book:earthsea").false[0].reason
        "'A Wizard of Earthsea (1968)' has no link to 'Frank Herbert' (Frank Herbert is linked to 'Dune (1965)')"
    """

    def __init__(self, facts: CatalogFacts) -> None:
        from bm25s.stopwords import STOPWORDS_EN_PLUS

        self.facts = facts
        self.reader = FactReader(facts)
        self.titles: dict[tuple[str, ...], list[str]] = {}  # title words -> item ids
        for item_id, item in facts.items.items():
            for key in _title_keys(item.title):
                self.titles.setdefault(key, []).append(item_id)
        self.longest = max(map(len, self.titles), default=0)
        self.roles: dict[str, str] = {}  # role word of the prompts ("writer") and its plural -> relation
        for relation in sorted({r for links in facts.forward.values() for r, _ in links}):
            if relation in facts.prompts.words.get("roles", {}) and (form := " ".join(words(facts.role_word(relation)))):
                self.roles.setdefault(form, relation)
                self.roles.setdefault(form + "s", relation)
        self.stopwords = frozenset(STOPWORDS_EN_PLUS)
        self.form = FormChecker(facts)

    # ----------------------------------------------------------- public
    def check_explanation(
        self, text: str, item: str, *, focus: str | None = None, history: Sequence[str] = ()
    ) -> Grounding:
        """The claims of an explanation of ``item``, checked.

        Categories, years, decades and related names are about ``item`` (a category right before
        a cited history or focus item, "the fantasy X", is about that item instead); a cited title
        must be ``focus`` or in ``history`` (an explanation cites only items the user knows).
        """
        context = dict.fromkeys(history, "history")
        if focus is not None:
            context[focus] = "focus"
        claims: list[Claim] = []
        for stated in self._read(text, {*context, item}):
            if stated.kind == "title" and stated.value == item:
                if stated.year is not None and stated.year != self.facts.year(item):
                    claims.append(self._year_claim(replace(stated, kind="year", value=stated.year), item))
            elif stated.kind == "title":
                claims.append(self._title_claim(stated, context, context.get(str(stated.value), "history")))
            elif stated.kind == "category":
                about = stated.about if stated.about in context and stated.about != item else None
                target = about or item
                claims.append(self._category_claim(stated, target, context[about] if about else "item"))
            elif stated.kind == "related":
                claims.append(self._related_claim(stated, item))
            else:
                claims.append(self._year_claim(stated, item))
        return Grounding(claims, self.form.faults(text))

    def check_profile(self, text: str, history: Sequence[str]) -> Grounding:
        """The claims of a user profile, checked against the user's ``history``.

        A category, year, decade or related name holds when at least one history item has it;
        after "mostly", "mainly", "favors", "often"... a category must be among the history's 3
        most common ones, a decade among its 2 most common (ties included). A cited title must
        be in the history.
        """
        history = [h for h in history if h in self.facts.items]
        context = dict.fromkeys(history, "user")
        claims: list[Claim] = []
        for stated in self._read(text, set(context)):
            if stated.kind == "title":
                claims.append(self._title_claim(stated, context, "user"))
            elif stated.kind == "category":
                claims.append(self._profile_category(stated, history))
            elif stated.kind == "decade":
                claims.append(self._profile_decade(stated, history))
            elif stated.kind == "year":
                years = [self.facts.year(h) for h in history]
                claims.append(_claim(stated, "user", stated.value in years,
                                     f"no history item is from {stated.value}"))
            else:
                claims.append(self._profile_related(stated, history))
        return Grounding(claims, self.form.faults(text))

    # ----------------------------------------------------------- reading
    def _read(self, text: str, known: Collection[str]) -> list[_Stated]:
        """The facts ``text`` states: cited titles first, then related names and category values,
        then years and decades, in the words left."""
        tokens = _tokenize(text)
        used = [False] * len(tokens)
        stated = self._titles(text, tokens, known, used)
        stated += self._facts(text, tokens, used, {s.first: str(s.value) for s in stated})
        stated += _dates(text, tokens, used)
        return [replace(s, emphatic=_emphatic(tokens, s.first)) for s in sorted(stated, key=lambda s: s.first)]

    def _titles(self, text: str, tokens: list[_Token], known: Collection[str], used: list[bool]) -> list[_Stated]:
        """Cited items: markers, and titles (:meth:`_title_at`), each with a year in parentheses after it."""
        found: list[_Stated] = []
        n = 0
        while n < len(tokens):
            match = (n + 1, tokens[n].item) if tokens[n].item is not None else self._title_at(text, tokens, n, known)
            if match is None:
                n += 1
                continue
            stop, item = match
            end = tokens[stop - 1].end
            year = _YEAR_AFTER.match(text, end)
            if year:
                end = year.end()
            while stop < len(tokens) and tokens[stop].start < end:  # the year's own word
                stop += 1
            for k in range(n, stop):
                used[k] = True
            found.append(_Stated("title", n, stop, text[tokens[n].start : end], item,
                                 year=int(year.group(1)) if year else None))
            n = stop
        return found

    def _title_at(self, text: str, tokens: list[_Token], n: int, known: Collection[str]) -> tuple[int, str] | None:
        """The longest title starting at word ``n``: any item's when ``(year)`` follows it, else a
        ``known`` item's (not only stop words, and not a related name after a relation phrase)."""
        for length in range(min(self.longest, len(tokens) - n), 0, -1):
            span = tokens[n : n + length]
            if any(t.item is not None for t in span):
                continue
            key = tuple(t.norm for t in span)
            ids = self.titles.get(key)
            if not ids:
                continue
            year = _YEAR_AFTER.match(text, span[-1].end)
            if year:
                stated = int(year.group(1))
                best = max(ids, key=lambda i: (self.facts.year(i) == stated, i in known, self.facts.popularity[i]))
                return n + length, best
            ours = [i for i in ids if i in known]
            if ours and not set(key) <= self.stopwords:
                if self.facts.reverse.get(ours[0]) and self._relation_before(tokens, n):
                    continue  # "hosted by <a followed host>": a related name
                return n + length, ours[0]
        return None

    def _relation_before(self, tokens: list[_Token], n: int) -> bool:
        for length in range(1, min(_RELATION_MAX_WORDS, n) + 1):
            if " ".join(t.norm for t in tokens[n - length : n]) in self.reader.relations:
                return True
        return False

    def _facts(self, text: str, tokens: list[_Token], used: list[bool], titles: Mapping[int, str]) -> list[_Stated]:
        """Related names and category values, read clause by clause by the :class:`FactReader`."""
        found: list[_Stated] = []
        for clause in sorted({t.clause for t in tokens}):
            where = [k for k, t in enumerate(tokens) if t.clause == clause]
            norms = [_HOLE if used[k] or tokens[k].item is not None else tokens[k].norm for k in where]
            mentions = self.reader.mentions(norms)
            for mention in mentions:
                relation = mention.relation
                if mention.kind == "related" and relation is None:
                    relation = self._role_before(norms, mention, mentions)  # "same writer as X: <name>"
                first, stop = where[mention.start], where[mention.stop - 1] + 1
                for k in range(first, stop):
                    used[k] = True
                words_ = text[tokens[first].start : tokens[stop - 1].end]
                about = titles.get(stop) if stop < len(tokens) and tokens[stop].clause == clause else None
                found.append(_Stated(mention.kind, first, stop, words_, mention.value, relation,
                                     about=about if mention.kind == "category" else None))
        return found

    def _role_before(self, norms: list[str], mention: Mention, mentions: Sequence[Mention]) -> str | None:
        """The relation of the nearest role word (``roles`` in the prompt words) before a name in its
        clause, after any other fact read there."""
        low = max((m.stop for m in mentions if m.stop <= mention.start), default=0)
        for end in range(mention.start, low, -1):
            for length in range(1, min(_RELATION_MAX_WORDS, end - low) + 1):
                relation = self.roles.get(" ".join(norms[end - length : end]))
                if relation is not None:
                    return relation
        return None

    # ----------------------------------------------------------- checking
    def _name(self, item_id: str) -> str:
        """``'Title (Year)'``, as answers show an item."""
        title, year = self.facts.title(item_id), self.facts.year(item_id)
        return f"'{title} ({year})'" if year and str(year) not in title else f"'{title}'"

    def _field(self, item_ids: Sequence[str]) -> str:
        """The name of the category field of the most common type among ``item_ids``."""
        kinds = Counter(self.facts.type_of(i) for i in item_ids)
        main = max(kinds, key=lambda t: (kinds[t], t)) if kinds else None
        return (self.facts.category_field.get(main) if main else None) or "categories"

    def _title_claim(self, stated: _Stated, context: Mapping[str, str], subject: str) -> Claim:
        item = str(stated.value)
        if item not in self.facts.items:
            return _claim(stated, subject, False, f"{item!r} is not a catalog item")
        if item not in context:
            where = "neither the focus item nor in the history" if "focus" in context.values() else "not in the history"
            return _claim(stated, subject, False, f"{self._name(item)} is {where}")
        year = self.facts.year(item)
        if stated.year is not None and stated.year != year:
            actual = f"is from {year}" if year else "has no year in the catalog"
            return _claim(stated, subject, False, f"'{self.facts.title(item)}' {actual}, not {stated.year}")
        return _claim(stated, subject, True)

    def _category_claim(self, stated: _Stated, item: str, subject: str) -> Claim:
        values = self.facts.genres(item)
        holds = str(stated.value).casefold() in {v.casefold() for v in values}
        its = f"its {self._field([item])}: {', '.join(values)}" if values else f"it has no {self._field([item])}"
        return _claim(stated, subject, holds, f"{self._name(item)} is not {stated.value} ({its})")

    def _year_claim(self, stated: _Stated, item: str) -> Claim:
        actual = self.facts.year(item) if stated.kind == "year" else self.facts.decade(item)
        if actual is None:
            return _claim(stated, "item", False, f"{self._name(item)} has no year in the catalog")
        the = "" if stated.kind == "year" else "the "
        return _claim(stated, "item", actual == stated.value,
                      f"{self._name(item)} is from {the}{actual}, not {the}{stated.value}")

    def _related_claim(self, stated: _Stated, item: str) -> Claim:
        person = str(stated.value)
        links = self._links(item, person)
        if links and (stated.relation is None or stated.relation in links):
            return _claim(stated, "item", True)
        if links:
            return _claim(stated, "item", False, f"{self._name(item)} is linked to '{self.facts.title(person)}' as "
                          f"{self._relations(links)}, not {self._relations([stated.relation])}")
        others = [s for _, s in self.facts.reverse.get(person, [])][:3]
        elsewhere = f" ({self.facts.title(person)} is linked to {', '.join(map(self._name, others))})" if others else ""
        return _claim(stated, "item", False, f"{self._name(item)} has no link to '{self.facts.title(person)}'{elsewhere}")

    def _profile_category(self, stated: _Stated, history: Sequence[str]) -> Claim:
        counts = Counter(v.casefold() for h in history for v in set(self.facts.genres(h)))
        shown = Counter(v for h in history for v in set(self.facts.genres(h)))
        value, field_name = str(stated.value), self._field(history)
        if stated.emphatic:
            return self._dominant(stated, counts, value.casefold(), _TOP_CATEGORIES, field_name, shown, len(history))
        return _claim(stated, "user", counts[value.casefold()] > 0,
                      f"no history item is {value} (history {field_name}: {_counts(shown) or 'none'})")

    def _profile_decade(self, stated: _Stated, history: Sequence[str]) -> Claim:
        counts = Counter(d for h in history if (d := self.facts.decade(h)))
        if stated.emphatic:
            return self._dominant(stated, counts, str(stated.value), _TOP_DECADES, "decades", counts, counts.total())
        return _claim(stated, "user", counts[str(stated.value)] > 0,
                      f"no history item is from the {stated.value} (history decades: {_counts(counts) or 'none'})")

    def _dominant(self, stated: _Stated, counts: Counter[str], key: str, k: int, field_name: str,
                  shown: Counter[str], n_history: int) -> Claim:
        """"Mostly X": X among the ``k`` most common values of the history (ties included) and, when
        ``n_history`` (the items counted) is 4 or more, held by 2 of them at least (as the template
        teacher writes)."""
        if key not in _top(counts, k):
            return _claim(stated, "user", False, f"{stated.value} is not among the top {k} {field_name} of the "
                          f"history ({_counts(shown) or 'none'})")
        if n_history >= 4 and counts[key] < 2:
            is_ = "from the " if stated.kind == "decade" else ""
            return _claim(stated, "user", False, f"only 1 of {n_history} history items is {is_}{stated.value}")
        return _claim(stated, "user", True)

    def _profile_related(self, stated: _Stated, history: Sequence[str]) -> Claim:
        person = str(stated.value)
        links = [r for h in history for r in self._links(h, person)]
        holds = person in history or (bool(links) and (stated.relation is None or stated.relation in links))
        name = f"'{self.facts.title(person)}'"
        reason = (f"history items are linked to {name} only as {self._relations(links)}, not "
                  f"{self._relations([stated.relation])}" if links else f"no history item is linked to {name}")
        return _claim(stated, "user", holds, reason)

    def _links(self, item: str, other: str) -> list[str]:
        """The relations between two items, either way."""
        return ([r for r, d in self.facts.forward.get(item, []) if d == other]
                + [r for r, s in self.facts.reverse.get(item, []) if s == other])

    def _relations(self, relations: Sequence[str | None]) -> str:
        return " or ".join(f"'{self.facts.relation_words(r)}'" for r in dict.fromkeys(relations) if r)


def _claim(stated: _Stated, subject: str, holds: bool, reason: str = "") -> Claim:
    return Claim(stated.kind, stated.text, stated.value, subject, holds, "" if holds else reason)


def _title_keys(title: str) -> set[tuple[str, ...]]:
    """The word sequences a title may be written as: ``The Usual Suspects`` and ``Usual Suspects, The``."""
    keys = {tuple(normalize_title(title).split()), tuple(words(re.sub(r"\s*\(\d{4}\)\s*$", "", title)))}
    return {k for k in keys if k}


def _tokenize(text: str) -> list[_Token]:
    """Words (lower-case ASCII), item markers, and the clause each belongs to."""
    tokens: list[_Token] = []
    clause = 0
    for match in _TOKEN.finditer(text):
        if match.group(3):
            last = tokens[-1].norm if tokens else ""
            if not (len(last) == 1 and last.isalpha()):  # "Ursula K. Le Guin": an initial ends nothing
                clause += 1
        elif match.group(1) is not None:
            tokens.append(_Token("", match.start(), match.end(), clause, match.group(1)))
        elif norm := "".join(words(match.group(2))):
            tokens.append(_Token(norm, match.start(), match.end(), clause))
    return tokens


def _dates(text: str, tokens: list[_Token], used: list[bool]) -> list[_Stated]:
    """Years (``1994``) and decades (``1990s``, ``90s``, ``'90s``, ``90's``, ``nineties``) in the words left."""
    found: list[_Stated] = []
    for n, token in enumerate(tokens):
        if used[n] or token.item is not None:
            continue
        norm, stop = token.norm, n + 1
        nxt = tokens[n + 1] if n + 1 < len(tokens) else None
        if (nxt is not None and nxt.norm == "s" and not used[n + 1] and re.fullmatch(r"\d{1,3}0", norm)
                and text[token.end : nxt.start] in _APOSTROPHES):
            norm, stop = norm + "s", n + 2  # 90's, 1990's (1994's is a year)
        value: str | int | None = _decade(norm) or (int(norm) if re.fullmatch(r"[12]\d{3}", norm) else None)
        if value is None:
            continue
        for k in range(n, stop):
            used[k] = True
        kind = "year" if isinstance(value, int) else "decade"
        found.append(_Stated(kind, n, stop, text[token.start : tokens[stop - 1].end], value))
    return found


def _decade(norm: str) -> str | None:
    if norm in _SPELLED_DECADES:
        return f"{_SPELLED_DECADES[norm]}s"
    match = re.fullmatch(r"(\d{2}|[12]\d{3})s", norm)
    if not match or not match.group(1).endswith("0"):
        return None
    number = int(match.group(1))
    if number < 100:  # the 90s -> 1990s; the 00s, 10s, 20s -> 2000s, 2010s, 2020s
        number += 2000 if number <= 20 else 1900
    return f"{number}s"


def _emphatic(tokens: list[_Token], n: int) -> bool:
    """Whether an emphasis word ("mostly", "favors") comes before word ``n`` in its clause."""
    return any(t.norm in _EMPHASIS for t in tokens[:n] if t.clause == tokens[n].clause)


def _top(counts: Counter[str], k: int) -> set[str]:
    """The ``k`` most common values, ties with the k-th included."""
    ranked = sorted(counts.values(), reverse=True)
    return {v for v, c in counts.items() if c >= ranked[min(k, len(ranked)) - 1]} if ranked else set()


def _counts(counts: Counter[str]) -> str:
    return ", ".join(f"{v} {c}" for v, c in sorted(counts.items(), key=lambda vc: (-vc[1], vc[0])))

"""Catalog facts for task building: one in-memory index of items, relations and train statistics.

Builders and teachers read facts from here only, so every label is grounded in the catalog. The
interaction statistics (popularity, co-occurrence) come from the **training histories** passed in,
never from the whole log, so held-out interactions cannot leak into labels.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from neo_sdk.catalog import Catalog, Item
from neo_sdk.errors import CatalogError
from neo_sdk.prompts import PromptSet
from neo_sdk.tasks._example import item_marker
from neo_sdk.tasks._wording import CITATION_CUES, category_word, join_words

GENRE_FIELDS = ("genres", "genre", "tags")  # preferred names of a type's category field
_SPLIT = re.compile(r"\s*[;|,]\s*")
_YEAR = re.compile(r"^(\d{4})(?:\.0|-\d{2}(?:-\d{2})?.*)?$")  # 1995, 1995.0, 1995-07, 1995-07-14...
_DATE_FIELDS = ("year", "date", "released", "release_date", "published", "publication_year")
_CATEGORY_MAX_WORDS = 4  # a category value is a short label ("Science Fiction"), not a sentence
_COOCCUR_SHRINK = 10.0  # damps the cosine of rare pairs (one shared user is weak evidence)


def format_history(item_ids: Sequence[str], max_items: int | None = None) -> str:
    """The ``{history}`` value: item markers, oldest first, most recent last, one space apart.

    Args:
        item_ids: the history, oldest first.
        max_items: keep only the last ``max_items`` (prompt length is the main CPU cost).
    """
    ids = list(item_ids)[-max_items:] if max_items else list(item_ids)
    return " ".join(item_marker(i) for i in ids)


class CatalogFacts:
    """Items, relations and train-only interaction statistics of a catalog, indexed once.

    Args:
        catalog: the catalog to read.
        prompts: templates (for relation and role words).
        train: user -> training history (item ids, oldest first); popularity and co-occurrence
            are computed from it only. ``None``: no interaction statistics.
    """

    def __init__(
        self, catalog: Catalog, prompts: PromptSet, train: Mapping[str, Sequence[str]] | None = None
    ) -> None:
        self.catalog = catalog
        self.prompts = prompts
        self.types = catalog.entity_types()
        self.items: dict[str, Item] = {item.id: item for item in catalog.items()}
        self.by_type: dict[str, list[str]] = defaultdict(list)
        for item_id, item in self.items.items():
            self.by_type[item.entity_type].append(item_id)
        self.forward: dict[str, list[tuple[str, str]]] = {i: [] for i in self.items}
        self.reverse: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for rel in catalog.relations():
            self.forward[rel.src].append((rel.relation, rel.dst))
            self.reverse[rel.dst].append((rel.relation, rel.src))
        self.train = {u: list(h) for u, h in (train or {}).items()}
        counts: Counter[str] = Counter(i for h in self.train.values() for i in set(h))
        self.counts = counts
        # Types users interact with at all (a schema fact, read from the whole log on purpose:
        # per-user held-out events stay unseen, only the type names are read).
        self.interacted_types = set(catalog.interacted_types())
        self.category_field = {t: _category_field(self.items[i] for i in ids) for t, ids in self.by_type.items()}
        self.year_field = {t: _year_field(self.items[i] for i in ids) for t, ids in self.by_type.items()}
        self.popularity: dict[str, float] = {}
        for item_id in self.items:
            own = counts.get(item_id, 0)
            linked = sum(counts.get(src, 0) for _, src in self.reverse.get(item_id, []))
            self.popularity[item_id] = own if own else linked
        self._users_items: Any = None  # scipy CSR (users x items), built on first use
        self._items_users: Any = None
        self._col: dict[str, int] = {}
        self._col_ids: list[str] = []

    # ----------------------------------------------------------- item facts
    def type_of(self, item_id: str) -> str:
        return self.items[item_id].entity_type

    def title(self, item_id: str) -> str:
        return self.items[item_id].title

    def year(self, item_id: str) -> int | None:
        """The item's year, from its type's year field (:func:`_year_field`), if any."""
        item = self.items[item_id]
        name = self.year_field.get(item.entity_type)
        return _as_year(item.fields.get(name)) if name else None

    def decade(self, item_id: str) -> str | None:
        year = self.year(item_id)
        return f"{year // 10 * 10}s" if year else None

    def genres(self, item_id: str) -> list[str]:
        """The item's category labels (genres, topics, ...), from its type's category field
        (:func:`_category_field`)."""
        item = self.items[item_id]
        name = self.category_field.get(item.entity_type)
        return _labels(item.fields.get(name)) if name else []

    def roles(self, item_id: str) -> list[str]:
        """Roles of an item: its ``roles`` field, else the role words of its reverse relations."""
        value = self.items[item_id].fields.get("roles")
        if isinstance(value, list) and value:
            return [str(v) for v in value]
        words = self.prompts.words.get("roles", {})
        return list(dict.fromkeys(words[r] for r, _ in self.reverse.get(item_id, []) if r in words))

    def relation_words(self, relation: str) -> str:
        return self.prompts.word("relations", relation, relation.replace("_", " "))

    def role_word(self, relation: str) -> str:
        return self.prompts.word("roles", relation, relation.replace("_", " "))

    def label(self, item_id: str) -> str:
        """Short item text (the ``sid_to_text`` completion): title (year); genres; a relation."""
        item = self.items[item_id]
        year = self.year(item_id)
        parts = [f"{item.title} ({year})" if year else item.title]
        genres = self.genres(item_id)
        if genres:
            parts.append(", ".join(genres[:3]))
        roles = self.items[item_id].fields.get("roles")
        if isinstance(roles, list) and roles:
            parts.append(", ".join(str(r) for r in roles))
        if self.forward[item_id]:
            relation, dst = self.forward[item_id][0]
            parts.append(f"{self.relation_words(relation)} {self.title(dst)}")
        elif self.reverse.get(item_id):
            best = max(self.reverse[item_id], key=lambda rs: (self.popularity[rs[1]], rs[1]))[1]
            year_b = self.year(best)
            parts.append(self.title(best) + (f" ({year_b})" if year_b else ""))
        return "; ".join(parts)

    def join(self, words: Sequence[str]) -> str:
        """``a``, ``a and b``, ``a, b and c``."""
        return join_words(words, self.prompts.word("misc", "and", "and"))

    def category_words(self, values: Sequence[str]) -> str:
        """Category values as they read mid-sentence, joined: ``action, drama and war``."""
        return self.join([category_word(v) for v in values])

    @property
    def citation_cues(self) -> tuple[str, ...]:
        """Phrases after which an explanation names an item: the prompts' ``words.citation.cues``
        (``like | as in``), else :data:`CITATION_CUES`."""
        cues = self.prompts.word("citation", "cues", "")
        return tuple(c.strip().lower() for c in cues.split("|") if c.strip()) or CITATION_CUES

    def markers(self, item_ids: Iterable[str]) -> str:
        return self.join([item_marker(i) for i in item_ids])

    def user_text(self, user_id: str) -> str:
        """Light user features for ``{user}``: ``age 24, M, technician``."""
        try:
            features = self.catalog.user_features(user_id)
        except CatalogError:  # users are optional in a catalog
            features = {}
        parts = []
        if features.get("age") not in (None, ""):
            parts.append(f"age {features['age']}")
        for key in ("gender", "occupation", "country"):
            if features.get(key) not in (None, ""):
                parts.append(str(features[key]))
        return ", ".join(parts) or self.prompts.word("misc", "unknown_user", "unknown")

    # ----------------------------------------------------------- similarity
    def _index_users(self) -> None:
        from scipy import sparse  # a scipy dependency comes with sentence-transformers

        ids = sorted(self.counts)
        self._col = {item_id: j for j, item_id in enumerate(ids)}
        self._col_ids = ids
        rows, cols = [], []
        for u, (_, history) in enumerate(sorted(self.train.items())):
            for item_id in set(history):
                rows.append(u)
                cols.append(self._col[item_id])
        data = np.ones(len(rows), dtype=np.float32)
        shape = (len(self.train), len(ids))
        self._users_items = sparse.csr_matrix((data, (rows, cols)), shape=shape)  # (U, I)
        self._items_users = self._users_items.T.tocsr()  # (I, U)

    def cooccurring(self, item_id: str) -> list[tuple[str, float]]:
        """Items seen by the same training users, best first (shrunk cosine of co-counts)."""
        if self._users_items is None:
            self._index_users()
        j = self._col.get(item_id)
        if j is None:
            return []
        together = (self._items_users[j] @ self._users_items).toarray().ravel()  # (I,)
        together[j] = 0
        (others,) = np.nonzero(together)
        n_a = self.counts[item_id]
        scored = [
            (self._col_ids[o], float(together[o]) / (
                math.sqrt(n_a * self.counts[self._col_ids[o]]) + _COOCCUR_SHRINK))
            for o in others
        ]
        return sorted(scored, key=lambda s: (-s[1], s[0]))

    def shared(self, a: str, b: str) -> dict[str, Any]:
        """Facts two items share: people (relation, id), genres, decade, co-credits."""
        fa = set(self.forward[a])
        return {
            "people": [rd for rd in self.forward[b] if rd in fa],
            "genres": [g for g in self.genres(b) if g in set(self.genres(a))],
            "decade": self.decade(a) if self.decade(a) and self.decade(a) == self.decade(b) else None,
            "works": sorted({s for _, s in self.reverse.get(a, [])}
                            & {s for _, s in self.reverse.get(b, [])}),
        }

    def content_similar(self, item_id: str, limit: int = 200) -> list[tuple[str, float]]:
        """Items of the same type sharing people, co-credits or genres, best first."""
        kind = self.type_of(item_id)
        candidates: Counter[str] = Counter()
        for _, dst in self.forward[item_id]:
            candidates.update(s for _, s in self.reverse.get(dst, []))
        for _, src in self.reverse.get(item_id, []):
            candidates.update(d for _, d in self.forward[src])
        pool = [c for c in candidates if c != item_id and self.type_of(c) == kind]
        genres = set(self.genres(item_id))
        scored = []
        for other in pool[: limit * 5]:
            shared = self.shared(item_id, other)
            score = 2 * len(shared["people"]) + 2 * len(shared["works"]) + len(shared["genres"])
            score += 0.5 * len(genres & set(self.genres(other)))
            if score:
                scored.append((other, score + 1e-6 * self.popularity[other]))
        return sorted(scored, key=lambda s: (-s[1], s[0]))[:limit]

    def similar(self, item_id: str) -> tuple[list[tuple[str, float]], str]:
        """Co-occurrence neighbours where there are any (``"cooccur"``), else content neighbours
        (``"content"``: shared people, co-credits, genres)."""
        found = self.cooccurring(item_id) if self.counts.get(item_id) else []
        return (found, "cooccur") if found else (self.content_similar(item_id), "content")


def _labels(value: Any) -> list[str]:
    """A field value as category labels: a list as it is, a string split on ``,;|``."""
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    if isinstance(value, str) and value.strip():
        return [g for g in _SPLIT.split(value.strip()) if g]
    return []


def _as_year(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 1000 <= value <= 2999 else None
    match = _YEAR.match(str(value).strip()) if isinstance(value, (str, float)) else None
    return int(match.group(1)) if match else None


def _category_field(items: Iterable[Item]) -> str | None:
    """The field holding one type's category labels: the first of :data:`GENRE_FIELDS` its items
    have, else the most common field whose values are short labels shared by several items
    (lists of labels such as ``topics``, or one label such as ``language``).

    Read from the items, so any catalog's own field names work (no field is assumed).
    """
    seen: Counter[str] = Counter()
    lists: Counter[str] = Counter()
    values: dict[str, Counter[str]] = defaultdict(Counter)
    for item in items:
        for name, value in item.fields.items():
            labels = _labels(value)
            if labels and all(len(v.split()) <= _CATEGORY_MAX_WORDS for v in labels):
                seen[name] += 1
                lists[name] += isinstance(value, list)
                values[name].update(labels)
    for name in GENRE_FIELDS:
        if seen[name]:
            return name
    shared = [name for name in seen if name not in _DATE_FIELDS and _as_year(next(iter(values[name]))) is None
              and max(values[name].values()) >= 2  # a label that groups items
              and len(values[name]) <= 0.8 * sum(values[name].values())]  # labels repeat: not ids or names
    # multi-label fields (topics, tags) first, then the field most items have
    return max(shared, key=lambda name: (lists[name] > 0, seen[name], name)) if shared else None


def _year_field(items: Iterable[Item]) -> str | None:
    """The field holding one type's year: ``year`` or another date-like name whose values read
    as years (``1995``, ``1995-07-14``) for most items that have it."""
    hits: Counter[str] = Counter()
    present: Counter[str] = Counter()
    for item in items:
        for name in _DATE_FIELDS:
            if name in item.fields:
                present[name] += 1
                hits[name] += _as_year(item.fields[name]) is not None
    usable = [name for name in _DATE_FIELDS if present[name] and hits[name] >= 0.8 * present[name]]
    return usable[0] if usable else None

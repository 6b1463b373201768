"""The catalog store: items of several entity types, relations, users and interactions in SQLite.

The database runs in WAL mode, so several readers can work while one writer writes. Every
multi-row write goes through :meth:`Catalog.transaction`, which is all-or-nothing.

History order: a user's interactions are ordered by ``timestamp`` ascending, ties broken by the
order in which they were inserted (the ``seq`` column, a monotonically increasing integer). Many
MovieLens users rate several movies in the same second, so the tie-break matters and is stable
across runs: importing the same files in the same order always gives the same histories.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlite_utils

from neo_sdk import _sqlite
from neo_sdk.errors import CatalogError, ConfigError, UnknownItemError

SCHEMA_VERSION = 1
_CHUNK = 900  # ids per ``IN (...)`` query, under SQLite's 999 bound variables

InteractionRow = tuple[str, str, float, float | None, str]
"""``(user_id, item_id, timestamp, value, event)``: an interaction as :meth:`Catalog.add_interaction_rows` takes it."""


@dataclass(frozen=True)
class EntityType:
    """A declared kind of item (``movie``, ``person``, ...).

    Attributes:
        name: short lowercase identifier, used in SID token names.
        text_fields: item fields, in order, joined to form the text that is embedded for SIDs.
            ``title`` is always available; other names refer to keys of the item's ``fields``.
        description: free text for humans and prompts.
    """

    name: str
    text_fields: tuple[str, ...] = ("title",)
    description: str = ""


@dataclass(frozen=True)
class Item:
    """One catalog item. ``fields`` hold descriptive text, ``metadata`` anything else (JSON)."""

    id: str
    entity_type: str
    title: str
    fields: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    popularity: float = 0.0
    active: bool = True
    created_at: float = 0.0
    updated_at: float = 0.0

    def text(self, text_fields: Sequence[str]) -> str:
        """The item's text for embedding: the declared fields that have a value, labelled."""
        parts = []
        for name in text_fields:
            value = self.title if name == "title" else self.fields.get(name)
            if value is None or value == "" or value == []:
                continue
            if isinstance(value, list):
                value = ", ".join(str(v) for v in value)
            parts.append(str(value) if name == "title" else f"{name.replace('_', ' ')}: {value}")
        return "; ".join(parts)


@dataclass(frozen=True)
class Interaction:
    """A user-item event. ``seq`` is the insertion order, the documented history tie-break."""

    user_id: str
    item_id: str
    timestamp: float
    value: float | None = None
    event: str = "interaction"
    seq: int = 0


@dataclass(frozen=True)
class Relation:
    """A typed, directed item-item edge such as ``movie:1 directed_by person:john-lasseter``."""

    src: str
    relation: str
    dst: str


class Catalog:
    """A multi-type item catalog and its interaction log in one SQLite file.

    Example:
        >>> cat = Catalog(":memory:")
        >>> cat.declare_type("movie", text_fields=["title", "genres"])
        >>> cat.add_items([Item("m1", "movie", "Toy Story", {"genres": ["Animation"]})])
        >>> cat.get("m1").title
        'Toy Story'
    """

    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        self._lock = threading.RLock()
        self.db = sqlite_utils.Database(_sqlite.connect(self.path))
        self._ensure_schema()

    # ------------------------------------------------------------------ schema
    def _ensure_schema(self) -> None:
        tables = set(self.db.table_names())
        if "meta" in tables:
            row = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            version = int(row[0]) if row else 0
            if version != SCHEMA_VERSION:
                raise CatalogError(
                    f"{self.path}: catalog schema version {version}, this neo-sdk reads version "
                    f"{SCHEMA_VERSION}; re-import the catalog with this version"
                )
            return
        with self.transaction():
            self.db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
            self.db.execute(
                "INSERT INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)]
            )
            self.db.execute(
                "CREATE TABLE entity_types (name TEXT PRIMARY KEY, text_fields TEXT NOT NULL,"
                " description TEXT NOT NULL DEFAULT '')"
            )
            self.db.execute(
                "CREATE TABLE items (id TEXT PRIMARY KEY, entity_type TEXT NOT NULL"
                " REFERENCES entity_types(name), title TEXT NOT NULL, fields TEXT NOT NULL,"
                " metadata TEXT NOT NULL, popularity REAL NOT NULL DEFAULT 0,"
                " active INTEGER NOT NULL DEFAULT 1, created_at REAL NOT NULL,"
                " updated_at REAL NOT NULL)"
            )
            self.db.execute("CREATE INDEX items_type ON items(entity_type, id)")
            self.db.execute(
                "CREATE TABLE relations (src TEXT NOT NULL REFERENCES items(id), relation TEXT"
                " NOT NULL, dst TEXT NOT NULL REFERENCES items(id), PRIMARY KEY (src, relation, dst))"
            )
            self.db.execute("CREATE INDEX relations_dst ON relations(dst, relation)")
            self.db.execute("CREATE TABLE users (id TEXT PRIMARY KEY, features TEXT NOT NULL)")
            self.db.execute(
                "CREATE TABLE interactions (seq INTEGER PRIMARY KEY AUTOINCREMENT, user_id TEXT"
                " NOT NULL REFERENCES users(id), item_id TEXT NOT NULL REFERENCES items(id),"
                " timestamp REAL NOT NULL, value REAL, event TEXT NOT NULL)"
            )
            self.db.execute("CREATE INDEX interactions_user ON interactions(user_id, timestamp, seq)")
            self.db.execute("CREATE INDEX interactions_item ON interactions(item_id)")

    def transaction(self) -> AbstractContextManager[None]:
        """All-or-nothing write block (``BEGIN IMMEDIATE``); a nested block joins the outer one."""
        return _sqlite.transaction(self.db.conn, self._lock)

    def page_cache(self, kib: int) -> AbstractContextManager[None]:
        """A ``kib`` KiB page cache for one big write (a transaction larger than the cache is slow)."""
        return _sqlite.page_cache(self.db.conn, kib)

    def close(self) -> None:
        self.db.conn.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ entity types
    def declare_type(
        self, name: str, text_fields: Sequence[str] = ("title",), description: str = ""
    ) -> EntityType:
        """Declare (or redeclare) an entity type and the fields that form its item text."""
        if not name or not name.replace("_", "").isalnum() or not name.islower():
            raise CatalogError(
                f"entity type name {name!r} must be lowercase letters, digits or '_' (e.g. 'movie')"
            )
        entity = EntityType(name, tuple(text_fields) or ("title",), description)
        with self.transaction():
            self.db.execute(
                "INSERT INTO entity_types VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET"
                " text_fields=excluded.text_fields, description=excluded.description",
                [name, json.dumps(list(entity.text_fields)), description],
            )
        return entity

    def entity_types(self) -> dict[str, EntityType]:
        rows = self.db.execute("SELECT name, text_fields, description FROM entity_types ORDER BY name")
        return {n: EntityType(n, tuple(json.loads(t)), d) for n, t, d in rows.fetchall()}

    def entity_type(self, name: str) -> EntityType:
        types = self.entity_types()
        if name not in types:
            known = ", ".join(types) or "none declared yet"
            raise CatalogError(f"unknown entity type {name!r} (known: {known}); declare it first")
        return types[name]

    # ------------------------------------------------------------------- items
    def add_items(self, items: Iterable[Item], *, upsert: bool = False) -> int:
        """Insert items in one transaction; with ``upsert`` existing ids are updated.

        Raises:
            CatalogError: unknown entity type, or an existing id without ``upsert``.
        """
        types = self.entity_types()
        now = time.time()
        rows = []
        for item in items:
            if item.entity_type not in types:
                raise CatalogError(
                    f"item {item.id!r}: unknown entity type {item.entity_type!r}; declare it first"
                )
            created = item.created_at or now
            rows.append(
                (item.id, item.entity_type, item.title, json.dumps(item.fields),
                 json.dumps(item.metadata), float(item.popularity), int(item.active), created,
                 item.updated_at or now)
            )
        conflict = (
            " ON CONFLICT(id) DO UPDATE SET entity_type=excluded.entity_type, title=excluded.title,"
            " fields=excluded.fields, metadata=excluded.metadata, popularity=excluded.popularity,"
            " active=excluded.active, updated_at=excluded.updated_at"
            if upsert else ""
        )
        try:
            with self.transaction():
                self.db.conn.executemany(
                    f"INSERT INTO items VALUES (?,?,?,?,?,?,?,?,?){conflict}", rows
                )
        except sqlite3.IntegrityError as exc:
            raise CatalogError(f"could not add items: {exc} (use upsert=True to update)") from exc
        return len(rows)

    def deactivate(self, item_ids: Iterable[str]) -> int:
        """Mark items inactive: they stay in histories and keep their SID, but are not recommended."""
        ids = list(item_ids)
        missing = [i for i in ids if not self.has_item(i)]
        if missing:
            raise UnknownItemError(f"cannot deactivate unknown item ids: {missing[:5]}")
        with self.transaction():
            self.db.conn.executemany(
                "UPDATE items SET active=0, updated_at=? WHERE id=?", [(time.time(), i) for i in ids]
            )
        return len(ids)

    def has_item(self, item_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM items WHERE id=?", [item_id]).fetchone() is not None

    def get(self, item_id: str) -> Item:
        """The item with this id. Raises :class:`UnknownItemError` if there is none."""
        row = self.db.execute("SELECT * FROM items WHERE id=?", [item_id]).fetchone()
        if row is None:
            raise UnknownItemError(f"no item with id {item_id!r} in catalog {self.path}")
        return _item_from_row(row)

    def get_many(self, item_ids: Sequence[str]) -> list[Item]:
        """Items in the order asked; raises :class:`UnknownItemError` naming the missing ids."""
        ids = list(item_ids)
        found = {row[0]: _item_from_row(row) for row in self._rows_with_ids("SELECT * FROM items", ids)}
        missing = [i for i in ids if i not in found]
        if missing:
            raise UnknownItemError(f"unknown item ids: {missing[:5]}")
        return [found[i] for i in ids]

    def _rows_with_ids(self, select: str, ids: Sequence[str]) -> Iterator[Any]:
        """Rows of ``select`` (a query on a table with an ``id`` column) whose id is in ``ids``."""
        for start in range(0, len(ids), _CHUNK):
            chunk = list(ids[start : start + _CHUNK])
            yield from self.db.execute(f"{select} WHERE id IN ({','.join('?' * len(chunk))})", chunk)

    def known_item_ids(self, item_ids: Iterable[str]) -> set[str]:
        """The ids among ``item_ids`` that are items of this catalog."""
        return {row[0] for row in self._rows_with_ids("SELECT id FROM items", list(item_ids))}

    def item_ids(self, entity_type: str | None = None) -> list[str]:
        """Every item id (optionally of one type), ordered."""
        if entity_type is None:
            return [r[0] for r in self.db.execute("SELECT id FROM items ORDER BY id")]
        self.entity_type(entity_type)
        return [r[0] for r in self.db.execute("SELECT id FROM items WHERE entity_type=? ORDER BY id", [entity_type])]

    def items(self, entity_type: str | None = None, *, active_only: bool = False) -> Iterator[Item]:
        """Iterate items (optionally of one type), ordered by id."""
        where, args = [], []
        if entity_type is not None:
            self.entity_type(entity_type)
            where.append("entity_type=?")
            args.append(entity_type)
        if active_only:
            where.append("active=1")
        sql = "SELECT * FROM items" + (" WHERE " + " AND ".join(where) if where else "")
        for row in self.db.execute(sql + " ORDER BY id", args):
            yield _item_from_row(row)

    def item_texts(self, entity_type: str) -> dict[str, str]:
        """Each item's embedding text (its type's declared text fields), keyed by id."""
        fields = self.entity_type(entity_type).text_fields
        return {item.id: item.text(fields) for item in self.items(entity_type)}

    def update_popularity(self) -> None:
        """Set every item's popularity to its number of interactions."""
        with self.transaction():
            self.db.execute(
                "UPDATE items SET popularity = COALESCE((SELECT COUNT(*) FROM interactions"
                " WHERE item_id = items.id), 0)"
            )

    def set_popularity(self, popularity: Mapping[str, float]) -> int:
        """Set the popularity of the given items (id -> value); returns how many were changed."""
        with self.transaction():
            cursor = self.db.conn.executemany(
                "UPDATE items SET popularity=? WHERE id=?", [(float(v), k) for k, v in popularity.items()]
            )
        return int(cursor.rowcount)

    # --------------------------------------------------------------- relations
    def add_relations(self, relations: Iterable[Relation]) -> int:
        """Add relations in one transaction; ones already present are skipped. Returns how many are new."""
        rows = [(r.src, r.relation, r.dst) for r in relations]
        try:
            with self.transaction():
                cursor = self.db.conn.executemany("INSERT OR IGNORE INTO relations VALUES (?,?,?)", rows)
        except sqlite3.IntegrityError as exc:
            raise CatalogError(f"relation refers to an unknown item: {exc}") from exc
        return max(int(cursor.rowcount), 0)

    def relations(self) -> list[Relation]:
        """Every relation, ordered by source, relation name, then target (the order of :meth:`related`)."""
        rows = self.db.execute("SELECT src, relation, dst FROM relations ORDER BY src, relation, dst")
        return [Relation(r[0], r[1], r[2]) for r in rows]

    def related(self, item_id: str, relation: str | None = None, *, reverse: bool = False) -> list[str]:
        """Ids linked from ``item_id`` (or to it, with ``reverse``), optionally by one relation."""
        return [other for name, other in self._edges(item_id, reverse) if relation in (None, name)]

    def links(self, item_id: str) -> dict[str, list[tuple[str, str]]]:
        """An item's relations: ``out`` as (relation, target), ``in`` as (relation, source), ordered."""
        return {"out": self._edges(item_id, False), "in": self._edges(item_id, True)}

    def _edges(self, item_id: str, reverse: bool) -> list[tuple[str, str]]:
        a, b = ("dst", "src") if reverse else ("src", "dst")
        rows = self.db.execute(f"SELECT relation, {b} FROM relations WHERE {a}=? ORDER BY relation, {b}", [item_id])
        return [(r[0], r[1]) for r in rows]

    def relation_target_types(self) -> list[tuple[str, str]]:
        """Each distinct (relation, entity type of its target item), ordered."""
        rows = self.db.execute(
            "SELECT DISTINCT r.relation, t.entity_type FROM relations r JOIN items t ON t.id = r.dst"
            " ORDER BY r.relation, t.entity_type"
        )
        return [(r[0], r[1]) for r in rows]

    # ------------------------------------------------------------------- users
    def add_users(self, users: Iterable[tuple[str, dict[str, Any]]], *, upsert: bool = False) -> int:
        rows = [(uid, json.dumps(features)) for uid, features in users]
        conflict = " ON CONFLICT(id) DO UPDATE SET features=excluded.features" if upsert else ""
        try:
            with self.transaction():
                self.db.conn.executemany(f"INSERT INTO users VALUES (?,?){conflict}", rows)
        except sqlite3.IntegrityError as exc:
            raise CatalogError(f"could not add users: {exc} (use upsert=True to update)") from exc
        return len(rows)

    def has_user(self, user_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM users WHERE id=?", [user_id]).fetchone() is not None

    def user_features(self, user_id: str) -> dict[str, Any]:
        row = self.db.execute("SELECT features FROM users WHERE id=?", [user_id]).fetchone()
        if row is None:
            raise CatalogError(f"no user with id {user_id!r} in catalog {self.path}")
        return dict(json.loads(row[0]))

    def user_ids(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT id FROM users ORDER BY id")]

    def known_user_ids(self, user_ids: Iterable[str]) -> set[str]:
        """The ids among ``user_ids`` that are users of this catalog."""
        return {row[0] for row in self._rows_with_ids("SELECT id FROM users", list(user_ids))}

    # ------------------------------------------------------------ interactions
    def add_interactions(self, interactions: Iterable[Interaction]) -> int:
        """Append interactions in one transaction (users and items must exist)."""
        return self.add_interaction_rows((i.user_id, i.item_id, i.timestamp, i.value, i.event) for i in interactions)

    def add_interaction_rows(self, interactions: Iterable[InteractionRow]) -> int:
        """Like :meth:`add_interactions` for plain ``(user_id, item_id, timestamp, value, event)`` rows.

        Raises:
            CatalogError: a row names an unknown user or item; nothing was written.
        """
        rows = [(u, i, float(t), v, e) for u, i, t, v, e in interactions]
        try:
            with self.transaction():
                self.db.conn.executemany(
                    "INSERT INTO interactions (user_id, item_id, timestamp, value, event)"
                    " VALUES (?,?,?,?,?)",
                    rows,
                )
        except sqlite3.IntegrityError as exc:
            raise CatalogError(
                f"interaction refers to an unknown user or item ({exc}); add them first"
            ) from exc
        return len(rows)

    def history(self, user_id: str, *, entity_type: str | None = None) -> list[Interaction]:
        """A user's interactions, oldest first; ties on timestamp keep insertion order (``seq``)."""
        sql = (
            "SELECT i.user_id, i.item_id, i.timestamp, i.value, i.event, i.seq FROM interactions i"
        )
        args: list[Any] = [user_id]
        if entity_type is not None:
            sql += " JOIN items t ON t.id = i.item_id WHERE i.user_id=? AND t.entity_type=?"
            args.append(entity_type)
        else:
            sql += " WHERE i.user_id=?"
        sql += " ORDER BY i.timestamp, i.seq"
        return [Interaction(*row) for row in self.db.execute(sql, args)]

    def timestamps(self) -> list[float]:
        """Every interaction's timestamp, ascending."""
        return [r[0] for r in self.db.execute("SELECT timestamp FROM interactions ORDER BY timestamp")]

    def histories(self) -> dict[str, list[Interaction]]:
        """Every user's history at once (one query; same order as :meth:`history`)."""
        out: dict[str, list[Interaction]] = {}
        rows = self.db.execute(
            "SELECT user_id, item_id, timestamp, value, event, seq FROM interactions"
            " ORDER BY user_id, timestamp, seq"
        )
        for row in rows:
            out.setdefault(row[0], []).append(Interaction(*row))
        return out

    def copy_without(self, held_out: Iterable[tuple[str, str]], path: str | Path) -> Catalog:
        """A copy of this catalog at ``path`` without the ``(user_id, item_id)`` interactions in
        ``held_out`` (every event of each pair): what a runtime may see while an evaluation holds
        those events out. This catalog is not changed.

        Raises:
            CatalogError: ``path`` already exists (nothing is overwritten).
        """
        target = Path(path)
        if target.exists():
            raise CatalogError(f"{target}: already exists; give copy_without a new path")
        partial = target.with_name(f".{target.name}.partial")  # renamed into place once whole
        partial.unlink(missing_ok=True)
        conn = _sqlite.connect(partial)
        try:
            with self._lock:
                self.db.conn.backup(conn)
            with _sqlite.transaction(conn, threading.RLock()):
                conn.executemany("DELETE FROM interactions WHERE user_id=? AND item_id=?", list(held_out))
            conn.close()
            partial.replace(target)
        except BaseException:
            conn.close()
            partial.unlink(missing_ok=True)
            raise
        return Catalog(target)

    # ------------------------------------------------------------------- stats
    def counts(self) -> dict[str, Any]:
        """Counts of items per entity type (all and active), users, interactions, relations."""
        per_type = {
            name: {"items": n, "active": a}
            for name, n, a in self.db.execute(
                "SELECT t.name, COUNT(i.id), COALESCE(SUM(i.active), 0) FROM entity_types t"
                " LEFT JOIN items i ON i.entity_type = t.name GROUP BY t.name ORDER BY t.name"
            )
        }
        relations = dict(
            self.db.execute("SELECT relation, COUNT(*) FROM relations GROUP BY relation ORDER BY relation")
        )

        def one(sql: str) -> int:
            return int(self.db.execute(sql).fetchone()[0])

        return {
            "entity_types": per_type,
            "items": one("SELECT COUNT(*) FROM items"),
            "users": one("SELECT COUNT(*) FROM users"),
            "interactions": one("SELECT COUNT(*) FROM interactions"),
            "relations": {"total": sum(relations.values()), **relations},
        }

    def interacted_types(self) -> dict[str, int]:
        """Entity types users interact with -> number of interactions, most interacted first.

        The default target types of training and evaluation (a catalog's own answer to "what do
        people consume here"), in proportion to their share of the log.
        """
        rows = self.db.execute(
            "SELECT t.entity_type, COUNT(*) AS n FROM interactions i JOIN items t ON t.id = i.item_id"
            " GROUP BY t.entity_type ORDER BY n DESC, t.entity_type"
        )
        return {str(name): int(n) for name, n in rows}

    def target_types(self, wanted: Sequence[str] | None = None) -> list[str]:
        """The entity types to recommend and evaluate: ``wanted`` (each must be declared and have
        interactions), else every type users interact with, most interacted first.

        No type is assumed: a catalog of podcasts gets its episodes, one of books its books.

        Raises:
            ConfigError: an undeclared type, a type nobody interacts with, or no interactions at all.
        """
        interacted = self.interacted_types()
        declared = self.entity_types()
        unknown = [t for t in wanted or () if t not in declared]
        if unknown:
            raise ConfigError(f"entity type {', '.join(unknown)}: not an entity type of this catalog"
                              f" (declared: {', '.join(sorted(declared))})")
        idle = [t for t in wanted or () if t not in interacted]
        if idle:
            raise ConfigError(f"entity type {', '.join(idle)}: no user interacts with items of that type, so"
                              f" there is nothing to predict (types with interactions: {', '.join(interacted) or 'none'})")
        if not interacted:
            raise ConfigError("the catalog has no interactions, so no entity type to recommend: import some"
                              " (neo catalog import FILE --kind interactions)")
        return list(dict.fromkeys(wanted)) if wanted else list(interacted)

    def stats(self) -> dict[str, Any]:
        """:meth:`counts` plus interaction density, time span and stored dataset info."""
        stats = self.counts()
        lo, hi = self.db.execute("SELECT MIN(timestamp), MAX(timestamp) FROM interactions").fetchone()
        stats["time_span"] = {"first": lo, "last": hi}
        users = stats["users"] or 1
        stats["interactions_per_user"] = round(stats["interactions"] / users, 2)
        stats["info"] = self.get_info()
        return stats

    # -------------------------------------------------------------- key/values
    def set_info(self, key: str, value: Any) -> None:
        """Store a JSON value in the catalog (dataset provenance, join coverage, ...)."""
        with self.transaction():
            self.db.execute(
                "INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                [f"info:{key}", json.dumps(value)],
            )

    def get_info(self) -> dict[str, Any]:
        rows = self.db.execute("SELECT key, value FROM meta WHERE key LIKE 'info:%' ORDER BY key")
        return {k[5:]: json.loads(v) for k, v in rows}


def _item_from_row(row: Sequence[Any]) -> Item:
    return Item(
        id=row[0], entity_type=row[1], title=row[2], fields=json.loads(row[3]),
        metadata=json.loads(row[4]), popularity=row[5], active=bool(row[6]),
        created_at=row[7], updated_at=row[8],
    )

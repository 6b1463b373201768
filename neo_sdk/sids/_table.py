"""The SID table and the saved quantizers, both stored inside the catalog's SQLite file.

Keeping them in the catalog means one file carries items *and* their IDs, and a build or an
assignment is one ``catalog.transaction()``: either every table below changes or none does.

Tables (created on first build):

* ``sids(item_id PK -> items.id, entity_type, codes TEXT, build_id)`` with ``UNIQUE(entity_type,
  codes)``: ``codes`` is the full SID as space-separated integers, ``M`` level codes then one
  disambiguation code (``"12 40 0"``). Every SID has exactly ``M + 1`` codes.
* ``sid_quantizers(entity_type PK, build_id, levels, codes, dim, disambiguation, normalize,
  info JSON, tensors BLOB)``: ``tensors`` is a safetensors blob holding ``centroids``
  (Shape: (M, K, D) float32); never pickle. ``info`` holds the embedder (identity, folder) and the
  assignment mode, so ``neo sids assign`` embeds and places new items the way the build did. ``disambiguation`` is ``D``, the number of
  disambiguation codes the vocabulary reserves for the type.
* ``sid_builds(id PK, kind 'build'|'assign', version, sdk_version, created_at, entity_types JSON,
  config JSON, content_hash, stats JSON)``: one row per build or assignment; the latest row's
  ``content_hash`` must match the table, so edits made outside neo-sdk are detected on load.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from neo_sdk.errors import SIDError
from neo_sdk.sids._kmeans import ResidualQuantizer

if TYPE_CHECKING:
    from neo_sdk.catalog import Catalog

SID_FORMAT_VERSION = 1

_SCHEMA = (
    (
        "CREATE TABLE IF NOT EXISTS sid_builds (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL,"
        " version INTEGER NOT NULL, sdk_version TEXT NOT NULL, created_at REAL NOT NULL,"
        " entity_types TEXT NOT NULL, config TEXT NOT NULL, content_hash TEXT NOT NULL, stats TEXT NOT NULL)"
    ),
    (
        "CREATE TABLE IF NOT EXISTS sid_quantizers (entity_type TEXT PRIMARY KEY REFERENCES"
        " entity_types(name), build_id INTEGER NOT NULL, levels INTEGER NOT NULL, codes INTEGER NOT NULL,"
        " dim INTEGER NOT NULL, disambiguation INTEGER NOT NULL, normalize INTEGER NOT NULL,"
        " info TEXT NOT NULL, tensors BLOB NOT NULL)"
    ),
    (
        "CREATE TABLE IF NOT EXISTS sids (item_id TEXT PRIMARY KEY REFERENCES items(id), entity_type TEXT"
        " NOT NULL, codes TEXT NOT NULL, build_id INTEGER NOT NULL, UNIQUE (entity_type, codes))"
    ),
)


@dataclass(frozen=True)
class SID:
    """One Semantic ID: the entity type and ``M + 1`` codes (levels, then disambiguation)."""

    entity_type: str
    codes: tuple[int, ...]

    def __str__(self) -> str:
        return f"{self.entity_type}:{'-'.join(map(str, self.codes))}"


@dataclass(frozen=True)
class TypeSIDs:
    """All SIDs of one entity type, as arrays (what a trie builder needs).

    Attributes:
        entity_type: the type.
        levels: M, the number of residual levels.
        codes_per_level: K.
        disambiguation: D, disambiguation codes reserved (the last SID position is ``< D``).
        item_ids: Shape: (N,) object array of item ids, sorted by id.
        codes: Shape: (N, M + 1) int32; row i is item_ids[i]'s SID codes.
        active: Shape: (N,) bool; False for deactivated items (their SIDs stay reserved).
    """

    entity_type: str
    levels: int
    codes_per_level: int
    disambiguation: int
    item_ids: np.ndarray
    codes: np.ndarray
    active: np.ndarray

    def __len__(self) -> int:
        return int(self.item_ids.shape[0])


@dataclass(frozen=True)
class QuantizerRecord:
    """A saved quantizer and what it was built with."""

    entity_type: str
    quantizer: ResidualQuantizer
    disambiguation: int
    info: dict[str, Any]
    build_id: int

    @property
    def balanced(self) -> bool:
        return bool(self.info.get("balanced", True))

    @property
    def content_dim(self) -> int:
        """Dimension of the text embeddings (the rest of the quantizer's is collaborative)."""
        return int(self.info.get("content_dim", self.quantizer.dim))

    @property
    def embedder_path(self) -> str | None:
        path = self.info.get("embedder", {}).get("path")
        return str(path) if path else None


def ensure_schema(catalog: Catalog) -> None:
    """Create the SID tables if they are missing (inside the caller's transaction, if any)."""
    with catalog.transaction():
        for sql in _SCHEMA:
            catalog.db.execute(sql)


def has_sids(catalog: Catalog) -> bool:
    return "sids" in set(catalog.db.table_names())


def codes_text(codes: Sequence[int]) -> str:
    return " ".join(str(int(c)) for c in codes)


def content_hash(types: dict[str, TypeSIDs]) -> str:
    """SHA-256 over every type's shape and its (item id, codes) rows; independent of ``active``."""
    h = hashlib.sha256()
    for name in sorted(types):
        t = types[name]
        h.update(f"{name}|{t.levels}|{t.codes_per_level}|{t.disambiguation}\n".encode())
        for item_id, row in zip(t.item_ids, t.codes, strict=True):
            h.update(f"{item_id}\t{codes_text(row)}\n".encode())
    return h.hexdigest()


class SIDTable:
    """Item <-> SID lookups for every entity type, loaded from a catalog.

    Example:
        >>> table = SIDTable.load(catalog)
        >>> sid = table.sid_of("movie:1"); str(sid)
        'movie:12-40-0'
        >>> table.item_of("movie", sid.codes)
        'movie:1'
    """

    def __init__(self, types: dict[str, TypeSIDs], *, build_id: int = 0) -> None:
        self._types = dict(sorted(types.items()))
        self.build_id = build_id
        self._by_item: dict[str, tuple[str, int]] = {}
        self._by_codes: dict[str, dict[tuple[int, ...], str]] = {}
        for name, t in self._types.items():
            lookup: dict[tuple[int, ...], str] = {}
            for i, (item_id, row) in enumerate(zip(t.item_ids.tolist(), t.codes.tolist(), strict=True)):
                self._by_item[item_id] = (name, i)
                lookup[tuple(row)] = item_id
            if len(lookup) != len(t):
                raise SIDError(f"SID table for {name!r} holds duplicate SIDs; rebuild with `neo sids build`")
            self._by_codes[name] = lookup
        self._hash: str | None = None

    # ---------------------------------------------------------------- loading
    @classmethod
    def load(cls, catalog: Catalog) -> SIDTable:
        """Read the SID table of a catalog.

        Raises:
            SIDError: no SIDs were built yet, or the table was changed outside neo-sdk.
        """
        types = read_types(catalog)
        last = catalog.db.execute("SELECT id, content_hash FROM sid_builds ORDER BY id DESC LIMIT 1").fetchone()
        table = cls(types, build_id=int(last[0]) if last else 0)
        if last and last[1] != table.content_hash:
            raise SIDError(
                f"the SID table of {catalog.path} was changed outside neo-sdk (content hash mismatch);"
                " rebuild it with `neo sids build`"
            )
        return table

    # ---------------------------------------------------------------- lookups
    @property
    def entity_types(self) -> tuple[str, ...]:
        return tuple(self._types)

    def by_type(self, entity_type: str) -> TypeSIDs:
        """Arrays of one type. Raises :class:`SIDError` for a type without SIDs."""
        if entity_type not in self._types:
            raise SIDError(
                f"no SIDs for entity type {entity_type!r} (built: {', '.join(self._types) or 'none'})"
            )
        return self._types[entity_type]

    def sid_of(self, item_id: str) -> SID:
        """The SID of an item. Raises :class:`SIDError` if the item has none."""
        try:
            name, i = self._by_item[item_id]
        except KeyError:
            raise SIDError(
                f"item {item_id!r} has no SID; if it was added after the build run `neo sids assign`"
            ) from None
        return SID(name, tuple(int(c) for c in self._types[name].codes[i]))

    def item_of(self, entity_type: str, codes: Sequence[int]) -> str:
        """The item holding this SID. Raises :class:`SIDError` if no item does."""
        lookup = self._by_codes.get(entity_type)
        if lookup is None:
            self.by_type(entity_type)
        key = tuple(int(c) for c in codes)
        try:
            return self._by_codes[entity_type][key]
        except KeyError:
            raise SIDError(f"no {entity_type} item has SID {key}") from None

    def is_active(self, item_id: str) -> bool:
        name, i = self._by_item[item_id]
        return bool(self._types[name].active[i])

    @property
    def content_hash(self) -> str:
        """SHA-256 of every (type, item id, codes); what bundles pin."""
        if self._hash is None:
            self._hash = content_hash(self._types)
        return self._hash

    def __len__(self) -> int:
        return len(self._by_item)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._by_item

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_item)

    def subset(self, entity_types: Sequence[str]) -> SIDTable:
        """The same table restricted to some of its types."""
        return SIDTable({n: self._types[n] for n in entity_types if n in self._types}, build_id=self.build_id)


@dataclass(frozen=True)
class SIDChange:
    """An item whose SID differs between two tables (``after`` is ``None``: it has no SID any more)."""

    item_id: str
    before: SID
    after: SID | None

    def __str__(self) -> str:
        now = f"now {self.after}" if self.after is not None else "now none (removed or never assigned)"
        return f"{self.item_id}: {self.before} -> {now}"


@dataclass(frozen=True)
class SIDTableDiff:
    """How a SID table differs from an earlier one (see :func:`diff_tables`).

    Attributes:
        added: ``{entity_type: item ids}`` that only the later table holds.
        changed: items of the earlier table whose SID differs or is gone, in id order.
        reshaped: types whose shape (M, K, D) differs or that the later table lacks; their items
            are not compared one by one.
    """

    added: dict[str, tuple[str, ...]]
    changed: tuple[SIDChange, ...]
    reshaped: tuple[str, ...]

    @property
    def extends(self) -> bool:
        """Every item of the earlier table keeps its SID (new items may be added)."""
        return not self.changed and not self.reshaped


def diff_tables(before: SIDTable, after: SIDTable) -> SIDTableDiff:
    """Compare a later SID table with an earlier one, item by item."""
    reshaped, changed = [], []
    for name in before.entity_types:
        t0 = before.by_type(name)
        t1 = after._types.get(name)
        if t1 is None or (t1.levels, t1.codes_per_level, t1.disambiguation) != (
                t0.levels, t0.codes_per_level, t0.disambiguation):
            reshaped.append(name)
            continue
        where = [after._by_item.get(i, (None, -1)) for i in t0.item_ids.tolist()]
        rows = np.array([i if n == name else -1 for n, i in where], dtype=np.int64)
        same = rows >= 0
        hit = np.flatnonzero(same)
        same[hit] = (t1.codes[rows[hit]] == t0.codes[hit]).all(axis=1)
        for k in np.flatnonzero(~same).tolist():
            item = str(t0.item_ids[k])
            changed.append(SIDChange(item, SID(name, tuple(int(c) for c in t0.codes[k])),
                                     after.sid_of(item) if item in after else None))
    added = {name: tuple(i for i in after.by_type(name).item_ids.tolist() if i not in before)
             for name in after.entity_types}
    return SIDTableDiff({n: ids for n, ids in added.items() if ids}, tuple(changed), tuple(reshaped))


def load_quantizers(catalog: Catalog) -> dict[str, QuantizerRecord]:
    """Every saved quantizer, by entity type (safetensors blobs, no pickle)."""
    from safetensors.numpy import load as st_load

    if not has_sids(catalog):
        raise SIDError(f"catalog {catalog.path} has no SIDs yet; run `neo sids build --db {catalog.path}`")
    out = {}
    sql = "SELECT entity_type, build_id, dim, disambiguation, normalize, info, tensors FROM sid_quantizers"
    for name, build_id, dim, d, normalize, info, blob in catalog.db.execute(sql):
        tensors = st_load(bytes(blob))
        q = ResidualQuantizer(tensors["centroids"], bool(normalize))
        if q.dim != dim:
            raise SIDError(f"quantizer of {name!r} is corrupt (dim {q.dim} != {dim}); rebuild with `neo sids build`")
        out[name] = QuantizerRecord(name, q, int(d), json.loads(info), int(build_id))
    return out


def quantizer_blob(q: ResidualQuantizer, metadata: dict[str, str]) -> bytes:
    from safetensors.numpy import save as st_save

    return bytes(st_save({"centroids": np.ascontiguousarray(q.centroids, dtype=np.float32)}, metadata=metadata))


def read_types(catalog: Catalog) -> dict[str, TypeSIDs]:
    """Every type's SID arrays as stored (no integrity check; see :meth:`SIDTable.load`)."""
    if not has_sids(catalog):
        raise SIDError(f"catalog {catalog.path} has no SIDs yet; run `neo sids build --db {catalog.path}`")
    shapes = {
        r[0]: (int(r[1]), int(r[2]), int(r[3]))
        for r in catalog.db.execute("SELECT entity_type, levels, codes, disambiguation FROM sid_quantizers")
    }
    rows: dict[str, list[tuple[str, str, int]]] = {name: [] for name in shapes}
    sql = (
        "SELECT s.entity_type, s.item_id, s.codes, i.active FROM sids s JOIN items i ON i.id = s.item_id"
        " ORDER BY s.entity_type, s.item_id"
    )
    for etype, item_id, codes, active in catalog.db.execute(sql):
        if etype not in rows:
            raise SIDError(f"SIDs of type {etype!r} have no quantizer; rebuild with `neo sids build`")
        rows[etype].append((item_id, codes, active))
    types = {}
    for name, (levels, k, d) in shapes.items():
        data = rows[name]
        parsed = [r[1].split() for r in data]
        bad = next((r[0] for r, c in zip(data, parsed, strict=True) if len(c) != levels + 1), None)
        if bad is not None:
            raise SIDError(f"the SID of {bad!r} does not have {levels + 1} codes: the SID table was changed"
                           " outside neo-sdk; rebuild with `neo sids build`")
        codes = np.array(parsed, dtype=np.int32).reshape(-1, levels + 1)
        types[name] = TypeSIDs(
            name, levels, k, d, np.array([r[0] for r in data], dtype=object), codes,
            np.array([bool(r[2]) for r in data], dtype=bool),
        )
    return types

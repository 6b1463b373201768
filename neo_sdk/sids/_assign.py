"""Building SIDs for a catalog and assigning SIDs to items added later.

Both operations compute everything in memory first and then write the ``sids``, ``sid_quantizers``
and ``sid_builds`` tables in one ``catalog.transaction()``: any error leaves the catalog as it was.

Disambiguation: every SID has exactly ``M + 1`` codes; the last is a disambiguation code, ``0`` for
the first item of a code tuple. Within a tuple shared by several items, the most popular item gets
``0`` (ties: smaller id), the next ``1``, and so on; uniform length keeps the trie and the decoder
simple. A build covers every item of a type, deactivated ones included (they still appear in
histories); ``assign`` gives SIDs to *active* items without one and never reuses a SID held by any
item, active or not.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from neo_sdk.errors import SIDError
from neo_sdk.sids._collab import collaborative_vectors, cooccurrence_sequences, ppmi_svd
from neo_sdk.sids._embed import (
    Embedder,
    SentenceTransformerEmbedder,
    embed_texts,
    resolve_embedder,
)
from neo_sdk.sids._kmeans import (
    ResidualQuantizer,
    SIDConfig,
    prefix_groups,
    prepare,
    train_residual,
)
from neo_sdk.sids._table import (
    SID,
    SID_FORMAT_VERSION,
    SIDTable,
    TypeSIDs,
    codes_text,
    content_hash,
    ensure_schema,
    has_sids,
    load_quantizers,
    quantizer_blob,
    read_types,
)

if TYPE_CHECKING:
    from neo_sdk.catalog import Catalog, Item

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TypeBuildStats:
    """What a build did for one type (collisions are counted *before* disambiguation)."""

    entity_type: str
    items: int
    levels: int
    codes: int
    disambiguation: int
    unique_tuples: int
    collision_rate: float
    largest_bucket: int
    seconds: float
    collaborative_items: int = 0  # items whose embedding carries a co-occurrence vector


@dataclass(frozen=True)
class BuildResult:
    """The table after a build, its id in ``sid_builds`` and per-type statistics."""

    table: SIDTable
    build_id: int
    stats: dict[str, TypeBuildStats] = field(default_factory=dict)


def item_texts(items: Sequence[Item], text_fields: Sequence[str]) -> list[str]:
    """Embedding texts; an empty text falls back to the title (logged with the ids).

    Raises:
        SIDError: an item has neither text nor title.
    """
    texts, fallback, empty = [], [], []
    for item in items:
        text = item.text(text_fields).strip()
        if not text:
            fallback.append(item.id)
            text = item.title.strip()
            if not text:
                empty.append(item.id)
        texts.append(text)
    if fallback:
        logger.warning(
            "%d items have no text in fields %s; using their title instead: %s%s",
            len(fallback), list(text_fields), fallback[:20], " ..." if len(fallback) > 20 else "",
        )
    if empty:
        raise SIDError(f"{len(empty)} items have neither text nor title, cannot embed them: {empty[:10]}")
    return texts


def disambiguate(tuples: np.ndarray, priority: np.ndarray) -> np.ndarray:
    """Disambiguation codes: rank of each item within its code tuple.

    Args:
        tuples: Shape: (N, M) codes.
        priority: Shape: (N,) sort key, smaller first (e.g. ``-popularity``); ties keep row order.

    Returns:
        Shape: (N,) int32; 0 for the first item of each tuple.
    """
    n = tuples.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int32)
    grp = prefix_groups(tuples)
    order = np.lexsort((np.arange(n), priority, grp))
    sg = grp[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sg)) + 1]
    rank = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
    out = np.empty(n, dtype=np.int32)
    out[order] = rank
    return out


def tuple_stats(tuples: np.ndarray) -> tuple[int, float, int]:
    """``(unique tuples, collision rate, largest bucket)``; collision rate = share of items whose
    tuple is shared by another item."""
    if tuples.shape[0] == 0:
        return 0, 0.0, 0
    sizes = np.bincount(prefix_groups(tuples))
    return int(sizes.size), float(sizes[sizes > 1].sum() / tuples.shape[0]), int(sizes.max())


def _embedder_info(embedder: Embedder) -> dict[str, Any]:
    path = str(embedder.path) if isinstance(embedder, SentenceTransformerEmbedder) else None
    return {"identity": embedder.identity, "path": path, "dim": int(embedder.dim)}


def build_sids(
    catalog: Catalog,
    config: SIDConfig | None = None,
    *,
    embedder: Embedder | str | Path | None = None,
    entity_types: Sequence[str] | None = None,
    progress: bool = True,
) -> BuildResult:
    """Train one residual quantizer per entity type and write every item's SID.

    Args:
        catalog: the catalog; its SID tables are replaced for the built types only.
        config: levels, codes, seed, assignment mode (default :class:`SIDConfig`).
        embedder: an :class:`Embedder`, a sentence-transformers folder, or ``None`` (all-MiniLM-L6-v2).
        entity_types: types to (re)build; default every declared type that has items.
        progress: show embedding progress.

    Returns:
        The new table, build id and per-type statistics.

    Raises:
        SIDError: unknown entity type, a requested type with no items, K larger than a type's item
            count, non-finite embeddings, items with neither text nor title.
    """
    config = config or SIDConfig()
    declared = catalog.entity_types()
    if entity_types is None:
        counts = catalog.counts()["entity_types"]
        names = [t for t in declared if counts.get(t, {}).get("items", 0) > 0]
        if not names:
            raise SIDError(f"catalog {catalog.path} has no items; import a catalog first")
    else:
        names = list(dict.fromkeys(entity_types))
        unknown = [t for t in names if t not in declared]
        if unknown:
            raise SIDError(f"unknown entity type(s) {unknown} (declared: {', '.join(declared) or 'none'})")
    for name in config.per_type:
        if name not in declared:
            raise SIDError(f"per-type setting for unknown entity type {name!r} (declared: {', '.join(declared)})")

    # 1. validate every type before any expensive work
    plan: dict[str, tuple[list[Item], int, int]] = {}
    for name in names:
        items = list(catalog.items(name))
        if not items:
            raise SIDError(f"entity type {name!r} has no items; import some or leave it out")
        levels, k = config.shape_for(name, len(items))
        if k > len(items):
            raise SIDError(
                f"{name!r}: {k} codes per level but only {len(items)} items; pass fewer codes"
                f" (e.g. --codes {max(1, int(np.sqrt(2 * len(items))))})"
            )
        plan[name] = (items, levels, k)

    emb = resolve_embedder(embedder)
    new_types: dict[str, TypeSIDs] = {}
    quantizers: dict[str, tuple[ResidualQuantizer, dict[str, Any], int]] = {}
    stats: dict[str, TypeBuildStats] = {}
    # Held-out targets never shape SIDs: co-occurrence and the popularity that ranks a bucket's
    # items are both counted on the training part of the leave-one-out split.
    sequences = cooccurrence_sequences(catalog)
    train_counts = Counter(item for seq in sequences for item in seq)
    # one co-occurrence space for the catalog, shared by every type (it spans all of them)
    space = ppmi_svd(sequences, window=config.cf_window, dim=config.cf_dim) \
        if config.collaborative > 0 and sequences else None
    for name, (items, levels, k) in plan.items():
        start = time.perf_counter()
        texts = item_texts(items, declared[name].text_fields)
        x = embed_texts(emb, texts, progress=progress)
        type_info: dict[str, Any] = {"content_dim": int(x.shape[1])}
        if space is not None:
            cf = collaborative_vectors(catalog, [item.id for item in items], dim=config.cf_dim, space=space)
            if cf is not None:
                x = np.concatenate([prepare(x, True), config.collaborative * cf], axis=1)
                type_info["collaborative"] = {
                    "weight": config.collaborative, "dim": int(cf.shape[1]), "window": config.cf_window,
                    "items_with_vector": int((np.abs(cf).sum(1) > 0).sum()),
                }
        q, tuples = train_residual(
            x, levels, k, seed=config.seed, niter=config.niter, balanced=config.balanced,
            slack=config.slack, normalize=config.normalize,
        )
        # ties in a tuple go to the most popular item first (catalog popularity without histories)
        pop = np.array([train_counts.get(item.id, 0) if train_counts else item.popularity for item in items],
                       dtype=np.float64)
        d = disambiguate(tuples, -pop)
        n_disamb = max(k, int(d.max()) + 1)
        unique, coll, largest = tuple_stats(tuples)
        new_types[name] = TypeSIDs(
            name, levels, k, n_disamb, np.array([item.id for item in items], dtype=object),
            np.concatenate([tuples, d[:, None]], axis=1).astype(np.int32),
            np.array([item.active for item in items], dtype=bool),
        )
        quantizers[name] = (q, type_info, n_disamb)
        stats[name] = TypeBuildStats(
            name, len(items), levels, k, n_disamb, unique, round(coll, 6), largest,
            round(time.perf_counter() - start, 3),
            type_info.get("collaborative", {}).get("items_with_vector", 0),
        )
        logger.info(
            "%s: %d items, M=%d K=%d, %d distinct k-means tuples (buckets), largest %d",
            name, len(items), levels, k, unique, largest,
        )

    info_base = {"embedder": _embedder_info(emb), "balanced": config.balanced, "seed": config.seed}
    with catalog.transaction():
        ensure_schema(catalog)
        build_id = _start_row(catalog, "build", names, config.to_json() | {"embedder": info_base["embedder"]},
                              {n: vars(s) for n, s in stats.items()})
        for name, t in new_types.items():
            catalog.db.execute("DELETE FROM sids WHERE entity_type=?", [name])
            catalog.db.conn.executemany(
                "INSERT INTO sids VALUES (?, ?, ?, ?)",
                [(i, name, codes_text(c), build_id) for i, c in zip(t.item_ids.tolist(), t.codes, strict=True)],
            )
            q, type_info, n_disamb = quantizers[name]
            meta = {"entity_type": name, "version": str(SID_FORMAT_VERSION), "levels": str(q.levels),
                    "codes": str(q.codes), "dim": str(q.dim)}
            catalog.db.execute(
                "INSERT OR REPLACE INTO sid_quantizers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [name, build_id, q.levels, q.codes, q.dim, n_disamb, int(q.normalize),
                 json.dumps(info_base | type_info, sort_keys=True), quantizer_blob(q, meta)],
            )
        table = _finish_row(catalog, build_id)
    return BuildResult(table, build_id, stats)


def _start_row(catalog: Catalog, kind: str, names: Sequence[str], config: dict[str, Any], stats: dict[str, Any]) -> int:
    from neo_sdk import __version__

    cur = catalog.db.execute(
        "INSERT INTO sid_builds (kind, version, sdk_version, created_at, entity_types, config, content_hash,"
        " stats) VALUES (?, ?, ?, ?, ?, ?, '', ?)",
        [kind, SID_FORMAT_VERSION, __version__, time.time(), json.dumps(list(names)),
         json.dumps(config, sort_keys=True), json.dumps(stats, sort_keys=True)],
    )
    assert cur.lastrowid is not None
    return int(cur.lastrowid)


def _finish_row(catalog: Catalog, build_id: int) -> SIDTable:
    types = read_types(catalog)
    table = SIDTable(types, build_id=build_id)
    catalog.db.execute("UPDATE sid_builds SET content_hash=? WHERE id=?", [content_hash(types), build_id])
    return table


def assign_new(
    catalog: Catalog,
    *,
    embedder: Embedder | str | Path | None = None,
    entity_types: Sequence[str] | None = None,
    progress: bool = True,
) -> dict[str, list[tuple[str, SID]]]:
    """Give SIDs to active items that have none, with the saved centroids (no retraining).

    Level codes are the nearest saved centroids. In balanced builds the last level takes the nearest
    code whose tuple is still entirely free (as the build does); otherwise, or when none is free,
    the nearest tuple with a free disambiguation code ``< D``. When every tuple under the item's
    first ``M - 1`` codes is full, it goes to the tuple with room whose centroid sum is nearest
    (a small type with several levels fills one prefix long before the others). SIDs held by any item,
    deactivated ones included, are never reused, and every code stays within the vocabulary's
    ranges (``K``, ``D``), so bundles trained before serve the new items without retraining.
    New items are placed in id order, so the result is deterministic.

    Args:
        catalog: a catalog with built SIDs.
        embedder: override the embedder recorded at build time (must have the same dimension).
        entity_types: only these types (default: every built type; types never built are skipped
            with a warning, since they need ``neo sids build --type T``).
        progress: show embedding progress.

    Returns:
        ``{entity_type: [(item_id, SID), ...]}`` for the items that got a SID.

    Raises:
        SIDError: no build yet, an unknown or never-built type was asked for, the embedder's
            dimension differs from the quantizer's, or every tuple is full (rebuild).
    """
    table = SIDTable.load(catalog)
    records = load_quantizers(catalog)
    declared = catalog.entity_types()
    names = list(declared) if entity_types is None else list(dict.fromkeys(entity_types))
    for name in names:
        if name not in declared:
            raise SIDError(f"unknown entity type {name!r} (declared: {', '.join(declared) or 'none'})")
        if entity_types is not None and name not in records:
            raise SIDError(f"{name!r} has no SIDs yet; run `neo sids build --type {name}` first")
    plan: dict[str, list[Item]] = {}
    for name in names:
        new = [item for item in catalog.items(name, active_only=True) if item.id not in table]
        if not new:
            continue
        if name not in records:
            logger.warning("%d %r items have no SIDs and %r was never built; run `neo sids build --type %s`",
                           len(new), name, name, name)
            continue
        plan[name] = new

    results: dict[str, list[tuple[str, SID]]] = {}
    rows: list[tuple[str, str, tuple[int, ...]]] = []
    for name, items in plan.items():
        rec = records[name]
        q = rec.quantizer
        emb = resolve_embedder(embedder if embedder is not None else rec.embedder_path)
        if emb.dim != rec.content_dim:
            raise SIDError(
                f"embedder {emb.identity} makes {emb.dim}-d vectors but the {name!r} quantizer expects"
                f" {rec.content_dim}-d; use the embedder the SIDs were built with, or rebuild with `neo sids build`"
            )
        x = embed_texts(emb, item_texts(items, declared[name].text_fields), progress=progress)
        if q.dim > rec.content_dim:  # collaborative build: new items have no history, content places them
            x = np.concatenate([prepare(x, True), np.zeros((len(x), q.dim - rec.content_dim), np.float32)], 1)
        tuples, alts = q.assign(x, alternatives=q.codes)
        existing = table.by_type(name).codes
        used: dict[tuple[int, ...], set[int]] = {}
        for row in existing.tolist():
            used.setdefault(tuple(row[:-1]), set()).add(row[-1])
        out = []
        for row, (item, codes, cands) in enumerate(zip(items, tuples.tolist(), alts.tolist(), strict=True)):
            sid = _place(name, codes[:-1], cands, used, rec.disambiguation, rec.balanced) \
                or _place_nearest(name, q, x[row], used, rec.disambiguation)
            if sid is None:
                raise SIDError(
                    f"no free SID for item {item.id!r}: every code tuple of {name!r} already holds"
                    f" {rec.disambiguation} items; rebuild with `neo sids build --type {name}`"
                )
            used.setdefault(sid.codes[:-1], set()).add(sid.codes[-1])
            out.append((item.id, sid))
            rows.append((item.id, name, sid.codes))
        results[name] = out
        logger.info("%s: assigned %d new SIDs", name, len(out))

    if not rows:
        return results
    with catalog.transaction():
        build_id = _start_row(catalog, "assign", list(plan), {}, {n: len(v) for n, v in results.items()})
        catalog.db.conn.executemany(
            "INSERT INTO sids VALUES (?, ?, ?, ?)", [(i, n, codes_text(c), build_id) for i, n, c in rows]
        )
        _finish_row(catalog, build_id)
    return results


def _place(
    name: str, prefix: list[int], cands: list[int], used: dict[tuple[int, ...], set[int]], n_disamb: int,
    balanced: bool,
) -> SID | None:
    """The SID for one new item, or ``None`` if every candidate tuple is full."""
    if balanced:
        for c in cands:
            if not used.get((*prefix, c)):
                return SID(name, (*prefix, c, 0))
    for c in cands:
        taken = used.get((*prefix, c), set())
        free = next((d for d in range(n_disamb) if d not in taken), None)
        if free is not None:
            return SID(name, (*prefix, c, free))
    return None


def _place_nearest(name: str, q: ResidualQuantizer, x: np.ndarray, used: dict[tuple[int, ...], set[int]],
                   n_disamb: int) -> SID | None:
    """The SID in the tuple with a free disambiguation code whose centroid sum is nearest to ``x``
    (Shape: (D,)), or ``None`` if every tuple is full. Tuples: all ``K^M`` when there are at most
    4,096, else those some item holds."""
    every = itertools.product(range(q.codes), repeat=q.levels) if q.codes ** q.levels <= 4096 else used
    open_tuples = sorted(t for t in every if len(used.get(t, ())) < n_disamb)
    if not open_tuples:
        return None
    grid = np.asarray(open_tuples, dtype=np.int64)
    recon = sum(q.centroids[m][grid[:, m]] for m in range(q.levels))
    best = open_tuples[int(np.argmin(((q.prepare(x[None, :]) - recon) ** 2).sum(axis=1)))]
    free = next(d for d in range(n_disamb) if d not in used.get(best, ()))
    return SID(name, (*best, free))


def has_built(catalog: Catalog) -> bool:
    """Whether the catalog holds SIDs."""
    return has_sids(catalog) and catalog.db.execute("SELECT COUNT(*) FROM sid_quantizers").fetchone()[0] > 0

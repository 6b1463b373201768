"""Semantic IDs: determinism, uniqueness, disambiguation, new items, bad input, report, CLI."""

from __future__ import annotations

import json
import logging
import random
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from neo_sdk.catalog import Catalog, Item
from neo_sdk.cli import main
from neo_sdk.errors import ConfigError, MissingAssetError, SIDError
from neo_sdk.sids import (
    SIDConfig,
    SIDTable,
    assign_new,
    build_sids,
    default_shape,
    disambiguate,
    embed_texts,
    load_quantizers,
    save_usage_png,
    sid_report,
    train_residual,
)
from neo_sdk.sids._kmeans import capacity_assign

GENRES = ["space", "western", "romance", "horror", "cooking", "sports", "music", "war"]
WORDS = {g: [f"{g}{i}" for i in range(12)] for g in GENRES}


class BagEmbedder:
    """Deterministic toy embedder: the sum of one pseudo-random vector per word (fast, offline)."""

    def __init__(self, dim: int = 32, identity: str = "bag") -> None:
        self.identity = f"{identity}-{dim}"
        self._dim = dim
        self.calls = 0

    @property
    def dim(self) -> int:
        return self._dim

    def _word(self, word: str) -> np.ndarray:
        return np.random.default_rng(zlib.crc32(word.encode())).standard_normal(self._dim).astype(np.float32)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += len(texts)
        return np.stack([sum((self._word(w) for w in t.lower().split()), np.zeros(self._dim, np.float32)) + 0.01
                         for t in texts])


class NaNEmbedder(BagEmbedder):
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = super().encode(texts)
        out[0, 0] = np.nan
        return out


def _items(n: int, etype: str, prefix: str, seed: int = 0) -> list[Item]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        genre = GENRES[i % len(GENRES)]
        words = rng.sample(WORDS[genre], 4) + rng.sample(WORDS[rng.choice(GENRES)], 1)
        out.append(Item(f"{prefix}{i:04d}", etype, f"{etype} {i}", {"plot": " ".join(words)},
                        popularity=float(rng.randint(0, 100))))
    return out


@pytest.fixture(autouse=True)
def _home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEO_HOME", str(tmp_path_factory.mktemp("neo_home")))


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    cat = Catalog(tmp_path / "cat.db")
    cat.declare_type("movie", text_fields=["plot"])
    cat.declare_type("person", text_fields=["plot"])
    cat.declare_type("show", text_fields=["plot"])  # declared, no items: skipped by default
    cat.add_items(_items(300, "movie", "m"))
    cat.add_items(_items(80, "person", "p", seed=1))
    return cat


def _snapshot(cat: Catalog) -> list[tuple[str, str]]:
    if "sids" not in cat.db.table_names():
        return []
    return [tuple(r) for r in cat.db.execute("SELECT item_id, codes FROM sids ORDER BY item_id")]


# ------------------------------------------------------------------ building
def test_build_gives_every_item_a_unique_uniform_sid(catalog: Catalog) -> None:
    result = build_sids(catalog, embedder=BagEmbedder(), progress=False)
    table = SIDTable.load(catalog)
    assert table.entity_types == ("movie", "person")
    assert len(table) == 380
    for name, n in [("movie", 300), ("person", 80)]:
        t = table.by_type(name)
        assert (t.levels, t.codes_per_level) == default_shape(n)
        assert t.codes.shape == (n, t.levels + 1)
        assert len({tuple(r) for r in t.codes.tolist()}) == n
        assert (t.codes[:, :-1] < t.codes_per_level).all() and (t.codes[:, -1] < t.disambiguation).all()
        for item_id, row in zip(t.item_ids, t.codes.tolist(), strict=True):
            sid = table.sid_of(item_id)
            assert sid.codes == tuple(row) and sid.entity_type == name
            assert table.item_of(name, row) == item_id
    # default shape: one k-means level of K=32 codes, balanced buckets of <= ceil(300/32) items
    # that the last code ranks by popularity
    assert result.stats["movie"].largest_bucket == 10 and result.stats["movie"].unique_tuples == 32
    assert table.content_hash == catalog.db.execute(
        "SELECT content_hash FROM sid_builds ORDER BY id DESC LIMIT 1").fetchone()[0]


def test_build_is_deterministic_across_runs_and_threads(catalog: Catalog, tmp_path: Path) -> None:
    import faiss

    build_sids(catalog, SIDConfig(seed=7), embedder=BagEmbedder(), progress=False)
    first = SIDTable.load(catalog)
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(2)
    try:
        other = Catalog(tmp_path / "other.db")
        for name in ("movie", "person"):
            other.declare_type(name, text_fields=["plot"])
        other.add_items(_items(300, "movie", "m"))
        other.add_items(_items(80, "person", "p", seed=1))
        build_sids(other, SIDConfig(seed=7), embedder=BagEmbedder(), progress=False)
        build_sids(catalog, SIDConfig(seed=7), embedder=BagEmbedder(), progress=False)  # rebuild in place
    finally:
        faiss.omp_set_num_threads(threads)
    for table in (SIDTable.load(other), SIDTable.load(catalog)):
        assert table.content_hash == first.content_hash
        np.testing.assert_array_equal(table.by_type("movie").codes, first.by_type("movie").codes)
    build_sids(catalog, SIDConfig(seed=8), embedder=BagEmbedder(), progress=False)
    assert SIDTable.load(catalog).content_hash != first.content_hash


def test_plain_mode_collides_and_disambiguation_keeps_items_reachable(catalog: Catalog) -> None:
    config = SIDConfig(levels=2, codes=4, balanced=False)
    result = build_sids(catalog, config, embedder=BagEmbedder(), entity_types=["movie"], progress=False)
    stats = result.stats["movie"]
    assert stats.collision_rate > 0.5 and stats.largest_bucket > 4
    t = SIDTable.load(catalog).by_type("movie")
    assert len({tuple(r) for r in t.codes.tolist()}) == 300  # unique after disambiguation
    assert t.disambiguation == stats.largest_bucket  # D grows to the largest bucket when it exceeds K
    pop = {i.id: i.popularity for i in catalog.items("movie")}
    buckets: dict[tuple[int, ...], list[tuple[int, str]]] = {}
    for item_id, row in zip(t.item_ids, t.codes.tolist(), strict=True):
        buckets.setdefault(tuple(row[:-1]), []).append((row[-1], item_id))
    for members in buckets.values():
        members.sort()
        assert [d for d, _ in members] == list(range(len(members)))  # 0..n-1, first gets 0
        pops = [pop[i] for _, i in members]
        assert pops == sorted(pops, reverse=True)  # most popular gets 0


def test_disambiguate_ranks_within_tuples() -> None:
    tuples = np.array([[1, 2], [0, 0], [1, 2], [1, 2], [0, 1]])
    np.testing.assert_array_equal(disambiguate(tuples, np.array([0, 0, -5, 0, 0])), [1, 0, 0, 2, 0])


def test_capacity_assign_respects_capacity() -> None:
    rng = np.random.default_rng(0)
    dist = rng.random((100, 8))
    dist[:, 0] = 0  # everyone prefers code 0
    codes = capacity_assign(dist, np.zeros(100, dtype=np.int64), np.array([13]))
    assert np.bincount(codes, minlength=8).max() <= 13
    groups = np.repeat([0, 1], 50)
    codes = capacity_assign(dist, groups, np.array([7, 7]))
    for g in (0, 1):
        assert np.bincount(codes[groups == g], minlength=8).max() <= 7


def test_default_shape_rule() -> None:
    assert [default_shape(n) for n in (10, 300, 1682, 3937, 100_000, 10_000_000)] == [
        (1, 8), (1, 32), (1, 64), (1, 96), (2, 64), (3, 72)]


def test_train_residual_balanced_beats_plain_on_uniqueness() -> None:
    x = BagEmbedder().encode([i.fields["plot"] for i in _items(300, "movie", "m")])
    _, plain = train_residual(x, 2, 16, seed=0, niter=10, balanced=False, slack=1.5, normalize=True)
    _, bal = train_residual(x, 2, 16, seed=0, niter=10, balanced=True, slack=1.5, normalize=True)
    assert len({tuple(r) for r in bal.tolist()}) > len({tuple(r) for r in plain.tolist()})


def test_quantizer_is_saved_without_pickle_and_reloads(catalog: Catalog) -> None:
    build_sids(catalog, SIDConfig(levels=3, codes=8), embedder=BagEmbedder(), progress=False)
    blob = catalog.db.execute("SELECT tensors FROM sid_quantizers WHERE entity_type='movie'").fetchone()[0]
    from safetensors.numpy import load

    assert load(bytes(blob))["centroids"].shape == (3, 8, 32)
    recs = load_quantizers(catalog)
    assert recs["movie"].quantizer.centroids.shape == (3, 8, 32)
    # the saved centroids reproduce the stored level codes of training items (balanced, capacity-free
    # levels aside, nearest assignment agrees for most items)
    items = list(catalog.items("movie"))
    x = embed_texts(BagEmbedder(), [i.fields["plot"] for i in items], progress=False)
    codes, _ = recs["movie"].quantizer.assign(x)
    stored = SIDTable.load(catalog).by_type("movie").codes
    assert (codes[:, 0] == stored[:, 0]).mean() > 0.7


# ---------------------------------------------------------------- new items
def test_assign_new_items_keeps_existing_and_reserves_deactivated(catalog: Catalog) -> None:
    emb = BagEmbedder()
    build_sids(catalog, embedder=emb, progress=False)
    before = SIDTable.load(catalog)
    deactivated = [f"m{i:04d}" for i in range(5)]
    catalog.deactivate(deactivated)
    # new items: 10 fresh ones plus clones of the deactivated items' text (their nearest SID is taken)
    fresh = _items(10, "movie", "new", seed=9)
    clones = [Item(f"clone{i}", "movie", "c", {"plot": catalog.get(d).fields["plot"]}) for i, d in enumerate(deactivated)]
    inactive_new = Item("inactive-new", "movie", "x", {"plot": "space0 space1"}, active=False)
    catalog.add_items([*fresh, *clones, inactive_new])
    result = assign_new(catalog, embedder=emb, progress=False)
    assert set(result) == {"movie"} and len(result["movie"]) == 15
    after = SIDTable.load(catalog)
    for item_id in before:
        assert after.sid_of(item_id) == before.sid_of(item_id)  # existing SIDs untouched
    reserved = {before.sid_of(d).codes for d in deactivated}
    new_sids = [sid for _, sid in result["movie"]]
    assert not reserved & {s.codes for s in new_sids}
    t = after.by_type("movie")
    assert len({tuple(r) for r in t.codes.tolist()}) == len(t) == 315
    assert "inactive-new" not in after
    assert all(after.item_of("movie", s.codes) == i for i, s in result["movie"])
    assert assign_new(catalog, embedder=emb, progress=False) == {}
    assert catalog.db.execute("SELECT kind FROM sid_builds ORDER BY id").fetchall() == [("build",), ("assign",)]


def test_assign_refuses_mismatched_embedder_dimension(catalog: Catalog) -> None:
    build_sids(catalog, embedder=BagEmbedder(dim=32), progress=False)
    catalog.add_items(_items(3, "movie", "new"))
    before = _snapshot(catalog)
    with pytest.raises(SIDError, match="dimension|384|16-d"):
        assign_new(catalog, embedder=BagEmbedder(dim=16), progress=False)
    assert _snapshot(catalog) == before


def test_assign_needs_a_build(catalog: Catalog, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(SIDError, match="no SIDs yet"):
        assign_new(catalog, embedder=BagEmbedder(), progress=False)
    build_sids(catalog, embedder=BagEmbedder(), entity_types=["movie"], progress=False)
    catalog.add_items(_items(2, "movie", "new"))
    with pytest.raises(SIDError, match="build --type person"):
        assign_new(catalog, embedder=BagEmbedder(), entity_types=["person"], progress=False)
    with pytest.raises(SIDError, match="unknown entity type"):
        assign_new(catalog, embedder=BagEmbedder(), entity_types=["album"], progress=False)
    with caplog.at_level(logging.WARNING, logger="neo_sdk.sids"):
        result = assign_new(catalog, embedder=BagEmbedder(), progress=False)  # person skipped, warned
    assert list(result) == ["movie"] and len(result["movie"]) == 2
    assert any("'person' was never built" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------- bad input
def test_empty_text_falls_back_to_title_with_warning(catalog: Catalog, caplog: pytest.LogCaptureFixture) -> None:
    catalog.add_items([Item("m-empty", "movie", "Lonely Title", {}), Item("m-blank", "movie", "Blank", {"plot": ""})])
    with caplog.at_level(logging.WARNING, logger="neo_sdk.sids"):
        build_sids(catalog, embedder=BagEmbedder(), entity_types=["movie"], progress=False)
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "m-empty" in warning and "m-blank" in warning and "title" in warning
    assert "m-empty" in SIDTable.load(catalog)


def test_item_without_text_or_title_is_refused(catalog: Catalog) -> None:
    catalog.add_items([Item("m-nothing", "movie", "", {})])
    with pytest.raises(SIDError, match="m-nothing"):
        build_sids(catalog, embedder=BagEmbedder(), progress=False)
    assert _snapshot(catalog) == []


def test_non_finite_embeddings_are_refused_and_nothing_is_written(catalog: Catalog) -> None:
    build_sids(catalog, embedder=BagEmbedder(), progress=False)
    before = _snapshot(catalog)
    with pytest.raises(SIDError, match="non-finite"):
        build_sids(catalog, SIDConfig(seed=3), embedder=NaNEmbedder(identity="nan"), progress=False)
    assert _snapshot(catalog) == before
    SIDTable.load(catalog)  # still consistent


def test_too_many_codes_is_refused(catalog: Catalog) -> None:
    with pytest.raises(SIDError, match="only 80 items"):
        build_sids(catalog, SIDConfig(codes=100), embedder=BagEmbedder(), progress=False)
    assert _snapshot(catalog) == []


def test_unknown_entity_type_is_refused(catalog: Catalog) -> None:
    with pytest.raises(SIDError, match="unknown entity type"):
        build_sids(catalog, embedder=BagEmbedder(), entity_types=["album"], progress=False)
    with pytest.raises(SIDError, match="no items"):
        build_sids(catalog, embedder=BagEmbedder(), entity_types=["show"], progress=False)
    build_sids(catalog, embedder=BagEmbedder(), progress=False)
    table = SIDTable.load(catalog)
    with pytest.raises(SIDError, match="album"):
        table.by_type("album")
    with pytest.raises(SIDError, match="album"):
        table.item_of("album", (0, 0, 0))
    with pytest.raises(SIDError, match="no movie item"):
        table.item_of("movie", (99, 99, 99))
    with pytest.raises(SIDError, match="neo sids assign"):
        table.sid_of("nope")


def test_invalid_config_values() -> None:
    with pytest.raises(ConfigError):
        SIDConfig(levels=0)
    with pytest.raises(ConfigError):
        SIDConfig(slack=0.5)


def test_table_edited_outside_is_detected(catalog: Catalog) -> None:
    build_sids(catalog, embedder=BagEmbedder(), progress=False)
    catalog.db.execute("UPDATE sids SET codes='0 63' WHERE item_id='m0000'")
    with pytest.raises(SIDError, match="changed outside"):
        SIDTable.load(catalog)
    catalog.db.execute("UPDATE sids SET codes='0 0 63' WHERE item_id='m0000'")  # wrong length
    with pytest.raises(SIDError, match="does not have 2 codes"):
        SIDTable.load(catalog)


def test_rebuilding_one_type_keeps_the_other(catalog: Catalog) -> None:
    build_sids(catalog, embedder=BagEmbedder(), progress=False)
    person = SIDTable.load(catalog).by_type("person").codes.copy()
    build_sids(catalog, SIDConfig(seed=5), embedder=BagEmbedder(), entity_types=["movie"], progress=False)
    np.testing.assert_array_equal(SIDTable.load(catalog).by_type("person").codes, person)


# -------------------------------------------------------------------- cache
def test_embedding_cache_embeds_only_new_texts() -> None:
    emb = BagEmbedder()
    first = embed_texts(emb, ["a b", "c d"], progress=False)
    assert emb.calls == 2
    again = embed_texts(emb, ["c d", "a b", "e f", "e f"], progress=False)
    assert emb.calls == 3  # only "e f", once
    np.testing.assert_array_equal(again[:2], first[::-1])


# ------------------------------------------------------------------- report
def test_report_fields_and_coherence(catalog: Catalog, tmp_path: Path) -> None:
    build_sids(catalog, embedder=BagEmbedder(), progress=False)
    report = sid_report(catalog, embedder=BagEmbedder())
    json.dumps(report)
    movie = report["types"]["movie"]
    assert {"items", "active", "levels", "codes", "disambiguation", "assignment", "unique_tuples", "unique_share",
            "collision_rate", "largest_bucket", "max_disambiguation_code", "all_unique", "per_level"} <= set(movie)
    assert movie["all_unique"] and movie["assignment"] == "balanced"
    lv1 = movie["per_level"][0]
    assert {"level", "used_codes", "utilisation", "entropy_bits", "perplexity", "unique_prefixes",
            "largest_bucket", "collision_rate", "coherence", "random_coherence", "coherence_ratio",
            "code_counts"} <= set(lv1)
    assert lv1["coherence_ratio"] > 1.5  # toy data has 8 clear topics
    assert sum(lv1["code_counts"]) == 300 and len(lv1["code_counts"]) == movie["codes"]
    png = save_usage_png(report, tmp_path / "usage.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------- CLI
@pytest.mark.slow
def test_cli_build_report_assign_with_real_embedder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NEO_HOME")  # MiniLM embeddings of these fixed texts are cached across runs
    db = tmp_path / "cli.db"
    cat = Catalog(db)
    cat.declare_type("movie", text_fields=["plot"])
    cat.add_items(_items(48, "movie", "m"))
    cat.close()
    assert main(["sids", "build", "--db", str(db), "--levels", "2", "--codes", "8", "--no-progress"]) == 0
    assert "movie: 48 items, M=2 K=8" in capsys.readouterr().out
    assert main(["sids", "report", "--db", str(db), "--json", "--png", str(tmp_path / "u.png")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["types"]["movie"]["embedder"]["dim"] == 384
    assert (tmp_path / "u.png").exists()
    with Catalog(db) as cat:
        cat.add_items(_items(2, "movie", "new", seed=4))
    assert main(["sids", "assign", "--db", str(db), "--no-progress"]) == 0
    assert "movie: assigned 2 new SIDs" in capsys.readouterr().out
    assert main(["sids", "build", "--db", str(db), "--codes", "500"]) == 1
    assert "error:" in capsys.readouterr().err
    assert main(["sids", "report", "--db", str(tmp_path / "missing.db")]) == 1


# --------------------------------------------------------------- demo catalog
def load_demo(path: Path) -> Catalog:
    """ML-100k with people; skips only when its asset package is missing (any other error fails)."""
    import neo_sdk.catalog

    cat = Catalog(path)
    try:
        neo_sdk.catalog.load_dataset(cat, "movielens-100k", with_people=True, progress=False)
    except MissingAssetError as exc:
        cat.close()
        pytest.skip(f"demo catalog unavailable: {exc}")
    return cat


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    return load_demo(tmp_path_factory.mktemp("demo") / "ml100k.db")


def test_only_a_missing_asset_skips_the_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import neo_sdk.catalog

    def missing(*args: object, **kwargs: object) -> None:
        raise MissingAssetError("recbole", "the movielens-100k dataset")

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("a loader bug")

    monkeypatch.setattr(neo_sdk.catalog, "load_dataset", missing)
    with pytest.raises(pytest.skip.Exception, match="pip install --no-deps recbole"):
        load_demo(tmp_path / "a.db")
    monkeypatch.setattr(neo_sdk.catalog, "load_dataset", broken)
    try:
        with pytest.raises(ValueError, match="a loader bug"):
            load_demo(tmp_path / "b.db")
    except pytest.skip.Exception:
        pytest.fail("a loader error (not a missing asset) was turned into a skip")


@pytest.mark.slow
def test_demo_catalog_movies(demo: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    """ML-100k movies with MiniLM (embeddings cached in the real NEO_HOME: ~1 min cold, s warm)."""
    monkeypatch.delenv("NEO_HOME")
    result = build_sids(demo, entity_types=["movie"], progress=False)
    table = SIDTable.load(demo)
    t = table.by_type("movie")
    assert len({tuple(r) for r in t.codes[t.active].tolist()}) == int(t.active.sum()) == 1682
    report = sid_report(demo)
    movie = report["types"]["movie"]
    assert movie["per_level"][0]["coherence_ratio"] > 1.15
    assert result.stats["movie"].largest_bucket == 27  # ceil(1682 / 64): balanced buckets
    build_sids(demo, entity_types=["movie"], progress=False)
    assert SIDTable.load(demo).content_hash == table.content_hash  # same seed, same SIDs
    demo.add_items([Item(f"movie:new{i}", "movie", f"New Space Adventure {i}",
                         {"genres": ["Sci-Fi"], "year": 2030}) for i in range(10)])
    added = assign_new(demo, progress=False)["movie"]
    after = SIDTable.load(demo)
    assert len(added) == 10 and all(after.item_of("movie", s.codes) == i for i, s in added)
    assert all(after.sid_of(i) == table.sid_of(i) for i in t.item_ids)

"""Catalog store: items, types, history order with ties, splits, WAL concurrency, schema checks."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from neo_sdk import (
    Catalog,
    CatalogError,
    Interaction,
    Item,
    Relation,
    UnknownItemError,
    leave_one_out,
    temporal_split,
)


def test_history_orders_by_time_and_breaks_ties_by_insertion(sample_catalog: Catalog) -> None:
    history = [e.item_id for e in sample_catalog.history("ana")]
    # neuromancer and left-hand share a timestamp: file order decides
    assert history == [
        "book:dune", "book:foundation", "book:neuromancer", "book:left-hand",
        "author:le-guin", "book:earthsea",
    ]
    assert [e.item_id for e in sample_catalog.history("ana", entity_type="author")] == ["author:le-guin"]
    assert sample_catalog.histories()["ana"] == sample_catalog.history("ana")


def test_tie_break_is_insertion_order_not_id_order(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "t.db")
    catalog.declare_type("song")
    catalog.add_items([Item(i, "song", i.upper()) for i in ("a", "b", "c")])
    catalog.add_users([("u", {})])
    catalog.add_interactions([Interaction("u", "c", 5.0), Interaction("u", "a", 5.0), Interaction("u", "b", 1.0)])
    assert [e.item_id for e in catalog.history("u")] == ["b", "c", "a"]


def test_item_api(sample_catalog: Catalog) -> None:
    assert sample_catalog.get("book:emma").title == "Emma"
    assert [i.id for i in sample_catalog.items("author")][:2] == ["author:asimov", "author:austen"]
    with pytest.raises(UnknownItemError, match="book:nope"):
        sample_catalog.get("book:nope")
    with pytest.raises(UnknownItemError, match="book:nope"):
        sample_catalog.get_many(["book:emma", "book:nope"])
    with pytest.raises(CatalogError, match="unknown entity type 'podcast'"):
        list(sample_catalog.items("podcast"))
    texts = sample_catalog.item_texts("book")
    assert texts["book:dune"] == (
        "Dune; genres: Science fiction; year: 1965; description: A desert planet and the spice that everyone wants"
    )


def test_add_upsert_deactivate(sample_catalog: Catalog) -> None:
    with pytest.raises(CatalogError, match="upsert"):
        sample_catalog.add_items([Item("book:dune", "book", "Dune")])
    sample_catalog.add_items([Item("book:dune", "book", "Dune (new cover)")], upsert=True)
    assert sample_catalog.get("book:dune").title == "Dune (new cover)"
    sample_catalog.deactivate(["book:emma"])
    assert sample_catalog.get("book:emma").active is False
    assert "book:emma" not in {i.id for i in sample_catalog.items("book", active_only=True)}
    assert sample_catalog.counts()["entity_types"]["book"] == {"items": 8, "active": 7}
    with pytest.raises(UnknownItemError):
        sample_catalog.deactivate(["book:nope"])
    with pytest.raises(CatalogError, match="unknown entity type"):
        sample_catalog.add_items([Item("x", "podcast", "X")])


def test_failed_bulk_write_rolls_back(sample_catalog: Catalog) -> None:
    before = sample_catalog.counts()
    with pytest.raises(CatalogError, match="unknown user or item"):
        sample_catalog.add_interactions([Interaction("ana", "book:dune", 1.0), Interaction("ana", "nope", 2.0)])
    with pytest.raises(CatalogError):
        sample_catalog.add_relations([Relation("book:dune", "about", "book:emma"), Relation("book:dune", "x", "nope")])
    assert sample_catalog.counts() == before


def test_declare_type_validates_names(sample_catalog: Catalog) -> None:
    with pytest.raises(CatalogError, match="lowercase"):
        sample_catalog.declare_type("Movie Type")


def test_stats_and_info(sample_catalog: Catalog) -> None:
    sample_catalog.set_info("dataset", {"name": "sample"})
    stats = sample_catalog.stats()
    assert stats["info"] == {"dataset": {"name": "sample"}}
    assert stats["relations"] == {"total": 8, "written_by": 8}
    assert stats["interactions_per_user"] == round(14 / 3, 2)
    sample_catalog.update_popularity()
    assert sample_catalog.get("book:dune").popularity == 2


def test_leave_one_out(sample_catalog: Catalog) -> None:
    split = leave_one_out(sample_catalog)
    assert split.test == {"ana": "book:earthsea", "ben": "book:foundation", "chloe": "book:hobbit"}
    assert split.valid == {"ana": "author:le-guin", "ben": "book:dune", "chloe": "author:austen"}
    assert split.train["chloe"] == ["book:emma", "book:persuasion"]
    assert split.test_history["ana"][-1] == "author:le-guin"
    histories = sample_catalog.histories()
    for user, target in split.test.items():  # no leakage: train stops before the valid item
        full = [e.item_id for e in histories[user]]
        assert split.train[user] + [split.valid[user], target] == full
        assert split.test_history[user] == full[:-1]


def test_copy_without_holds_out_a_split(sample_catalog: Catalog, tmp_path: Path) -> None:
    split = leave_one_out(sample_catalog)
    before = {u: [i.item_id for i in sample_catalog.history(u)] for u in split.test}
    out = tmp_path / "copies"
    out.mkdir()
    copy = sample_catalog.copy_without(split.held_out(), out / "train_only.db")
    for user, full in before.items():
        assert [i.item_id for i in copy.history(user)] == split.train[user]  # the held-out events are gone
        assert [i.item_id for i in sample_catalog.history(user)] == full  # the original is untouched
    assert copy.counts()["items"] == sample_catalog.counts()["items"]
    copy.close()
    with pytest.raises(CatalogError, match="already exists"):
        sample_catalog.copy_without([], out / "train_only.db")
    assert sorted(p.name for p in out.iterdir()) == ["train_only.db"]  # no partial copy left behind


def test_leave_one_out_by_entity_type(sample_catalog: Catalog) -> None:
    split = leave_one_out(sample_catalog, entity_type="book")
    assert split.valid["ana"] == "book:left-hand"  # the author follow stays in history
    assert split.test_history["ana"] == [
        "book:dune", "book:foundation", "book:neuromancer", "book:left-hand", "author:le-guin",
    ]


def test_temporal_split(sample_catalog: Catalog) -> None:
    split = temporal_split(sample_catalog, valid_fraction=0.25, test_fraction=0.25)
    stamps = {(e.user_id, e.item_id): e.timestamp for es in sample_catalog.histories().values() for e in es}
    cut_valid = min(stamps[(u, i)] for u, i in split.valid.items())
    for user, items in split.train.items():
        assert all(stamps[(user, i)] < cut_valid for i in items)
    for user, target in split.test.items():
        assert all(stamps[(user, i)] <= stamps[(user, target)] for i in split.test_history[user])
    with pytest.raises(CatalogError):
        temporal_split(sample_catalog, valid_fraction=0.6, test_fraction=0.5)


def test_wal_readers_while_one_writer(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    writer = Catalog(path)
    assert writer.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    writer.declare_type("song")
    writer.add_users([("u", {})])
    writer.add_items([Item(f"s{k}", "song", f"Song {k}") for k in range(200)])
    errors: list[BaseException] = []

    def read() -> None:
        try:
            reader = Catalog(path)
            for _ in range(50):
                n = reader.counts()["interactions"]
                assert n % 10 == 0  # a reader never sees half of a transaction
            reader.close()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(3)]
    for t in threads:
        t.start()
    for batch in range(20):
        writer.add_interactions([Interaction("u", f"s{batch * 10 + k}", float(batch)) for k in range(10)])
    for t in threads:
        t.join()
    assert errors == []
    assert writer.counts()["interactions"] == 200


def test_refuses_other_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    Catalog(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(CatalogError, match="schema version 99"):
        Catalog(path)

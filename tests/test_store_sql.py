"""The store owns its SQL: the Catalog reads and bulk writes other modules use, and the shared SQLite helper."""

from __future__ import annotations

import re
import sqlite3
import threading
from pathlib import Path

import pytest

from neo_sdk import _sqlite
from neo_sdk.catalog import Catalog, Interaction, Item, Relation, import_file
from neo_sdk.errors import CatalogError, CatalogImportError, SessionError
from neo_sdk.session import SessionStore

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tiny(tmp_path: Path) -> Catalog:
    """Two films, one director, two users; every answer below can be checked by hand."""
    catalog = Catalog(tmp_path / "tiny.db")
    catalog.declare_type("film")
    catalog.declare_type("person")
    catalog.add_items([Item("f1", "film", "One"), Item("f2", "film", "Two"), Item("p1", "person", "Pat")])
    catalog.add_relations([Relation("f1", "directed_by", "p1"), Relation("f2", "directed_by", "p1"),
                           Relation("p1", "known_for", "f1")])
    catalog.add_users([("u1", {}), ("u2", {"age": 30})])
    catalog.add_interactions([Interaction("u1", "f2", 30.0), Interaction("u1", "f1", 10.0),
                              Interaction("u2", "p1", 20.0)])
    yield catalog
    catalog.close()


# ------------------------------------------------------------------ catalog reads
def test_item_ids_and_known_ids(tiny: Catalog) -> None:
    assert tiny.item_ids() == ["f1", "f2", "p1"]
    assert tiny.item_ids("person") == ["p1"]
    with pytest.raises(CatalogError, match="unknown entity type"):
        tiny.item_ids("song")
    assert tiny.known_item_ids(["f2", "nope", "p1"]) == {"f2", "p1"}
    assert tiny.known_user_ids(["u2", "f1"]) == {"u2"}
    assert tiny.known_item_ids([]) == set()


def test_known_ids_work_past_the_bound_variable_limit(tiny: Catalog) -> None:
    ids = [f"x{n}" for n in range(2500)] + ["f1"]
    assert tiny.known_item_ids(ids) == {"f1"}


def test_links_relation_targets_and_timestamps(tiny: Catalog) -> None:
    assert tiny.links("p1") == {"out": [("known_for", "f1")],
                                "in": [("directed_by", "f1"), ("directed_by", "f2")]}
    assert tiny.links("f2") == {"out": [("directed_by", "p1")], "in": []}
    assert tiny.related("p1", reverse=True) == ["f1", "f2"]
    assert tiny.related("p1", "known_for") == ["f1"] and tiny.related("p1", "directed_by") == []
    assert tiny.relation_target_types() == [("directed_by", "person"), ("known_for", "film")]
    assert tiny.timestamps() == [10.0, 20.0, 30.0]
    assert tiny.interacted_types() == {"film": 2, "person": 1}


# ------------------------------------------------------------------ catalog writes
def test_add_relations_counts_only_new_ones(tiny: Catalog) -> None:
    assert tiny.add_relations([Relation("f1", "directed_by", "p1"), Relation("p1", "known_for", "f2")]) == 1
    assert tiny.counts()["relations"]["total"] == 4
    with pytest.raises(CatalogError, match="unknown item"):
        tiny.add_relations([Relation("f1", "directed_by", "nobody")])


def test_set_popularity(tiny: Catalog) -> None:
    assert tiny.set_popularity({"p1": 7.0, "f2": 2}) == 2
    assert (tiny.get("p1").popularity, tiny.get("f2").popularity, tiny.get("f1").popularity) == (7.0, 2.0, 0.0)


def test_add_interaction_rows_is_all_or_nothing(tiny: Catalog) -> None:
    assert tiny.add_interaction_rows([("u2", "f1", 40, 4.5, "rating")]) == 1
    assert tiny.history("u2")[-1] == Interaction("u2", "f1", 40.0, 4.5, "rating", 4)
    with pytest.raises(CatalogError, match="unknown user or item"):
        tiny.add_interaction_rows([("u2", "f2", 50.0, None, "x"), ("ghost", "f1", 51.0, None, "x")])
    assert tiny.timestamps() == [10.0, 20.0, 30.0, 40.0]


def test_page_cache_is_restored(tiny: Catalog) -> None:
    before = tiny.db.execute("PRAGMA cache_size").fetchone()[0]
    with tiny.page_cache(8192):
        assert tiny.db.execute("PRAGMA cache_size").fetchone()[0] == -8192
    assert tiny.db.execute("PRAGMA cache_size").fetchone()[0] == before


def test_import_counts_new_and_updated_rows(tiny: Catalog, tmp_path: Path) -> None:
    items = tmp_path / "items.csv"
    items.write_text("id,title,entity_type\nf2,Two (remastered),film\nf3,Three,film\n")
    report = import_file(tiny, items, "items", upsert=True)
    assert (report.inserted, report.updated) == (1, 1) and tiny.get("f2").title == "Two (remastered)"
    relations = tmp_path / "rel.csv"
    relations.write_text("src,relation,dst\nf1,directed_by,p1\nf3,directed_by,p1\n")
    assert import_file(tiny, relations, "relations").inserted == 1
    inter = tmp_path / "inter.csv"
    inter.write_text("user_id,item_id,timestamp\nu3,f3,60\n")
    assert import_file(tiny, inter, "interactions", create_users=True).inserted == 1
    assert tiny.has_user("u3") and tiny.timestamps()[-1] == 60.0


def test_a_failed_import_writes_nothing(tiny: Catalog, tmp_path: Path) -> None:
    before = list(tiny.db.conn.iterdump())
    inter = tmp_path / "inter.csv"
    inter.write_text("user_id,item_id,timestamp\nu1,f1,60\nu1,nope,61\n")
    with pytest.raises(CatalogImportError) as err:
        import_file(tiny, inter, "interactions")
    problem = err.value.problems[0]
    assert (problem.line, problem.column) == (3, "item_id")
    assert list(tiny.db.conn.iterdump()) == before


# ------------------------------------------------------------------ shared helper
def test_connect_sets_up_files_and_memory(tmp_path: Path) -> None:
    conn = _sqlite.connect(tmp_path / "deep" / "er" / "x.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert conn.isolation_level is None
    conn.close()
    memory = _sqlite.connect(":memory:")
    assert memory.execute("PRAGMA journal_mode").fetchone()[0] == "memory"
    memory.close()


def test_transaction_rolls_back_on_error_and_nests(tmp_path: Path) -> None:
    conn, lock = _sqlite.connect(tmp_path / "t.db"), threading.RLock()
    conn.execute("CREATE TABLE t (x INTEGER)")
    with pytest.raises(RuntimeError), _sqlite.transaction(conn, lock):
        conn.execute("INSERT INTO t VALUES (1)")
        with _sqlite.transaction(conn, lock):  # joins the outer block
            conn.execute("INSERT INTO t VALUES (2)")
        raise RuntimeError("boom")
    assert conn.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 0 and not conn.in_transaction
    with _sqlite.transaction(conn, lock):
        conn.execute("INSERT INTO t VALUES (3)")
        with _sqlite.transaction(conn, lock):
            conn.execute("INSERT INTO t VALUES (4)")
        assert conn.in_transaction  # the inner block did not commit
    other = sqlite3.connect(tmp_path / "t.db")
    assert [r[0] for r in other.execute("SELECT x FROM t ORDER BY x")] == [3, 4]
    other.close()
    conn.close()


def test_read_only_refuses_writes(tmp_path: Path) -> None:
    path = tmp_path / "theirs.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x)")
    conn.close()
    reader = _sqlite.read_only(path)
    assert list(reader.execute("SELECT * FROM t")) == []
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader.execute("INSERT INTO t VALUES (1)")
    reader.close()


def test_bad_files_keep_their_error_types(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(SessionError, match="not a usable session database"):
        SessionStore(junk)
    with pytest.raises(sqlite3.DatabaseError):
        Catalog(junk)


# ------------------------------------------------------------------ no SQL outside the store
OUTSIDE_THE_STORE = [
    "neo_sdk/catalog/_importers.py",
    "neo_sdk/catalog/_datasets.py",
    "neo_sdk/catalog/_splits.py",
    "neo_sdk/cli/_catalog.py",
    "neo_sdk/sids/_collab.py",
    "neo_sdk/tasks/_facts.py",
]


@pytest.mark.parametrize("path", OUTSIDE_THE_STORE)
def test_no_raw_sql_outside_the_store(path: str) -> None:
    source = (ROOT / path).read_text()
    assert not re.search(r"\.db\.execute|\.db\.conn|^\s*(import sqlite3|from sqlite3 )", source, re.MULTILINE), path


@pytest.mark.parametrize("path", ["neo_sdk/catalog/_store.py", "neo_sdk/session/_store.py"])
def test_both_stores_use_the_shared_setup(path: str) -> None:
    source = (ROOT / path).read_text()
    assert "_sqlite.connect(" in source and "_sqlite.transaction(" in source
    for setup in ("sqlite3.connect(", "PRAGMA journal_mode", "PRAGMA foreign_keys", '"BEGIN IMMEDIATE"', '"ROLLBACK"'):
        assert setup not in source, (path, setup)

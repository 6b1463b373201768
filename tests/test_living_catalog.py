"""A living catalog: a trained bundle serves a catalog grown with `neo sids assign`, without retraining.

Trained SIDs must stay exactly as trained (verified on load, refused otherwise); new items are
served at once and marked ``new``; inactive items are never returned; `neo bundle refresh` records
the extension in the manifest, atomically, with every checksum intact.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from neo_sdk import Catalog, Item
from neo_sdk.bundle import check_catalog, read_manifest
from neo_sdk.cli import main
from neo_sdk.errors import BundleError, SIDError
from neo_sdk.session import ItemRef, Neo
from neo_sdk.sids import SIDConfig, SIDTable, assign_new, build_sids
from tests.conftest import build_sample_catalog

NEW_BOOKS = {"book:glass-orchard": ("The Glass Orchard", 2031), "book:salt-engines": ("Salt Engines", 2032),
             "book:tide-clock": ("The Tide Clock", 2033)}
NEW_AUTHOR = "author:ines-vale"
DEACTIVATED = ["book:dune", "book:hobbit", "book:tide-clock"]  # two trained items and a new one

ITEMS_CSV = """id,entity_type,title,genres,year,description
book:glass-orchard,book,The Glass Orchard,Fantasy,2031,A gardener grows an orchard of glass trees
book:salt-engines,book,Salt Engines,Science fiction,2032,Steam ships cross a desert of salt
book:tide-clock,book,The Tide Clock,Fantasy,2033,A clock that runs on the tides of a drowned city
author:ines-vale,author,Ines Vale,Fantasy,,Debut author of The Glass Orchard
"""


def copy_catalog(src: Path, dst: Path) -> Path:
    """A consistent copy of a SQLite catalog (WAL included)."""
    with contextlib.closing(sqlite3.connect(src)) as a, contextlib.closing(sqlite3.connect(dst)) as b:
        a.backup(b)
    return dst


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def edit_sids(db: Path, change: Callable[[sqlite3.Connection], None]) -> None:
    """Change the SID rows of a catalog *and* its recorded hash, as a tool other than
    `neo sids assign` might: only the bundle's own check can catch it."""
    from neo_sdk.sids._table import content_hash, read_types

    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        change(conn)
    with Catalog(db) as catalog:
        digest = content_hash(read_types(catalog))
        with catalog.transaction():
            catalog.db.execute("UPDATE sid_builds SET content_hash=? WHERE id=(SELECT MAX(id) FROM sid_builds)",
                               [digest])


@pytest.fixture(scope="module")
def trained_db(trained_bundle: Path) -> Path:
    return trained_bundle.parent / "sample.db"


@pytest.fixture(scope="module")
def grown(trained_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trained catalog plus 3 books and an author (SIDs from `neo sids assign`), then 3 books
    deactivated: two the bundle was trained on, one of the new ones."""
    root = tmp_path_factory.mktemp("grown")
    db = copy_catalog(trained_db, root / "grown.db")
    (root / "items.csv").write_text(ITEMS_CSV)
    (root / "relations.csv").write_text("src,relation,dst\nbook:glass-orchard,written_by,author:ines-vale\n")
    assert run("catalog", "import", str(root / "items.csv"), "--kind", "items", "--db", str(db))[0] == 0
    assert run("catalog", "import", str(root / "relations.csv"), "--kind", "relations", "--db", str(db))[0] == 0
    code, out, _ = run("sids", "assign", "--db", str(db), "--no-progress")
    assert code == 0 and "book: assigned 3 new SIDs" in out and "author: assigned 1 new SIDs" in out
    with Catalog(db) as catalog:
        assert catalog.deactivate(DEACTIVATED) == 3
    return db


@pytest.fixture(scope="module")
def neo(trained_bundle: Path, grown: Path) -> Neo:
    runtime = Neo.load(trained_bundle, catalog=grown, sessions=":memory:")
    yield runtime
    runtime.close()


def test_item_ref_new_is_optional_for_stored_answers() -> None:
    old = ItemRef.model_validate_json('{"id": "book:dune", "type": "book", "title": "Dune", "sid": ""}')
    assert old.new is False
    assert ItemRef(id="b", type="book", title="B", sid="", new=True).model_dump()["new"] is True


def test_assign_keeps_old_sids_and_fills_every_free_code(tmp_path: Path) -> None:
    """With M=2, K=2 the sample's books fill one first-level prefix: new items near it go to the
    nearest tuple with room; when every tuple is full, assign refuses (rebuild)."""
    catalog = build_sample_catalog(tmp_path / "s.db")
    build_sids(catalog, SIDConfig(levels=2, codes=2), progress=False)
    before = SIDTable.load(catalog)
    books = before.by_type("book")
    free = 4 * books.disambiguation - len(books)  # K^M tuples of D codes each
    new = [Item(f"book:new-{n}", "book", f"Dragons of the glass sea {n}", {"genres": "Fantasy"}) for n in range(free)]
    catalog.add_items(new)
    placed = assign_new(catalog, progress=False)["book"]
    after = SIDTable.load(catalog)
    assert len(placed) == free and len(after.by_type("book")) == 4 * books.disambiguation
    assert all(after.sid_of(i) == before.sid_of(i) for i in before)
    codes = after.by_type("book").codes
    assert codes[:, :-1].max() < books.codes_per_level and codes[:, -1].max() < books.disambiguation
    catalog.add_items([Item("book:one-too-many", "book", "One too many", {"genres": "Fantasy"})])
    with pytest.raises(SIDError, match="every code tuple of 'book' already holds"):
        assign_new(catalog, progress=False)
    catalog.close()


@pytest.mark.slow
def test_a_grown_catalog_is_served_without_retraining(neo: Neo, trained_bundle: Path, grown: Path) -> None:
    trained = neo.bundle.trained_table
    with Catalog(grown) as catalog:
        current = SIDTable.load(catalog)
    assert current.content_hash != read_manifest(trained_bundle)["sid_table_hash"] == neo.bundle_id
    assert all(current.sid_of(i) == trained.sid_of(i) for i in trained)  # old SIDs unchanged
    assert neo.new_items == {*NEW_BOOKS, NEW_AUTHOR} and neo.extension.sid_table_hash == current.content_hash
    assert neo.extension.inactive == len(DEACTIVATED)
    served = set(neo.trie.position_of())
    assert served == ({i for i in current if current.is_active(i)}) and not served & set(DEACTIVATED)
    assert {"book:glass-orchard", "book:salt-engines", NEW_AUTHOR} <= served
    ref = neo.item("book:salt-engines")
    assert ref.new and ref.sid.startswith("<|book_0_") and not neo.item("book:emma").new
    assert neo.encoder.span("book:salt-engines") == neo.bundle.vocab.encode_codes(
        "book", current.sid_of("book:salt-engines").codes)


@pytest.mark.slow
def test_new_items_are_reachable_and_marked(neo: Neo) -> None:
    session = neo.session(user="ben", exclude_consumed=False, exclude_recommended=False)
    # only new books are from the 2030s: the filter leaves the decoder nothing else
    recent = session.ask("recommend books", filters={"year_min": 2030}, k=5)
    assert {i.id for i in recent.items} == {"book:glass-orchard", "book:salt-engines"}
    assert all(i.new for i in recent.items) and ", new)" in str(recent)
    explained = session.ask("recommend a book and explain why", filters={"year_min": 2030})
    assert explained.items[0].id in NEW_BOOKS and explained.items[0].new and explained.items[0].role == "answer"
    # search over every active book: the new ones come back, marked, the inactive ones never
    found = session.ask("find books", k=20)  # no stated fact: every active book is a candidate
    active_books = {i for i in neo.trie.position_of() if i.startswith("book:")}
    assert found.task == "search" and {i.id for i in found.items} == active_books
    assert {i.id for i in found.items if i.new} == {"book:glass-orchard", "book:salt-engines"}
    # explicit mention by title: the new item is "this", its SID is in the prompt
    like = session.ask("books like Salt Engines")
    assert like.task == "like_this" and like.request.focus == "book:salt-engines"
    assert like.items and "book:salt-engines" not in {i.id for i in like.items}
    authors = session.ask("recommend authors", k=20)
    assert NEW_AUTHOR in {i.id for i in authors.items if i.new}


@pytest.mark.slow
def test_inactive_items_are_never_returned(neo: Neo) -> None:
    inactive = set(DEACTIVATED)
    assert "book:dune" in neo.session(user="ben").history  # still history, only never returned
    requests = ["recommend books", "recommend 10 books", "find fantasy books", "find science fiction books",
                "books like this, explain why", "recommend a book and explain why", "books like Dune",
                "books like The Hobbit", "more like the first one", "recommend authors"]
    returned = []
    for user in ("ana", "ben", "chloe"):
        for options in ({}, {"exclude_consumed": False, "exclude_recommended": False}):
            session = neo.session(user=user, **options)
            for text in requests:
                answer = session.ask(text)
                model_items = answer.items if answer.explained_by != "catalog facts" else answer.answer_items
                returned += [i.id for i in model_items]
    assert len(returned) > 60 and not inactive & set(returned)
    everything = neo.session(user="ben", exclude_consumed=False).ask("find books", k=100)
    assert len(everything.items) == 8 and not inactive & {i.id for i in everything.items}


@pytest.mark.slow
def test_a_changed_or_removed_trained_sid_is_refused(trained_bundle: Path, trained_db: Path, tmp_path: Path) -> None:
    swapped = copy_catalog(trained_db, tmp_path / "swapped.db")

    def swap(conn: sqlite3.Connection) -> None:
        dune, emma = (conn.execute("SELECT codes FROM sids WHERE item_id=?", [i]).fetchone()[0]
                      for i in ("book:dune", "book:emma"))
        conn.execute("UPDATE sids SET codes='x' WHERE item_id='book:dune'")
        conn.execute("UPDATE sids SET codes=? WHERE item_id='book:emma'", [dune])
        conn.execute("UPDATE sids SET codes=? WHERE item_id='book:dune'", [emma])

    edit_sids(swapped, swap)
    with pytest.raises(BundleError, match=r"2 item\(s\) this bundle was trained on have another SID.*book:dune: "
                                          r"book:.* -> now book:.*neo sids assign"):
        Neo.load(trained_bundle, catalog=swapped, sessions=":memory:")

    removed = copy_catalog(trained_db, tmp_path / "removed.db")
    edit_sids(removed, lambda conn: conn.execute("DELETE FROM sids WHERE item_id='author:gibson'"))
    with Catalog(removed) as catalog, pytest.raises(BundleError, match=r"author:gibson: author:.* -> now none"):
        check_catalog(trained_bundle, catalog)

    rebuilt = copy_catalog(trained_db, tmp_path / "rebuilt.db")
    assert run("sids", "build", "--db", str(rebuilt), "--levels", "1", "--codes", "3", "--no-progress")[0] == 0
    copy = shutil.copytree(trained_bundle, tmp_path / "bundle")
    before = (copy / "manifest.json").read_bytes()
    code, _, err = run("bundle", "refresh", str(copy), "--db", str(rebuilt))
    assert code == 1 and "SIDs of" in err and "were rebuilt" in err and "retrain with `neo train`" in err
    assert (copy / "manifest.json").read_bytes() == before


@pytest.mark.slow
def test_refresh_records_the_extension_atomically(trained_bundle: Path, grown: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = shutil.copytree(trained_bundle, tmp_path / "bundle")
    original = read_manifest(bundle)
    code, out, _ = run("bundle", "verify", str(bundle), "--db", str(grown))
    assert code == 0 and json.loads(out)["checked_catalog"]["new_items"] == 4 and "extension" not in json.loads(out)
    assert json.loads((bundle / "manifest.json").read_text()) == original  # verify writes nothing

    import neo_sdk.bundle as bundle_module

    def crash(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(bundle_module.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        run("bundle", "refresh", str(bundle), "--db", str(grown))
    monkeypatch.undo()
    assert read_manifest(bundle) == original and sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]

    code, out, _ = run("bundle", "refresh", str(bundle), "--db", str(grown))
    assert code == 0 and json.loads(out)["new_items"] == 4
    manifest = read_manifest(bundle)  # every checksum still verifies
    ext = manifest["extension"]
    assert ext["new_by_type"] == {"author": 1, "book": 3} and ext["inactive"] == len(DEACTIVATED)
    assert ext["trained_catalog"] == original["catalog"] and manifest["catalog"] == ext["catalog"] == str(grown)
    assert manifest["sid_table_hash"] == original["sid_table_hash"] and manifest["files"] == original["files"]
    with Catalog(grown) as catalog:
        assert ext["sid_table_hash"] == SIDTable.load(catalog).content_hash
    code, out, _ = run("bundle", "verify", str(bundle))
    assert code == 0 and json.loads(out)["extension"]["new_items"] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]
    (bundle / "sids.json").write_text("{}")
    code, _, err = run("bundle", "verify", str(bundle))
    assert code == 1 and "sids.json does not match its checksum" in err

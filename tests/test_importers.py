"""Importers: every format, column mapping, upsert, and the malformed corpus (atomic refusals)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from neo_sdk import Catalog, CatalogImportError, import_dataframe, import_file, parse_timestamp
from tests.conftest import MALFORMED, SAMPLE, snapshot

# (file, kind, line, column, words the message must contain)
MALFORMED_CASES = [
    ("items_missing_id.csv", "items", 3, "id", "missing item id"),
    ("items_unknown_type.csv", "items", 3, "entity_type", "unknown entity type 'podcast'"),
    ("items_duplicate_id.csv", "items", 4, "id", "duplicate item id 'book:x1' (first on line 2)"),
    ("items_existing_id.csv", "items", 3, "id", "already exists in the catalog; pass upsert"),
    ("items_missing_title.csv", "items", 3, "title", "missing title"),
    ("items_wrong_cell_count.csv", "items", 3, None, "expected 3 cells"),
    ("items_bad_popularity.csv", "items", 3, "popularity", "'lots' is not a number"),
    ("items_missing_column.csv", "items", 2, "title", "required column 'title' is missing"),
    ("items_unclosed_quote.csv", "items", 3, None, "malformed CSV"),
    ("items_bad_encoding.csv", "items", 3, None, "not valid UTF-8"),
    ("items_bad_json.jsonl", "items", 2, None, "invalid JSON"),
    ("items_not_object.jsonl", "items", 2, None, "expected a JSON object"),
    ("items_bad_metadata.jsonl", "items", 2, "metadata", "metadata must be a JSON object"),
    ("interactions_bad_timestamp.csv", "interactions", 3, "timestamp", "unparsable timestamp 'last tuesday'"),
    ("interactions_missing_timestamp.csv", "interactions", 3, "timestamp", "missing timestamp"),
    ("interactions_unknown_item.csv", "interactions", 3, "item_id", "unknown item 'book:does-not-exist'"),
    ("interactions_unknown_user.csv", "interactions", 3, "user_id", "unknown user 'zed'"),
    ("interactions_bad_value.csv", "interactions", 3, "value", "'five stars' is not a number"),
    ("interactions_extra_column.csv", "interactions", 2, "device", "unexpected columns ['device']"),
    ("relations_unknown_item.csv", "relations", 3, "dst", "unknown item 'person:villeneuve'"),
    ("users_duplicate.jsonl", "users", 3, "id", "duplicate user id 'u1' (first on line 1)"),
    ("recbole_bad_header.item", "items", 1, "year", "'name:type'"),
    ("recbole_wrong_cells.inter", "interactions", 3, None, "expected 3 tab-separated cells"),
    ("empty.csv", "items", 1, None, "empty file"),
]


def test_corpus_is_fully_covered() -> None:
    tested = {case[0] for case in MALFORMED_CASES}
    on_disk = {p.name for p in MALFORMED.iterdir() if p.name != "README.md"}
    assert tested == on_disk


@pytest.mark.parametrize(("name", "kind", "line", "column", "words"), MALFORMED_CASES)
def test_malformed_file_is_refused_and_changes_nothing(
    sample_catalog: Catalog, name: str, kind: str, line: int, column: str | None, words: str
) -> None:
    before = snapshot(sample_catalog)
    with pytest.raises(CatalogImportError) as caught:
        import_file(sample_catalog, MALFORMED / name, kind, upsert=False)
    problem = caught.value.first
    assert problem.source.endswith(name)
    assert (problem.line, problem.column) == (line, column)
    assert words in problem.message
    assert f"{name}:{line}" in str(caught.value)
    assert snapshot(sample_catalog) == before


def test_every_problem_is_reported_not_only_the_first(sample_catalog: Catalog, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,item_id,timestamp\nana,book:nope,1\nzed,book:dune,x\nana,book:dune,2\n")
    with pytest.raises(CatalogImportError) as caught:
        import_file(sample_catalog, bad, "interactions")
    found = [(p.line, p.column) for p in caught.value.problems]
    assert found == [(2, "item_id"), (3, "timestamp"), (3, "user_id")]


def test_bad_row_at_the_end_of_a_large_file_writes_nothing(sample_catalog: Catalog, tmp_path: Path) -> None:
    rows = [f"ana,book:dune,{1_700_000_000 + k}" for k in range(20_000)] + ["ana,book:dune,soon"]
    path = tmp_path / "big.csv"
    path.write_text("user_id,item_id,timestamp\n" + "\n".join(rows) + "\n")
    before = sample_catalog.counts()["interactions"]
    with pytest.raises(CatalogImportError, match=r"big.csv:20002"):
        import_file(sample_catalog, path, "interactions")
    assert sample_catalog.counts()["interactions"] == before


def test_sample_catalog_imports_every_kind(sample_catalog: Catalog) -> None:
    counts = sample_catalog.counts()
    assert counts["entity_types"] == {
        "author": {"items": 6, "active": 6},
        "book": {"items": 8, "active": 8},
    }
    assert (counts["users"], counts["interactions"], counts["relations"]["total"]) == (3, 14, 8)
    dune = sample_catalog.get("book:dune")
    assert dune.fields == {
        "genres": "Science fiction",
        "year": "1965",
        "description": "A desert planet and the spice that everyone wants",
    }
    assert sample_catalog.user_features("ana") == {"age": 34, "country": "ES"}
    assert sample_catalog.related("book:dune", "written_by") == ["author:herbert"]
    assert sample_catalog.related("author:le-guin", reverse=True) == ["book:earthsea", "book:left-hand"]


def test_column_mapping_and_type_option(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "c.db")
    catalog.declare_type("movie", ["title", "genre"])
    path = tmp_path / "movies.csv"
    path.write_text("movieId,name,genre\n1,Heat,Crime\n2,Up,Animation\n")
    report = import_file(catalog, path, "items", entity_type="movie", columns={"id": "movieId", "title": "name"})
    assert (report.rows, report.inserted, report.updated) == (2, 2, 0)
    assert catalog.get("2").title == "Up"
    assert catalog.get("2").fields == {"genre": "Animation"}


def test_unknown_mapping_name_is_refused(sample_catalog: Catalog) -> None:
    with pytest.raises(CatalogImportError, match=r"unknown fields \['identifier'\]"):
        import_file(sample_catalog, SAMPLE / "items.csv", "items", columns={"identifier": "id"})


def test_upsert_updates_in_place(sample_catalog: Catalog, tmp_path: Path) -> None:
    path = tmp_path / "update.jsonl"
    path.write_text(
        json.dumps({"id": "book:dune", "entity_type": "book", "title": "Dune", "active": "false"}) + "\n"
        + json.dumps({"id": "book:new", "entity_type": "book", "title": "New"}) + "\n"
    )
    report = import_file(sample_catalog, path, "items", upsert=True)
    assert (report.inserted, report.updated) == (1, 1)
    assert sample_catalog.get("book:dune").active is False
    assert sample_catalog.counts()["items"] == 15


def test_create_users_option(sample_catalog: Catalog, tmp_path: Path) -> None:
    path = tmp_path / "i.csv"
    path.write_text("user_id,item_id,timestamp\nnewbie,book:dune,1\n")
    import_file(sample_catalog, path, "interactions", create_users=True)
    assert sample_catalog.has_user("newbie")
    assert [e.item_id for e in sample_catalog.history("newbie")] == ["book:dune"]


def test_recbole_atomic_files(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "r.db")
    catalog.declare_type("movie", ["title", "class"])
    (tmp_path / "x.item").write_text(
        "item_id:token\tmovie_title:token_seq\tclass:token_seq\n1\tToy Story\tAnimation Comedy\n2\tHeat\tCrime\n"
    )
    (tmp_path / "x.user").write_text("user_id:token\tage:token\n7\t24\n")
    (tmp_path / "x.inter").write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n7\t2\t4\t10\n7\t1\t5\t10\n")
    import_file(catalog, tmp_path / "x.item", entity_type="movie", columns={"title": "movie_title"})
    import_file(catalog, tmp_path / "x.user")
    import_file(catalog, tmp_path / "x.inter", columns={"value": "rating"})
    toy = catalog.get("1")
    assert toy.title == "Toy Story"
    assert toy.fields == {"class": ["Animation", "Comedy"]}
    assert catalog.user_features("7") == {"age": "24"}
    assert [(e.item_id, e.value) for e in catalog.history("7")] == [("2", 4.0), ("1", 5.0)]


def test_dataframe_import_and_errors(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "d.db")
    catalog.declare_type("movie")
    items = pd.DataFrame({"id": ["a", "b"], "title": ["A", "B"], "score": [1.5, float("nan")]})
    import_dataframe(catalog, items, "items", entity_type="movie")
    assert catalog.get("a").fields == {"score": 1.5}
    assert catalog.get("b").fields == {}
    inter = pd.DataFrame({"user_id": ["u", "u"], "item_id": ["a", "zzz"],
                          "timestamp": pd.to_datetime(["2024-01-01", "2024-01-02"])})
    with pytest.raises(CatalogImportError) as caught:
        import_dataframe(catalog, inter, "interactions", create_users=True)
    assert (caught.value.first.line, caught.value.first.column) == (2, "item_id")
    assert catalog.counts()["users"] == 0
    import_dataframe(catalog, inter.iloc[:1], "interactions", create_users=True)
    assert catalog.history("u")[0].timestamp == parse_timestamp("2024-01-01T00:00:00Z")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (1704067200, 1704067200.0),
        ("1704067200.5", 1704067200.5),
        ("2024-01-01T00:00:00Z", 1704067200.0),
        ("2024-01-01", 1704067200.0),
        ("2024-01-01T01:00:00+01:00", 1704067200.0),
    ],
)
def test_parse_timestamp(raw: object, expected: float) -> None:
    assert parse_timestamp(raw) == expected


@pytest.mark.parametrize("raw", ["", None, "soon", "nan", float("inf"), True])
def test_parse_timestamp_refuses(raw: object) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(raw)

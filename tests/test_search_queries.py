"""Search query families (issue 15, "measure first"): built from catalog facts, on movies and on podcasts.

No trained model here: the families, their predicates and the scores are checked against the
catalog facts directly (every matching set is recomputed item by item with :meth:`Fact.holds`).
"""

from __future__ import annotations

import importlib.util
import json
import random
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from neo_sdk import Catalog, Interaction, Item, Relation
from neo_sdk.catalog import Split, leave_one_out, load_dataset
from neo_sdk.errors import ConfigError
from neo_sdk.evaluation._search_queries import (
    SEARCH_FAMILIES,
    Fact,
    QueryBuilder,
    SearchQuery,
    build_search_queries,
    clean_title,
    hit_at_k,
    popularity_among_matching,
    precision_at_k,
    query_builder,
    query_score,
    title_words,
    type_nouns,
    unique_share,
)
from neo_sdk.prompts import load_prompts

ROOT = Path(__file__).resolve().parents[1]
N = 60

TOPICS = ["astronomy", "cooking", "true crime", "history", "jazz", "gardening"]
HOSTS = ["Ada Park", "Ben Ortiz", "Cleo Marsh", "Dev Rao", "Eva Lind", "Femi Cole", "Gus Hahn", "Hana Ito",
         "Ivo Petrov", "Jude Kim", "Kai Moreno", "Lea Novak", "Max Ferro", "Nia Grant", "Oto Weiss", "Pia Costa"]
WORDS = ["Weekly", "Hour", "Notes", "Club", "Radio", "Talks", "Files", "Desk", "Corner", "Hour Two"]


def podcast_catalog(path: str = ":memory:", seed: int = 0) -> Catalog:
    """Shows with a ``topics`` list and a ``published`` date, ``hosted_by`` hosts; users follow shows."""
    rng = random.Random(seed)
    catalog = Catalog(path)
    catalog.declare_type("show", ["title", "topics", "published", "host"])
    catalog.declare_type("host", ["title"])
    shows, relations = [], []
    for s in range(160):
        topics = rng.sample(TOPICS, 1 + (s % 3 == 0))
        title = f"{rng.choice(['The ', ''])}{topics[0].title()} {WORDS[s % len(WORDS)]} {s}"
        year = 1998 + (s * 7) % 26
        hosts = rng.sample(range(len(HOSTS)), 1 + (s % 4 == 0))
        shows.append(Item(f"pod{s:03d}", "show", title, {
            "topics": topics, "published": f"{year}-0{1 + s % 9}-1{s % 9}", "host": [HOSTS[h] for h in hosts]}))
        relations += [Relation(f"pod{s:03d}", "hosted_by", f"host{h}") for h in hosts]
    catalog.add_items(shows + [Item(f"host{h}", "host", name) for h, name in enumerate(HOSTS)])
    catalog.add_relations(relations)
    catalog.add_users([(f"u{u:02d}", {}) for u in range(40)])
    events = []
    for u in range(40):
        liked = rng.sample(TOPICS, 2)
        pool = [s.id for s in shows if set(s.fields["topics"]) & set(liked)]
        for t, item in enumerate(rng.sample(pool, 8)):
            events.append(Interaction(f"u{u:02d}", item, float(1000 * u + t)))
    catalog.add_interactions(events)
    return catalog


@pytest.fixture(scope="module")
def movies() -> tuple[Catalog, Split]:
    catalog = Catalog(":memory:")
    load_dataset(catalog, "movielens-100k", with_people=True, progress=False)
    return catalog, leave_one_out(catalog, entity_type="movie")


@pytest.fixture(scope="module")
def podcasts() -> tuple[Catalog, Split]:
    catalog = podcast_catalog()
    return catalog, leave_one_out(catalog, entity_type="show")


def _check_families(catalog: Catalog, split: Split, entity_type: str) -> dict[str, list[SearchQuery]]:
    """Every family's invariants, checked against the catalog facts item by item."""
    builder = query_builder(catalog, split, seed=0, entity_type=entity_type)
    facts = builder.facts
    queries = build_search_queries(catalog, split, n=N, seed=0, entity_type=entity_type)
    assert list(queries) == list(SEARCH_FAMILIES)
    ids = [i.id for i in catalog.items(entity_type)]

    def brute(predicate: tuple[Fact, ...]) -> frozenset[str]:
        return frozenset(i for i in ids if all(f.holds(facts, i) for f in predicate))

    for family, qs in queries.items():
        assert qs, family
        assert all(q.family == family and q.entity_type == entity_type and q.text.strip() for q in qs)
    for q in queries["navigational"]:
        assert q.text == q.text.lower() and "(" not in q.text
        assert q.matching == {q.target}
        cleaned = clean_title(facts.title(q.target))
        assert title_words(cleaned) <= title_words(q.text)  # the title, as typed
    for q in queries["descriptive"]:
        assert 2 <= len(q.predicate) <= 3
        assert q.target in q.matching and q.matching == brute(q.predicate) and len(q.matching) <= 3
        assert not title_words(q.text) & title_words(facts.title(q.target)), (q.text, facts.title(q.target))
    assert unique_share(queries["descriptive"]) >= 0.8
    kinds = set()
    for q in queries["attribute"]:
        assert len(q.matching) >= 10 and q.target is None
        assert q.matching == brute(q.predicate), q.text
        for fact in q.predicate:
            kinds.add(fact.kind)
            if fact.kind == "related":  # the related item is named in the query
                assert facts.title(fact.value).lower() in q.text.lower()
            if fact.kind == "category":
                assert fact.value.lower() in q.text.lower()
    assert kinds == {"category", "year", "related"}
    assert len({q.predicate for q in queries["attribute"]}) == len(queries["attribute"])  # distinct predicates
    for q in queries["personalised"]:
        assert q.user in split.valid and q.target == split.valid[q.user]
        assert q.history == tuple(split.valid_history[q.user]) and q.target not in q.history
        assert all(f.holds(facts, q.target) for f in q.predicate)  # the target fits its description
        assert q.matching == brute(q.predicate)
        assert {f.kind for f in q.predicate} == {"category", "year"}
    return queries


def test_families_on_the_demo_catalog(movies: tuple[Catalog, Split]) -> None:
    catalog, split = movies
    queries = _check_families(catalog, split, "movie")
    assert len(queries["navigational"]) == N and len(queries["attribute"]) == N
    texts = " | ".join(q.text.lower() for qs in queries.values() for q in qs)
    assert "directed by" in texts and "starring" in texts  # relation words from the prompts


def test_families_on_a_catalog_that_is_not_movies(podcasts: tuple[Catalog, Split]) -> None:
    catalog, split = podcasts
    builder = query_builder(catalog, split, entity_type="show")
    assert builder.category_field == "topics" and builder.year_field == "published"
    assert builder.nouns == ["show"] and builder.year_verb == "published"
    queries = _check_families(catalog, split, "show")
    texts = " | ".join(q.text.lower() for qs in queries.values() for q in qs)
    assert "hosted by" in texts  # the relation's own name, read as words
    assert "shows" in texts and not any(w in texts for w in ("movie", "film", "genre"))
    related = [f for q in queries["attribute"] for f in q.predicate if f.kind == "related"]
    assert related and all(f.key == "hosted_by" and f.value.startswith("host") for f in related)


def test_default_type_is_the_most_interacted(podcasts: tuple[Catalog, Split]) -> None:
    catalog, split = podcasts
    assert query_builder(catalog, split).entity_type == "show"
    with pytest.raises(ConfigError, match="no 'host' items|no .* items"):
        QueryBuilder(query_builder(catalog, split).facts, "episode")


def test_queries_are_deterministic_under_a_seed(podcasts: tuple[Catalog, Split]) -> None:
    catalog, split = podcasts

    def texts(seed: int, families: tuple[str, ...] = SEARCH_FAMILIES) -> dict[str, list[str]]:
        built = build_search_queries(catalog, split, n=20, seed=seed, entity_type="show", families=families)
        return {f: [q.text for q in qs] for f, qs in built.items()}

    first = texts(0)
    assert texts(0) == first
    assert texts(1) != first
    assert texts(0, ("attribute",))["attribute"] == first["attribute"]  # a family's own random stream


def test_clean_title_and_words() -> None:
    assert clean_title("Usual Suspects, The (1995)") == "the usual suspects"
    assert clean_title("Cité des enfants perdus, La (City of Lost Children, The)") == "la cité des enfants perdus"
    assert clean_title("Godfather: Part II, The") == "the godfather: part ii"
    assert clean_title("  Toy   Story (1995) ") == "toy story"
    assert title_words("The Usual Suspects") == {"usual", "suspects"}
    prompts = load_prompts()
    assert type_nouns(prompts, "movie")[:2] == ["movie", "film"]
    assert type_nouns(prompts, "show") == ["show"]


def test_hit_and_precision_by_hand() -> None:
    assert hit_at_k(["a", "b", "c"], "b", 2) == 1.0
    assert hit_at_k(["a", "b", "c"], "c", 2) == 0.0
    assert hit_at_k([], "a", 10) == 0.0 and hit_at_k(["a"], None, 10) == 0.0
    assert precision_at_k(["a", "b", "c", "d"], {"a", "c"}, 3) == pytest.approx(2 / 3)
    assert precision_at_k(["a", "b", "c", "d"], {"a", "c"}, 10) == 0.5  # share of what was returned
    assert precision_at_k([], {"a"}, 10) == 0.0
    assert precision_at_k(["a", "a", "b"], {"a"}, 10) == 0.5  # a repeat counts once
    assert precision_at_k(["x"], set(), 10) == 0.0
    with pytest.raises(ConfigError):
        precision_at_k(["a"], {"a"}, 0)
    attr = SearchQuery("x", "attribute", "t", matching=frozenset({"a"}))
    nav = SearchQuery("x", "navigational", "t", target="b", matching=frozenset({"b"}))
    assert query_score(attr, ["a", "b"], 10) == 0.5 and query_score(nav, ["a", "b"], 10) == 1.0


def test_popularity_among_matching_by_hand() -> None:
    q = SearchQuery("a 90s comedy", "personalised", "movie", target="m3",
                    matching=frozenset({"m1", "m2", "m3", "m4"}), user="u", history=("m1", "m9"))
    popularity = {"m1": 50, "m2": 10, "m3": 10, "m4": 30, "m9": 99}
    assert popularity_among_matching(q, popularity, 3) == ["m4", "m2", "m3"]  # seen m1 out; ties by id
    assert popularity_among_matching(q, popularity, 2, exclude_seen=False) == ["m1", "m4"]


def test_collaborative_search_ranks_inside_the_matching_items(movies: tuple[Catalog, Split]) -> None:
    from neo_sdk.evaluation import collaborative_search, search_setup

    setup = search_setup(*movies, n=20, seed=0, entity_type="movie")
    search = collaborative_search(setup)
    assert len(setup.queries["personalised"]) == 20
    for q in setup.queries["personalised"]:
        pool = set(q.matching) - set(q.history)
        answer = search(q, 10, False)
        assert len(answer) == len(set(answer)) == min(10, len(pool)) and set(answer) <= pool


def _bench():
    """bench/search.py as a module (registered, so its dataclasses resolve their annotations)."""
    if "bench_search" in sys.modules:
        return sys.modules["bench_search"]
    spec = importlib.util.spec_from_file_location("bench_search", ROOT / "bench" / "search.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_search"] = module
    spec.loader.exec_module(module)
    return module


def test_model_rows_check_items_through_the_runtime_contract() -> None:
    bench = _bench()
    asked = []

    class FakeSession:
        def __init__(self, history):
            self.history = history

        def ask(self, text, **kw):
            asked.append((text, self.history, kw))
            items = [SimpleNamespace(id="m1", type="movie"), SimpleNamespace(id="ghost", type="movie"),
                     SimpleNamespace(id="p1", type="person"), SimpleNamespace(id="m0", type="movie")]
            return SimpleNamespace(items=items, request=SimpleNamespace(reasons=("genre=Comedy",)),
                                   timings={"total_ms": 12.0})

    neo = SimpleNamespace(session=lambda user=None, history=None, persist=True: FakeSession(history))
    row = bench.Row("neo")
    search = bench.neo_search(neo, row, "movie", {"m0", "m1", "p1"})
    q = SearchQuery("a 90s comedy", "personalised", "movie", target="m1", user="u", history=("m0",))
    assert search(q, 10, False) == ["m1", "ghost", "p1", "m0"]
    assert search(q, 10, True) == ["m1", "ghost", "p1", "m0"]
    assert asked[0][1] == ["m0"] and asked[1][1] is None  # anonymous: the history is hidden
    assert asked[0][2] == {"task": "search", "format": "ids", "k": 10, "entity_type": "movie"}  # the type measured
    d = row.to_dict()
    assert (row.returned, row.invalid, row.wrong_type, row.seen) == (8, 2, 2, 1)
    assert d["invalid_rate"] == 0.25 and d["reasons_examples"]["personalised"][0]["reasons"] == ["genre=Comedy"]


def test_bench_runs_the_retriever_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "podcasts.db"
    podcast_catalog(str(db)).close()
    out_json, out_png = tmp_path / "search.json", tmp_path / "search.png"
    assert _bench().main(["--db", str(db), "--n", "6", "--json", str(out_json), "--png", str(out_png)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("search bench: 4 query families x 6")
    assert "| bm25 |" in printed and "| hybrid |" in printed and "model rows: not run" in printed
    result = json.loads(out_json.read_text())
    assert set(result["rows"]) == {"bm25", "dense-minilm", "hybrid", "popularity-among-matching",
                                   "collaborative-among-matching"}
    assert result["entity_type"] == "show" and out_png.read_bytes()[:4] == b"\x89PNG"
    pop = result["rows"]["popularity-among-matching"]["metrics"]
    assert set(pop) == {"personalised", "personalised_no_history"}

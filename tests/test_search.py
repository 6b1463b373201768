"""Search and visitor requests on a real (tiny) trained bundle: stated facts become filters,
retrieved candidates are ranked by the model, and a visitor without a history gets an answer.

The sample catalog is books and authors (not movies): category values (``genres``), years and a
``written_by`` relation, all read from the catalog itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from neo_sdk import Catalog, Neo
from neo_sdk.bundle import read_manifest
from neo_sdk.prompts import load_prompts
from neo_sdk.retrieval import CollaborativeRetriever, FactReader, HybridRetriever, reciprocal_rank_fusion
from neo_sdk.session._decode import SEARCH_CANDIDATES
from neo_sdk.tasks import CatalogFacts


@pytest.fixture(scope="module")
def neo(trained_bundle: Path) -> Iterator[Neo]:
    runtime = Neo.load(trained_bundle, sessions=":memory:")
    yield runtime
    runtime.close()


@pytest.fixture(scope="module")
def reader(trained_bundle: Path) -> FactReader:
    catalog = Catalog(read_manifest(trained_bundle)["catalog"])
    return FactReader(CatalogFacts(catalog, load_prompts()))


def test_fact_reader_reads_categories_people_and_relation_words(reader: FactReader) -> None:
    facts = reader.read("science fiction books written by frank herbert")
    assert facts.categories == ("Science fiction",)
    assert facts.related == (("written_by", "author:herbert"),)
    assert facts.free_text == "books"
    assert reader.read("fantasy novels by ursula k le guin").related == ((None, "author:le-guin"),)
    assert reader.read("something by tolkien").related == ((None, "author:tolkien"),)  # last name after "by"
    assert reader.read("romances").categories == ("Romance",)  # plural form
    assert not reader.read("a desert planet")  # no fact: only free text
    assert reader.read("a desert planet").free_text == "a desert planet"


def test_fact_reader_needs_a_relation_word_for_a_last_name(reader: FactReader) -> None:
    assert reader.read("gibson").related == ()  # a bare word may be anything
    assert reader.read("books by gibson").related == ((None, "author:gibson"),)


def test_reciprocal_rank_fusion_rewards_agreement() -> None:
    assert reciprocal_rank_fusion([["a", "b", "c"], ["b", "a", "d"]]) == ["a", "b", "c", "d"]  # a, b tie: order
    # 1/61 + 1/63 beats 2/62: an item first in one list outranks one second in both
    assert reciprocal_rank_fusion([["a", "b", "c"], ["c", "b", "a"]]) == ["a", "c", "b"]
    assert reciprocal_rank_fusion([["a", "b"], ["b", "a"]], weights=[1.0, 2.0])[0] == "b"
    fused = reciprocal_rank_fusion([["x", "y"], ["y", "z"]])
    assert fused[0] == "y" and set(fused) == {"x", "y", "z"}


def test_collaborative_retriever_is_ease_in_closed_form() -> None:
    histories = {"u1": ["a", "b", "c"], "u2": ["a", "b", "b"], "u3": ["b", "c", "d"], "u4": ["a", "d"], "u5": ["e"]}
    retriever = CollaborativeRetriever(histories, l2=1.0)
    ids = ["a", "b", "c", "d", "e"]
    x = np.array([[item in set(h) for item in ids] for h in histories.values()], dtype=float)
    inverse = np.linalg.inv(x.T @ x + np.eye(5))
    weights = -inverse / np.diag(inverse)
    np.fill_diagonal(weights, 0.0)
    assert retriever.index.ids == ids
    np.testing.assert_allclose(retriever.weights, weights, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(retriever.scores(["a", "zzz"]), weights[0], rtol=1e-5, atol=1e-6)
    by_hand = sorted(["b", "c", "d", "e"], key=lambda i: (-weights[0, ids.index(i)], i))
    assert retriever.rank(["a"], 4, allowed=["b", "c", "d", "e"]) == by_hand
    assert by_hand[0] == "b" and retriever.scores(["a"])[4] == 0  # "b" read with "a" by two users, "e" by none
    assert retriever.rank(["a"], 5, allowed=["e", "c", "unknown"]) == [i for i in by_hand if i in ("c", "e")]
    assert retriever.rank(["zzz"], 3) == []  # nothing of the history is modelled
    assert retriever.rank(["a"], 3, allowed=["c"], fill=["x", "c", "y"]) == ["c", "x", "y"]  # filled up to 3
    assert retriever.rank(["a"], 3, allowed=["unknown"], fill=["x"]) == []  # no allowed item is modelled
    assert CollaborativeRetriever(histories, max_items=2).index.ids == ["a", "b"]  # the most interacted


def test_a_personalised_search_ranks_what_the_history_predicts(neo: Neo) -> None:
    """With a history and no words, the collaborative retriever's best are the model's candidates;
    words go to the text retriever and a visitor gets the most popular."""
    ben = neo.session(user="ben", persist=False)
    request = ben.resolve("find books", task="search", format="ids", k=3)
    flt = neo.responder.item_filter(request, ben.excluded(request))
    allowed = [neo.responder.ids[p] for p in np.flatnonzero(flt.allowed)]
    chosen = neo.responder.candidates(request, ben.history, flt)
    predicted = neo.responder.collaborative.rank(ben.history, SEARCH_CANDIDATES, allowed=allowed)
    assert chosen.source == "collaborative" and predicted and chosen.items[: len(predicted)] == predicted
    assert set(chosen.items) <= set(allowed) and not set(chosen.items) & set(ben.history)
    answer = ben.ask("find books", task="search", k=3)
    assert answer.items and {i.id for i in answer.items} <= set(chosen.items)
    titled = ben.resolve("find the hobbit", task="search", format="ids", k=3)
    assert neo.responder.candidates(titled, ben.history, neo.responder.item_filter(titled, [])).source == "retrieved"
    assert neo.responder.candidates(request, [], flt).source == "popular"


def test_words_nothing_inside_the_facts_contains_leave_the_facts_as_the_request(neo: Neo) -> None:
    visitor = neo.session(persist=False)
    assert visitor.resolve("in the mood for fantasy books", task="search").query is None  # request chatter
    stray = visitor.resolve("find fantasy books qwxz", task="search", format="ids", k=3)
    assert stray.categories and stray.query == "qwxz"
    flt = neo.responder.item_filter(stray, [])
    assert neo.responder.candidates(stray, [], flt).source == "popular"  # not ranked by a word no book has
    titled = visitor.resolve("find fantasy books hobbit", task="search", format="ids", k=3)
    assert neo.responder.candidates(titled, [], neo.responder.item_filter(titled, [])).source == "retrieved"


def test_hybrid_retriever_ranks_inside_an_allowlist(trained_bundle: Path, neo: Neo) -> None:
    hybrid = HybridRetriever.from_catalog(neo.catalog, "book")
    assert hybrid.rank("the hobbit", 1) == ["book:hobbit"]
    assert hybrid.rank("a desert planet spice", 1) == ["book:dune"]
    assert set(hybrid.rank("hobbit", 5, allowed=["book:emma", "book:dune"])) <= {"book:emma", "book:dune"}


def test_stated_category_becomes_a_filter(neo: Neo) -> None:
    answer = neo.session(persist=False).ask("find fantasy books", k=5)
    assert answer.request.task == "search" and answer.request.categories == ("Fantasy",)
    assert answer.request.query is None  # the facts are the whole request
    assert any(r.startswith("fact: fantasy") for r in answer.request.reasons)
    assert {i.id for i in answer.items} == {"book:hobbit", "book:earthsea"}
    # ben read both: a request that only states facts recommends within them, so nothing is left
    read_both = neo.session(user="ben", persist=False).ask("find fantasy books", k=5)
    assert not read_both.items and "No books" in read_both.text


def test_named_author_becomes_a_relation_filter(neo: Neo) -> None:
    answer = neo.session(persist=False).ask("books by ursula k le guin", task="search", k=5)
    assert answer.request.related == ((None, "author:le-guin"),)
    assert {i.id for i in answer.items} == {"book:left-hand", "book:earthsea"}
    written = neo.session(persist=False).ask("science fiction books written by frank herbert", task="search", k=5)
    assert [i.id for i in written.items] == ["book:dune"]


def test_explicit_fact_filters(neo: Neo) -> None:
    answer = neo.session(persist=False).ask("find books", filters={"categories": ["Romance"]}, k=5)
    assert {i.id for i in answer.items} == {"book:emma", "book:persuasion"}
    related = neo.session(persist=False).ask("find books", filters={"related": ["author:austen"]}, k=5)
    assert {i.id for i in related.items} == {"book:emma", "book:persuasion"}


def test_a_bare_title_is_a_search(neo: Neo) -> None:
    answer = neo.session(persist=False).ask("The Left Hand of Darkness", k=3)
    assert answer.request.task == "search" and answer.items[0].id == "book:left-hand"


def test_a_title_is_found_and_not_read_as_facts(neo: Neo) -> None:
    answer = neo.session(persist=False).ask("the hobbit", task="search", k=3)
    assert answer.request.categories == () and answer.request.related == ()
    assert "book:hobbit" in [i.id for i in answer.items]


def test_a_visitor_without_history_gets_answers(neo: Neo) -> None:
    visitor = neo.session(persist=False)
    listing = visitor.ask("recommend books", k=3)
    assert listing.request.task == "next_item" and len(listing.items) == 3
    assert all(i.type == "book" for i in listing.items)
    explained = visitor.ask("recommend a book and explain why")
    assert explained.answer_items and explained.explained_by is not None and explained.text.strip()
    profile = visitor.ask("describe my taste")
    assert profile.task == "profile" and not profile.items and "history" in profile.text


def test_search_excludes_what_the_user_consumed(neo: Neo) -> None:
    session = neo.session(user="ben", persist=False)
    consumed = set(session.history)
    answer = session.ask("find books", task="search", k=8)
    assert consumed and not consumed & {i.id for i in answer.items}


def test_the_model_alone_reads_no_facts(trained_bundle: Path) -> None:
    with Neo.load(trained_bundle, sessions=":memory:", retrieval=False) as alone:
        answer = alone.session(user="ben", persist=False).ask("find fantasy books", k=3)
        assert answer.request.categories == () and answer.items
        assert all(i.type == "book" for i in answer.items)


def test_a_title_search_returns_what_the_user_read_other_searches_do_not(neo: Neo) -> None:
    ben = neo.session(user="ben", persist=False)
    assert "book:hobbit" in ben.history
    assert "book:hobbit" in [i.id for i in ben.ask("find the hobbit", task="search", k=3).items]
    chatty = ben.ask("any good fantasy books for me tonight?", task="search", k=3)
    assert chatty.request.query is None  # request chatter is not search text
    assert not chatty.items  # ben read both fantasy books: a discovery search excludes them


def test_stated_years_are_reasons_and_filters(neo: Neo) -> None:
    answer = neo.session(persist=False).ask("find books from the 1960s", task="search", k=5)
    assert (answer.request.year_min, answer.request.year_max) == (1960, 1969)
    assert any(r.startswith("fact: years 1960") for r in answer.request.reasons)
    assert answer.items and all(1960 <= (i.year or 0) <= 1969 for i in answer.items)


def test_stated_facts_on_a_podcast_catalog() -> None:
    """Topics, hosts and the "hosted by" relation come from the catalog: nothing movie-shaped."""
    from tests.test_search_queries import HOSTS, TOPICS, podcast_catalog

    reader = FactReader(CatalogFacts(podcast_catalog(), load_prompts()))
    for n, (topic, host) in enumerate(zip(TOPICS, HOSTS, strict=False)):
        facts = reader.read(f"{topic} shows hosted by {host.lower()}")
        assert facts.categories == (topic,), facts
        assert facts.related == (("hosted_by", f"host{n}"),), facts
    assert reader.read("anything with pia costa").related == ((None, "host15"),)
    assert reader.read("some jazz podcasts").categories == ("jazz",)


def test_a_one_word_name_is_read_after_a_relation_phrase() -> None:
    catalog = Catalog(":memory:")
    catalog.declare_type("album", ["title", "genres"])
    catalog.declare_type("artist", ["title"])
    from neo_sdk import Item, Relation

    catalog.add_items([Item("a1", "album", "Like a Prayer", {"genres": ["Pop"]}),
                       Item("a2", "album", "Blue Train", {"genres": ["Jazz"]}),
                       Item("p1", "artist", "Madonna"), Item("p2", "artist", "John Coltrane")])
    catalog.add_relations([Relation("a1", "performed_by", "p1"), Relation("a2", "performed_by", "p2")])
    reader = FactReader(CatalogFacts(catalog, load_prompts()))
    assert reader.read("pop albums performed by madonna").related == (("performed_by", "p1"),)
    assert reader.read("albums by coltrane").related == ((None, "p2"),)
    assert reader.read("madonna").related == ()  # a bare word may be anything
